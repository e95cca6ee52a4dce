use wgtrain::kernels::Activation;
use wgtrain::kernels::matmul::{Epilogue, Matmul, Tile, matmul_naive};
use wgtrain::reference;

use crate::common::*;

/// (m, n, k): single elements, odd sizes, sizes just past the 64-wide tile and 16-deep slice,
/// one product above 2¹⁶ outputs, shapes `direct` takes (K a multiple of 4, and M or N too
/// for some transposes) that are not multiples of its 8×8 blocks or 64-wide tile, two whose
/// N is a whole number of its tiles (where its row sums leave the grid: M = 14, short of a
/// vec4 of rows, untransposed; M = 20 transposed), and a long K (the conv benchmark's, where
/// a staging loop once went wrong on lavapipe).
const SHAPES: &[(usize, usize, usize)] = &[
    (1, 1, 1),
    (3, 5, 7),
    (33, 65, 17),
    (130, 67, 129),
    (300, 257, 20),
    (4, 1, 4),
    (12, 20, 8),
    (68, 132, 36),
    (14, 128, 8),
    (20, 128, 12),
    (32, 9, 43264),
];

/// Every tile, so each kernel meets every shape (`Direct` runs `T64` where it cannot).
const TILES: [Tile; 4] = [Tile::T32, Tile::T64, Tile::T128, Tile::Direct];

/// Σ_p |op(a)[i,p]| |op(b)[p,j]|: the scale of the rounding error of element (i, j).
fn magnitudes(a: &[f64], b: &[f64], mnk: (usize, usize, usize), ta: bool, tb: bool) -> Vec<f64> {
    let abs = |x: &[f64]| x.iter().map(|v| v.abs()).collect::<Vec<_>>();
    reference::matmul(&abs(a), &abs(b), mnk, ta, tb)
}

/// A k-term f32 dot product is within γ_k · Σ|a_p b_p| of the exact value, γ_k = k·u/(1 − k·u)
/// (Higham, Accuracy and Stability, §3.1), whatever order the kernel adds in. Two more
/// roundings (bias, accumulate) make it γ_{k+2}.
fn dot_bound(k: usize, magnitude: f64) -> f64 {
    let ku = (k + 2) as f64 * U;
    ku / (1.0 - ku) * magnitude + f64::MIN_POSITIVE
}

#[test]
fn matmul_matches_f64_for_every_transpose_at_awkward_shapes() {
    let mut rng = rng("matmul transposes");
    for (&(m, n, k), tile) in SHAPES.iter().flat_map(|s| TILES.map(|tile| (s, tile))) {
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            let a = rng.uniform(m * k, -1.0, 1.0);
            let b = rng.uniform(k * n, -1.0, 1.0);
            let a_shape = if ta { [k, m] } else { [m, k] };
            let b_shape = if tb { [n, k] } else { [k, n] };
            let (c, sums) = (poisoned(&[m, n]), poisoned(&[m]));
            // Half the cases also ask for the row sums of op(a) (the bias-gradient path): those
            // without `tb` where m + n + k is even (so `direct` meets them beside `ta`, as in
            // a Linear's weight gradient), those with it where it is odd.
            let with_sums = tb == ((m + n + k) % 2 == 1);
            let op = Matmul {
                trans_a: ta,
                trans_b: tb,
                tile,
                row_sums: with_sums.then_some(&sums),
                ..Default::default()
            };
            let dispatch = op
                .dispatch(gpu(), &upload(&a, &a_shape), &upload(&b, &b_shape), &c)
                .expect("valid shapes");
            if tile == Tile::Direct && op.direct_fits((m, n, k), false) {
                assert!(dispatch.label().contains("direct"), "{}", dispatch.label());
            }
            run(&[&dispatch]);
            let (a, b) = (f64s(&a), f64s(&b));
            let want = reference::matmul(&a, &b, (m, n, k), ta, tb);
            let mags = magnitudes(&a, &b, (m, n, k), ta, tb);
            assert_within(
                &format!("matmul {tile:?} {m}x{n}x{k} ta={ta} tb={tb} sums={with_sums}"),
                &read(&c),
                &want,
                |i| dot_bound(k, mags[i]),
            );
            if with_sums {
                // Σ_k op(a)[i, k] is the product with a column of ones: the same bound.
                let ones = vec![1.0; k];
                let want = reference::matmul(&a, &ones, (m, 1, k), ta, false);
                let mags = magnitudes(&a, &ones, (m, 1, k), ta, false);
                assert_within(
                    &format!("row sums {tile:?} {m}x{k} ta={ta}"),
                    &read(&sums),
                    &want,
                    |i| dot_bound(k, mags[i]),
                );
            }
        }
    }
}

