//! Graphs through the command line: a checkpoint from before graph checkpoints still loads
//! and predicts what it did, and a DAG model from a JSON file trains, saves a checkpoint in
//! PyTorch's module-tree names, and predicts what an f64 forward from those tensors predicts.

use std::path::Path;

use safetensors::SafeTensors;

use crate::*;

const LEGACY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sequential-v0");

#[test]
fn a_sequential_checkpoint_from_before_graphs_loads_predicts_and_resumes() {
    let dir = scratch("legacy-checkpoint");
    let legacy = Path::new(LEGACY);
    let (data, model) = (legacy.join("data.csv"), legacy.join("model.safetensors"));
    let pred = dir.join("predictions.csv");
    let out = wgtrain(&[
        "predict",
        "--model",
        path_str(&model),
        "--data",
        path_str(&data),
        "--target",
        "label",
        "--out",
        path_str(&pred),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let read = |p: &Path| std::fs::read_to_string(p).expect("predictions");
    assert_eq!(read(&pred), read(&legacy.join("predictions.csv")));

    let metrics = dir.join("metrics.json");
    let out = wgtrain(&[
        "eval",
        "--model",
        path_str(&model),
        "--data",
        path_str(&data),
        "--target",
        "label",
        "--metrics-json",
        path_str(&metrics),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let loss = |p: &Path| {
        let v: serde_json::Value = serde_json::from_str(&read(p)).expect("json");
        v["loss"].as_f64().expect("loss")
    };
    // The fixture was written on lavapipe. Another adapter rounds `exp`, `log` and division
    // to within a few ulp of its own (WGSL's accuracy rules) and may split the products along
    // K: a few ulp per row of a 40-row mean, 1e-4 relative with margin.
    let (got, want) = (loss(&metrics), loss(&legacy.join("metrics.json")));
    assert!(
        (got - want).abs() <= 1e-4 * want.abs() + 1e-7,
        "{got} vs {want}"
    );

    let resumed = dir.join("resumed.safetensors");
    std::fs::copy(&model, &resumed).expect("copy");
    let out = wgtrain(&[
        "train",
        "--resume",
        path_str(&resumed),
        "--data",
        path_str(&data),
        "--target",
        "label",
        "--epochs",
        "41",
        "--save",
        path_str(&resumed),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_residual_graph_from_json_trains_and_its_checkpoint_matches_an_f64_forward() {
    let dir = scratch("graph-json");
    let (data, json, model, pred) = (
        dir.join("train.csv"),
        dir.join("residual.json"),
        dir.join("model.safetensors"),
        dir.join("pred.csv"),
    );
    write_classification_csv(&data, 60);
    let graph = wgtrain::nn::models::residual_mlp(3, 6, 2, 3, 0.0).expect("graph");
    std::fs::write(&json, graph.to_json().expect("json")).expect("write");
    let out = wgtrain(&[
        "train",
        "--model",
        path_str(&json),
        "--data",
        path_str(&data),
        "--epochs",
        "30",
        "--batch-size",
        "8",
        "--lr",
        "0.01",
        "--save",
        path_str(&model),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));

    // Names and shapes of the module tree, read with the safetensors crate alone.
    let bytes = std::fs::read(&model).expect("checkpoint");
    let file = SafeTensors::deserialize(&bytes).expect("safetensors");
    let shapes = tensor_shapes(&file);
    let mut expected: Vec<(String, Vec<usize>)> = vec![
        ("stem.weight".into(), vec![6, 3]),
        ("stem.bias".into(), vec![6]),
    ];
    for block in ["blocks.0", "blocks.1"] {
        for (name, shape) in [
            ("ln.weight", vec![6]),
            ("ln.bias", vec![6]),
            ("fc1.weight", vec![6, 6]),
            ("fc1.bias", vec![6]),
            ("fc2.weight", vec![6, 6]),
            ("fc2.bias", vec![6]),
        ] {
            expected.push((format!("{block}.{name}"), shape));
        }
    }
    for (name, shape) in [
        ("norm.weight", vec![6]),
        ("norm.bias", vec![6]),
        ("head.weight", vec![3, 6]),
        ("head.bias", vec![3]),
    ] {
        expected.push((name.into(), shape));
    }
    for (name, shape) in &expected {
        assert_eq!(
            shapes.get(name.as_str()),
            Some(shape),
            "{name} in {shapes:?}"
        );
    }
    let parameters = shapes.keys().filter(|n| !n.starts_with("optim.")).count();
    assert_eq!(
        parameters,
        expected.len(),
        "no tensor beyond the module tree: {shapes:?}"
    );

    // The model in f64 from those tensors, written from the module tree.
    let t = |name: &str| tensor_f64(&file, name);
    let linear = |x: &[f64], name: &str| {
        linear_f64(
            x,
            &t(&format!("{name}.weight")),
            &t(&format!("{name}.bias")),
        )
    };
    let layer_norm = |x: &[f64], name: &str| -> Vec<f64> {
        let (g, b) = (t(&format!("{name}.weight")), t(&format!("{name}.bias")));
        let mean = x.iter().sum::<f64>() / x.len() as f64;
        let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / x.len() as f64;
        x.iter()
            .enumerate()
            .map(|(i, v)| (v - mean) / (var + 1e-5).sqrt() * g[i] + b[i])
            .collect()
    };
    let out = wgtrain(&[
        "predict",
        "--model",
        path_str(&model),
        "--data",
        path_str(&data),
        "--out",
        path_str(&pred),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let predicted: Vec<usize> = std::fs::read_to_string(&pred)
        .expect("predictions")
        .lines()
        .skip(1)
        .map(|l| l.parse().expect("class"))
        .collect();
    let text = std::fs::read_to_string(&data).expect("csv");
    let mut agree = 0;
    for (row, line) in text.lines().skip(1).enumerate() {
        let x: Vec<f64> = line
            .split(',')
            .take(3)
            .map(|v| v.parse().expect("number"))
            .collect();
        let mut h = linear(&x, "stem");
        for block in ["blocks.0", "blocks.1"] {
            let a = layer_norm(&h, &format!("{block}.ln"));
            let a: Vec<f64> = linear(&a, &format!("{block}.fc1"))
                .iter()
                .map(|v| v.max(0.0))
                .collect();
            let a = linear(&a, &format!("{block}.fc2"));
            h = h.iter().zip(&a).map(|(u, v)| u + v).collect();
        }
        let logits = linear(&layer_norm(&h, "norm"), "head");
        let best = (0..3).fold(0, |b, c| if logits[c] > logits[b] { c } else { b });
        agree += usize::from(best == predicted[row]);
    }
    // Ties within f32 rounding could flip a near-equal pair; all 60 agree in practice.
    assert!(
        agree >= 59,
        "only {agree}/60 predictions agree with the checkpoint's weights"
    );
}
