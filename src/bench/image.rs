//! The MNIST CNN's convolutions at the example's shapes: each product (forward, input
//! gradient, weight gradient) in GFLOP/s beside the tiled matmul of the same M×N×K, each
//! checked against f64 at sampled elements before it is timed.

use std::cell::RefCell;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::{Measurement, bench_matmul, checked_timing, gamma, uniform};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::conv::{
    Conv2dConfig, conv2d_backward_input, conv2d_backward_weight, conv2d_forward,
    stored_im2col_shape,
};
use crate::kernels::{Activation, MAX_SPLITS};

/// One stride-1, unpadded 3×3 layer: `x` `[B, C, H, W]`, weight `[O, C, 3, 3]`.
struct Layer {
    name: &'static str,
    batch: usize,
    channels: usize,
    side: usize,
    out_channels: usize,
}

impl Layer {
    fn out(&self) -> usize {
        self.side - 2
    }
    fn x(&self, b: usize, c: usize, y: usize, x: usize) -> usize {
        ((b * self.channels + c) * self.side + y) * self.side + x
    }
    fn y(&self, b: usize, o: usize, y: usize, x: usize) -> usize {
        ((b * self.out_channels + o) * self.out() + y) * self.out() + x
    }
    fn w(&self, o: usize, c: usize, ky: usize, kx: usize) -> usize {
        ((o * self.channels + c) * 3 + ky) * 3 + kx
    }
}

/// Fails unless `got` is within γ_n · Σ|terms| of the f64 sum of `terms` (n terms, any order).
fn check_sum(what: &str, got: f32, terms: impl Iterator<Item = f64>) -> Result<()> {
    let (mut exact, mut magnitude, mut n) = (0.0f64, 0.0f64, 0usize);
    for t in terms {
        exact += t;
        magnitude += t.abs();
        n += 1;
    }
    // The weight gradient's split partials are added once more each.
    let error = (f64::from(got) - exact).abs();
    if error.is_nan() || error > gamma(n + MAX_SPLITS) * magnitude + f64::MIN_POSITIVE {
        return Err(Error::WrongResult(format!(
            "{what} = {got}, f64 reference {exact}: refused before timing"
        )));
    }
    Ok(())
}

