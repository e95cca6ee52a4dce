//! The kernels of sequence models, timed at attention shapes: the batched products of
//! `softmax(Q·Kᵀ)·V` over `heads` matrices of `T × D`, the causal softmax over the `T × T`
//! scores, LayerNorm over `[rows, C]`, and a whole attention step fused against composed.
//! Each is checked against f64 before it is timed.

use rand::rngs::StdRng;

use super::{Measurement, check_matmul, checked_timing, uniform};
use crate::error::{Error, Result};
use crate::gpu::{Gpu, Warmup, time_pass};
use crate::graph::Mode;
use crate::kernels::layernorm::{LayerNormTensors, layernorm_forward};
use crate::kernels::matmul::Matmul;
use crate::kernels::softmax::softmax_forward;
use crate::reference;
use crate::train::{TrainConfig, Trainer};

/// `heads` products `[T, D] · [T, D]ᵀ` (scores) and `[T, T] · [T, D]` (the weighted sum).
pub(super) fn bench_attention_products(
    gpu: &Gpu,
    rng: &mut StdRng,
    (heads, t, d): (usize, usize, usize),
) -> Result<Vec<Measurement>> {
    let mut out = vec![];
    for (label, (m, n, k), trans_b) in [("Q·Kᵀ", (t, t, d), true), ("A·V", (t, d, t), false)] {
        let (a, b) = (uniform(rng, heads * m * k), uniform(rng, heads * k * n));
        let a_t = gpu.tensor(&a, &[heads, m, k])?;
        let b_t = gpu.tensor(
            &b,
            &if trans_b {
                [heads, n, k]
            } else {
                [heads, k, n]
            },
        )?;
        let c = gpu.filled(&[heads, m, n], f32::NAN)?;
        let dispatch = Matmul {
            trans_b,
            ..Default::default()
        }
        .dispatch_batched(gpu, &a_t, &b_t, &c)?;
        let (seconds, clock) = checked_timing(gpu, &[&dispatch], &c, |got| {
            // The last matrix of the batch: a wrong batch stride shows there first.
            let (ia, ib, ic) = (
                (heads - 1) * m * k,
                (heads - 1) * k * n,
                (heads - 1) * m * n,
            );
            check_matmul(
                &a[ia..],
                &b[ib..],
                &got[ic..],
                (m, n, k),
                (false, trans_b),
                32,
            )
        })?;
        out.push(Measurement {
            name: "attention",
            params: format!("{label} {heads}×[{m}x{n}x{k}]"),
            figure: 2.0 * (heads * m * n * k) as f64 / seconds / 1e9,
            unit: "GFLOP/s",
            clock,
            extra: None,
        });
    }
    Ok(out)
}

/// Causal softmax over `rows` rows of `T` scores; GB/s counts one read and one write.
pub(super) fn bench_causal_softmax(
    gpu: &Gpu,
    rng: &mut StdRng,
    (rows, t): (usize, usize),
) -> Result<Measurement> {
    let x = uniform(rng, rows * t);
    let (xt, y) = (
        gpu.tensor(&x, &[rows, t])?,
        gpu.filled(&[rows, t], f32::NAN)?,
    );
    let dispatch = softmax_forward(gpu, t, &xt, &y)?;
    let want = reference::softmax(&x.iter().map(|&v| f64::from(v)).collect::<Vec<_>>(), t, t);
    let (seconds, clock) = checked_timing(gpu, &[&dispatch], &y, |got| {
        close("causal softmax", got, &want, 1e-5)
    })?;
    Ok(Measurement {
        name: "softmax",
        params: format!("causal {rows}x{t}"),
        figure: 8.0 * (rows * t) as f64 / seconds / 1e9,
        unit: "GB/s",
        clock,
        extra: None,
    })
}

