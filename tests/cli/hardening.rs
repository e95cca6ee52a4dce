//! Hardening, round two: memory bombs under a memory limit, outputs that would overwrite
//! inputs, special files and symlinks, a closed stdout, interrupts at random moments, and the
//! runs that used to "succeed" wrongly. (Argument-level cases live in the `errors` corpus.)

use std::path::Path;
use std::process::{Command, Stdio};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::errors::{gzip_bomb, idx, make_fifo};
use crate::*;

fn fails_with(out: &std::process::Output, says: &str) {
    let message = stderr(out);
    assert!(!out.status.success(), "succeeded: {message}");
    assert!(message.contains(says), "expected {says:?} in {message}");
    assert!(!message.contains("panicked"), "{message}");
}

/// A small trained checkpoint of a 3-feature, 3-class model.
fn trained(dir: &Path, extra: &[&str]) -> (std::path::PathBuf, std::path::PathBuf) {
    let (data, model) = (dir.join("train.csv"), dir.join("model.safetensors"));
    write_classification_csv(&data, 40);
    let mut args = vec![
        "train",
        "--data",
        path_str(&data),
        "--layers",
        "4",
        "--epochs",
        "1",
        "--save",
        path_str(&model),
    ];
    args.extend(extra);
    let out = wgtrain(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    (data, model)
}

#[test]
fn memory_bombs_end_in_a_clear_error_under_a_512_mib_limit() {
    let dir = scratch("memory-bombs");
    // 600 MiB of zeros behind a header promising 8 bytes: inflated whole, it would not fit.
    let mnist = dir.join("mnist");
    std::fs::create_dir_all(&mnist).expect("mkdir");
    std::fs::write(
        mnist.join("train-images-idx3-ubyte.gz"),
        gzip_bomb(&[2, 2, 2], 600 << 20),
    )
    .expect("write");
    std::fs::write(mnist.join("train-labels-idx1-ubyte"), idx(8, &[2], &[0, 1])).expect("write");
    let labels = dir.join("labels.csv");
    let mut text = String::from("a,y\n");
    for r in 0..19 {
        text += &format!("{r},{}\n", r % 2);
    }
    std::fs::write(&labels, text + "1,65535\n").expect("write");
    for (args, says) in [
        (
            vec!["--data", path_str(&mnist)],
            "bytes after the 8-byte payload",
        ),
        (
            vec!["--data", "/dev/zero", "--format", "csv"],
            "not a regular file",
        ),
        (
            vec!["--data", path_str(&labels)],
            "65536 classes for 20 training rows",
        ),
    ] {
        let out = Command::new("prlimit")
            .args([
                "--as=536870912",
                "--",
                env!("CARGO_BIN_EXE_wgtrain"),
                "train",
            ])
            .args(&args)
            .env("XDG_RUNTIME_DIR", std::env::temp_dir())
            .output()
            .expect("prlimit (util-linux)");
        fails_with(&out, says);
        assert!(stderr(&out).starts_with("error: "), "{}", stderr(&out));
    }
}

#[test]
fn an_output_never_overwrites_an_input_or_another_output() {
    let dir = scratch("outputs-vs-inputs");
    let (data, model) = trained(&dir, &[]);
    let before = (
        std::fs::read(&data).expect("data"),
        std::fs::read(&model).expect("model"),
    );
    let link = dir.join("link.csv");
    std::os::unix::fs::symlink(&data, &link).expect("symlink");
    let metrics = dir.join("metrics.json");
    for (args, says) in [
        (
            vec![
                "train",
                "--data",
                path_str(&data),
                "--save",
                path_str(&data),
            ],
            "would overwrite the --data input",
        ),
        (
            vec![
                "train",
                "--data",
                path_str(&data),
                "--save",
                path_str(&link),
            ],
            "would overwrite the --data input",
        ),
        (
            vec![
                "train",
                "--data",
                path_str(&data),
                "--save",
                path_str(&metrics),
                "--metrics-json",
                path_str(&metrics),
            ],
            "name the same file",
        ),
        (
            vec![
                "predict",
                "--model",
                path_str(&model),
                "--data",
                path_str(&data),
                "--out",
                path_str(&model),
            ],
            "would overwrite the --model input",
        ),
        (
            vec![
                "eval",
                "--model",
                path_str(&model),
                "--data",
                path_str(&data),
                "--metrics-json",
                path_str(&data),
            ],
            "would overwrite the --data input",
        ),
    ] {
        fails_with(&wgtrain(&args), says);
    }
    assert_eq!(
        before.0,
        std::fs::read(&data).expect("data"),
        "the data is untouched"
    );
    assert_eq!(
        before.1,
        std::fs::read(&model).expect("model"),
        "the model is untouched"
    );
    assert!(!metrics.exists());
}

#[test]
fn outputs_go_to_regular_files_and_through_symlinks_to_their_targets() {
    let dir = scratch("special-outputs");
    let data = dir.join("train.csv");
    write_classification_csv(&data, 20);
    let train = |save: &str| {
        wgtrain(&[
            "train",
            "--data",
            path_str(&data),
            "--layers",
            "4",
            "--epochs",
            "1",
            "--save",
            save,
        ])
    };
    fails_with(
        &train("/dev/null"),
        "outputs are written to regular files only",
    );
    use std::os::unix::fs::FileTypeExt;
    let null = std::fs::metadata("/dev/null").expect("/dev/null");
    assert!(
        null.file_type().is_char_device(),
        "/dev/null is still a device"
    );
    fails_with(&train(path_str(&dir)), "a directory");
    let fifo = dir.join("fifo");
    make_fifo(&fifo);
    fails_with(&train(path_str(&fifo)), "a FIFO");
    fails_with(
        &train(path_str(&dir.join("missing").join("m.safetensors"))),
        "does not exist",
    );

    // A link to a checkpoint: the link stays, its target gets the new checkpoint.
    let target = dir.join("real.safetensors");
    std::fs::write(&target, b"old").expect("write");
    let link = dir.join("latest.safetensors");
    std::os::unix::fs::symlink(&target, &link).expect("symlink");
    let out = train(path_str(&link));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        std::fs::symlink_metadata(&link)
            .expect("link")
            .file_type()
            .is_symlink()
    );
    wgtrain::train::checkpoint::load(&target).expect("the target holds the new checkpoint");
}

