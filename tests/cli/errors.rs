//! A corpus of broken inputs: each must fail with a message naming the file and the problem,
//! without a panic, and without leaving any output file behind (whole or half-written).

use std::path::Path;

use crate::*;

pub(crate) fn idx(magic_type: u8, dims: &[u32], payload: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0, 0, magic_type, dims.len() as u8];
    for d in dims {
        bytes.extend(d.to_be_bytes());
    }
    bytes.extend(payload);
    bytes
}

/// An MNIST-style directory whose files are `images` and `labels`.
fn idx_dir(dir: &Path, images: &[u8], labels: &[u8]) -> String {
    std::fs::create_dir_all(dir).expect("mkdir");
    std::fs::write(dir.join("train-images-idx3-ubyte"), images).expect("write");
    std::fs::write(dir.join("train-labels-idx1-ubyte"), labels).expect("write");
    path_str(dir).to_string()
}

fn good_images(n: u32) -> Vec<u8> {
    idx(8, &[n, 2, 2], &vec![7; 4 * n as usize])
}

fn good_labels(n: u32) -> Vec<u8> {
    idx(8, &[n], &vec![1; n as usize])
}

fn safetensors_file(path: &Path, tensors: &[(&str, Vec<usize>)]) -> String {
    let data: Vec<(String, Vec<usize>, Vec<f32>)> = tensors
        .iter()
        .map(|(n, s)| (n.to_string(), s.clone(), vec![0.5; s.iter().product()]))
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = data
        .iter()
        .map(|(n, s, v)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(
                    safetensors::tensor::Dtype::F32,
                    s.clone(),
                    bytemuck::cast_slice(v),
                )
                .expect("view"),
            )
        })
        .collect();
    std::fs::write(
        path,
        safetensors::serialize(views, None).expect("serialize"),
    )
    .expect("write");
    path_str(path).to_string()
}

struct Case {
    name: &'static str,
    /// Writes the inputs into the directory and returns the extra arguments.
    setup: fn(&Path) -> Vec<String>,
    /// What the message must say (besides the file's name, when `names_file`).
    says: &'static str,
    names_file: Option<&'static str>,
}

