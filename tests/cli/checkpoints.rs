use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::*;

#[test]
fn a_saved_checkpoint_has_pytorch_names_layouts_and_the_trained_values() {
    let dir = scratch("checkpoint-names");
    let (data, model, pred) = (
        dir.join("train.csv"),
        dir.join("model.safetensors"),
        dir.join("pred.csv"),
    );
    write_classification_csv(&data, 60);
    let out = wgtrain(&[
        "train",
        "--data",
        path_str(&data),
        "--layers",
        "5",
        "--batchnorm",
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--save",
        path_str(&model),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));

    // Read with the safetensors crate alone, as PyTorch's loader would.
    let bytes = std::fs::read(&model).expect("checkpoint written");
    let file = SafeTensors::deserialize(&bytes).expect("valid safetensors");
    let shapes = tensor_shapes(&file);
    for (name, shape) in [
        ("0.weight", vec![5, 3]),
        ("0.bias", vec![5]),
        ("1.weight", vec![5]),
        ("1.bias", vec![5]),
        ("1.running_mean", vec![5]),
        ("1.running_var", vec![5]),
        ("1.num_batches_tracked", vec![]),
        ("3.weight", vec![3, 5]),
        ("3.bias", vec![3]),
        ("optim.0.weight.exp_avg", vec![5, 3]),
    ] {
        assert_eq!(shapes.get(name), Some(&shape), "{name} in {shapes:?}");
    }
    assert_eq!(
        file.tensor("1.num_batches_tracked")
            .expect("tensor")
            .dtype(),
        Dtype::I64
    );

    // The values are the trained model: an f64 forward pass from them predicts what
    // `wgtrain predict` does.
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
    let t = |name: &str| tensor_f64(&file, name);
    let (w0, b0, g, beta, mean, var, w3, b3) = (
        t("0.weight"),
        t("0.bias"),
        t("1.weight"),
        t("1.bias"),
        t("1.running_mean"),
        t("1.running_var"),
        t("3.weight"),
        t("3.bias"),
    );
    let text = std::fs::read_to_string(&data).expect("csv");
    let predicted: Vec<usize> = std::fs::read_to_string(&pred)
        .expect("predictions")
        .lines()
        .skip(1)
        .map(|l| l.parse().expect("class"))
        .collect();
    let mut agree = 0;
    for (row, line) in text.lines().skip(1).enumerate() {
        let x: Vec<f64> = line
            .split(',')
            .take(3)
            .map(|v| v.parse().expect("number"))
            .collect();
        let h: Vec<f64> = linear_f64(&x, &w0, &b0)
            .iter()
            .enumerate()
            .map(|(o, z)| ((z - mean[o]) / (var[o] + 1e-5).sqrt() * g[o] + beta[o]).max(0.0))
            .collect();
        let logits = linear_f64(&h, &w3, &b3);
        let best = (0..3).fold(0, |b, c| if logits[c] > logits[b] { c } else { b });
        agree += usize::from(best == predicted[row]);
    }
    // Ties within f32 rounding could flip a near-equal pair; all 60 agree in practice.
    assert!(
        agree >= 59,
        "only {agree}/60 predictions agree with the checkpoint's weights"
    );
}

#[test]
fn init_loads_a_hand_written_pytorch_layout_file() {
    let dir = scratch("init-pytorch");
    let (data, init, metrics) = (
        dir.join("train.csv"),
        dir.join("init.safetensors"),
        dir.join("metrics.json"),
    );
    write_classification_csv(&data, 30);
    // nn.Sequential(nn.Linear(3, 3)): 0.weight is [out, in].
    let weight: Vec<f32> = vec![2.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 2.0];
    let bias: Vec<f32> = vec![0.0, 0.1, -0.1];
    let bytes = safetensors::serialize(
        [
            (
                "0.weight",
                TensorView::new(Dtype::F32, vec![3, 3], bytemuck::cast_slice(&weight))
                    .expect("view"),
            ),
            (
                "0.bias",
                TensorView::new(Dtype::F32, vec![3], bytemuck::cast_slice(&bias)).expect("view"),
            ),
        ],
        None,
    )
    .expect("serialize");
    std::fs::write(&init, bytes).expect("write");
    let out = wgtrain(&[
        "train",
        "--data",
        path_str(&data),
        "--layers",
        "none",
        "--epochs",
        "0",
        "--init",
        path_str(&init),
        "--metrics-json",
        path_str(&metrics),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&metrics).expect("metrics")).expect("json");
    // The loss of exactly these weights, computed here in f64.
    let text = std::fs::read_to_string(&data).expect("csv");
    let mut total = 0.0;
    for line in text.lines().skip(1) {
        let v: Vec<f64> = line
            .split(',')
            .map(|v| v.parse().expect("number"))
            .collect();
        let logits: Vec<f64> = (0..3)
            .map(|o| {
                (0..3)
                    .map(|i| f64::from(weight[o * 3 + i]) * v[i])
                    .sum::<f64>()
                    + f64::from(bias[o])
            })
            .collect();
        let max = logits.iter().cloned().fold(f64::MIN, f64::max);
        total +=
            max + logits.iter().map(|l| (l - max).exp()).sum::<f64>().ln() - logits[v[3] as usize];
    }
    let want = total / 30.0;
    let got = json["train"]["loss"].as_f64().expect("loss");
    assert!(
        (got - want).abs() < 1e-5,
        "loss from --init weights {got} vs {want}"
    );
}
