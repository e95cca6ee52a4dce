//! The N-d kernels (`tensor.wgsl`, `softmax.wgsl`, `layernorm.wgsl`, batched matmul) against
//! f64 at awkward shapes: size-1 axes, odd extents, more than 2¹⁶ elements.

use wgtrain::kernels::layernorm::{self, LayerNormTensors};
use wgtrain::kernels::matmul::{Matmul, Tile};
use wgtrain::kernels::{softmax, tensor};
use wgtrain::reference;

use crate::common::*;

/// Summing n terms in any order: within γ_n · Σ|terms| (Higham §4.2), plus one rounding of
/// a final scale.
fn sum_bound(n: usize, magnitude: f64) -> f64 {
    let nu = (n + 1) as f64 * U;
    nu / (1.0 - nu) * magnitude + f64::MIN_POSITIVE
}

#[test]
fn transposes_and_column_windows_copy_exactly() {
    let mut rng = rng("transposes");
    for (shape, axes) in [
        (vec![1, 1], (0, 1)),
        (vec![3, 5, 7], (0, 2)),
        (vec![2, 3, 4, 5], (1, 2)),
        (vec![2, 1, 3, 1, 5], (1, 4)),
        (vec![7, 130, 73], (1, 2)), // 66,430 elements: a second grid row
    ] {
        let n: usize = shape.iter().product();
        let x = rng.uniform(n, -1.0, 1.0);
        let mut to = shape.clone();
        to.swap(axes.0, axes.1);
        let out = poisoned(&to);
        let d = tensor::transpose(gpu(), axes, &upload(&x, &shape), &out).expect("shapes");
        run(&[&d]);
        let want = reference::transpose(&f64s(&x), &shape, axes);
        assert_close(
            &format!("transpose {shape:?} {axes:?}"),
            &read(&out),
            &want,
            0.0,
            0.0,
        );
    }
    // Concatenation of [5, 3] and [5, 4] and back.
    let (a, b) = (rng.uniform(15, -1.0, 1.0), rng.uniform(20, -1.0, 1.0));
    let cat = poisoned(&[5, 7]);
    let (back_a, back_b) = (poisoned(&[5, 3]), poisoned(&[5, 4]));
    let ds = [
        tensor::column_window(gpu(), (5, 3, 7, 0), true, &upload(&a, &[5, 3]), &cat),
        tensor::column_window(gpu(), (5, 4, 7, 3), true, &upload(&b, &[5, 4]), &cat),
        tensor::column_window(gpu(), (5, 3, 7, 0), false, &cat, &back_a),
        tensor::column_window(gpu(), (5, 4, 7, 3), false, &cat, &back_b),
    ]
    .map(|d| d.expect("shapes"));
    run(&ds.iter().collect::<Vec<_>>());
    let want: Vec<f64> = (0..5)
        .flat_map(|r| [&a[r * 3..r * 3 + 3], &b[r * 4..r * 4 + 4]].concat())
        .map(f64::from)
        .collect();
    assert_close("concat", &read(&cat), &want, 0.0, 0.0);
    assert_close("slice a", &read(&back_a), &f64s(&a), 0.0, 0.0);
    // A slice's gradient: b in columns 3..7 of a [5, 9] matrix, zeros around it.
    let padded = poisoned(&[5, 9]);
    let d =
        tensor::pad_columns(gpu(), (5, 4, 9, 3), &upload(&b, &[5, 4]), &padded).expect("shapes");
    run(&[&d]);
    let want: Vec<f64> = (0..45)
        .map(|i| {
            let (r, j) = (i / 9, i % 9);
            if (3..7).contains(&j) {
                f64::from(b[r * 4 + j - 3])
            } else {
                0.0
            }
        })
        .collect();
    assert_close("pad_columns", &read(&padded), &want, 0.0, 0.0);
    assert_close("slice b", &read(&back_b), &f64s(&b), 0.0, 0.0);
    // A walk past the end of a tensor is refused, not run.
    assert!(tensor::column_window(gpu(), (5, 4, 7, 4), true, &upload(&b, &[5, 4]), &cat).is_err());
}

