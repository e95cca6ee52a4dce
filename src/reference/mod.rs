//! f64 CPU references for every kernel: what the tests compare the GPU against and what the
//! benchmark checks a kernel with before timing it. Written from the math, not from the
//! shaders, so a shared mistake is unlikely.

use crate::kernels::loss::Loss;
use crate::optim::Optimizer;

/// `op(a)[m, k] · op(b)[k, n]` with the storage conventions of `kernels::matmul`.
pub fn matmul(
    a: &[f64],
    b: &[f64],
    (m, n, k): (usize, usize, usize),
    trans_a: bool,
    trans_b: bool,
) -> Vec<f64> {
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for p in 0..k {
            let av = if trans_a { a[p * m + i] } else { a[i * k + p] };
            for j in 0..n {
                let bv = if trans_b { b[j * k + p] } else { b[p * n + j] };
                c[i * n + j] += av * bv;
            }
        }
    }
    c
}

/// Σ over rows: `[rows, cols] → [cols]`.
pub fn sum_rows(x: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    (0..cols)
        .map(|c| (0..rows).map(|r| x[r * cols + c]).sum())
        .collect()
}

/// Σ over columns: `[rows, cols] → [rows]`.
pub fn sum_cols(x: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    (0..rows)
        .map(|r| x[r * cols..(r + 1) * cols].iter().sum())
        .collect()
}

/// PyTorch's mean loss and its gradient with respect to `pred` (`[rows, cols]`).
pub fn loss(loss: Loss, pred: &[f64], target: &[f64], rows: usize, cols: usize) -> (f64, Vec<f64>) {
    let mut total = 0.0;
    let mut grad = vec![0.0; rows * cols];
    let n = match loss {
        Loss::CrossEntropy => rows as f64,
        _ => (rows * cols) as f64,
    };
    for r in 0..rows {
        let row = &pred[r * cols..(r + 1) * cols];
        if loss == Loss::CrossEntropy {
            let label = target[r] as usize;
            let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = row.iter().map(|v| (v - max).exp()).sum();
            total += max + sum.ln() - row[label];
            for c in 0..cols {
                let p = (row[c] - max).exp() / sum;
                grad[r * cols + c] = (p - if c == label { 1.0 } else { 0.0 }) / n;
            }
            continue;
        }
        for c in 0..cols {
            let i = r * cols + c;
            let (x, y) = (pred[i], target[i]);
            let (l, g) = match loss {
                Loss::Mse => ((x - y).powi(2), 2.0 * (x - y)),
                Loss::BceWithLogits => {
                    let s = 1.0 / (1.0 + (-x).exp());
                    (x.max(0.0) - x * y + (-x.abs()).exp().ln_1p(), s - y)
                }
                Loss::Huber { delta } => {
                    let (d, delta) = (x - y, f64::from(delta));
                    if d.abs() < delta {
                        (0.5 * d * d, d)
                    } else {
                        (delta * (d.abs() - 0.5 * delta), delta * d.signum())
                    }
                }
                Loss::CrossEntropy => unreachable!("handled above"),
            };
            total += l;
            grad[i] = g / n;
        }
    }
    (total / n, grad)
}

/// BatchNorm1d training forward: `(y, batch mean, biased var)`.
pub fn batchnorm_forward(
    x: &[f64],
    rows: usize,
    cols: usize,
    gamma: &[f64],
    beta: &[f64],
    eps: f64,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let mean: Vec<f64> = sum_rows(x, rows, cols)
        .iter()
        .map(|s| s / rows as f64)
        .collect();
    let var: Vec<f64> = (0..cols)
        .map(|c| {
            (0..rows)
                .map(|r| (x[r * cols + c] - mean[c]).powi(2))
                .sum::<f64>()
                / rows as f64
        })
        .collect();
    let y = (0..rows * cols)
        .map(|i| {
            let c = i % cols;
            (x[i] - mean[c]) / (var[c] + eps).sqrt() * gamma[c] + beta[c]
        })
        .collect();
    (y, mean, var)
}

/// BatchNorm1d training backward: `(dx, dgamma, dbeta)`.
pub fn batchnorm_backward(
    x: &[f64],
    dy: &[f64],
    rows: usize,
    cols: usize,
    gamma: &[f64],
    eps: f64,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (_, mean, var) = batchnorm_forward(x, rows, cols, gamma, &vec![0.0; cols], eps);
    let n = rows as f64;
    let xhat = |i: usize| (x[i] - mean[i % cols]) / (var[i % cols] + eps).sqrt();
    let dbeta = sum_rows(dy, rows, cols);
    let dyx: Vec<f64> = (0..rows * cols).map(|i| dy[i] * xhat(i)).collect();
    let dgamma = sum_rows(&dyx, rows, cols);
    let dx = (0..rows * cols)
        .map(|i| {
            let c = i % cols;
            gamma[c] / (var[c] + eps).sqrt() / n * (n * dy[i] - dbeta[c] - xhat(i) * dgamma[c])
        })
        .collect();
    (dx, dgamma, dbeta)
}

