//! f64 references for the image ops: Conv2d and 2-D pooling over NCHW, written as the plain
//! loops of the definitions (the backward ones scatter, where the kernels gather).

use crate::kernels::conv::Conv2dConfig;
use crate::kernels::pool::{Pool2d, PoolKind};

/// `[B, C, H, W]` and a kernel `[O, C, kh, kw]` of a convolution.
#[derive(Clone, Copy, Debug)]
pub struct ConvShape {
    /// The input, `[B, C, H, W]`.
    pub x: [usize; 4],
    /// The weight, `[O, C, kh, kw]`.
    pub weight: [usize; 4],
    /// Stride, padding and dilation.
    pub config: Conv2dConfig,
}

impl ConvShape {
    /// `(Ho, Wo)`; panics on a kernel that does not fit (tests choose valid shapes).
    pub fn out(&self) -> (usize, usize) {
        let c = &self.config;
        let size = |a: usize| c.output_size(a, self.x[2 + a], self.weight[2 + a]);
        size(0)
            .zip(size(1))
            .expect("the reference is only called with valid shapes")
    }

    /// `f(y index, x index, weight index)` for every term of the sum whose input pixel is
    /// inside the image.
    fn for_each_tap(&self, mut f: impl FnMut(usize, usize, usize)) {
        let [b, c, h, w] = self.x;
        let [o, _, kh, kw] = self.weight;
        let (oh, ow) = self.out();
        let cfg = &self.config;
        for bi in 0..b {
            for oi in 0..o {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let y_index = ((bi * o + oi) * oh + oy) * ow + ox;
                        for ci in 0..c {
                            for ky in 0..kh {
                                for kx in 0..kw {
                                    let iy = (oy * cfg.stride[0] + ky * cfg.dilation[0])
                                        .checked_sub(cfg.padding[0]);
                                    let ix = (ox * cfg.stride[1] + kx * cfg.dilation[1])
                                        .checked_sub(cfg.padding[1]);
                                    let (Some(iy), Some(ix)) = (iy, ix) else {
                                        continue;
                                    };
                                    if iy >= h || ix >= w {
                                        continue;
                                    }
                                    let x_index = ((bi * c + ci) * h + iy) * w + ix;
                                    let w_index = ((oi * c + ci) * kh + ky) * kw + kx;
                                    f(y_index, x_index, w_index);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `y[b, o, oy, ox] = bias[o] + Σ_{c,ky,kx} w[o, c, ky, kx] · x[b, c, oy·s + ky·d − p, ...]`
pub fn conv2d(shape: &ConvShape, x: &[f64], weight: &[f64], bias: Option<&[f64]>) -> Vec<f64> {
    let (oh, ow) = shape.out();
    let [b, o] = [shape.x[0], shape.weight[0]];
    let mut y: Vec<f64> = (0..b * o * oh * ow)
        .map(|i| bias.map_or(0.0, |bias| bias[(i / (oh * ow)) % o]))
        .collect();
    shape.for_each_tap(|yi, xi, wi| y[yi] += weight[wi] * x[xi]);
    y
}

/// `(dx, dweight, dbias)` of [`conv2d`] for the output gradient `dy`.
pub fn conv2d_backward(
    shape: &ConvShape,
    x: &[f64],
    weight: &[f64],
    dy: &[f64],
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut dx = vec![0.0; x.len()];
    let mut dw = vec![0.0; weight.len()];
    let mut db = vec![0.0; shape.weight[0]];
    shape.for_each_tap(|yi, xi, wi| {
        dx[xi] += weight[wi] * dy[yi];
        dw[wi] += x[xi] * dy[yi];
    });
    let (oh, ow) = shape.out();
    for (i, g) in dy.iter().enumerate() {
        db[(i / (oh * ow)) % shape.weight[0]] += g;
    }
    (dx, dw, db)
}

/// Input pixels `(plane index)` of window `(oy, ox)` of an `h × w` plane, in row-major order.
fn window(pool: &Pool2d, (h, w): (usize, usize), (oy, ox): (usize, usize)) -> Vec<usize> {
    let mut pixels = vec![];
    for ky in 0..pool.kernel[0] {
        for kx in 0..pool.kernel[1] {
            let iy = (oy * pool.stride[0] + ky).checked_sub(pool.padding[0]);
            let ix = (ox * pool.stride[1] + kx).checked_sub(pool.padding[1]);
            if let (Some(iy), Some(ix)) = (iy, ix)
                && iy < h
                && ix < w
            {
                pixels.push(iy * w + ix);
            }
        }
    }
    pixels
}

/// Pooling of `x` `[planes, h, w]`, and for each output the input pixel it came from (max
/// pooling: the first maximum; average: none).
fn pool_windows(pool: &Pool2d, planes: usize, (h, w): (usize, usize)) -> Vec<(usize, Vec<usize>)> {
    let (oh, ow) = pool
        .output(h, w)
        .expect("the reference is only called with valid shapes");
    let mut out = vec![];
    for p in 0..planes {
        for oy in 0..oh {
            for ox in 0..ow {
                let pixels = window(pool, (h, w), (oy, ox));
                out.push((p * h * w, pixels));
            }
        }
    }
    out
}

/// `[planes, h, w] → [planes, Ho, Wo]`: max or mean (over the kernel's area) of each window.
pub fn pool2d(pool: &Pool2d, x: &[f64], planes: usize, hw: (usize, usize)) -> Vec<f64> {
    let area = (pool.kernel[0] * pool.kernel[1]) as f64;
    pool_windows(pool, planes, hw)
        .into_iter()
        .map(|(base, pixels)| match pool.kind {
            PoolKind::Max => pixels
                .iter()
                .map(|&q| x[base + q])
                .fold(f64::NEG_INFINITY, f64::max),
            PoolKind::Avg => pixels.iter().map(|&q| x[base + q]).sum::<f64>() / area,
        })
        .collect()
}

/// `dx` of [`pool2d`]: each window's gradient to its first maximum, or spread over its area.
pub fn pool2d_backward(
    pool: &Pool2d,
    x: &[f64],
    dy: &[f64],
    planes: usize,
    hw: (usize, usize),
) -> Vec<f64> {
    let mut dx = vec![0.0; x.len()];
    let area = (pool.kernel[0] * pool.kernel[1]) as f64;
    for ((base, pixels), g) in pool_windows(pool, planes, hw).into_iter().zip(dy) {
        match pool.kind {
            PoolKind::Max => {
                let mut best = pixels[0];
                for &q in &pixels {
                    if x[base + q] > x[base + best] {
                        best = q;
                    }
                }
                dx[base + best] += g;
            }
            PoolKind::Avg => {
                for &q in &pixels {
                    dx[base + q] += g / area;
                }
            }
        }
    }
    dx
}

/// `[B, C, S] → [B·S, C]`: channels last, so per-channel statistics are per-column ones.
pub fn channels_last(x: &[f64], (b, c, s): (usize, usize, usize)) -> Vec<f64> {
    let mut out = vec![0.0; x.len()];
    for bi in 0..b {
        for ci in 0..c {
            for si in 0..s {
                out[(bi * s + si) * c + ci] = x[(bi * c + ci) * s + si];
            }
        }
    }
    out
}

/// The inverse of [`channels_last`].
pub fn channels_first(x: &[f64], (b, c, s): (usize, usize, usize)) -> Vec<f64> {
    let mut out = vec![0.0; x.len()];
    for bi in 0..b {
        for ci in 0..c {
            for si in 0..s {
                out[(bi * c + ci) * s + si] = x[(bi * s + si) * c + ci];
            }
        }
    }
    out
}

/// `random_affine` of `shaders/random.wgsl` in f64, with the same per-image draws (from
/// `pcg3d`): `x` is `[images, h, w]`, the key is (seed, step, salt).
pub fn random_affine(
    x: &[f64],
    (h, w): (usize, usize),
    affine: crate::kernels::random::Affine,
    (seed, step, salt): (u32, u32, u32),
) -> Vec<f64> {
    let symmetric = |r: u32| f64::from(r >> 8) / 8_388_608.0 - 1.0;
    let mut out = vec![0.0; x.len()];
    for (image, plane) in x.chunks(h * w).enumerate() {
        let r = super::pcg3d([image as u32, step, seed ^ salt.wrapping_mul(0x9e37_79b9)]);
        let theta = f64::from(affine.degrees).to_radians() * symmetric(r[0]);
        let shift = f64::from(affine.shift);
        let (ty, tx) = (shift * symmetric(r[1]), shift * symmetric(r[2]));
        let scale = 1.0 + f64::from(affine.scale) * symmetric(super::pcg3d(r)[0]);
        let (cx, cy) = ((w as f64 - 1.0) / 2.0, (h as f64 - 1.0) / 2.0);
        for y in 0..h {
            for xx in 0..w {
                let dx = (xx as f64 - cx - tx) / scale;
                let dy = (y as f64 - cy - ty) / scale;
                let sx = cx + theta.cos() * dx + theta.sin() * dy;
                let sy = cy - theta.sin() * dx + theta.cos() * dy;
                let (x0, y0) = (sx.floor(), sy.floor());
                let mut value = 0.0;
                for (cx_, cy_, weight) in [
                    (x0, y0, (1.0 - (sx - x0)) * (1.0 - (sy - y0))),
                    (x0 + 1.0, y0, (sx - x0) * (1.0 - (sy - y0))),
                    (x0, y0 + 1.0, (1.0 - (sx - x0)) * (sy - y0)),
                    (x0 + 1.0, y0 + 1.0, (sx - x0) * (sy - y0)),
                ] {
                    if cx_ >= 0.0 && cy_ >= 0.0 && cx_ < w as f64 && cy_ < h as f64 {
                        value += weight * plane[cy_ as usize * w + cx_ as usize];
                    }
                }
                out[image * h * w + y * w + xx] = value;
            }
        }
    }
    out
}
