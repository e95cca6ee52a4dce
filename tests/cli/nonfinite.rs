use crate::*;

#[test]
fn a_diverging_run_stops_naming_the_step_and_keeps_the_last_good_checkpoint() {
    let dir = scratch("nonfinite");
    let (data, model) = (dir.join("train.csv"), dir.join("model.safetensors"));
    write_classification_csv(&data, 64);
    let good = wgtrain(&[
        "train",
        "--data",
        path_str(&data),
        "--task",
        "regress",
        "--layers",
        "none",
        "--epochs",
        "1",
        "--save",
        path_str(&model),
    ]);
    assert!(good.status.success(), "{}", stderr(&good));
    let before = std::fs::read(&model).expect("a good checkpoint");

    let out = wgtrain(&[
        "train",
        "--data",
        path_str(&data),
        "--task",
        "regress",
        "--layers",
        "none",
        "--epochs",
        "20",
        "--optimizer",
        "sgd",
        "--lr",
        "1e6",
        "--save",
        path_str(&model),
    ]);
    let message = stderr(&out);
    assert!(!out.status.success(), "lr 1e6 must diverge");
    assert!(
        message.contains("non-finite value in loss at step"),
        "{message}"
    );
    assert!(!message.contains("panicked"), "{message}");
    // Saves happen only after every loss of their steps was checked finite: the earlier
    // checkpoint is untouched, or replaced by a later good one; either way it loads.
    let after = std::fs::read(&model).expect("the checkpoint survives");
    let checkpoint = wgtrain::train::checkpoint::load(&model).expect("it loads");
    let weights = &checkpoint.tensors["0.weight"].1;
    assert!(
        weights.iter().all(|v| v.is_finite()),
        "a saved checkpoint holds only finite weights"
    );
    assert!(after == before || checkpoint.training.is_some_and(|t| t.step > 0));
}

#[test]
fn skip_nonfinite_finishes_the_run_and_logs_skipped_steps_as_null() {
    let dir = scratch("skip-nonfinite");
    let (data, model, log) = (
        dir.join("train.csv"),
        dir.join("model.safetensors"),
        dir.join("steps.jsonl"),
    );
    write_classification_csv(&data, 64);
    let out = wgtrain(&[
        "train",
        "--data",
        path_str(&data),
        "--task",
        "regress",
        "--layers",
        "none",
        "--epochs",
        "20",
        "--optimizer",
        "sgd",
        "--lr",
        "1e6",
        "--skip-nonfinite",
        "--save",
        path_str(&model),
        "--log-steps",
        path_str(&log),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = std::fs::read_to_string(&log).expect("log");
    assert!(
        lines.contains("\"loss\":null"),
        "some steps diverged and were skipped"
    );
    let checkpoint = wgtrain::train::checkpoint::load(&model).expect("it loads");
    assert!(
        checkpoint.tensors["0.weight"]
            .1
            .iter()
            .all(|v| v.is_finite()),
        "skipped steps never reached the weights"
    );
}
