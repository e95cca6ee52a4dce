use wgtrain::kernels::conv::{
    Conv2dConfig, conv2d_backward_input, conv2d_backward_weight, conv2d_forward,
    stored_im2col_shape,
};
use wgtrain::kernels::{Activation, MAX_SPLITS};
use wgtrain::reference::{self, ConvShape};

use wgtrain::gpu::Dispatch;

use crate::common::*;

/// x, weight, stride, padding, dilation.
type Case = ([usize; 4], [usize; 4], [usize; 2], [usize; 2], [usize; 2]);

/// Cases: a 1×1 kernel at batch 1, a 5×5 kernel with padding
/// 2, stride 2 over odd heights and widths, unequal strides with dilation, and a layer of 130
/// output channels (past one 128-row tile) whose weight gradient is split along its K. From
/// `LOWERED` on, cases a CPU adapter runs on the stored im2col matrix (output pixels and O
/// multiples of 4): padding beside dilation, a stride whose windows miss the last input row,
/// and C·T = 6, which the matrix pads to 8.
const CASES: &[Case] = &[
    ([1, 1, 5, 5], [1, 1, 1, 1], [1, 1], [0, 0], [1, 1]),
    ([2, 3, 7, 9], [4, 3, 5, 5], [1, 1], [2, 2], [1, 1]),
    ([3, 3, 9, 7], [5, 3, 3, 3], [2, 2], [1, 1], [1, 1]),
    ([2, 1, 11, 6], [3, 1, 3, 2], [2, 1], [0, 1], [2, 1]),
    ([4, 3, 20, 18], [130, 3, 3, 3], [1, 1], [0, 0], [1, 1]),
    ([3, 4, 8, 9], [8, 4, 3, 2], [1, 1], [1, 0], [1, 2]),
    ([2, 8, 11, 9], [12, 8, 2, 2], [2, 2], [0, 0], [1, 1]),
    ([2, 1, 8, 9], [4, 1, 3, 2], [1, 1], [0, 0], [1, 1]),
];
const LOWERED: usize = 5;

/// Checks that a CPU adapter ran case `index` the way `LOWERED` says: lowered cases build
/// the im2col matrix `builds` times, the others never.
fn assert_path(index: usize, builds: usize, dispatches: &[&Dispatch]) {
    if gpu().adapter_info().device_type == wgpu::DeviceType::Cpu {
        let stored = dispatches
            .iter()
            .filter(|d| d.label().contains("im2col"))
            .count();
        let want = if index >= LOWERED { builds } else { 0 };
        assert_eq!(stored, want, "case {index}: im2col passes");
    }
}

fn shape_of(&(x, weight, stride, padding, dilation): &Case) -> ConvShape {
    ConvShape {
        x,
        weight,
        config: Conv2dConfig {
            stride,
            padding,
            dilation,
        },
    }
}

fn abs(x: &[f64]) -> Vec<f64> {
    x.iter().map(|v| v.abs()).collect()
}

/// A sum of n f32 products is within γ_n · Σ|terms| of the exact value, γ_n = n·u/(1 − n·u),
/// in any order of addition (Higham §3.1); `terms` counts every rounding on the way,
/// including the split partials' final additions.
fn gamma(terms: usize, magnitude: f64) -> f64 {
    let nu = terms as f64 * U;
    nu / (1.0 - nu) * magnitude + f64::MIN_POSITIVE
}

