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
