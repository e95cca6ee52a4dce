use wgtrain::kernels::Activation;
use wgtrain::kernels::elementwise;

use crate::common::*;

/// Lengths: one element, odd, one past a workgroup, and one above 2¹⁶ (two grid rows' worth of
/// index arithmetic is exercised only past 65535 workgroups, which the grid test covers).
/// Lengths of the f32 kernels (not multiples of 4) and of the vec4 ones.
const LENGTHS: &[usize] = &[1, 7, 257, 70_001, 4, 260, 70_004];

const ACTIVATIONS: [Activation; 6] = [
    Activation::Identity,
    Activation::Relu,
    Activation::LeakyRelu(0.1),
    Activation::Gelu,
    Activation::Tanh,
    Activation::Sigmoid,
];

#[test]
fn activations_and_their_gradients_match_f64() {
    let mut rng = rng("activations");
    for &n in LENGTHS {
        for act in ACTIVATIONS {
            let x = rng.uniform(n, -6.0, 6.0);
            let dy = rng.uniform(n, -1.0, 1.0);
            let (xt, dyt) = (upload(&x, &[n]), upload(&dy, &[n]));
            let (y, dx) = (poisoned(&[n]), poisoned(&[n]));
            let forward =
                elementwise::activation_forward(gpu(), act, &xt, &y).expect("same length");
            let backward =
                elementwise::activation_backward(gpu(), act, &xt, &dyt, &dx).expect("same length");
            run(&[&forward, &backward]);
            let want_y: Vec<f64> = x.iter().map(|&v| act.apply_f64(f64::from(v))).collect();
            let want_dx: Vec<f64> = x
                .iter()
                .zip(&dy)
                .map(|(&v, &g)| f64::from(g) * act.grad_f64(f64::from(v)))
                .collect();
            // exp on Vulkan is accurate to 3 + 2|x| ulps (SPIR-V's precision table); over |x| ≤ 12
            // that is ≤ 27 ulps ≈ 1.6e-6 relative, and tanh/sigmoid/GELU add a division and a
            // few roundings. 4e-6 relative plus 1e-7 absolute (for outputs that cancel to 0)
            // covers it with margin; a wrong formula is off by far more.
            assert_close(
                &format!("{act:?} forward n={n}"),
                &read(&y),
                &want_y,
                1e-7,
                4e-6,
            );
            // Derivatives near saturation are differences of O(1) terms (GELU's
            // 0.5(1 + t) + 0.5x(1 − t²)c(…) at x ≈ −3, σ(1 − σ) at large |x|): their error is a
            // few ulps of those terms, so bound it absolutely by 1e-6·|dy| as well.
            assert_within(
                &format!("{act:?} backward n={n}"),
                &read(&dx),
                &want_dx,
                |i| 1e-6 * f64::from(dy[i].abs()) + 4e-6 * want_dx[i].abs(),
            );
        }
    }
}

#[test]
fn arithmetic_kernels_match_f64() {
    let mut rng = rng("arithmetic");
    for &n in LENGTHS {
        let x = rng.uniform(n, -2.0, 2.0);
        let y = rng.uniform(n, -2.0, 2.0);
        let (xt, yt) = (upload(&x, &[n]), upload(&y, &[n]));
        let outs: Vec<_> = (0..3).map(|_| poisoned(&[n])).collect();
        let acc = upload(&y, &[n]);
        let dispatches = [
            elementwise::add(gpu(), &xt, &yt, &outs[0]).expect("same length"),
            elementwise::mul(gpu(), &xt, &yt, &outs[1]).expect("same length"),
            elementwise::scale(gpu(), 0.375, &xt, &outs[2]).expect("same length"),
            elementwise::axpy(gpu(), -1.5, &xt, &acc).expect("same length"),
        ];
        run(&dispatches.iter().collect::<Vec<_>>());
        let (xd, yd) = (f64s(&x), f64s(&y));
        let zip = |f: fn(f64, f64) -> f64| {
            xd.iter()
                .zip(&yd)
                .map(|(&a, &b)| f(a, b))
                .collect::<Vec<_>>()
        };
        // One rounding of a correctly rounded op: half an ulp, u·|result|; axpy rounds twice.
        assert_close("add", &read(&outs[0]), &zip(|a, b| a + b), 0.0, U);
        assert_close("mul", &read(&outs[1]), &zip(|a, b| a * b), 0.0, U);
        assert_close("scale", &read(&outs[2]), &zip(|a, _| 0.375 * a), 0.0, U);
        // axpy: two roundings, bounded relative to the terms' magnitudes (≤ 1.5·2 + 2 = 5).
        assert_close(
            "axpy",
            &read(&acc),
            &zip(|a, b| -1.5 * a + b),
            2.0 * U * 5.0,
            0.0,
        );
    }
}

#[test]
fn elementwise_rejects_length_mismatch() {
    let error = elementwise::add(gpu(), &poisoned(&[3]), &poisoned(&[4]), &poisoned(&[3]))
        .expect_err("lengths differ");
    assert!(
        matches!(error, wgtrain::Error::ShapeMismatch { .. }),
        "{error}"
    );
}

#[test]
fn more_elements_than_one_grid_row_holds_are_all_written() {
    // 65535 workgroups of 256 cover 16,776,960 elements; past that the grid gets a second row.
    // (An odd length: the f32 kernel, whose grid counts elements, not vec4s.)
    let n = 65_535 * 256 + 1_001;
    let mut rng = rng("two grid rows");
    let x = rng.uniform(n, -1.0, 1.0);
    let out = poisoned(&[n]);
    run(&[
        &elementwise::activation_forward(gpu(), Activation::Relu, &upload(&x, &[n]), &out)
            .expect("same length"),
    ]);
    let want: Vec<f64> = x.iter().map(|&v| f64::from(v.max(0.0))).collect();
    // max(x, 0) is exact.
    assert_close("relu over two grid rows", &read(&out), &want, 0.0, 0.0);
}