#[test]
fn a_closed_stdout_does_not_cost_the_run_its_checkpoint() {
    let dir = scratch("closed-stdout");
    let data = dir.join("train.csv");
    let model = dir.join("model.safetensors");
    write_classification_csv(&data, 40);
    let mut child = Command::new(env!("CARGO_BIN_EXE_wgtrain"))
        .args([
            "train",
            "--data",
            path_str(&data),
            "--layers",
            "4",
            "--epochs",
            "3",
            "--save",
            path_str(&model),
        ])
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take()); // `| head -0`: the reader is gone before the first line
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{}", stderr(&out));
    wgtrain::train::checkpoint::load(&model).expect("the checkpoint was written");
}

#[test]
fn environment_and_checkpoint_inputs_cannot_make_it_panic() {
    let dir = scratch("no-panics");
    let (data, model) = trained(&dir, &["--standardize"]);
    // The stored standardizer cut to one column: refused by name, not an index panic.
    let bytes = std::fs::read(&model).expect("model");
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).expect("header");
    let mut metadata = meta.metadata().clone().expect("metadata");
    let mut arch: serde_json::Value =
        serde_json::from_str(&metadata["architecture"]).expect("architecture");
    arch["standardize"]["mean"] = serde_json::json!([0.0]);
    metadata.insert("architecture".into(), arch.to_string());
    let file = safetensors::SafeTensors::deserialize(&bytes).expect("tensors");
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = file
        .names()
        .into_iter()
        .map(|n| (n.to_string(), file.tensor(n).expect("tensor")))
        .collect();
    let short = dir.join("short.safetensors");
    std::fs::write(
        &short,
        safetensors::serialize(views, Some(metadata)).expect("serialize"),
    )
    .expect("write");
    let eval = wgtrain(&[
        "eval",
        "--model",
        path_str(&short),
        "--data",
        path_str(&data),
    ]);
    fails_with(&eval, "standardizer");
    let resume = wgtrain(&[
        "train",
        "--data",
        path_str(&data),
        "--resume",
        path_str(&short),
        "--epochs",
        "2",
    ]);
    fails_with(&resume, "standardizer");
    fails_with(&wgtrain(&["bench", "--profile", "100000000"]), "needs");
    // The size lists too (0 divided by zero, a huge size aborted on its host allocation).
    for (flag, size, says) in [
        ("--mlp", "0", "at least 1"),
        (
            "--mlp",
            "100000000",
            "--mlp 100000000's largest tensor needs",
        ),
        ("--matmul", "0", "at least 1"),
        (
            "--matmul",
            "200000",
            "--matmul 200000's largest tensor needs",
        ),
    ] {
        fails_with(&wgtrain(&["bench", flag, size]), says);
    }
}

