//! wgtrain in a real browser: headless Chromium's WebGPU (SwiftShader on a machine without a
//! GPU) runs kernels against their f64 references, and a short training run whose loss falls.
//! Run with `cargo test --target wasm32-unknown-unknown` in `web/` (see `web/README.md`).
#![cfg(target_arch = "wasm32")]

use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};
use wgtrain::Gpu;
use wgtrain::kernels::loss::{Loss, loss_forward_backward, loss_mean};
use wgtrain::kernels::matmul::Matmul;
use wgtrain::reference;

wasm_bindgen_test_configure!(run_in_browser);

/// f32's unit roundoff.
const U: f64 = 1.0 / (1u64 << 24) as f64;

/// Uniform values in [lo, hi) from a xorshift stream: fresh per run (seeded by the clock,
/// which every failure message names), as the native tests draw theirs.
struct Values(u64);

impl Values {
    fn fresh() -> Self {
        Self(js_sys::Date::now().to_bits() | 1)
    }

    fn uniform(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n)
            .map(|_| {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                lo + (hi - lo) * (self.0 >> 40) as f32 / (1u64 << 24) as f32
            })
            .collect()
    }
}

async fn gpu() -> Gpu {
    Gpu::new_async().await.expect("a WebGPU adapter")
}

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

#[wasm_bindgen_test]
async fn matmul_matches_f64_at_awkward_shapes_with_transposes() {
    let gpu = gpu().await;
    let mut values = Values::fresh();
    let seed = values.0;
    for (m, n, k) in [(1, 1, 1), (5, 3, 7), (33, 65, 17), (64, 10, 130)] {
        for (trans_a, trans_b) in [(false, false), (true, false), (false, true)] {
            let a = values.uniform(m * k, -1.0, 1.0);
            let b = values.uniform(k * n, -1.0, 1.0);
            let a_shape = if trans_a { [k, m] } else { [m, k] };
            let b_shape = if trans_b { [n, k] } else { [k, n] };
            let c = gpu.filled(&[m, n], f32::NAN).expect("poisoned output");
            let product = Matmul {
                trans_a,
                trans_b,
                ..Default::default()
            }
            .dispatch(
                &gpu,
                &gpu.tensor(&a, &a_shape).expect("a"),
                &gpu.tensor(&b, &b_shape).expect("b"),
                &c,
            )
            .expect("shapes agree");
            gpu.run_pass(|pass| product.record(pass, 0)).expect("run");
            let got = gpu.read_async(&c).await.expect("read");
            let want = reference::matmul(&f64s(&a), &f64s(&b), (m, n, k), trans_a, trans_b);
            // A k-term f32 dot product is within γ_k·Σ|a||b| ≤ (k+1)·u·k of the exact value
            // (|a|, |b| ≤ 1), whatever order the kernel sums in.
            let bound = (k as f64 + 1.0) * U * k as f64;
            for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (f64::from(g) - w).abs() <= bound,
                    "{m}x{n}x{k} trans {trans_a}/{trans_b} element {i}: {g} vs {w} (seed {seed})"
                );
            }
        }
    }
}

#[wasm_bindgen_test]
async fn cross_entropy_and_its_gradient_match_f64() {
    let gpu = gpu().await;
    let mut values = Values::fresh();
    let seed = values.0;
    for (rows, cols) in [(1, 1), (3, 5), (65, 10)] {
        let pred = values.uniform(rows * cols, -8.0, 8.0);
        let labels: Vec<f32> = values
            .uniform(rows, 0.0, cols as f32)
            .iter()
            .map(|v| v.floor().min(cols as f32 - 1.0))
            .collect();
        let row_loss = gpu.filled(&[rows], f32::NAN).expect("row loss");
        let grad = gpu.filled(&[rows, cols], f32::NAN).expect("grad");
        let mean = gpu.filled(&[1], f32::NAN).expect("mean");
        let pred_t = gpu.tensor(&pred, &[rows, cols]).expect("pred");
        let labels_t = gpu.tensor(&labels, &[rows]).expect("labels");
        let loss = Loss::CrossEntropy;
        let forward = loss_forward_backward(&gpu, loss, &pred_t, &labels_t, &row_loss, &grad)
            .expect("shapes");
        let reduce = loss_mean(&gpu, loss, cols, &row_loss, &mean).expect("shapes");
        gpu.run_pass(|pass| {
            forward.record(pass, 0);
            reduce.record(pass, 0);
        })
        .expect("run");
        let (want_loss, want_grad) =
            reference::loss(loss, &f64s(&pred), &f64s(&labels), rows, cols);
        let got_loss = f64::from(gpu.read_async(&mean).await.expect("read")[0]);
        // exp and log are good to a few tens of ulps (|x| ≤ 16 after the max shift), and the
        // mean sums `rows` such terms: 1e-5 relative plus 1e-6 absolute holds with margin.
        assert!(
            (got_loss - want_loss).abs() <= 1e-6 + 1e-5 * want_loss.abs(),
            "{rows}x{cols}: loss {got_loss} vs {want_loss} (seed {seed})"
        );
        // Each gradient is (p − onehot)/rows: a probability near 1 carries a few ulps of 1.
        let got_grad = gpu.read_async(&grad).await.expect("read");
        for (i, (&g, &w)) in got_grad.iter().zip(&want_grad).enumerate() {
            assert!(
                (f64::from(g) - w).abs() <= 1e-6 / rows as f64 + 4e-6 * w.abs(),
                "{rows}x{cols}: gradient {i}: {g} vs {w} (seed {seed})"
            );
        }
    }
}

#[wasm_bindgen_test]
async fn an_mlp_trains_on_mnist_in_the_browser_and_its_loss_falls() {
    let gpu = gpu().await;
    // 1,024 digits, two epochs: seconds on SwiftShader.
    let mut run = wgtrain_web::MnistRun::new(&gpu, 32, 3e-3, 64, Some(1024)).expect("run");
    let mut first_steps = vec![];
    let first = run
        .fit_epoch(&mut |log| first_steps.push(log.loss))
        .await
        .expect("epoch 1");
    let second = run.fit_epoch(&mut |_| {}).await.expect("epoch 2");
    assert_eq!(first_steps.len(), run.steps_per_epoch());
    // An untrained 10-way classifier scores about ln 10 = 2.30; a trained one far less.
    assert!(first_steps[0] > 1.8, "first step's loss {}", first_steps[0]);
    assert!(
        second < 0.8 * first && second < 1.0,
        "loss {first} then {second}"
    );
    let accuracy = run.test_accuracy().await.expect("accuracy");
    assert!(
        accuracy > 0.6,
        "test accuracy {accuracy} after two epochs on 1,024 digits"
    );
    let probabilities = run
        .probabilities(&vec![0.0; wgtrain_web::PIXELS])
        .await
        .expect("predict");
    assert_eq!(probabilities.len(), 10);
    assert!((probabilities.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    let bytes = run.checkpoint().await.expect("checkpoint");
    let loaded = wgtrain::train::Trainer::from_bytes(&gpu, &bytes).expect("loads");
    assert_eq!(loaded.step(), 2 * run.steps_per_epoch() as u64);
}
