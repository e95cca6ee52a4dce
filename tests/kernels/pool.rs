use wgtrain::kernels::Activation;
use wgtrain::kernels::pool::{Pool2d, PoolKind, pool2d_backward, pool2d_forward};
use wgtrain::reference;

use crate::common::*;

/// x [B, C, H, W], kernel, stride, padding.
type Case = ([usize; 4], [usize; 2], [usize; 2], [usize; 2]);

/// Cases: MNIST's 2×2/2 on odd sizes, overlapping 3×3/1
/// windows with padding 1, a 5×5 kernel with padding 2 and stride 2, a 1×1 window, windows
/// with gaps between them, and 3×2 windows tiling all but the last row.
const CASES: &[Case] = &[
    ([1, 1, 5, 7], [2, 2], [2, 2], [0, 0]),
    ([2, 3, 7, 6], [3, 3], [1, 1], [1, 1]),
    ([3, 1, 9, 11], [5, 5], [2, 2], [2, 2]),
    ([1, 3, 4, 3], [1, 1], [1, 1], [0, 0]),
    ([2, 2, 6, 9], [3, 2], [2, 3], [1, 0]),
    ([2, 2, 7, 8], [3, 2], [3, 2], [0, 0]),
];

/// The activations a max pool's backward may apply for the layer before (x being their output).
/// Both keep their input's sign, so `grad_f64` at x is their derivative at the input.
const MASKS: [Option<Activation>; 3] = [
    None,
    Some(Activation::Relu),
    Some(Activation::LeakyRelu(0.1)),
];

#[test]
fn pooling_matches_f64_and_routes_gradients_to_the_first_maximum() {
    let mut rng = rng("pool2d");
    for &(x_shape, kernel, stride, padding) in CASES {
        let kinds = MASKS
            .map(|mask| (PoolKind::Max, mask))
            .into_iter()
            .chain([(PoolKind::Avg, None)]);
        for (kind, mask) in kinds {
            let pool = Pool2d {
                kind,
                kernel,
                stride,
                padding,
            };
            let [b, c, h, w] = x_shape;
            let (oh, ow) = pool.output(h, w).expect("valid window");
            // Values from a set of five, so windows hold ties: the gradient must go to the
            // first maximum in row-major order, every run.
            let x: Vec<f32> = rng
                .below(b * c * h * w, 5)
                .iter()
                .map(|v| v - 2.0)
                .collect();
            let dy = rng.uniform(b * c * oh * ow, -1.0, 1.0);
            let (y, dx) = (poisoned(&[b, c, oh, ow]), poisoned(&x_shape));
            let gx = upload(&x, &x_shape);
            let forward = pool2d_forward(gpu(), &pool, &gx, &y).expect("valid shapes");
            let gdy = upload(&dy, &[b, c, oh, ow]);
            let backward =
                pool2d_backward(gpu(), &pool, (&gx, mask), &gdy, &dx).expect("valid shapes");
            run(&[&forward, &backward]);
            let (xf, dyf) = (f64s(&x), f64s(&dy));
            let what =
                format!("{kind:?} {mask:?} {x_shape:?} k{kernel:?} s{stride:?} p{padding:?}");
            let want_y = reference::pool2d(&pool, &xf, b * c, (h, w));
            let want_dx: Vec<f64> = reference::pool2d_backward(&pool, &xf, &dyf, b * c, (h, w))
                .iter()
                .zip(&xf)
                .map(|(g, &x)| g * mask.map_or(1.0, |a| a.grad_f64(x)))
                .collect();
            let area = (kernel[0] * kernel[1]) as f64;
            // Max: a copy, exact. Avg: a sum of ≤ kh·kw small integers is exact in f32, and
            // the one division may be off by 2.5 ulp (WGSL's accuracy for `/`, which NVIDIA's
            // driver uses): 5u relative.
            assert_within(&format!("y {what}"), &read(&y), &want_y, |i| {
                5.0 * U * want_y[i].abs()
            });
            // dx sums ≤ kh·kw window gradients (each divided by the area for Avg), then a
            // mask's slope may round once more.
            let windows = (kernel[0].div_ceil(stride[0]) * kernel[1].div_ceil(stride[1])) as f64;
            assert_within(&format!("dx {what}"), &read(&dx), &want_dx, |_| {
                (windows + 2.0) * U * windows.max(area)
            });
        }
    }
}

#[test]
fn max_pool_backward_sends_a_tied_window_to_its_first_maximum() {
    // One window of three equal maxima: all of dy goes to the first, in the reference and on
    // the GPU, so the random test above can tell first from last.
    let pool = Pool2d {
        kind: PoolKind::Max,
        kernel: [2, 2],
        stride: [2, 2],
        padding: [0, 0],
    };
    let x = [1.0, 1.0, 0.0, 1.0];
    let want = reference::pool2d_backward(&pool, &x, &[1.0], 1, (2, 2));
    assert_eq!(want, [1.0, 0.0, 0.0, 0.0]);
    let dx = poisoned(&[1, 1, 2, 2]);
    let backward = pool2d_backward(
        gpu(),
        &pool,
        (&upload(&[1.0, 1.0, 0.0, 1.0], &[1, 1, 2, 2]), None),
        &upload(&[1.0], &[1, 1, 1, 1]),
        &dx,
    )
    .expect("valid shapes");
    run(&[&backward]);
    assert_eq!(read(&dx), [1.0, 0.0, 0.0, 0.0]);
}

#[test]
fn pooling_refuses_windows_pytorch_refuses() {
    for (kernel, stride, padding) in [
        ([0, 2], [1, 1], [0, 0]),
        ([2, 2], [0, 1], [0, 0]),
        ([2, 2], [1, 1], [2, 0]),
    ] {
        let pool = Pool2d {
            kind: PoolKind::Max,
            kernel,
            stride,
            padding,
        };
        assert_eq!(pool.output(4, 4), None, "{pool:?}");
    }
    let pool = Pool2d {
        kind: PoolKind::Avg,
        kernel: [5, 5],
        stride: [1, 1],
        padding: [0, 0],
    };
    let x = upload(&[0.0; 16], &[1, 1, 4, 4]);
    assert!(pool2d_forward(gpu(), &pool, &x, &poisoned(&[1, 1, 1, 1])).is_err());
    // Average pooling's backward does not read x, so it cannot apply a fused activation's
    // derivative there.
    let pool = Pool2d {
        kernel: [2, 2],
        stride: [2, 2],
        ..pool
    };
    let (dy, dx) = (poisoned(&[1, 1, 2, 2]), poisoned(&[1, 1, 4, 4]));
    let masked = pool2d_backward(gpu(), &pool, (&x, Some(Activation::Relu)), &dy, &dx);
    assert!(masked.is_err(), "average pooling accepted a mask");
}