#[test]
fn a_killed_runs_temp_file_goes_even_when_no_save_comes() {
    let dir = scratch("stale temps");
    let model = dir.join("model.safetensors");
    let stale = dir.join(".model.safetensors.tmp-4000000");
    std::fs::write(&stale, b"half a checkpoint").expect("write");
    // The run stops at its data, before any step: the stale file goes all the same.
    let missing = dir.join("missing.csv");
    let out = wgtrain(&[
        "train",
        "--data",
        path_str(&missing),
        "--save",
        path_str(&model),
    ]);
    fails_with(&out, "missing.csv");
    assert!(
        !stale.exists(),
        "the dead process's temp file is still there"
    );
    assert!(!model.exists());
}

#[test]
fn interrupts_at_random_moments_stop_cleanly() {
    let dir = scratch("interrupts");
    let data = dir.join("train.csv");
    write_classification_csv(&data, 400);
    let (model, log) = (dir.join("model.safetensors"), dir.join("steps.jsonl"));
    // The leftover of a SIGKILLed run: a temp file of a process that no longer exists.
    let stale = dir.join(".model.safetensors.tmp-4000000");
    std::fs::write(&stale, b"half a checkpoint").expect("write");
    let seed = crate::common::seed("interrupts");
    let mut rng = StdRng::seed_from_u64(seed);
    for round in 0..4 {
        // Each round is a fresh run: an earlier round's checkpoint beside this round's log
        // (a run stopped before its first save) would compare two runs.
        for previous in [&model, &log] {
            let _ = std::fs::remove_file(previous);
        }
        let signal = ["INT", "TERM", "HUP"][round % 3];
        let child = Command::new(env!("CARGO_BIN_EXE_wgtrain"))
            .args([
                "train",
                "--data",
                path_str(&data),
                "--layers",
                "16",
                "--batch-size",
                "4",
            ])
            .args([
                "--epochs",
                "20",
                "--save-every",
                "7",
                "--save",
                path_str(&model),
            ])
            .args(["--log-steps", path_str(&log)])
            .env("XDG_RUNTIME_DIR", std::env::temp_dir())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        std::thread::sleep(std::time::Duration::from_millis(
            rng.random_range(300..3000),
        ));
        // The shell's own `kill` (a builtin of every sh), not a procps binary a CI image may lack.
        let killed = Command::new("sh")
            .args(["-c", &format!("kill -{signal} {}", child.id())])
            .status()
            .expect("sh");
        assert!(killed.success());
        let out = child.wait_with_output().expect("wait");
        let code = out.status.code().expect("exited, not killed");
        let message = stderr(&out);
        let expected = match signal {
            "INT" => 130,
            "TERM" => 143,
            _ => 129,
        };
        assert!(
            code == expected || code == 0,
            "round {round} SIG{signal}: exit {code}: {message}"
        );
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .expect("dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp-"))
            .collect();
        assert!(
            leftovers.is_empty(),
            "round {round}: temp files left: {leftovers:?}"
        );
        if !model.exists() {
            continue; // interrupted before the first save (start-up)
        }
        let saved = wgtrain::train::checkpoint::load(&model).expect("the checkpoint loads");
        let step = saved.training.expect("training state").step;
        let logged = step_losses(&log);
        let last = logged.keys().last().copied().unwrap_or(0);
        assert_eq!(
            logged.len() as u64,
            last,
            "round {round}: the step log has every step up to {last}"
        );
        assert!(
            last >= step,
            "round {round}: the log reaches the checkpoint's step {step}"
        );
        // A signal that lands after the last step says the run had finished instead.
        if code != 0 {
            assert!(
                message.contains("the last checkpoint is")
                    || message.contains("the command had finished; its outputs are complete"),
                "round {round}: {message}"
            );
        }
    }
}