#[test]
fn conv2d_forward_and_both_gradients_match_f64_at_awkward_shapes() {
    let mut rng = rng("conv2d");
    for (index, case) in CASES.iter().enumerate() {
        let shape = shape_of(case);
        let (oh, ow) = shape.out();
        let [b, c, h, w] = shape.x;
        let [o, _, kh, kw] = shape.weight;
        let y_shape = [b, o, oh, ow];
        let x = rng.uniform(b * c * h * w, -1.0, 1.0);
        let weight = rng.uniform(o * c * kh * kw, -1.0, 1.0);
        let bias = rng.uniform(o, -1.0, 1.0);
        let dy = rng.uniform(b * o * oh * ow, -1.0, 1.0);
        let (gx, gw, gb, gdy) = (
            upload(&x, &shape.x),
            upload(&weight, &shape.weight),
            upload(&bias, &[o]),
            upload(&dy, &y_shape),
        );
        let (y, dx, dw, db) = (
            poisoned(&y_shape),
            poisoned(&shape.x),
            poisoned(&shape.weight),
            poisoned(&[o]),
        );
        let config = shape.config;
        // Even cases keep the forward's im2col matrix (poisoned until the forward fills it)
        // for the weight gradient, as a graph does; odd ones let each build its own.
        let keep = index % 2 == 0;
        let columns = stored_im2col_shape(gpu(), &shape.x, &shape.weight, config)
            .filter(|_| keep)
            .map(|shape| poisoned(&shape));
        let forward = conv2d_forward(
            gpu(),
            config,
            &gx,
            &gw,
            (Some(&gb), Activation::Identity),
            (&y, columns.as_ref()),
        )
        .expect("valid shapes");
        let input_grad =
            conv2d_backward_input(gpu(), config, &gdy, &gw, None, &dx).expect("valid shapes");
        let weight_grad =
            conv2d_backward_weight(gpu(), config, (&gx, columns.as_ref()), &gdy, &dw, Some(&db))
                .expect("valid");
        let all: Vec<&Dispatch> = forward
            .iter()
            .chain(&input_grad)
            .chain(&weight_grad)
            .collect();
        assert_path(index, if keep { 1 } else { 2 }, &all);
        run(&all);

        let (x, weight, bias, dy) = (f64s(&x), f64s(&weight), f64s(&bias), f64s(&dy));
        let want_y = reference::conv2d(&shape, &x, &weight, Some(&bias));
        let mag_y = reference::conv2d(&shape, &abs(&x), &abs(&weight), Some(&abs(&bias)));
        let what = format!("{case:?}");
        assert_within(&format!("conv2d y {what}"), &read(&y), &want_y, |i| {
            gamma(c * kh * kw + 1, mag_y[i])
        });
        let (want_dx, want_dw, want_db) = reference::conv2d_backward(&shape, &x, &weight, &dy);
        let (mag_dx, mag_dw, mag_db) =
            reference::conv2d_backward(&shape, &abs(&x), &abs(&weight), &abs(&dy));
        assert_within(&format!("conv2d dx {what}"), &read(&dx), &want_dx, |i| {
            gamma(o * kh * kw, mag_dx[i])
        });
        // Every element of dw, the last input channel's included: a kernel that skipped it
        // would leave NaN poison or a wrong sum there. K = B·Ho·Wo terms plus one addition
        // per split partial.
        let depth = b * oh * ow + MAX_SPLITS;
        assert_within(&format!("conv2d dw {what}"), &read(&dw), &want_dw, |i| {
            gamma(depth, mag_dw[i])
        });
        assert_within(&format!("conv2d db {what}"), &read(&db), &want_db, |i| {
            gamma(depth, mag_db[i])
        });
    }
}

