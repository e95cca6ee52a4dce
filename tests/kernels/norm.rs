use wgtrain::kernels::norm::{
    BatchNormConfig, BatchNormTensors, batchnorm_backward, batchnorm_eval, batchnorm_forward,
};
use wgtrain::reference;

use crate::common::*;

#[test]
fn batchnorm_1d_and_2d_forward_backward_and_running_stats_match_f64() {
    let mut rng = rng("batchnorm");
    let config = BatchNormConfig::default();
    // (rows, channels, inner): BatchNorm1d over [B, C], and over [B, C, S] as BatchNorm2d
    // sees [B, C, H·W], with batch 1 and odd planes.
    for &(rows, cols, inner) in &[
        (2, 1, 1),
        (3, 5, 1),
        (300, 7, 1),
        (17, 65, 1),
        (1, 3, 25),
        (5, 2, 9),
    ] {
        let shape: &[usize] = if inner == 1 {
            &[rows, cols]
        } else {
            &[rows, cols, inner]
        };
        let len = rows * cols * inner;
        let x: Vec<f32> = rng.uniform(len, -2.0, 3.0);
        let gamma = rng.uniform(cols, 0.5, 1.5);
        let beta = rng.uniform(cols, -1.0, 1.0);
        let dy = rng.uniform(len, -1.0, 1.0);
        let running0: Vec<f32> = [vec![0.0; cols], vec![1.0; cols]].concat();
        let (xt, gt, bt) = (
            upload(&x, shape),
            upload(&gamma, &[cols]),
            upload(&beta, &[cols]),
        );
        let (saved, running) = (poisoned(&[2, cols]), upload(&running0, &[2, cols]));
        let t = BatchNormTensors {
            gamma: &gt,
            beta: &bt,
            saved: &saved,
            running: &running,
        };
        let (y, dx, dgamma, dbeta, y_eval) = (
            poisoned(shape),
            poisoned(shape),
            poisoned(&[cols]),
            poisoned(&[cols]),
            poisoned(shape),
        );
        let forward = batchnorm_forward(gpu(), config, &xt, &t, &y).expect("shapes");
        let backward = batchnorm_backward(
            gpu(),
            config,
            &xt,
            &t,
            &upload(&dy, shape),
            &dx,
            &dgamma,
            &dbeta,
        )
        .expect("shapes");
        let eval = batchnorm_eval(gpu(), config, &xt, &t, &y_eval).expect("shapes");
        run(&[&forward, &backward, &eval]);

        let (xd, gd, bd) = (f64s(&x), f64s(&gamma), f64s(&beta));
        let eps = f64::from(config.eps);
        // The reference normalises columns of [N, C], N = rows·inner: channels go last.
        let bcs = (rows, cols, inner);
        let n = rows * inner;
        let (want_y, mean, var) = reference::batchnorm_forward(
            &reference::channels_last(&xd, bcs),
            n,
            cols,
            &gd,
            &bd,
            eps,
        );
        let want_y = reference::channels_first(&want_y, bcs);
        let (want_dx, want_dgamma, want_dbeta) = reference::batchnorm_backward(
            &reference::channels_last(&xd, bcs),
            &reference::channels_last(&f64s(&dy), bcs),
            n,
            cols,
            &gd,
            eps,
        );
        let want_dx = reference::channels_first(&want_dx, bcs);
        let rows = n;
        // Mean and variance are sums over the batch (γ_rows relative to magnitudes ≤ 3 and 9);
        // 1/σ multiplies those errors by ≤ 1/√ε for constant columns, which the inputs avoid
        // (σ ≳ 0.1 for uniform draws of ≥ 2 rows, except by vanishing chance). 1e-4 absolute
        // holds for rows ≤ 300 with ample margin.
        let tol = 2e-5 + rows as f64 * U * 40.0;
        assert_close(
            &format!("batchnorm y {rows}x{cols}"),
            &read(&y),
            &want_y,
            tol,
            tol,
        );
        assert_close(
            &format!("batchnorm dx {rows}x{cols}"),
            &read(&dx),
            &want_dx,
            tol,
            tol,
        );
        assert_close(
            &format!("batchnorm dgamma {rows}x{cols}"),
            &read(&dgamma),
            &want_dgamma,
            tol * rows as f64,
            tol,
        );
        assert_close(
            &format!("batchnorm dbeta {rows}x{cols}"),
            &read(&dbeta),
            &want_dbeta,
            tol * rows as f64,
            tol,
        );
        let unbiased = rows as f64 / (rows as f64 - 1.0);
        let want_running: Vec<f64> = mean
            .iter()
            .map(|m| 0.1 * m)
            .chain(var.iter().map(|v| 0.9 + 0.1 * v * unbiased))
            .collect();
        assert_close("running stats", &read(&running), &want_running, tol, tol);
        let want_eval: Vec<f64> = (0..len)
            .map(|i| {
                let c = (i / inner) % cols;
                (xd[i] - want_running[c]) / (want_running[cols + c] + eps).sqrt() * gd[c] + bd[c]
            })
            .collect();
        assert_close("batchnorm eval", &read(&y_eval), &want_eval, tol, tol);
    }
}
