//! A corpus of broken inputs: each must fail with a message naming the file and the problem,
//! without a panic, and without leaving any output file behind (whole or half-written).

use std::path::Path;

use crate::*;

fn idx(magic_type: u8, dims: &[u32], payload: &[u8]) -> Vec<u8> {
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
    ]
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