#[test]
fn conv2d_fuses_bias_and_relu_and_masks_the_input_gradient() {
    let mut rng = rng("conv2d fused");
    for index in [2, LOWERED] {
        let shape = shape_of(&CASES[index]);
        let (oh, ow) = shape.out();
        let [b, c, h, w] = shape.x;
        let [o, _, kh, kw] = shape.weight;
        let x = rng.uniform(b * c * h * w, -1.0, 1.0);
        let weight = rng.uniform(o * c * kh * kw, -1.0, 1.0);
        let bias = rng.uniform(o, -1.0, 1.0);
        let dy = rng.uniform(b * o * oh * ow, -1.0, 1.0);
        let y = poisoned(&[b, o, oh, ow]);
        let dx = poisoned(&shape.x);
        let (gx, gw) = (upload(&x, &shape.x), upload(&weight, &shape.weight));
        let forward = conv2d_forward(
            gpu(),
            shape.config,
            &gx,
            &gw,
            (Some(&upload(&bias, &[o])), Activation::Relu),
            (&y, None),
        )
        .expect("valid shapes");
        // x plays the output of a fused ReLU: dx is zeroed wherever x ≤ 0.
        let input_grad = conv2d_backward_input(
            gpu(),
            shape.config,
            &upload(&dy, &[b, o, oh, ow]),
            &gw,
            Some((&gx, Activation::Relu)),
            &dx,
        )
        .expect("valid shapes");
        let all: Vec<&Dispatch> = forward.iter().chain(&input_grad).collect();
        assert_path(index, 1, &all);
        run(&all);
        let (xf, wf) = (f64s(&x), f64s(&weight));
        let pre = reference::conv2d(&shape, &xf, &wf, Some(&f64s(&bias)));
        let mags = reference::conv2d(&shape, &abs(&xf), &abs(&wf), Some(&abs(&f64s(&bias))));
        let want: Vec<f64> = pre.iter().map(|v| v.max(0.0)).collect();
        assert_within(
            &format!("fused relu y, case {index}"),
            &read(&y),
            &want,
            |i| gamma(c * kh * kw + 1, mags[i]),
        );
        let (dx_plain, _, _) = reference::conv2d_backward(&shape, &xf, &wf, &f64s(&dy));
        let (mag_dx, _, _) = reference::conv2d_backward(&shape, &xf, &abs(&wf), &abs(&f64s(&dy)));
        let want_dx: Vec<f64> = (0..dx_plain.len())
            .map(|i| if xf[i] > 0.0 { dx_plain[i] } else { 0.0 })
            .collect();
        assert_within(
            &format!("masked dx, case {index}"),
            &read(&dx),
            &want_dx,
            |i| gamma(o * kh * kw, mag_dx[i].abs()),
        );
    }
}

#[test]
fn conv2d_refuses_mismatched_shapes() {
    let x = upload(&[0.0; 2 * 9], &[1, 2, 3, 3]);
    let y = poisoned(&[1, 1, 1, 1]);
    let config = Conv2dConfig::default();
    for (weight, why) in [
        ([1, 3, 3, 3], "channels differ"),
        ([1, 2, 4, 4], "kernel larger than the image"),
    ] {
        let w = upload(&vec![0.0; weight.iter().product()], &weight);
        let result = conv2d_forward(
            gpu(),
            config,
            &x,
            &w,
            (None, Activation::Identity),
            (&y, None),
        );
        assert!(result.is_err(), "{why}: accepted");
    }
    let zero_stride = Conv2dConfig {
        stride: [0, 1],
        ..config
    };
    let w = upload(&[0.0; 18], &[1, 2, 3, 3]);
    let result = conv2d_forward(
        gpu(),
        zero_stride,
        &x,
        &w,
        (None, Activation::Identity),
        (&y, None),
    );
    assert!(result.is_err(), "stride 0 accepted");
    // A kept im2col matrix of the wrong shape, where the layer stores one.
    let shape = shape_of(&CASES[LOWERED]);
    if let Some([rows, columns]) = stored_im2col_shape(gpu(), &shape.x, &shape.weight, shape.config)
    {
        let (o, (oh, ow)) = (shape.weight[0], shape.out());
        let x = poisoned(&shape.x);
        let w = poisoned(&shape.weight);
        let y = poisoned(&[shape.x[0], o, oh, ow]);
        let wrong = poisoned(&[rows, columns + 1]);
        let forward = conv2d_forward(
            gpu(),
            shape.config,
            &x,
            &w,
            (None, Activation::Identity),
            (&y, Some(&wrong)),
        );
        assert!(
            forward.is_err(),
            "a forward into a wrong im2col matrix accepted"
        );
        let dw = poisoned(&shape.weight);
        let weight_grad =
            conv2d_backward_weight(gpu(), shape.config, (&x, Some(&wrong)), &y, &dw, None);
        assert!(
            weight_grad.is_err(),
            "a weight gradient over a wrong im2col matrix accepted"
        );
    }
}