/// The three products of both conv layers of `examples/cnn.rs` at `batch`.
pub(super) fn bench_conv(gpu: &Gpu, rng: &mut StdRng, batch: usize) -> Result<Vec<Measurement>> {
    let layers = [
        Layer {
            name: "conv1",
            batch,
            channels: 1,
            side: 28,
            out_channels: 32,
        },
        Layer {
            name: "conv2",
            batch,
            channels: 32,
            side: 26,
            out_channels: 64,
        },
    ];
    let mut out = vec![];
    let config = Conv2dConfig::default();
    for l in &layers {
        let (b, c, o, s, p) = (batch, l.channels, l.out_channels, l.side, l.out());
        let (x, w, dy) = (
            uniform(rng, b * c * s * s),
            uniform(rng, o * c * 9),
            uniform(rng, b * o * p * p),
        );
        let x_t = gpu.tensor(&x, &[b, c, s, s])?;
        let w_t = gpu.tensor(&w, &[o, c, 3, 3])?;
        let dy_t = gpu.tensor(&dy, &[b, o, p, p])?;
        let (y_t, dx_t, dw_t) = (
            gpu.filled(&[b, o, p, p], f32::NAN)?,
            gpu.filled(&[b, c, s, s], f32::NAN)?,
            gpu.filled(&[o, c, 3, 3], f32::NAN)?,
        );
        // Checks run inside `Fn` closures: the sampler lives in a RefCell.
        let samples = RefCell::new(StdRng::seed_from_u64(11));
        let pick = |n: usize| samples.borrow_mut().random_range(0..n);
        let flops = 2.0 * (b * o * p * p * c * 9) as f64;
        // The im2col matrix a CPU adapter stores, which the weight gradient reads as in training.
        let columns = stored_im2col_shape(gpu, x_t.shape(), w_t.shape(), config)
            .map(|shape| gpu.uninit(&shape))
            .transpose()?;
        let forward = conv2d_forward(
            gpu,
            config,
            &x_t,
            &w_t,
            (None, Activation::Identity),
            (&y_t, columns.as_ref()),
        )?;
        let (seconds, clock) =
            checked_timing(gpu, &forward.iter().collect::<Vec<_>>(), &y_t, |got| {
                for _ in 0..32 {
                    let (bi, oi, oy, ox) = (pick(b), pick(o), pick(p), pick(p));
                    let terms = (0..c * 9).map(|k| {
                        let (ci, ky, kx) = (k / 9, (k / 3) % 3, k % 3);
                        f64::from(w[l.w(oi, ci, ky, kx)])
                            * f64::from(x[l.x(bi, ci, oy + ky, ox + kx)])
                    });
                    check_sum(&format!("{} y", l.name), got[l.y(bi, oi, oy, ox)], terms)?;
                }
                Ok(())
            })?;
        out.push(beside_matmul(
            gpu,
            rng,
            l,
            "fwd",
            flops,
            seconds,
            clock,
            (o, b * p * p, c * 9),
        )?);

        // The first layer's input is the data: training never asks for its gradient.
        if c > 1 {
            let input_grad = conv2d_backward_input(gpu, config, &dy_t, &w_t, None, &dx_t)?;
            let (seconds, clock) =
                checked_timing(gpu, &input_grad.iter().collect::<Vec<_>>(), &dx_t, |got| {
                    for _ in 0..32 {
                        let (bi, ci, iy, ix) = (pick(b), pick(c), pick(s), pick(s));
                        let terms = (0..o * 9).filter_map(|k| {
                            let (oi, ky, kx) = (k / 9, (k / 3) % 3, k % 3);
                            let (oy, ox) = (iy.checked_sub(ky)?, ix.checked_sub(kx)?);
                            (oy < p && ox < p).then(|| {
                                f64::from(w[l.w(oi, ci, ky, kx)])
                                    * f64::from(dy[l.y(bi, oi, oy, ox)])
                            })
                        });
                        check_sum(&format!("{} dx", l.name), got[l.x(bi, ci, iy, ix)], terms)?;
                    }
                    Ok(())
                })?;
            out.push(beside_matmul(
                gpu,
                rng,
                l,
                "dX",
                flops,
                seconds,
                clock,
                // The product a CPU adapter runs over the stored matrix (then col2im), or
                // the implicit GEMM's, with as many multiply-adds.
                if columns.is_some() {
                    (c * 9, b * p * p, o)
                } else {
                    (c, b * p * p, o * 9)
                },
            )?);
        }

        let weight_grad =
            conv2d_backward_weight(gpu, config, (&x_t, columns.as_ref()), &dy_t, &dw_t, None)?;
        let check = |got: &[f32]| {
            for _ in 0..8 {
                let (oi, ci, ky, kx) = (pick(o), pick(c), pick(3), pick(3));
                let terms = (0..b * p * p).map(|q| {
                    let (bi, oy, ox) = (q / (p * p), (q / p) % p, q % p);
                    f64::from(dy[l.y(bi, oi, oy, ox)]) * f64::from(x[l.x(bi, ci, oy + ky, ox + kx)])
                });
                check_sum(&format!("{} dw", l.name), got[l.w(oi, ci, ky, kx)], terms)?;
            }
            Ok(())
        };
        let (seconds, clock) =
            checked_timing(gpu, &weight_grad.iter().collect::<Vec<_>>(), &dw_t, check)?;
        out.push(beside_matmul(
            gpu,
            rng,
            l,
            "dW",
            flops,
            seconds,
            clock,
            (o, c * 9, b * p * p),
        )?);
    }
    Ok(out)
}

/// The measurement of one conv product, with the matmul of the same M×N×K as its extra.
#[allow(clippy::too_many_arguments)]
fn beside_matmul(
    gpu: &Gpu,
    rng: &mut StdRng,
    layer: &Layer,
    product: &str,
    flops: f64,
    seconds: f64,
    clock: crate::gpu::Clock,
    mnk: (usize, usize, usize),
) -> Result<Measurement> {
    let matmul = bench_matmul(gpu, rng, mnk, (false, false), false)?;
    Ok(Measurement {
        name: "conv2d",
        params: format!(
            "{} {product} b{} (matmul {}x{}x{})",
            layer.name, layer.batch, mnk.0, mnk.1, mnk.2
        ),
        figure: flops / seconds / 1e9,
        unit: "GFLOP/s",
        clock,
        extra: Some((matmul.figure, "GFLOP/s mm")),
    })
}
