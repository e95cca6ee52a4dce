use wgtrain::graph::Weights;
use wgtrain::kernels::Activation;
use wgtrain::kernels::loss::Loss;
use wgtrain::nn::Sequential;
use wgtrain::reference;
use wgtrain::train::{TrainConfig, Trainer};

use crate::common::*;

const LOSSES: [Loss; 4] = [
    Loss::CrossEntropy,
    Loss::Mse,
    Loss::BceWithLogits,
    Loss::Huber { delta: 0.5 },
];
const ACTIVATIONS: [Activation; 5] = [
    Activation::Relu,
    Activation::LeakyRelu(0.1),
    Activation::Gelu,
    Activation::Tanh,
    Activation::Sigmoid,
];

fn targets(rng: &mut Rand, loss: Loss, batch: usize, outputs: usize) -> Vec<f32> {
    match loss {
        Loss::CrossEntropy => rng.below(batch, outputs as u32),
        Loss::BceWithLogits => rng.uniform(batch * outputs, 0.0, 1.0),
        _ => rng.uniform(batch * outputs, -1.0, 1.0),
    }
}

/// GPU gradients of every parameter, and the f64 finite-difference gradients of the same
/// loss at the same (f32) parameters.
fn gradients(
    rng: &mut Rand,
    model: &Sequential,
    loss: Loss,
    batch: usize,
) -> (Vec<Vec<f32>>, Vec<Vec<f64>>) {
    let graph = model.build(loss).expect("valid model");
    let reference_graph = graph.clone();
    let weights = Weights::init(gpu(), &graph, u64::from(rng.next_u32())).expect("weights");
    let params = weights.read_params(gpu()).expect("read");
    let mut trainer = Trainer::new(gpu(), graph, weights, TrainConfig::default()).expect("trainer");
    let x = rng.uniform(batch * model.in_features, -1.0, 1.0);
    let y = targets(rng, loss, batch, model.out_features());
    trainer.compute_gradients(&x, &y).expect("step");
    let gpu_grads = trainer.weights().read_grads(gpu()).expect("read");
    let params64: Vec<Vec<f64>> = params.iter().map(|p| f64s(p)).collect();
    let (inputs, y64) = ([f64s(&x)], f64s(&y));
    let fd = reference::finite_difference_grads(&params64, |p| {
        reference::graph_loss(&reference_graph, p, &inputs, &y64, batch, None)
    });
    (gpu_grads, fd)
}

/// f32 forward and backward through three layers of ≤ 16-term dot products carry ≈ 10·16·u
/// ≈ 1e-5 relative error per stage, relative to the magnitudes summed (the model's gradient
/// scale, not each result: a bias before BatchNorm has an exact gradient of 0 that f32 gets as
/// ±1e-7), and BatchNorm divides by σ (≥ 0.1 here) once more; finite differences in f64 are
/// good to ~1e-9. So: 2e-4 of the model's largest gradient plus 2e-3 relative. A wrong rule
/// (a missing term, a transposed product) is off by O(1) relative.
pub(crate) fn assert_gradients_match(what: &str, gpu_grads: &[Vec<f32>], fd: &[Vec<f64>]) {
    let scale = fd.iter().flatten().fold(0.0f64, |m, v| m.max(v.abs()));
    for (t, (g, want)) in gpu_grads.iter().zip(fd).enumerate() {
        assert_close(
            &format!("{what}: parameter {t}"),
            g,
            want,
            2e-4 * scale + 1e-7,
            2e-3,
        );
    }
}

#[test]
fn mlp_gradients_match_finite_differences_for_every_activation_and_loss() {
    let mut rng = rng("mlp gradients");
    for (i, act) in ACTIVATIONS.into_iter().enumerate() {
        for batch_norm in [false, true] {
            // Rotate the losses across activations so every pair of (activation, loss) kinds is
            // not needed for every loss to meet every layer kind.
            for loss in [LOSSES[i % 4], LOSSES[(i + 1) % 4]] {
                let model = Sequential::mlp(5, &[7, 6], 3, act, 0.0, batch_norm);
                let (gpu_grads, fd) = gradients(&mut rng, &model, loss, 9);
                assert_gradients_match(
                    &format!("{act:?} bn={batch_norm} {loss:?}"),
                    &gpu_grads,
                    &fd,
                );
            }
        }
    }
}

#[test]
fn the_gradient_check_fails_on_a_wrong_gradient() {
    let mut rng = rng("gradient checker");
    let model = Sequential::mlp(4, &[5], 3, Activation::Tanh, 0.0, false);
    let (mut gpu_grads, fd) = gradients(&mut rng, &model, Loss::CrossEntropy, 6);
    gpu_grads[0][0] += 0.01 * fd[0].iter().fold(0.0f64, |m, v| m.max(v.abs())) as f32 + 1e-3;
    let caught = std::panic::catch_unwind(|| assert_gradients_match("perturbed", &gpu_grads, &fd));
    assert!(
        caught.is_err(),
        "a gradient off by 1% of the tensor's scale must fail the check"
    );
}
