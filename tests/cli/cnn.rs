//! The MNIST CNN through the command line: `examples/models/cnn.json` trains on IDX images,
//! its checkpoint holds `nn.Sequential` names and shapes, and an f64 forward written here from
//! those tensors alone (the safetensors crate, plain loops) predicts what `wgtrain predict`
//! predicts.

use std::collections::HashMap;
use std::path::Path;

use safetensors::SafeTensors;

use crate::errors::idx;
use crate::*;

/// The first `n` images and labels of a bundled MNIST split, as uncompressed IDX files.
fn mnist_subset(dir: &Path, prefix: &str, n: usize) {
    let mnist = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist-10k");
    let images = wgtrain::data::read_idx(&mnist.join(format!("{prefix}-images-idx3-ubyte.gz")))
        .expect("bundled images");
    let labels = wgtrain::data::read_idx(&mnist.join(format!("{prefix}-labels-idx1-ubyte.gz")))
        .expect("bundled labels");
    let write = |name: &str, bytes: Vec<u8>| std::fs::write(dir.join(name), bytes).expect("write");
    write(
        &format!("{prefix}-images-idx3-ubyte"),
        idx(8, &[n as u32, 28, 28], &images.data[..n * 784]),
    );
    write(
        &format!("{prefix}-labels-idx1-ubyte"),
        idx(8, &[n as u32], &labels.data[..n]),
    );
}

/// `[c_in, h, w] → [c_out, h − 2, w − 2]`: a 3×3 convolution, no padding, stride 1.
fn conv3x3(
    x: &[f64],
    (c_in, h, w): (usize, usize, usize),
    weight: &[f64],
    bias: &[f64],
) -> Vec<f64> {
    let (oh, ow) = (h - 2, w - 2);
    let mut y = vec![0.0; bias.len() * oh * ow];
    for (o, b) in bias.iter().enumerate() {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut sum = *b;
                for c in 0..c_in {
                    for ky in 0..3 {
                        for kx in 0..3 {
                            sum += weight[((o * c_in + c) * 3 + ky) * 3 + kx]
                                * x[(c * h + oy + ky) * w + ox + kx];
                        }
                    }
                }
                y[(o * oh + oy) * ow + ox] = sum;
            }
        }
    }
    y
}

fn relu(x: Vec<f64>) -> Vec<f64> {
    x.into_iter().map(|v| v.max(0.0)).collect()
}

#[test]
fn the_cnn_from_json_trains_on_idx_images_and_its_checkpoint_matches_an_f64_forward() {
    let dir = scratch("cnn");
    mnist_subset(&dir, "train", 96);
    mnist_subset(&dir, "t10k", 40);
    let (model, pred) = (dir.join("cnn.safetensors"), dir.join("pred.csv"));
    let json = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/models/cnn.json");
    let out = wgtrain(&[
        "train",
        "--model",
        path_str(&json),
        "--data",
        path_str(&dir),
        "--epochs",
        "1",
        "--batch-size",
        "32",
        "--save",
        path_str(&model),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));

    let bytes = std::fs::read(&model).expect("checkpoint");
    let file = SafeTensors::deserialize(&bytes).expect("safetensors");
    let mut shapes = tensor_shapes(&file);
    shapes.retain(|name, _| !name.starts_with("optim."));
    let expected: HashMap<&str, Vec<usize>> = [
        ("0.weight", vec![32, 1, 3, 3]),
        ("0.bias", vec![32]),
        ("2.weight", vec![64, 32, 3, 3]),
        ("2.bias", vec![64]),
        ("7.weight", vec![128, 9216]),
        ("7.bias", vec![128]),
        ("10.weight", vec![10, 128]),
        ("10.bias", vec![10]),
    ]
    .into_iter()
    .collect();
    assert_eq!(shapes, expected, "nn.Sequential's state_dict, nothing else");

    let t = |name: &str| tensor_f64(&file, name);
    let linear = |x: &[f64], name: &str| {
        linear_f64(
            x,
            &t(&format!("{name}.weight")),
            &t(&format!("{name}.bias")),
        )
    };
    let (w0, b0, w2, b2) = (t("0.weight"), t("0.bias"), t("2.weight"), t("2.bias"));

    let out = wgtrain(&[
        "predict",
        "--model",
        path_str(&model),
        "--data",
        path_str(&dir),
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
    assert_eq!(predicted.len(), 40);

    let images = wgtrain::data::read_idx(&dir.join("t10k-images-idx3-ubyte")).expect("images");
    let mut agree = 0;
    for (i, image) in images.data.chunks(784).enumerate() {
        // Eval mode: dropout is the identity. Pixels are scaled to [0, 1] as training saw them.
        let x: Vec<f64> = image.iter().map(|&p| f64::from(p) / 255.0).collect();
        let h = relu(conv3x3(&x, (1, 28, 28), &w0, &b0));
        let h = relu(conv3x3(&h, (32, 26, 26), &w2, &b2));
        // MaxPool2d(2): [64, 24, 24] → [64, 12, 12], then Flatten.
        let pooled: Vec<f64> = (0..64 * 12 * 12)
            .map(|j| {
                let (c, y, x) = (j / 144, (j / 12) % 12, j % 12);
                let at = |dy: usize, dx: usize| h[(c * 24 + 2 * y + dy) * 24 + 2 * x + dx];
                at(0, 0).max(at(0, 1)).max(at(1, 0)).max(at(1, 1))
            })
            .collect();
        let logits = linear(&relu(linear(&pooled, "7")), "10");
        let best = (0..10).fold(0, |b, c| if logits[c] > logits[b] { c } else { b });
        agree += usize::from(best == predicted[i]);
    }
    // Only a near-tie of two logits (within f32 rounding) could flip; all agree in practice.
    assert!(
        agree >= 39,
        "only {agree}/40 predictions agree with the checkpoint's weights"
    );
}