#[test]
fn matmul_epilogue_bias_activation_and_accumulate() {
    let mut rng = rng("matmul epilogue");
    let acts = [
        Activation::Identity,
        Activation::Relu,
        Activation::LeakyRelu(0.01),
        Activation::Gelu,
        Activation::Tanh,
        Activation::Sigmoid,
    ];
    for (&(m, n, k), tile) in SHAPES[1..].iter().flat_map(|s| TILES.map(|tile| (s, tile))) {
        for act in acts {
            for accumulate in [false, true] {
                let a = rng.uniform(m * k, -1.0, 1.0);
                let b = rng.uniform(n * k, -1.0, 1.0);
                let bias = rng.uniform(n, -1.0, 1.0);
                let initial = rng.uniform(m * n, -1.0, 1.0);
                let c = if accumulate {
                    upload(&initial, &[m, n])
                } else {
                    poisoned(&[m, n])
                };
                let bias_t = upload(&bias, &[n]);
                let op = Matmul {
                    trans_b: true,
                    tile,
                    epilogue: Epilogue::Activate {
                        bias: Some(&bias_t),
                        activation: act,
                        accumulate,
                    },
                    ..Default::default()
                };
                let dispatch = op
                    .dispatch(gpu(), &upload(&a, &[m, k]), &upload(&b, &[n, k]), &c)
                    .expect("valid shapes");
                run(&[&dispatch]);
                let (a, b) = (f64s(&a), f64s(&b));
                let product = reference::matmul(&a, &b, (m, n, k), false, true);
                let mags = magnitudes(&a, &b, (m, n, k), false, true);
                let pre: Vec<f64> = (0..m * n)
                    .map(|i| {
                        product[i]
                            + f64::from(bias[i % n])
                            + if accumulate {
                                f64::from(initial[i])
                            } else {
                                0.0
                            }
                    })
                    .collect();
                let want: Vec<f64> = pre.iter().map(|&x| act.apply_f64(x)).collect();
                // The pre-activation error (dot_bound plus |bias| + |c|) passes through the
                // activation's slope (≤ 1.13, GELU's maximum), then the activation adds its own:
                // exp and division cost a few ulps, 1e-6 relative and absolute covers them.
                assert_within(
                    &format!("matmul epilogue {act:?} acc={accumulate} {m}x{n}x{k}"),
                    &read(&c),
                    &want,
                    |i| 1.13 * dot_bound(k, mags[i] + 2.0) + 1e-6 * (1.0 + want[i].abs()),
                );
            }
        }
    }
}

#[test]
fn matmul_activation_grad_epilogue_masks_the_product() {
    let mut rng = rng("matmul activation grad");
    let acts = [
        Activation::Relu,
        Activation::Gelu,
        Activation::Tanh,
        Activation::Sigmoid,
    ];
    // The second shape is one `direct` takes.
    let cases = [(33, 130, 17), (36, 68, 20)]
        .into_iter()
        .flat_map(|shape| acts.map(|act| (shape, act)))
        .flat_map(|case| TILES.map(|tile| (case, tile)));
    for (((m, n, k), act), tile) in cases {
        let a = rng.uniform(m * k, -1.0, 1.0);
        let b = rng.uniform(k * n, -1.0, 1.0);
        let pre = rng.uniform(m * n, -3.0, 3.0);
        let c = poisoned(&[m, n]);
        let pre_t = upload(&pre, &[m, n]);
        let op = Matmul {
            tile,
            epilogue: Epilogue::ActivationGrad {
                pre: &pre_t,
                activation: act,
            },
            ..Default::default()
        };
        let dispatch = op
            .dispatch(gpu(), &upload(&a, &[m, k]), &upload(&b, &[k, n]), &c)
            .expect("valid shapes");
        run(&[&dispatch]);
        let (a, b) = (f64s(&a), f64s(&b));
        let product = reference::matmul(&a, &b, (m, n, k), false, false);
        let mags = magnitudes(&a, &b, (m, n, k), false, false);
        let want: Vec<f64> = (0..m * n)
            .map(|i| product[i] * act.grad_f64(f64::from(pre[i])))
            .collect();
        // |act'| ≤ 1.13 scales the product's error; the derivative's own rounding (1e-6
        // relative, as above) scales with the product.
        assert_within(
            &format!("matmul grad-mask {act:?} {tile:?} {m}x{n}x{k}"),
            &read(&c),
            &want,
            |i| 1.13 * dot_bound(k, mags[i]) + 1e-6 * mags[i],
        );
    }
}

#[test]
fn naive_matmul_matches_f64() {
    let mut rng = rng("matmul naive");
    for &(m, n, k) in SHAPES {
        let a = rng.uniform(m * k, -1.0, 1.0);
        let b = rng.uniform(k * n, -1.0, 1.0);
        let c = poisoned(&[m, n]);
        let dispatch = matmul_naive(gpu(), &upload(&a, &[m, k]), &upload(&b, &[k, n]), &c)
            .expect("valid shapes");
        run(&[&dispatch]);
        let (a, b) = (f64s(&a), f64s(&b));
        let want = reference::matmul(&a, &b, (m, n, k), false, false);
        let mags = magnitudes(&a, &b, (m, n, k), false, false);
        assert_within("matmul naive", &read(&c), &want, |i| dot_bound(k, mags[i]));
    }
}