/// LayerNorm over `rows` rows of `cols`; GB/s counts one read and one write of the rows.
pub(super) fn bench_layer_norm(
    gpu: &Gpu,
    rng: &mut StdRng,
    (rows, cols): (usize, usize),
) -> Result<Measurement> {
    let x = uniform(rng, rows * cols);
    let (gamma, beta) = (vec![1.0f32; cols], vec![0.0f32; cols]);
    let (xt, y) = (
        gpu.tensor(&x, &[rows, cols])?,
        gpu.filled(&[rows, cols], f32::NAN)?,
    );
    let (gt, bt, saved) = (
        gpu.tensor(&gamma, &[cols])?,
        gpu.tensor(&beta, &[cols])?,
        gpu.filled(&[rows, 2], f32::NAN)?,
    );
    let tensors = LayerNormTensors {
        gamma: &gt,
        beta: &bt,
        saved: &saved,
    };
    let dispatch = layernorm_forward(gpu, 1e-5, &xt, &tensors, &y)?;
    let f64s = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<_>>();
    let want = reference::layer_norm(&f64s(&x), cols, &f64s(&gamma), &f64s(&beta), 1e-5);
    let (seconds, clock) = checked_timing(gpu, &[&dispatch], &y, |got| {
        close("layer norm", got, &want, 1e-4)
    })?;
    Ok(Measurement {
        name: "layernorm",
        params: format!("{rows}x{cols}"),
        figure: 8.0 * (rows * cols) as f64 / seconds / 1e9,
        unit: "GB/s",
        clock,
        extra: None,
    })
}

/// Refuses a result off by more than `tolerance` anywhere (probabilities and normalised
/// values are O(1): a few hundred ulps of slack for exp and the row sums).
fn close(what: &str, got: &[f32], want: &[f64], tolerance: f64) -> Result<()> {
    match got.iter().zip(want).position(|(&g, &w)| {
        (f64::from(g) - w).abs().is_nan() || (f64::from(g) - w).abs() > tolerance
    }) {
        Some(i) => Err(Error::WrongResult(format!(
            "{what}: element {i} = {}, f64 reference {}: refused before timing",
            got[i], want[i]
        ))),
        None => Ok(()),
    }
}

/// A training step's attention, forward and backward, fused and composed, at `batch`
/// sequences of `T` tokens and `heads` heads of `D`: tokens/s of each and the fused one's
/// speed-up. Both outputs are checked against f64 on the first sequence before timing.
pub(super) fn bench_attention_step(
    gpu: &Gpu,
    rng: &mut StdRng,
    (batch, t, heads, d): (usize, usize, usize, usize),
) -> Result<Vec<Measurement>> {
    let c = heads * d;
    let x = uniform(rng, batch * t * 3 * c);
    let first: Vec<f64> = x[..t * 3 * c].iter().map(|&v| f64::from(v)).collect();
    let want = reference::causal_self_attention(&first, t, heads, d);
    let mut seconds = vec![];
    let mut out = vec![];
    for fused in [true, false] {
        let graph = crate::nn::models::attention_graph((t, heads, d), fused)?;
        let mut trainer = Trainer::for_graph(gpu, graph, TrainConfig::default())?;
        let plan = trainer.plan(batch, Mode::Train)?;
        gpu.write(plan.input(), &x)?;
        gpu.run(&plan.dispatches().iter().collect::<Vec<_>>())?;
        let got = gpu.read(plan.output())?;
        // Sums of ≤ T products of O(1) values through exp: 1e-4 absolute is ~100 u of slack,
        // while a wrong mask, head or row is off by O(0.1).
        close("attention", &got[..t * c], &want, 1e-4)?;
        let (s, clock) = time_pass(gpu, Warmup::Clocks(2), 10, &|pass| plan.record(pass, 0))?;
        seconds.push(s);
        out.push(Measurement {
            name: "attention-step",
            params: format!(
                "{} B{batch} T{t} {heads}x{d}",
                if fused { "fused" } else { "composed" }
            ),
            figure: (batch * t) as f64 / s,
            unit: "tokens/s",
            clock,
            extra: None,
        });
    }
    out[0].extra = Some((seconds[1] / seconds[0], "× composed"));
    Ok(out)
}