#[test]
fn broadcast_binaries_round_once() {
    let mut rng = rng("broadcast binaries");
    for (n, ny) in [(1, 1), (15, 5), (15, 15), (70_005, 3)] {
        let (x, y) = (rng.uniform(n, -2.0, 2.0), rng.uniform(ny, -2.0, 2.0));
        let (xt, yt) = (upload(&x, &[n]), upload(&y, &[ny]));
        let outs = [poisoned(&[n]), poisoned(&[n]), poisoned(&[n])];
        let ds = [
            tensor::add_broadcast(gpu(), 1.0, &xt, &yt, &outs[0]),
            tensor::add_broadcast(gpu(), -1.0, &xt, &yt, &outs[1]),
            tensor::mul_broadcast(gpu(), &xt, &yt, &outs[2]),
        ]
        .map(|d| d.expect("shapes"));
        run(&ds.iter().collect::<Vec<_>>());
        let (xd, yd) = (f64s(&x), f64s(&y));
        for (k, out) in outs.iter().enumerate() {
            let want: Vec<f64> = (0..n)
                .map(|i| match k {
                    0 => xd[i] + yd[i % ny],
                    1 => xd[i] - yd[i % ny],
                    _ => xd[i] * yd[i % ny],
                })
                .collect();
            // One correctly rounded operation: u · |result|.
            assert_within(&format!("binary {k} {n}/{ny}"), &read(out), &want, |i| {
                U * want[i].abs()
            });
        }
    }
    let bad = tensor::add_broadcast(
        gpu(),
        1.0,
        &upload(&[0.0; 5], &[5]),
        &upload(&[0.0; 2], &[2]),
        &poisoned(&[5]),
    );
    assert!(bad.is_err(), "5 elements do not repeat a 2-element operand");
}

#[test]
fn axis_sums_and_their_broadcast() {
    let mut rng = rng("axis sums");
    for dims in [
        (1, 1, 1),
        (3, 5, 7),
        (2, 33, 1),
        (1, 4, 20_000),
        (70_001, 2, 1),
    ] {
        let (outer, len, inner) = dims;
        let x = rng.uniform(outer * len * inner, -1.0, 1.0);
        let (sum, back) = (poisoned(&[outer * inner]), poisoned(&[outer * len * inner]));
        let d1 = tensor::axis_sum(gpu(), dims, 0.25, &upload(&x, &[outer * len * inner]), &sum)
            .expect("shapes");
        let dy = rng.uniform(outer * inner, -1.0, 1.0);
        let d2 = tensor::axis_broadcast(gpu(), dims, -0.5, &upload(&dy, &[outer * inner]), &back)
            .expect("shapes");
        run(&[&d1, &d2]);
        let xd = f64s(&x);
        let mags = reference::axis_sum(&xd.iter().map(|v| v.abs()).collect::<Vec<_>>(), dims, 0.25);
        assert_within(
            &format!("axis_sum {dims:?}"),
            &read(&sum),
            &reference::axis_sum(&xd, dims, 0.25),
            |i| sum_bound(len, mags[i]),
        );
        let want: Vec<f64> = (0..outer * len * inner)
            .map(|i| -0.5 * f64::from(dy[(i / (len * inner)) * inner + i % inner]))
            .collect();
        assert_close(
            &format!("axis_broadcast {dims:?}"),
            &read(&back),
            &want,
            0.0,
            U,
        );
    }
}

