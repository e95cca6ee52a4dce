use wgtrain::graph::{Mode, Weights};
use wgtrain::kernels::Activation;
use wgtrain::kernels::loss::Loss;
use wgtrain::nn::Sequential;
use wgtrain::train::{TrainConfig, Trainer};

use crate::common::*;

#[test]
fn the_mlp_bench_step_is_eleven_dispatches_with_shared_buffers() {
    // BENCH.md's mlp-bench: 784 → 1024 → ReLU → 1024 → ReLU → 10, cross-entropy, Adam.
    let model = Sequential::mlp(784, &[1024, 1024], 10, Activation::Relu, 0.0, false);
    let graph = model.build(Loss::CrossEntropy).expect("valid");
    let weights = Weights::init(gpu(), &graph, 0).expect("weights");
    let mut trainer = Trainer::new(gpu(), graph, weights, TrainConfig::default()).expect("trainer");
    let optimizer_dispatches = trainer.optimizer_state().dispatch_count();
    let plan = trainer.plan(256, Mode::Train).expect("plan");
    let stats = plan.stats();
    eprintln!(
        "mlp-bench b256: {} plan dispatches + {optimizer_dispatches} optimizer: {:?}; values {} bytes, allocated {} bytes",
        stats.dispatches,
        plan.labels(),
        stats.value_bytes,
        stats.allocated_bytes
    );
    // forward 3 matmuls; loss 2; backward: dW (with db in the same product) and dX for
    // layers 3 and 2, dW with db for layer 1. On a GPU, products with few output tiles split
    // along K and add one sum each.
    let sums = plan
        .labels()
        .iter()
        .filter(|&&l| l == "matmul_split_sum")
        .count();
    assert_eq!(stats.dispatches - sums, 10);

    assert_eq!(optimizer_dispatches, 1);
    assert!(
        stats.allocated_bytes < stats.value_bytes,
        "liveness should share some buffers"
    );
}

#[test]
fn shape_errors_name_the_op_and_both_shapes() {
    let mut graph = wgtrain::graph::Graph::new();
    let x = graph.input("x", &[5]).expect("input");
    let w = graph.param("0.weight", &[3, 4], wgtrain::graph::Init::Constant(0.0));
    let error = graph
        .linear_with(x, w, None)
        .expect_err("in features differ");
    let message = error.to_string();
    assert!(
        matches!(error, wgtrain::Error::ShapeMismatch { .. }),
        "{message}"
    );
    assert!(
        message.contains("linear") && message.contains("[3, 4]") && message.contains("[5]"),
        "{message}"
    );
}

#[test]
fn duplicate_names_and_bad_broadcasts_are_refused_when_the_graph_is_built() {
    use wgtrain::graph::Graph;
    let mut g = Graph::new();
    let x = g.input("x", &[4]).expect("input");
    let a = g.linear("fc", x, 4).expect("linear");
    let b = g.linear("fc", a, 4).expect("linear"); // the same name twice
    let error = g.set_output(b, Loss::Mse).expect_err("duplicate names");
    assert!(error.to_string().contains("\"fc.weight\""), "{error}");

    let mut g = Graph::new();
    let x = g.input("x", &[3, 5]).expect("input");
    let p = g.param("p", &[3], wgtrain::graph::Init::Constant(0.0));
    let p = g.value(p).expect("value");
    let error = g.add(x, p).expect_err("[3] does not end [3, 5]");
    let message = error.to_string();
    assert!(
        matches!(error, wgtrain::Error::ShapeMismatch { .. }) && message.contains("[3, 5]"),
        "{message}"
    );
    let y = g.input("y", &[5, 2]).expect("input");
    let error = g
        .matmul(x, y, true, false)
        .expect_err("inner dimensions differ");
    assert!(error.to_string().contains("matmul"), "{error}");
}

/// Settings whose every output would be non-finite, or whose statistics diverge: refused as
/// the node is built (a graph file reads 1e39 as an f32 infinity, so files reach them too).
#[test]
fn op_settings_without_finite_outputs_are_refused() {
    use wgtrain::graph::Graph;
    use wgtrain::kernels::norm::BatchNormConfig;
    let mut g = Graph::new();
    let x = g.input("x", &[3]).expect("input");
    let norm = |eps, momentum| BatchNormConfig { eps, momentum };
    for (config, says) in [
        (norm(0.0, 0.1), "eps 0"),
        (norm(f32::INFINITY, 0.1), "eps inf"),
        (norm(1e-5, 1.5), "momentum 1.5"),
        (norm(1e-5, -0.1), "momentum -0.1"),
        (norm(1e-5, f32::NAN), "momentum NaN"),
    ] {
        let error = g.batch_norm("bn", x, config).expect_err(says);
        assert!(error.to_string().contains(says), "{error}");
    }
    g.batch_norm("bn", x, norm(1e-5, 1.0))
        .expect("momentum 1: only the batch's statistics");
    for alpha in [f32::INFINITY, f32::NAN] {
        let error = g.scale(x, alpha).expect_err("no finite output");
        assert!(error.to_string().contains("scale alpha"), "{error}");
    }
    let error = g
        .activation(x, Activation::LeakyRelu(f32::NEG_INFINITY))
        .expect_err("no finite output");
    assert!(error.to_string().contains("slope -inf"), "{error}");
    g.activation(x, Activation::LeakyRelu(-3.0))
        .expect("torch takes any finite slope");
    // torch's huber_loss refuses a delta that is not positive.
    for delta in [0.0, -1.0, f32::NAN] {
        let error = g
            .set_output(x, Loss::Huber { delta })
            .expect_err("no such Huber loss");
        assert!(error.to_string().contains("Huber delta"), "{error}");
    }
    g.set_output(x, Loss::Huber { delta: 0.5 })
        .expect("a positive delta");
}

#[test]
fn batch_norm_refuses_an_unbatched_value() {
    use wgtrain::graph::Graph;
    let mut g = Graph::new();
    let p = g.param("p", &[4], wgtrain::graph::Init::Constant(1.0));
    let v = g.value(p).expect("value");
    let error = g
        .batch_norm("bn", v, Default::default())
        .expect_err("batch statistics need a batch");
    assert!(error.to_string().contains("batched"), "{error}");
    assert!(
        g.buffers().is_empty() && g.params().len() == 1,
        "a refused layer leaves no parameters or running statistics behind"
    );
}
