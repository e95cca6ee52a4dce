use std::path::Path;

use crate::*;

#[test]
fn two_epochs_and_a_resume_of_two_more_equal_four_straight() {
    let dir = scratch("resume");
    let data = dir.join("train.csv");
    write_classification_csv(&data, 100);
    let common = [
        "--layers",
        "8",
        "--dropout",
        "0.1",
        "--batch-size",
        "16",
        "--optimizer",
        "adam",
        "--lr",
        "0.01",
        "--seed",
        "3",
    ];
    let run = |extra: &[&str]| {
        let mut args = vec!["train", "--data", path_str(&data)];
        // A resumed run takes its model, optimizer, batch size and seed from the checkpoint.
        if !extra.contains(&"--resume") {
            args.extend(common);
        }
        args.extend(extra);
        let out = wgtrain(&args);
        assert!(out.status.success(), "{}", stderr(&out));
    };
    let (straight, first, second, model) = (
        dir.join("straight.jsonl"),
        dir.join("first.jsonl"),
        dir.join("second.jsonl"),
        dir.join("m.safetensors"),
    );
    run(&["--epochs", "4", "--log-steps", path_str(&straight)]);
    run(&[
        "--epochs",
        "2",
        "--log-steps",
        path_str(&first),
        "--save",
        path_str(&model),
    ]);
    run(&[
        "--epochs",
        "4",
        "--resume",
        path_str(&model),
        "--log-steps",
        path_str(&second),
    ]);
    let straight = step_losses(&straight);
    let mut resumed = step_losses(&first);
    resumed.extend(step_losses(&second));

    assert_eq!(
        straight.len(),
        28,
        "4 epochs of 7 batches (the last partial)"
    );
    assert_eq!(straight.len(), resumed.len());
    for ((s1, a), (s2, b)) in straight.iter().zip(&resumed) {
        assert_eq!(s1, s2);
        assert!(
            (a - b).abs() <= 1e-6 * a.abs(),
            "step {s1}: {a} straight vs {b} resumed"
        );
    }
}

/// A checkpoint saved partway through an epoch resumes at its batch; data whose epochs are
/// shorter than that (another file than the run's) is refused rather than skipping the epoch.
#[test]
fn a_resume_past_the_end_of_this_datas_epoch_is_refused() {
    let dir = scratch("resume-other-data");
    let (data, short) = (dir.join("train.csv"), dir.join("short.csv"));
    write_classification_csv(&data, 100);
    write_classification_csv(&short, 20);
    let model = dir.join("m.safetensors");
    let trained = wgtrain(&[
        "train",
        "--data",
        path_str(&data),
        "--layers",
        "4",
        "--batch-size",
        "10",
        "--epochs",
        "1",
        "--save",
        path_str(&model),
    ]);
    assert!(trained.status.success(), "{}", stderr(&trained));
    // As a run stopped after batch 7 of epoch 0 would have saved it.
    edit_training_state(&model, |state| {
        state["epoch"] = 0.into();
        state["batch"] = 7.into();
    });
    let resume = |data: &Path| {
        wgtrain(&[
            "train",
            "--data",
            path_str(data),
            "--epochs",
            "1",
            "--resume",
            path_str(&model),
        ])
    };
    let out = resume(&short);
    assert!(!out.status.success(), "resumed past a 2-batch epoch");
    assert!(
        stderr(&out).contains("after batch 7 of an epoch, but epochs of this data have 2 batches"),
        "{}",
        stderr(&out)
    );
    let out = resume(&data);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Rewrites a checkpoint's `metadata.training` JSON in place.
fn edit_training_state(path: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let bytes = std::fs::read(path).expect("read");
    let length = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let mut header: serde_json::Value =
        serde_json::from_slice(&bytes[8..8 + length]).expect("header");
    let training = header["__metadata__"]["training"].as_str().expect("state");
    let mut state: serde_json::Value = serde_json::from_str(training).expect("state json");
    edit(&mut state);
    header["__metadata__"]["training"] = state.to_string().into();
    let mut text = header.to_string().into_bytes();
    text.resize(text.len().div_ceil(8) * 8, b' ');
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend(text);
    out.extend(&bytes[8 + length..]);
    std::fs::write(path, out).expect("write");
}