/// pcg3d, bit for bit as `shaders/random.wgsl`.
pub fn pcg3d(key: [u32; 3]) -> [u32; 3] {
    let mut v = key.map(|k| k.wrapping_mul(1_664_525).wrapping_add(1_013_904_223));
    let mix = |v: &mut [u32; 3]| {
        v[0] = v[0].wrapping_add(v[1].wrapping_mul(v[2]));
        v[1] = v[1].wrapping_add(v[2].wrapping_mul(v[0]));
        v[2] = v[2].wrapping_add(v[0].wrapping_mul(v[1]));
    };
    mix(&mut v);
    for x in &mut v {
        *x ^= *x >> 16;
    }
    mix(&mut v);
    v
}

/// Whether dropout keeps `element` at (seed, step, salt) with drop probability `p`.
pub fn dropout_keeps(p: f32, seed: u32, step: u32, salt: u32, element: u32) -> bool {
    let hash = pcg3d([element, step, seed ^ salt.wrapping_mul(0x9e37_79b9)])[0];
    hash >= crate::kernels::random::drop_threshold(p)
}

/// Where `sample_blocks` starts each of `rows` blocks of `block` tokens in a stream of
/// `len` at (seed, step, salt).
pub fn block_starts(
    len: usize,
    block: usize,
    rows: usize,
    (seed, step, salt): (u32, u32, u32),
) -> Vec<usize> {
    (0..rows as u32)
        .map(|r| {
            (pcg3d([r, step, seed ^ salt.wrapping_mul(0x9e37_79b9)])[0] % (len - block) as u32)
                as usize
        })
        .collect()
}

/// One optimizer's state in f64, stepped with `torch.optim`'s formulas written out plainly.
#[derive(Debug)]
pub struct OptimizerReference {
    /// The rule and its hyper-parameters.
    pub optimizer: Optimizer,
    /// L1 penalty.
    pub l1: f64,
    /// Steps taken.
    pub step: u64,
    /// momentum_buffer / sum / square_avg / exp_avg ...
    pub state: [Vec<f64>; 3],
}

impl OptimizerReference {
    /// Fresh state for `n` parameters.
    pub fn new(optimizer: Optimizer, l1: f64, n: usize) -> Self {
        Self {
            optimizer,
            l1,
            step: 0,
            state: [vec![0.0; n], vec![0.0; n], vec![0.0; n]],
        }
    }