#[test]
fn matmul_rejects_mismatched_shapes() {
    let a = poisoned(&[3, 4]);
    let b = poisoned(&[5, 6]);
    let c = poisoned(&[3, 6]);
    let error = Matmul::default()
        .dispatch(gpu(), &a, &b, &c)
        .expect_err("k differs");
    assert!(
        matches!(error, wgtrain::Error::ShapeMismatch { .. }),
        "{error}"
    );
}

#[test]
fn the_tile_autotune_times_both_tiles_and_picks_one() {
    // On lavapipe the trainer skips this timing (CPU adapter); run it directly so the GPU path
    // is exercised too.
    let tile = gpu()
        .time_matmul_tiles((130, 140, 33), (true, false))
        .expect("timing runs");
    assert!(
        matches!(tile, Tile::T32 | Tile::T64 | Tile::T128),
        "{tile:?}"
    );
}

#[test]
fn split_k_products_match_f64_with_every_epilogue() {
    let mut rng = rng("matmul split-k");
    // (m, n, k, splits): K not a multiple of the slice or the split, a single output, and a
    // product past one 128-wide tile; each split into parts whose partials are summed.
    for &(m, n, k, splits) in &[
        (3, 5, 300, 4),
        (1, 1, 777, 7),
        (33, 65, 1000, 3),
        (130, 67, 517, 5),
        (36, 20, 516, 3),
    ] {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let a = rng.uniform(m * k, -1.0, 1.0);
            let b = rng.uniform(k * n, -1.0, 1.0);
            let bias = rng.uniform(n, -1.0, 1.0);
            let initial = rng.uniform(m * n, -1.0, 1.0);
            let pre = rng.uniform(m * n, -3.0, 3.0);
            let a_t = upload(&a, &if ta { [k, m] } else { [m, k] });
            let b_t = upload(&b, &if tb { [n, k] } else { [k, n] });
            let (bias_t, pre_t) = (upload(&bias, &[n]), upload(&pre, &[m, n]));
            let (af, bf) = (f64s(&a), f64s(&b));
            let product = reference::matmul(&af, &bf, (m, n, k), ta, tb);
            let mags = magnitudes(&af, &bf, (m, n, k), ta, tb);
            // The partials add `splits` more roundings to the k-term sum.
            let bound = |i: usize, extra: f64| 1.13 * dot_bound(k + splits, mags[i] + extra);
            let what = format!("split {m}x{n}x{k} into {splits} ta={ta} tb={tb}");

            // Plain store with row sums (a Linear's weight and bias gradient).
            let (c, sums) = (poisoned(&[m, n]), poisoned(&[m]));
            let op = Matmul {
                trans_a: ta,
                trans_b: tb,
                row_sums: Some(&sums),
                split_k: Some(splits),
                ..Default::default()
            };
            let dispatches = op.dispatches(gpu(), &a_t, &b_t, &c).expect("valid");
            assert_eq!(dispatches.len(), 2, "{what}: products and their sum");
            run(&dispatches.iter().collect::<Vec<_>>());
            assert_within(&format!("{what} store"), &read(&c), &product, |i| {
                bound(i, 0.0)
            });
            let ones = vec![1.0; k];
            let want_sums = reference::matmul(&af, &ones, (m, 1, k), ta, false);
            let sum_mags = magnitudes(&af, &ones, (m, 1, k), ta, false);
            assert_within(&format!("{what} row sums"), &read(&sums), &want_sums, |i| {
                dot_bound(k + splits, sum_mags[i])
            });

            // Bias, ReLU and accumulate into C.
            let c = upload(&initial, &[m, n]);
            let op = Matmul {
                trans_a: ta,
                trans_b: tb,
                epilogue: Epilogue::Activate {
                    bias: Some(&bias_t),
                    activation: Activation::Relu,
                    accumulate: true,
                },
                split_k: Some(splits),
                ..Default::default()
            };
            let dispatches = op.dispatches(gpu(), &a_t, &b_t, &c).expect("valid");
            run(&dispatches.iter().collect::<Vec<_>>());
            let want: Vec<f64> = (0..m * n)
                .map(|i| (product[i] + f64::from(bias[i % n]) + f64::from(initial[i])).max(0.0))
                .collect();
            assert_within(&format!("{what} bias+relu+acc"), &read(&c), &want, |i| {
                bound(i, 2.0)
            });

            // The fused activation's derivative.
            let c = poisoned(&[m, n]);
            let op = Matmul {
                trans_a: ta,
                trans_b: tb,
                epilogue: Epilogue::ActivationGrad {
                    pre: &pre_t,
                    activation: Activation::Tanh,
                },
                split_k: Some(splits),
                ..Default::default()
            };
            let dispatches = op.dispatches(gpu(), &a_t, &b_t, &c).expect("valid");
            run(&dispatches.iter().collect::<Vec<_>>());
            let want: Vec<f64> = (0..m * n)
                .map(|i| product[i] * Activation::Tanh.grad_f64(f64::from(pre[i])))
                .collect();
            assert_within(&format!("{what} grad mask"), &read(&c), &want, |i| {
                bound(i, 0.0) + 1e-6 * mags[i]
            });
        }
    }
}
