//! SIGKILL at random moments while checkpoints are written every few steps: the checkpoint on
//! disk always loads, and resuming from it reproduces the uninterrupted run's losses.

use std::process::{Command, Stdio};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::*;

#[test]
fn killed_while_checkpointing_the_checkpoint_loads_and_resumes_to_the_same_losses() {
    let dir = scratch("crash");
    let data = dir.join("train.csv");
    write_classification_csv(&data, 200);
    let common = [
        "--layers",
        "16",
        "--dropout",
        "0.1",
        "--batch-size",
        "8",
        "--epochs",
        "3",
        "--seed",
        "5",
        "--save-every",
        "2",
    ];
    let args = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = ["train", "--data", path_str(&data)]
            .iter()
            .map(|s| s.to_string())
            .collect();
        a.extend(common.iter().chain(extra).map(|s| s.to_string()));
        a
    };
    let reference_log = dir.join("reference.jsonl");
    let reference_model = dir.join("reference.safetensors");
    let args_ref = args(&[
        "--log-steps",
        path_str(&reference_log),
        "--save",
        path_str(&reference_model),
    ]);
    let started = std::time::Instant::now();
    let out = wgtrain(&args_ref.iter().map(String::as_str).collect::<Vec<_>>());
    let run_ms = started.elapsed().as_millis() as u64;
    assert!(out.status.success(), "{}", stderr(&out));
    let reference = step_losses(&reference_log);
    assert_eq!(reference.len(), 75);

    let seed = crate::common::seed("kill moments");
    let mut rng = StdRng::seed_from_u64(seed);
    let checkpoint = dir.join("model.safetensors");
    let mut resumed_from = vec![];
    for round in 0..20 {
        let run = args(&["--save", path_str(&checkpoint)]);
        let mut child = Command::new(env!("CARGO_BIN_EXE_wgtrain"))
            .args(&run)
            .env("XDG_RUNTIME_DIR", std::env::temp_dir())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        // Anywhere in the run: start-up, mid-epoch, mid-save, the last steps, or after the
        // end (the range reaches past the reference run's time, since these runs share the
        // cores with other tests and can be slower: all 20 kills once landed before the
        // first save).
        let at = rng.random_range(run_ms / 20..(run_ms * 3 / 2).max(40));
        std::thread::sleep(std::time::Duration::from_millis(at));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        if !checkpoint.exists() {
            continue; // killed before the first save
        }
        let saved = wgtrain::train::checkpoint::load(&checkpoint)
            .unwrap_or_else(|e| panic!("round {round}: the checkpoint does not load: {e}"));
        let step = saved.training.as_ref().expect("training state").step;
        resumed_from.push(step);
        let log = dir.join(format!("resumed-{round}.jsonl"));
        // The model, batch size and seed come from the checkpoint.
        let resume = [
            "train",
            "--data",
            path_str(&data),
            "--epochs",
            "3",
            "--resume",
            path_str(&checkpoint),
            "--log-steps",
            path_str(&log),
        ]
        .map(String::from);
        let out = wgtrain(&resume.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(out.status.success(), "round {round}: {}", stderr(&out));
        let resumed = step_losses(&log);
        if step < 75 {
            assert_eq!(
                resumed.keys().next(),
                Some(&(step + 1)),
                "round {round}: resumes at the step after the checkpoint"
            );
        }
        for (s, loss) in &resumed {
            let want = reference[s];
            assert!(
                (loss - want).abs() <= 1e-6 * want.abs(),
                "round {round}, resumed from step {step}: step {s} {loss} vs {want}"
            );
        }
        assert_eq!(
            resumed.len() as u64,
            75 - step,
            "round {round}: resumed from {step}"
        );
        std::fs::remove_file(&checkpoint).expect("start the next round clean");
    }
    eprintln!("a run takes {run_ms} ms; resumed from steps {resumed_from:?}");
    assert!(
        !resumed_from.is_empty(),
        "no round got as far as a checkpoint"
    );
}