fn csv(dir: &Path, text: &str) -> Vec<String> {
    let path = dir.join("data.csv");
    std::fs::write(&path, text).expect("write");
    vec!["--data".into(), path_str(&path).into()]
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "empty IDX",
            setup: |d| {
                vec![
                    "--data".into(),
                    idx_dir(&d.join("mnist"), b"", &good_labels(1)),
                ]
            },
            says: "empty file",
            names_file: Some("train-images-idx3-ubyte"),
        },
        Case {
            name: "wrong IDX magic",
            setup: |d| {
                vec![
                    "--data".into(),
                    idx_dir(&d.join("mnist"), b"PK\x03\x04garbage", &good_labels(1)),
                ]
            },
            says: "bad magic",
            names_file: Some("train-images-idx3-ubyte"),
        },
        Case {
            name: "truncated IDX payload",
            setup: |d| {
                vec![
                    "--data".into(),
                    idx_dir(&d.join("mnist"), &good_images(3)[..20], &good_labels(3)),
                ]
            },
            says: "truncated payload",
            names_file: Some("train-images-idx3-ubyte"),
        },
        Case {
            name: "IDX header promises more items than it holds",
            setup: |d| {
                vec![
                    "--data".into(),
                    idx_dir(
                        &d.join("mnist"),
                        &idx(8, &[10, 2, 2], &[1; 20]),
                        &good_labels(10),
                    ),
                ]
            },
            says: "header promises",
            names_file: Some("train-images-idx3-ubyte"),
        },
        Case {
            name: "IDX label out of range",
            setup: |d| {
                vec![
                    "--data".into(),
                    idx_dir(&d.join("mnist"), &good_images(2), &idx(8, &[2], &[3, 12])),
                ]
            },
            says: "label 12 out of range",
            names_file: Some("train-labels-idx1-ubyte"),
        },
        Case {
            name: "empty CSV",
            setup: |d| csv(d, ""),
            says: "empty file",
            names_file: Some("data.csv"),
        },
        Case {
            name: "ragged CSV row",
            setup: |d| csv(d, "a,b,y\n1,2,0\n3,1\n"),
            says: "line 3: ragged row",
            names_file: Some("data.csv"),
        },
        Case {
            name: "non-numeric CSV cell",
            setup: |d| csv(d, "a,b,y\n1,2,0\n3,abc,1\n"),
            says: "line 3, column \"b\": \"abc\" is not a number",
            names_file: Some("data.csv"),
        },
        Case {
            name: "NaN CSV cell",
            setup: |d| csv(d, "a,b,y\n1,NaN,0\n"),
            says: "is not finite",
            names_file: Some("data.csv"),
        },
        Case {
            name: "Inf CSV cell",
            setup: |d| csv(d, "a,b,y\n1,2,0\ninf,2,1\n"),
            says: "is not finite",
            names_file: Some("data.csv"),
        },
        Case {
            name: "unknown target column",
            setup: |d| {
                [
                    csv(d, "a,b,y\n1,2,0\n"),
                    vec!["--target".into(), "price".into()],
                ]
                .concat()
            },
            says: "unknown target column \"price\"",
            names_file: Some("data.csv"),
        },
        Case {
            name: "CSV label not a class index",
            setup: |d| csv(d, "a,b,y\n1,2,0\n3,4,1.5\n"),
            says: "not a class index",
            names_file: Some("data.csv"),
        },
        Case {
            name: "single row with batch norm",
            setup: |d| [csv(d, "a,b,y\n1,2,0\n"), vec!["--batchnorm".into()]].concat(),
            says: "BatchNorm cannot train on",
            names_file: None,
        },
        Case {
            name: "safetensors with a wrong shape",
            setup: |d| {
                let init = safetensors_file(
                    &d.join("init.safetensors"),
                    &[("0.weight", vec![3, 2]), ("0.bias", vec![2])],
                );
                [
                    csv(d, "a,b,y\n1,2,0\n3,4,1\n"),
                    vec!["--layers".into(), "none".into(), "--init".into(), init],
                ]
                .concat()
            },
            says: "tensor 0.weight: shape [3, 2], the model needs [2, 2]",
            names_file: Some("init.safetensors"),
        },
        Case {
            name: "safetensors missing a tensor",
            setup: |d| {
                let init =
                    safetensors_file(&d.join("init.safetensors"), &[("0.weight", vec![2, 2])]);
                [
                    csv(d, "a,b,y\n1,2,0\n3,4,1\n"),
                    vec!["--layers".into(), "none".into(), "--init".into(), init],
                ]
                .concat()
            },
            says: "tensor 0.bias: missing",
            names_file: Some("init.safetensors"),
        },
        Case {
            name: "safetensors with a corrupt header",
            setup: |d| {
                let path = d.join("init.safetensors");
                std::fs::write(&path, b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
                    .expect("write");
                [
                    csv(d, "a,b,y\n1,2,0\n3,4,1\n"),
                    vec!["--init".into(), path_str(&path).into()],
                ]
                .concat()
            },
            says: "not a safetensors file",
            names_file: Some("init.safetensors"),
        },
        Case {
            name: "learning rate 0",
            setup: |d| [csv(d, "a,y\n1,0\n"), vec!["--lr".into(), "0".into()]].concat(),
            says: "--lr must be positive",
            names_file: None,
        },
        Case {
            name: "negative learning rate",
            setup: |d| [csv(d, "a,y\n1,0\n"), vec!["--lr=-0.1".into()]].concat(),
            says: "--lr must be positive",
            names_file: None,
        },
        Case {
            name: "batch size 0",
            setup: |d| {
                [
                    csv(d, "a,y\n1,0\n"),
                    vec!["--batch-size".into(), "0".into()],
                ]
                .concat()
            },
            says: "--batch-size must be at least 1",
            names_file: None,
        },
        Case {
            name: "dropout 1",
            setup: |d| [csv(d, "a,y\n1,0\n"), vec!["--dropout".into(), "1".into()]].concat(),
            says: "--dropout must lie in [0, 1)",
            names_file: None,
        },
        // Round two: runs that used to "succeed" wrongly, or fail only after training.
        Case {
            name: "momentum nan",
            setup: |d| {
                let extra = ["--optimizer", "momentum", "--momentum", "nan"].map(String::from);
                [csv(d, "a,y\n1,0\n2,1\n"), extra.to_vec()].concat()
            },
            says: "--momentum must lie in [0, 1)",
            names_file: None,
        },
        Case {
            name: "negative learning rate",
            setup: |d| [csv(d, "a,y\n1,0\n2,1\n"), vec!["--lr".into(), "-1".into()]].concat(),
            says: "--lr must be positive",
            names_file: None,
        },
        Case {
            name: "mse on class labels",
            setup: |d| {
                let extra = ["--loss", "mse"].map(String::from);
                [csv(d, "a,y\n1,0\n2,1\n3,2\n"), extra.to_vec()].concat()
            },
            says: "on class labels",
            names_file: None,
        },
        Case {
            name: "a label far beyond the rows",
            setup: |d| {
                let mut text = String::from("a,y\n");
                for r in 0..19 {
                    text += &format!("{r},{}\n", r % 2);
                }
                text += "5,65535\n";
                csv(d, &text)
            },
            says: "65536 classes for 20 training rows",
            names_file: Some("data.csv"),
        },
        Case {
            name: "an empty validation split",
            setup: |d| {
                let extra = ["--val-split", "0.001"].map(String::from);
                [csv(d, "a,y\n1,0\n2,1\n3,0\n"), extra.to_vec()].concat()
            },
            says: "holds out 0",
            names_file: None,
        },
        Case {
            name: "a duplicate CSV column",
            setup: |d| csv(d, "a,label,label\n1,0,1\n2,1,0\n"),
            says: "\"label\" appears twice",
            names_file: Some("data.csv"),
        },
        Case {
            name: "NaN weights in --init",
            setup: |d| {
                let init = d.join("init.safetensors");
                let w = [0.5f32, f32::NAN, 0.5, 0.5];
                let b = [0.0f32, 0.0];
                let views = vec![
                    (
                        "0.weight",
                        safetensors::tensor::TensorView::new(
                            safetensors::tensor::Dtype::F32,
                            vec![2, 2],
                            bytemuck::cast_slice(&w),
                        )
                        .expect("view"),
                    ),
                    (
                        "0.bias",
                        safetensors::tensor::TensorView::new(
                            safetensors::tensor::Dtype::F32,
                            vec![2],
                            bytemuck::cast_slice(&b),
                        )
                        .expect("view"),
                    ),
                ];
                std::fs::write(
                    &init,
                    safetensors::serialize(views, None).expect("serialize"),
                )
                .expect("write");
                let extra = ["--layers", "none", "--init", path_str(&init)].map(String::from);
                [csv(d, "a,b,y\n1,2,0\n3,4,1\n"), extra.to_vec()].concat()
            },
            says: "0.weight, element 1",
            names_file: Some("init.safetensors"),
        },
        Case {
            name: "a test file of another width",
            setup: |d| {
                let test = d.join("test.csv");
                std::fs::write(&test, "a,b,c,y\n1,2,3,0\n").expect("write");
                [
                    csv(d, "a,b,y\n1,2,0\n3,4,1\n"),
                    vec!["--test".into(), path_str(&test).into()],
                ]
                .concat()
            },
            says: "3 feature columns, the training data has 2",
            names_file: Some("test.csv"),
        },
        Case {
            name: "more steps than a run can count",
            setup: |d| {
                let extra = ["--epochs", "4611686018427387904", "--schedule", "cosine"];
                [csv(d, "a,y\n1,0\n2,1\n"), extra.map(String::from).to_vec()].concat()
            },
            says: "more steps than a run can count",
            names_file: None,
        },
        Case {
            name: "a flag --resume would ignore",
            setup: |d| {
                let model = d.join("model.safetensors");
                std::fs::write(&model, b"unused").expect("write");
                let extra = ["--resume", path_str(&model), "--lr", "0.5"].map(String::from);
                [csv(d, "a,y\n1,0\n2,1\n"), extra.to_vec()].concat()
            },
            says: "cannot be used with",
            names_file: None,
        },
        Case {
            name: "a device as data",
            setup: |_| {
                vec![
                    "--data".into(),
                    "/dev/zero".into(),
                    "--format".into(),
                    "csv".into(),
                ]
            },
            says: "not a regular file (a device)",
            names_file: Some("/dev/zero"),
        },
        Case {
            name: "a FIFO as data",
            setup: |d| {
                let fifo = d.join("data.csv");
                make_fifo(&fifo);
                vec!["--data".into(), path_str(&fifo).into()]
            },
            says: "not a regular file (a FIFO)",
            names_file: Some("data.csv"),
        },
        Case {
            name: "a FIFO inside an IDX folder",
            setup: |d| {
                let dir = idx_dir(&d.join("mnist"), &good_images(2), &good_labels(2));
                let labels = d.join("mnist").join("train-labels-idx1-ubyte");
                std::fs::remove_file(&labels).expect("rm");
                make_fifo(&labels);
                vec!["--data".into(), dir]
            },
            says: "not a regular file (a FIFO)",
            names_file: Some("train-labels-idx1-ubyte"),
        },
        Case {
            name: "a gzip IDX that inflates past its header",
            setup: |d| {
                let dir = d.join("mnist");
                idx_dir(&dir, &good_images(2), &good_labels(2));
                // The header promises 2·2·2 = 8 bytes; 64 MiB of zeros follow.
                std::fs::write(
                    dir.join("train-images-idx3-ubyte.gz"),
                    gzip_bomb(&[2, 2, 2], 64 << 20),
                )
                .expect("write");
                std::fs::remove_file(dir.join("train-images-idx3-ubyte")).expect("rm");
                vec!["--data".into(), path_str(&dir).into()]
            },
            says: "bytes after the 8-byte payload",
            names_file: Some("train-images-idx3-ubyte.gz"),
        },
        Case {
            name: "a gzip IDX header promising more than gzip can hold",
            setup: |d| {
                let dir = d.join("mnist");
                idx_dir(&dir, &good_images(2), &good_labels(2));
                std::fs::write(
                    dir.join("train-images-idx3-ubyte.gz"),
                    gzip_bomb(&[60_000, 4096, 4096], 16),
                )
                .expect("write");
                std::fs::remove_file(dir.join("train-images-idx3-ubyte")).expect("rm");
                vec!["--data".into(), path_str(&dir).into()]
            },
            says: "more than a",
            names_file: Some("train-images-idx3-ubyte.gz"),
        },
        Case {
            name: "a token model on feature rows",
            setup: |d| {
                let model = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/models/gpt.json");
                [
                    csv(d, "a,y\n1,0\n2,1\n"),
                    vec!["--model".into(), model.into()],
                ]
                .concat()
            },
            says: "takes U32 indices",
            names_file: None,
        },
        Case {
            name: "a graph whose output does not match the targets",
            setup: |d| {
                let graph = d.join("graph.json");
                let json = r#"{"format": "wgtrain-graph", "version": 1, "params": [],
                    "nodes": [{"op": "input", "name": "x", "dims": [2], "dtype": "F32"}],
                    "output": 0, "loss": "Mse"}"#;
                std::fs::write(&graph, json).expect("write");
                let extra = ["--model", path_str(&graph), "--task", "regress"].map(String::from);
                [csv(d, "a,b,y\n1,2,0.5\n3,4,1.5\n"), extra.to_vec()].concat()
            },
            says: "has 2 output(s) trained with Mse; the data has 1 target column",
            names_file: None,
        },
    ]
}

