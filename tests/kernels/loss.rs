use wgtrain::kernels::loss::{Loss, loss_forward_backward, loss_mean};
use wgtrain::reference;

use crate::common::*;

const LOSSES: [Loss; 4] = [
    Loss::CrossEntropy,
    Loss::Mse,
    Loss::BceWithLogits,
    Loss::Huber { delta: 0.7 },
];

#[test]
fn losses_and_gradients_match_f64() {
    let mut rng = rng("losses");
    for &(rows, cols) in &[(1, 1), (3, 5), (65, 10), (1000, 3)] {
        for loss in LOSSES {
            let pred = rng.uniform(rows * cols, -8.0, 8.0);
            let target = match loss {
                Loss::CrossEntropy => rng.below(rows, cols as u32),
                Loss::BceWithLogits => rng.uniform(rows * cols, 0.0, 1.0),
                _ => rng.uniform(rows * cols, -8.0, 8.0),
            };
            let target_shape = loss.target_shape(rows, cols);
            let (row_loss, grad, mean) =
                (poisoned(&[rows]), poisoned(&[rows, cols]), poisoned(&[1]));
            let d1 = loss_forward_backward(
                gpu(),
                loss,
                &upload(&pred, &[rows, cols]),
                &upload(&target, &target_shape),
                &row_loss,
                &grad,
            )
            .expect("shapes");
            let d2 = loss_mean(gpu(), loss, cols, &row_loss, &mean).expect("shapes");
            run(&[&d1, &d2]);
            let (want_loss, want_grad) =
                reference::loss(loss, &f64s(&pred), &f64s(&target), rows, cols);
            // Each term costs a few roundings and an exp/log (≤ ~30 ulps with |x| ≤ 8 per
            // SPIR-V's exp precision), then n terms are summed (γ_n relative to Σ|terms|,
            // ≤ 64 here times the mean). 1e-5 relative to the loss with |terms| ≤ 64·mean,
            // plus an absolute 1e-6, covers both with margin.
            assert_close(
                &format!("{loss:?} loss {rows}x{cols}"),
                &read(&mean),
                &[want_loss],
                1e-6,
                1e-5 + (rows * cols) as f64 * U * 64.0,
            );
            // Gradients are per element: a softmax or sigmoid whose value near 1 carries an
            // absolute error of a few ulps of 1 (exp within ±16 is good to ≤ 35 ulps), so
            // p − onehot is off by ≤ 1e-6 absolutely, then scaled by the mean's 1/n.
            let scale = f64::from(loss.mean_scale(rows, cols));
            assert_close(
                &format!("{loss:?} grad {rows}x{cols}"),
                &read(&grad),
                &want_grad,
                1e-6 * scale,
                4e-6,
            );
        }
    }
}

#[test]
fn cross_entropy_with_a_label_out_of_range_is_not_finite() {
    let (row_loss, grad, mean) = (poisoned(&[2]), poisoned(&[2, 3]), poisoned(&[1]));
    let d1 = loss_forward_backward(
        gpu(),
        Loss::CrossEntropy,
        &upload(&[0.0; 6], &[2, 3]),
        &upload(&[1.0, 3.0], &[2]),
        &row_loss,
        &grad,
    )
    .expect("shapes");
    let d2 = loss_mean(gpu(), Loss::CrossEntropy, 3, &row_loss, &mean).expect("shapes");
    run(&[&d1, &d2]);
    assert!(
        !read(&mean)[0].is_finite(),
        "label 3 of 3 classes must poison the loss"
    );
}
