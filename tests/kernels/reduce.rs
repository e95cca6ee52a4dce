use wgtrain::kernels::reduce;
use wgtrain::reference;

use crate::common::*;

/// Summing n terms in any order is within γ_n·Σ|x| of the exact sum (Higham §4.2); a tree is
/// much tighter, but this bound holds for any order, which is what the kernel promises.
fn sum_bound(n: usize, magnitude: f64) -> f64 {
    let nu = n as f64 * U;
    nu / (1.0 - nu) * magnitude + f64::MIN_POSITIVE
}

/// Awkward shapes; (70_001, 2) needs more than 65535 workgroups in `sum_cols` (one per row),
/// so its grid spills into a second row.
const SHAPES: &[(usize, usize)] = &[(1, 1), (3, 5), (33, 65), (257, 3), (5, 70_001), (70_001, 2)];

#[test]
fn row_and_column_sums_match_f64() {
    let mut rng = rng("row and column sums");
    for &(rows, cols) in SHAPES {
        let x = rng.uniform(rows * cols, -1.0, 1.0);
        let xt = upload(&x, &[rows, cols]);
        let (by_col, by_row) = (poisoned(&[cols]), poisoned(&[rows]));
        let d1 = reduce::sum_rows(gpu(), 0.5, &xt, &by_col).expect("shapes");
        let d2 = reduce::sum_cols(gpu(), 1.0, &xt, &by_row).expect("shapes");
        run(&[&d1, &d2]);
        let xd = f64s(&x);
        let abs: Vec<f64> = xd.iter().map(|v| v.abs()).collect();
        let want_cols: Vec<f64> = reference::sum_rows(&xd, rows, cols)
            .iter()
            .map(|s| 0.5 * s)
            .collect();
        let mag_cols = reference::sum_rows(&abs, rows, cols);
        assert_within(
            &format!("sum_rows {rows}x{cols}"),
            &read(&by_col),
            &want_cols,
            |i| sum_bound(rows + 1, mag_cols[i]),
        );
        let mag_rows = reference::sum_cols(&abs, rows, cols);
        assert_within(
            &format!("sum_cols {rows}x{cols}"),
            &read(&by_row),
            &reference::sum_cols(&xd, rows, cols),
            |i| sum_bound(cols + 1, mag_rows[i]),
        );
    }
}

#[test]
fn global_sums_match_f64_and_are_deterministic() {
    let mut rng = rng("global sums");
    for n in [1, 7, 4097, 100_003] {
        let x = rng.uniform(n, -1.0, 1.0);
        let xt = upload(&x, &[n]);
        let (sum, squares) = (poisoned(&[1]), poisoned(&[1]));
        let d1 = reduce::sum_all(gpu(), false, 1.0, &xt, &sum).expect("shapes");
        let d2 = reduce::sum_all(gpu(), true, 1.0, &xt, &squares).expect("shapes");
        let all: Vec<_> = d1.iter().chain(&d2).collect();
        run(&all);
        let first = (read(&sum)[0], read(&squares)[0]);
        let xd = f64s(&x);
        let magnitude: f64 = xd.iter().map(|v| v.abs()).sum();
        let want_sq: f64 = xd.iter().map(|v| v * v).sum();
        assert_within(
            &format!("sum n={n}"),
            &[first.0],
            &[xd.iter().sum()],
            |_| sum_bound(n, magnitude),
        );
        // Squaring adds one rounding per term: γ_{n+1}.
        assert_within(
            &format!("sum of squares n={n}"),
            &[first.1],
            &[want_sq],
            |_| sum_bound(n + 1, want_sq),
        );
        run(&all);
        assert_eq!(
            (read(&sum)[0], read(&squares)[0]),
            first,
            "same input, same bits"
        );
    }
}

#[test]
fn clip_coefficient_follows_torch_clip_grad_norm() {
    let mut rng = rng("clip coefficient");
    let x = rng.uniform(10_000, -1.0, 1.0);
    let norm: f64 = x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>().sqrt();
    for max_norm in [1.0f32, 1e6] {
        let out = poisoned(&[2]);
        let dispatches = reduce::clip_coefficient(gpu(), max_norm, &upload(&x, &[10_000]), &out)
            .expect("shapes");
        run(&dispatches.iter().collect::<Vec<_>>());
        let want_coef = (f64::from(max_norm) / (norm + 1e-6)).min(1.0);
        // The norm is a sqrt of a sum of 10⁴ squares: relative error ≤ γ_{10⁴}/2 + u ≈ 3e-4.
        assert_close("clip", &read(&out), &[norm, want_coef], 0.0, 4e-4);
    }
}

#[test]
fn argmax_returns_the_first_largest_index() {
    let mut rng = rng("argmax");
    for &(rows, cols) in &[(1, 1), (7, 10), (300, 3)] {
        let mut x = rng.uniform(rows * cols, -1.0, 1.0);
        if cols > 2 {
            x[1] = 5.0; // a tie in row 0: the first index must win
            x[2] = 5.0;
        }
        let out = poisoned(&[rows]);
        run(&[&reduce::argmax_rows(gpu(), &upload(&x, &[rows, cols]), &out).expect("shapes")]);
        let want: Vec<f64> = (0..rows)
            .map(|r| {
                let row = &x[r * cols..(r + 1) * cols];
                let mut best = 0;
                for (c, &v) in row.iter().enumerate() {
                    if v > row[best] {
                        best = c;
                    }
                }
                best as f64
            })
            .collect();
        assert_close("argmax", &read(&out), &want, 0.0, 0.0);
    }
}