/// A FIFO at `path` (nothing ever writes to it: opening it for reading would block forever).
pub(crate) fn make_fifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo");
    assert!(status.success(), "mkfifo {}", path.display());
}

/// A gzip IDX file of `dims` whose payload is `zeros` zero bytes, streamed through the encoder
/// (so a large bomb costs no memory to make).
pub(crate) fn gzip_bomb(dims: &[u32], zeros: usize) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(&idx(8, dims, &[])).expect("header");
    let block = vec![0u8; 1 << 20];
    let mut left = zeros;
    while left > 0 {
        let n = left.min(block.len());
        encoder.write_all(&block[..n]).expect("zeros");
        left -= n;
    }
    encoder.finish().expect("gzip")
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = walk(dir)
        .iter()
        .map(|p| {
            p.strip_prefix(dir)
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        })
        .collect();
    names.sort();
    names
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .flat_map(|e| {
                    if e.path().is_dir() {
                        walk(&e.path())
                    } else {
                        vec![e.path()]
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_broken_input_fails_cleanly_naming_the_file_and_problem() {
    for case in cases() {
        let dir = scratch(&format!("broken-{}", case.name.replace(' ', "-")));
        let mut args: Vec<String> = vec!["train".into()];
        args.extend((case.setup)(&dir));
        let inputs = listing(&dir);
        let outputs = [
            "model.safetensors",
            "metrics.json",
            "steps.jsonl",
            "plot.svg",
        ]
        .map(|f| dir.join("out").join(f));
        std::fs::create_dir_all(dir.join("out")).expect("mkdir");
        for (flag, path) in ["--save", "--metrics-json", "--log-steps", "--plot"]
            .iter()
            .zip(&outputs)
        {
            args.push(flag.to_string());
            args.push(path_str(path).to_string());
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = wgtrain(&refs);
        let message = stderr(&out);
        assert!(!out.status.success(), "{}: succeeded\n{message}", case.name);
        assert!(message.starts_with("error: "), "{}: {message}", case.name);
        assert!(
            message.contains(case.says),
            "{}: expected {:?} in {message}",
            case.name,
            case.says
        );
        if let Some(file) = case.names_file {
            assert!(
                message.contains(file),
                "{}: the message should name {file}: {message}",
                case.name
            );
        }
        assert!(
            !message.contains("panicked") && !message.contains("RUST_BACKTRACE"),
            "{}: {message}",
            case.name
        );
        assert_eq!(
            listing(&dir),
            inputs,
            "{}: outputs or temp files were left behind",
            case.name
        );
    }
}

/// The corpus above always passes `--save`; a step interval with nowhere to save is refused
/// before training rather than ignored.
#[test]
fn save_every_without_save_is_refused() {
    let dir = scratch("save-every-alone");
    let mut args: Vec<String> = vec!["train".into()];
    args.extend(csv(&dir, "a,y\n1,0\n2,1\n"));
    args.extend(["--save-every", "3"].map(String::from));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = wgtrain(&refs);
    let message = stderr(&out);
    assert!(!out.status.success(), "succeeded: {message}");
    assert!(message.contains("give --save too"), "{message}");
}
