use crate::*;

#[test]
fn patience_stops_training_when_validation_loss_stalls() {
    let dir = scratch("patience");
    let (data, log) = (dir.join("train.csv"), dir.join("steps.jsonl"));
    // Labels unrelated to the features: the model can only memorise, so the validation loss
    // stops improving within a few epochs.
    let mut text = String::from("a,b,c,label\n");
    for r in 0..80u64 {
        let h = r.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32;
        text += &format!(
            "{},{},{},{}\n",
            (h % 97) as f32 / 97.0,
            (h % 89) as f32 / 89.0,
            (h % 83) as f32 / 83.0,
            (h >> 7) % 3
        );
    }
    std::fs::write(&data, text).expect("csv");
    let out = wgtrain(&[
        "train",
        "--data",
        path_str(&data),
        "--layers",
        "32",
        "--epochs",
        "200",
        "--lr",
        "0.05",
        "--val-split",
        "0.25",
        "--patience",
        "2",
        "--batch-size",
        "8",
        "--log-steps",
        path_str(&log),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("early stop"), "{stdout}");
    let steps = std::fs::read_to_string(&log).expect("log").lines().count();
    assert!(steps < 200 * 8, "stopped early after {steps} steps");
}

#[test]
fn no_shuffle_feeds_batches_in_file_order_with_the_last_partial_batch() {
    let dir = scratch("no-shuffle");
    let (data, log) = (dir.join("train.csv"), dir.join("steps.jsonl"));
    write_classification_csv(&data, 21);
    let run = |name: &str| {
        let out = wgtrain(&[
            "train",
            "--data",
            path_str(&data),
            "--layers",
            "none",
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "--no-shuffle",
            "--log-steps",
            path_str(&log),
        ]);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        std::fs::read_to_string(&log).expect("log")
    };
    let (first, second) = (run("first"), run("second"));
    assert_eq!(
        first.lines().count(),
        3,
        "8 + 8 + 5 rows: the partial batch is a step too"
    );
    assert_eq!(first, second, "file order is deterministic");
}

#[test]
fn the_same_command_twice_gives_identical_losses_and_weights() {
    let dir = scratch("same-command");
    let data = dir.join("train.csv");
    write_classification_csv(&data, 50);
    let run = |name: &str| {
        let (log, model) = (
            dir.join(format!("{name}.jsonl")),
            dir.join(format!("{name}.safetensors")),
        );
        let out = wgtrain(&[
            "train",
            "--data",
            path_str(&data),
            "--layers",
            "16,8",
            "--dropout",
            "0.2",
            "--batchnorm",
            "--epochs",
            "3",
            "--batch-size",
            "8",
            "--seed",
            "9",
            "--log-steps",
            path_str(&log),
            "--save",
            path_str(&model),
        ]);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let weights = wgtrain::train::checkpoint::load(&model)
            .expect("checkpoint")
            .tensors;
        let mut weights: Vec<(String, Vec<u32>)> = weights
            .into_iter()
            .map(|(k, (_, v))| (k, v.iter().map(|x| x.to_bits()).collect()))
            .collect();
        weights.sort();
        (std::fs::read_to_string(&log).expect("log"), weights)
    };
    let (first, second) = (run("first"), run("second"));
    assert_eq!(first.0, second.0, "losses, bit for bit");
    assert!(first.1 == second.1, "weights, bit for bit");
}

#[test]
fn no_adapter_is_a_clear_error_with_the_install_hint() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wgtrain"))
        .arg("info")
        .env("WGPU_ADAPTER_NAME", "no adapter is called this")
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .output()
        .expect("running wgtrain");
    let message = stderr(&out);
    assert!(!out.status.success());
    assert!(
        message.contains("no GPU adapter found") && message.contains("mesa-vulkan-drivers"),
        "{message}"
    );
    assert!(!message.contains("panicked"), "{message}");
}

#[test]
fn a_first_run_without_a_desktop_session_prints_no_driver_errors() {
    // Without XDG_RUNTIME_DIR, Mesa's drivers print "error: XDG_RUNTIME_DIR is invalid ..."
    // twice before anything else: a newcomer reads that as failure.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wgtrain"))
        .arg("info")
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .expect("running wgtrain");
    let message = stderr(&out);
    assert!(out.status.success(), "{message}");
    assert!(!message.contains("XDG_RUNTIME_DIR"), "{message}");
}

#[test]
fn no_cache_is_accepted_before_or_after_the_command() {
    for args in [["--no-cache", "info"], ["info", "--no-cache"]] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_wgtrain"))
            .args(args)
            .env("XDG_RUNTIME_DIR", std::env::temp_dir())
            .output()
            .expect("running wgtrain");
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }
}