#[test]
fn eval_and_predict_read_data_as_the_model_needs() {
    let dir = scratch("eval-predict-data");
    let (data, model) = trained(&dir, &[]);
    // Labels the 3-class model has no output for.
    let bad = dir.join("bad.csv");
    std::fs::write(&bad, "a,b,c,label\n0.1,0.2,0.3,2\n0.1,0.2,0.3,7\n").expect("write");
    fails_with(
        &wgtrain(&[
            "eval",
            "--model",
            path_str(&model),
            "--data",
            path_str(&bad),
        ]),
        "label 7 but the model has 3 classes",
    );
    // Rows without labels: what prediction is for.
    let rows = dir.join("rows.csv");
    std::fs::write(&rows, "a,b,c\n0.1,0.2,0.3\n0.9,0.1,0.1\n0.2,0.8,0.1\n").expect("write");
    let out_path = dir.join("predictions.csv");
    let out = wgtrain(&[
        "predict",
        "--model",
        path_str(&model),
        "--data",
        path_str(&rows),
        "--out",
        path_str(&out_path),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(&out_path)
            .expect("predictions")
            .lines()
            .count(),
        4
    );
    // A regression model scores as a regression, whatever --task says.
    let numbers = dir.join("numbers.csv");
    std::fs::write(&numbers, "a,y\n0,0.5\n1,1.5\n2,2.5\n3,3.5\n").expect("write");
    let regressor = dir.join("regressor.safetensors");
    let out = wgtrain(&[
        "train",
        "--data",
        path_str(&numbers),
        "--task",
        "regress",
        "--layers",
        "none",
        "--epochs",
        "2",
        "--save",
        path_str(&regressor),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let metrics = dir.join("metrics.json");
    let out = wgtrain(&[
        "eval",
        "--model",
        path_str(&regressor),
        "--data",
        path_str(&numbers),
        "--metrics-json",
        path_str(&metrics),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&metrics).expect("metrics")).expect("json");
    assert!(
        json.get("mse").is_some() && json.get("accuracy").is_none(),
        "{json}"
    );
    let _ = data;
}

#[test]
fn runs_that_used_to_succeed_wrongly() {
    let dir = scratch("wrong-successes");
    let data = dir.join("train.csv");
    write_classification_csv(&data, 20);
    // --epochs 0 with --save writes the initial model, loadable.
    let model = dir.join("init.safetensors");
    let out = wgtrain(&[
        "train",
        "--data",
        path_str(&data),
        "--epochs",
        "0",
        "--save",
        path_str(&model),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    wgtrain::train::checkpoint::load(&model).expect("written and loadable");
    // samples/s counts the 20 rows there are, not a batch of 100000.
    let out = wgtrain(&[
        "train",
        "--data",
        path_str(&data),
        "--epochs",
        "1",
        "--batch-size",
        "100000",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let line = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.starts_with("epoch 1/1"))
        .map(String::from)
        .expect("epoch line");
    let fields: Vec<&str> = line.split_whitespace().collect();
    let seconds: f64 = fields[fields
        .iter()
        .position(|f| {
            f.ends_with('s')
                && f.parse::<f64>().is_err()
                && f.trim_end_matches('s').parse::<f64>().is_ok()
        })
        .expect("time")]
    .trim_end_matches('s')
    .parse()
    .expect("seconds");
    let rate: f64 = fields[fields.iter().position(|&f| f == "samples/s").expect("rate") - 1]
        .parse()
        .expect("rate");
    assert!(
        rate * seconds <= 20.0 * 1.2 + 1.0,
        "{line}: more samples than rows"
    );
    // A validation split of a file sorted by label still holds every class.
    let sorted = dir.join("sorted.csv");
    let mut text = String::from("a,label\n");
    for r in 0..60 {
        text += &format!("{},{}\n", r as f32 / 60.0, r / 20);
    }
    std::fs::write(&sorted, text).expect("write");
    let metrics = dir.join("split.json");
    let out = wgtrain(&[
        "train",
        "--data",
        path_str(&sorted),
        "--epochs",
        "1",
        "--val-split",
        "0.3",
        "--metrics-json",
        path_str(&metrics),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&metrics).expect("metrics")).expect("json");
    let rows = json["validation"]["confusion_matrix"]
        .as_array()
        .expect("confusion matrix");
    let present = rows
        .iter()
        .filter(|row| {
            row.as_array()
                .expect("row")
                .iter()
                .any(|c| c.as_u64() != Some(0))
        })
        .count();
    assert_eq!(present, 3, "every class in the validation split: {rows:?}");
    // A missing folder for an output is found before training, not after.
    let started = std::time::Instant::now();
    let out = wgtrain(&[
        "train",
        "--data",
        path_str(&data),
        "--epochs",
        "50",
        "--save",
        path_str(&dir.join("m.safetensors")),
        "--plot",
        path_str(&dir.join("nowhere/plot.svg")),
    ]);
    fails_with(&out, "does not exist");
    assert!(
        !dir.join("m.safetensors").exists(),
        "nothing was trained or saved"
    );
    assert!(started.elapsed().as_secs() < 20);
}