#[test]
fn embedding_gathers_rows_and_sums_repeats_without_atomics() {
    let mut rng = rng("embedding");
    for (vocab, dim, rows) in [(1, 1, 1), (7, 3, 40), (65, 33, 257)] {
        let table = rng.uniform(vocab * dim, -1.0, 1.0);
        let idx: Vec<u32> = rng
            .below(rows, vocab as u32)
            .iter()
            .map(|&v| v as u32)
            .collect();
        let idx_t = gpu().tensor_u32(&idx, &[rows]).expect("indices");
        let dout = rng.uniform(rows * dim, -1.0, 1.0);
        let (out, dtable) = (poisoned(&[rows, dim]), poisoned(&[vocab, dim]));
        let d1 = tensor::embedding_forward(gpu(), &upload(&table, &[vocab, dim]), &idx_t, &out)
            .expect("shapes");
        let d2 = tensor::embedding_backward(gpu(), &upload(&dout, &[rows, dim]), &idx_t, &dtable)
            .expect("shapes");
        run(&[&d1, &d2]);
        let idx: Vec<usize> = idx.iter().map(|&v| v as usize).collect();
        let want = reference::embedding(&f64s(&table), dim, &idx);
        assert_close(
            &format!("embedding {vocab}x{dim}"),
            &read(&out),
            &want,
            0.0,
            0.0,
        );
        let want = reference::embedding_backward(&f64s(&dout), dim, &idx, vocab);
        let mags = reference::embedding_backward(
            &dout.iter().map(|v| f64::from(v.abs())).collect::<Vec<_>>(),
            dim,
            &idx,
            vocab,
        );
        assert_within(
            &format!("embedding backward {vocab}x{dim}"),
            &read(&dtable),
            &want,
            |i| sum_bound(rows, mags[i]),
        );
    }
    // An index past the table gives NaN rows, never another row's values.
    let out = poisoned(&[2, 3]);
    let idx = gpu().tensor_u32(&[1, 9], &[2]).expect("indices");
    let d =
        tensor::embedding_forward(gpu(), &upload(&[0.5; 6], &[2, 3]), &idx, &out).expect("shapes");
    run(&[&d]);
    let got = read(&out);
    assert!(
        got[..3].iter().all(|&v| v == 0.5) && got[3..].iter().all(|v| v.is_nan()),
        "{got:?}"
    );
}

#[test]
fn softmax_plain_and_causal_forward_and_backward() {
    let mut rng = rng("softmax");
    for (rows, cols, causal_t) in [
        (1, 1, 0),
        (3, 7, 0),
        (70_001, 2, 0),
        (2 * 5 * 5, 5, 5),
        (1, 1, 1),
    ] {
        let x = rng.uniform(rows * cols, -8.0, 8.0);
        let dy = rng.uniform(rows * cols, -1.0, 1.0);
        let (y, dx) = (poisoned(&[rows, cols]), poisoned(&[rows, cols]));
        let d1 = softmax::softmax_forward(gpu(), causal_t, &upload(&x, &[rows, cols]), &y)
            .expect("shapes");
        let d2 =
            softmax::softmax_backward(gpu(), &y, &upload(&dy, &[rows, cols]), &dx).expect("shapes");
        run(&[&d1, &d2]);
        let want = reference::softmax(&f64s(&x), cols, causal_t);
        // exp within ±16 is good to ≤ 35 ulps (SPIR-V's precision), the row sum adds γ_cols and
        // the division one more rounding: (40 + cols) u relative to each probability.
        let rel = (40 + cols) as f64 * U;
        assert_close(
            &format!("softmax {rows}x{cols} causal {causal_t}"),
            &read(&y),
            &want,
            1e-12,
            rel,
        );
        // The backward from the GPU's own y: a dot product of cols terms and two roundings,
        // bounded by (cols + 4) u times Σ|y dy| ≤ max|dy| ≤ 1, relative to y ≤ 1.
        let y64 = f64s(&read(&y));
        let want = reference::softmax_backward(&y64, &f64s(&dy), cols);
        assert_within(
            &format!("softmax backward {rows}x{cols}"),
            &read(&dx),
            &want,
            |i| (cols + 4) as f64 * U * 2.0 * y64[i] + f64::MIN_POSITIVE,
        );
    }
}