    /// One update at learning rate `lr` with gradient `g` already clipped.
    pub fn step(&mut self, lr: f64, p: &mut [f64], g: &[f64]) {
        self.step += 1;
        let t = self.step as f64;
        let [s0, s1, s2] = &mut self.state;
        for i in 0..p.len() {
            let l1 = self.l1
                * if p[i] > 0.0 {
                    1.0
                } else if p[i] < 0.0 {
                    -1.0
                } else {
                    0.0
                };
            match self.optimizer {
                Optimizer::Sgd {
                    momentum,
                    dampening,
                    nesterov,
                    weight_decay,
                    ..
                } => {
                    let (mu, wd) = (f64::from(momentum), f64::from(weight_decay));
                    let mut d = g[i] + wd * p[i] + l1;
                    if mu != 0.0 {
                        s0[i] = if self.step == 1 {
                            d
                        } else {
                            mu * s0[i] + (1.0 - f64::from(dampening)) * d
                        };
                        d = if nesterov { d + mu * s0[i] } else { s0[i] };
                    }
                    p[i] -= lr * d;
                }
                Optimizer::Adagrad {
                    lr_decay,
                    weight_decay,
                    eps,
                    ..
                } => {
                    let clr = lr / (1.0 + (t - 1.0) * f64::from(lr_decay));
                    let d = g[i] + f64::from(weight_decay) * p[i] + l1;
                    s0[i] += d * d;
                    p[i] -= clr * d / (s0[i].sqrt() + f64::from(eps));
                }
                Optimizer::Rmsprop {
                    alpha,
                    eps,
                    weight_decay,
                    momentum,
                    centered,
                    ..
                } => {
                    let a = f64::from(alpha);
                    let d = g[i] + f64::from(weight_decay) * p[i] + l1;
                    s0[i] = a * s0[i] + (1.0 - a) * d * d;
                    let mut avg = s0[i];
                    if centered {
                        s1[i] = a * s1[i] + (1.0 - a) * d;
                        avg -= s1[i] * s1[i];
                    }
                    let denom = avg.sqrt() + f64::from(eps);
                    if momentum > 0.0 {
                        s2[i] = f64::from(momentum) * s2[i] + d / denom;
                        p[i] -= lr * s2[i];
                    } else {
                        p[i] -= lr * d / denom;
                    }
                }
                Optimizer::Adam {
                    betas,
                    eps,
                    weight_decay,
                    amsgrad,
                    ..
                }
                | Optimizer::AdamW {
                    betas,
                    eps,
                    weight_decay,
                    amsgrad,
                    ..
                } => {
                    let (b1, b2, wd) = (
                        f64::from(betas.0),
                        f64::from(betas.1),
                        f64::from(weight_decay),
                    );
                    let decoupled = matches!(self.optimizer, Optimizer::AdamW { .. });
                    let mut d = g[i] + l1;
                    if decoupled {
                        p[i] *= 1.0 - lr * wd;
                    } else {
                        d += wd * p[i];
                    }
                    s0[i] = b1 * s0[i] + (1.0 - b1) * d;
                    s1[i] = b2 * s1[i] + (1.0 - b2) * d * d;
                    let v = if amsgrad {
                        s2[i] = s2[i].max(s1[i]);
                        s2[i]
                    } else {
                        s1[i]
                    };
                    let bc1 = 1.0 - b1.powf(t);
                    let bc2 = 1.0 - b2.powf(t);
                    p[i] -= lr / bc1 * s0[i] / (v.sqrt() / bc2.sqrt() + f64::from(eps));
                }
            }
        }
    }
}

/// Central finite differences of `f` at `params` (step `h` relative to max(1, |θ|)), in f64:
/// truncation error O(h²·f‴), rounding error O(ε_f64·|f|/h). h = 1e-7 keeps both near 1e-9
/// (|f| is a mean loss of order 1), far under the checks' 1e-7 floor, and makes a step across a
/// ReLU or LeakyReLU kink (a pre-activation within h·|x| of zero, where a central difference
/// averages two slopes) a hundred times rarer than h = 1e-5 did: at 1e-5 about one seed in ten
/// put some unit of the 20 MLP configurations there.
pub fn finite_difference_grads(
    params: &[Vec<f64>],
    f: impl Fn(&[Vec<f64>]) -> f64,
) -> Vec<Vec<f64>> {
    let mut work = params.to_vec();
    let mut grads = vec![];
    for t in 0..params.len() {
        let mut g = vec![0.0; params[t].len()];
        for i in 0..params[t].len() {
            let original = work[t][i];
            let h = 1e-7 * original.abs().max(1.0);
            work[t][i] = original + h;
            let up = f(&work);
            work[t][i] = original - h;
            let down = f(&work);
            work[t][i] = original;
            g[i] = (up - down) / (2.0 * h);
        }
        grads.push(g);
    }
    grads
}

/// Least squares with an intercept: β minimising ‖[X 1]·β − y‖², through the normal equations
/// in f64 (Gauss-Jordan with partial pivoting); `β[cols]` is the intercept.
#[allow(clippy::needless_range_loop)] // index loops read closest to the algebra
pub fn least_squares(x: &[f64], y: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    let n = cols + 1;
    let feature = |r: usize, c: usize| if c == cols { 1.0 } else { x[r * cols + c] };
    let mut a = vec![vec![0.0; n + 1]; n];
    for r in 0..rows {
        for i in 0..n {
            for j in 0..n {
                a[i][j] += feature(r, i) * feature(r, j);
            }
            a[i][n] += feature(r, i) * y[r];
        }
    }
    for i in 0..n {
        let pivot = (i..n)
            .max_by(|&p, &q| a[p][i].abs().total_cmp(&a[q][i].abs()))
            .unwrap_or(i);
        a.swap(i, pivot);
        for r in 0..n {
            if r != i {
                let f = a[r][i] / a[i][i];
                for c in i..=n {
                    a[r][c] -= f * a[i][c];
                }
            }
        }
    }
    (0..n).map(|i| a[i][n] / a[i][i]).collect()
}

mod graph;
mod image;
mod tensor;
pub use graph::{DropoutKey, graph_forward, graph_loss, graph_output};
pub use image::*;
pub use tensor::*;
