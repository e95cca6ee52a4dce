//! The architecture as data: graphs round-trip through JSON, the model files shipped in
//! `examples/models/` are exactly what their builders make, and broken files are refused by
//! name.

use std::path::Path;

use wgtrain::graph::{Graph, Mode, Weights};
use wgtrain::kernels::Activation;
use wgtrain::kernels::loss::Loss;
use wgtrain::nn::Sequential;
use wgtrain::nn::models::{GptConfig, gpt, mnist_cnn, residual_mlp};
use wgtrain::train::{TrainConfig, Trainer};

use crate::common::*;

/// One file per model family, and the builder call that makes it.
fn shipped() -> Vec<(&'static str, Graph)> {
    vec![
        (
            "mlp.json",
            Sequential::mlp(784, &[512, 256], 10, Activation::Relu, 0.2, false)
                .build(Loss::CrossEntropy)
                .expect("mlp"),
        ),
        (
            "residual_mlp.json",
            residual_mlp(784, 256, 2, 10, 0.1).expect("residual"),
        ),
        ("cnn.json", mnist_cnn(false).expect("cnn")),
        (
            "gpt.json",
            gpt(GptConfig {
                vocab: 65,
                block: 64,
                width: 128,
                heads: 4,
                layers: 2,
                dropout: 0.1,
                tie_head: true,
                fused_attention: true,
            })
            .expect("gpt"),
        ),
    ]
}

#[test]
fn shipped_model_files_are_what_their_builders_make() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/models");
    for (file, graph) in shipped() {
        let path = dir.join(file);
        // WGTRAIN_BLESS=1 rewrites the files after a deliberate change to a builder.
        if std::env::var_os("WGTRAIN_BLESS").is_some() {
            std::fs::write(&path, graph.to_json().expect("json")).expect("writing");
        }
        let text = std::fs::read_to_string(&path).expect("shipped model file");
        let loaded = Graph::from_json(&text, &path).expect("valid graph");
        assert_eq!(loaded, graph, "{file} differs from its builder");
        // And it compiles into a training plan.
        let weights = Weights::init(gpu(), &loaded, 0).expect("weights");
        let mut trainer =
            Trainer::new(gpu(), loaded, weights, TrainConfig::default()).expect("trainer");
        trainer.plan(2, Mode::Train).expect("plan");
    }
}

#[test]
fn broken_graph_files_are_refused_naming_the_node() {
    let good = residual_mlp(4, 3, 1, 2, 0.0)
        .expect("graph")
        .to_json()
        .expect("json");
    let path = Path::new("model.json");
    let cases = [
        ("not json", "not JSON"),
        (r#"{"format": "wgtrain-graph", "version": 99}"#, "version"),
        // a Linear whose weight does not fit its input
        (
            &good.replacen(
                "\"shape\": [\n        3,\n        4\n      ]",
                "\"shape\": [3, 5]",
                1,
            ),
            "node 1",
        ),
        // an input index pointing forward
        (
            &good.replacen(
                "\"inputs\": [\n        0\n      ]",
                "\"inputs\": [\n        7\n      ]",
                1,
            ),
            "node 1",
        ),
    ];
    for (text, expected) in cases {
        let error = Graph::from_json(text, path).expect_err("broken file");
        let message = error.to_string();
        assert!(
            message.contains("model.json") && message.contains(expected),
            "{message}"
        );
    }
}

/// A file may name an init no generator can draw (drawing one panicked): each is refused
/// naming the parameter, when the weights are drawn.
#[test]
fn inits_no_generator_can_draw_are_refused() {
    let good: serde_json::Value = serde_json::from_str(
        &residual_mlp(4, 3, 1, 2, 0.0)
            .expect("graph")
            .to_json()
            .expect("json"),
    )
    .expect("json value");
    for (init, says) in [
        (serde_json::json!({"Uniform": {"bound": -1.0}}), "bound -1"),
        (serde_json::json!({"Uniform": {"bound": 3e38}}), "bound 3"),
        (serde_json::json!({"Normal": {"std": -0.5}}), "std -0.5"),
        (serde_json::json!({"Constant": 1e39}), "constant inf"),
    ] {
        let mut file = good.clone();
        file["params"][0]["init"] = init;
        let graph = Graph::from_json(&file.to_string(), Path::new("model.json")).expect("a graph");
        let error = Trainer::for_graph(gpu(), graph, TrainConfig::default())
            .expect_err("an init that cannot be drawn");
        let message = error.to_string();
        assert!(
            message.contains(&format!(
                "init of {}",
                good["params"][0]["name"].as_str().expect("name")
            )) && message.contains(says),
            "{message}"
        );
    }
}