#[test]
fn layer_norm_forward_and_backward() {
    let mut rng = rng("layer norm");
    for (rows, cols) in [(1, 2), (3, 7), (257, 33), (5, 1000)] {
        let x = rng.uniform(rows * cols, -2.0, 2.0);
        let dy = rng.uniform(rows * cols, -1.0, 1.0);
        let gamma = rng.uniform(cols, 0.5, 1.5);
        let beta = rng.uniform(cols, -0.5, 0.5);
        let (gt, bt, saved) = (
            upload(&gamma, &[cols]),
            upload(&beta, &[cols]),
            poisoned(&[rows, 2]),
        );
        let t = LayerNormTensors {
            gamma: &gt,
            beta: &bt,
            saved: &saved,
        };
        let xt = upload(&x, &[rows, cols]);
        let dyt = upload(&dy, &[rows, cols]);
        let (y, dx, dgamma, dbeta) = (
            poisoned(&[rows, cols]),
            poisoned(&[rows, cols]),
            poisoned(&[cols]),
            poisoned(&[cols]),
        );
        let ds = [
            layernorm::layernorm_forward(gpu(), 1e-5, &xt, &t, &y),
            layernorm::layernorm_backward_input(gpu(), &xt, &t, &dyt, &dx),
            layernorm::layernorm_backward_params(gpu(), &xt, &t, &dyt, (&dgamma, &dbeta)),
        ]
        .map(|d| d.expect("shapes"));
        run(&ds.iter().collect::<Vec<_>>());
        let (xd, gd) = (f64s(&x), f64s(&gamma));
        let want = reference::layer_norm(&xd, cols, &gd, &f64s(&beta), 1e-5);
        let (want_dx, want_dg, want_db) =
            reference::layer_norm_backward(&xd, &f64s(&dy), cols, &gd, 1e-5);
        // Row mean and variance are sums of cols terms (γ_cols relative to magnitudes ≤ 2 and
        // 4); 1/σ ≤ ~2 for uniform rows of ≥ 2 values (σ ≳ 0.5 except by vanishing chance)
        // scales them, and x̂ ≤ √cols. So ≈ 40·cols·u absolute on y and dx; dγ and dβ sum
        // rows such terms.
        let tol = 40.0 * cols as f64 * U + 1e-6;
        assert_close(
            &format!("layernorm y {rows}x{cols}"),
            &read(&y),
            &want,
            tol,
            tol,
        );
        assert_close(
            &format!("layernorm dx {rows}x{cols}"),
            &read(&dx),
            &want_dx,
            tol,
            tol,
        );
        let tol_params = tol * rows as f64;
        assert_close(
            &format!("layernorm dgamma {rows}x{cols}"),
            &read(&dgamma),
            &want_dg,
            tol_params,
            tol,
        );
        assert_close(
            &format!("layernorm dbeta {rows}x{cols}"),
            &read(&dbeta),
            &want_db,
            tol_params,
            tol,
        );
    }
}

#[test]
fn batched_matmul_matches_f64_per_matrix_in_every_transpose() {
    let mut rng = rng("batched matmul");
    for (batch, (m, n, k)) in [
        (1, (1, 1, 1)),
        (3, (3, 5, 7)),
        (4, (70, 130, 33)),
        (2, (130, 67, 129)),
        (3, (12, 8, 20)),
        (2, (68, 132, 36)),
    ] {
        for tile in [Tile::T32, Tile::T64, Tile::T128, Tile::Direct] {
            for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
                let a = rng.uniform(batch * m * k, -1.0, 1.0);
                let b = rng.uniform(batch * k * n, -1.0, 1.0);
                let a_shape = if ta { [batch, k, m] } else { [batch, m, k] };
                let b_shape = if tb { [batch, n, k] } else { [batch, k, n] };
                let c = poisoned(&[batch, m, n]);
                let op = Matmul {
                    trans_a: ta,
                    trans_b: tb,
                    tile,
                    ..Default::default()
                };
                let d = op
                    .dispatch_batched(gpu(), &upload(&a, &a_shape), &upload(&b, &b_shape), &c)
                    .expect("shapes");
                run(&[&d]);
                let got = read(&c);
                let (a, b) = (f64s(&a), f64s(&b));
                let abs = |x: &[f64]| x.iter().map(|v| v.abs()).collect::<Vec<_>>();
                for i in 0..batch {
                    let (ai, bi) = (
                        &a[i * m * k..(i + 1) * m * k],
                        &b[i * k * n..(i + 1) * k * n],
                    );
                    let want = reference::matmul(ai, bi, (m, n, k), ta, tb);
                    let mags = reference::matmul(&abs(ai), &abs(bi), (m, n, k), ta, tb);
                    // A k-term dot product: γ_k · Σ|a||b| (Higham §3.1).
                    assert_within(
                        &format!(
                            "batched matmul {tile:?} [{i}/{batch}] {m}x{n}x{k} ta={ta} tb={tb}"
                        ),
                        &got[i * m * n..(i + 1) * m * n],
                        &want,
                        |j| sum_bound(k, mags[j]),
                    );
                }
            }
        }
    }
}
