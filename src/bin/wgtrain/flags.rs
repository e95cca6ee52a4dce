//! `wgtrain train`'s flags: parsed, and checked before any work (values in range, every
//! output writable and distinct from every input).

use std::path::{Path, PathBuf};

use wgtrain::Result;
use wgtrain::kernels::Activation;
use wgtrain::kernels::loss::Loss;
use wgtrain::optim::Schedule;

use crate::commands::{bad_flag, check_paths, data_files};
use crate::{LossArg, ScheduleArg, TaskArg, TrainArgs};

pub(crate) fn activation(name: &str) -> Result<Activation> {
    Ok(match name {
        "relu" => Activation::Relu,
        "leaky-relu" | "leaky_relu" => Activation::LeakyRelu(0.01),
        "gelu" => Activation::Gelu,
        "tanh" => Activation::Tanh,
        "sigmoid" => Activation::Sigmoid,
        other => {
            return Err(bad_flag(format!(
                "unknown --activation {other:?}: relu, leaky-relu, gelu, tanh or sigmoid"
            )));
        }
    })
}

pub(crate) fn hidden_layers(spec: &str) -> Result<Vec<usize>> {
    if spec.trim().is_empty() || spec == "none" {
        return Ok(vec![]);
    }
    spec.split(',')
        .map(|w| match w.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(bad_flag(format!(
                "--layers {spec:?}: {w:?} is not a positive width"
            ))),
        })
        .collect()
}

pub(crate) fn validate(args: &TrainArgs) -> Result<()> {
    if !(args.lr > 0.0 && args.lr.is_finite()) {
        return Err(bad_flag(format!("--lr must be positive, got {}", args.lr)));
    }
    if args.batch_size == 0 {
        return Err(bad_flag("--batch-size must be at least 1".into()));
    }
    if !(0.0..1.0).contains(&args.dropout) {
        return Err(bad_flag(format!(
            "--dropout must lie in [0, 1), got {}",
            args.dropout
        )));
    }
    if !(0.0..1.0).contains(&args.val_split) {
        return Err(bad_flag(format!(
            "--val-split must lie in [0, 1), got {}",
            args.val_split
        )));
    }
    if args.clip_norm.is_some_and(|c| c.is_nan() || c <= 0.0) {
        return Err(bad_flag("--clip-norm must be positive".into()));
    }
    if args.save_every > 0 && args.save.is_none() {
        return Err(bad_flag(
            "--save-every saves to the file --save names: give --save too".into(),
        ));
    }
    if args.patience.is_some() && args.val_split == 0.0 {
        return Err(bad_flag(
            "--patience watches the validation loss: give --val-split too".into(),
        ));
    }
    if !(args.l1 >= 0.0
        && args.l1.is_finite()
        && args.weight_decay >= 0.0
        && args.weight_decay.is_finite())
    {
        return Err(bad_flag(
            "--l1 and --weight-decay must be finite and not negative".into(),
        ));
    }
    if !(0.0..1.0).contains(&args.momentum) {
        return Err(bad_flag(format!(
            "--momentum must lie in [0, 1), got {}",
            args.momentum
        )));
    }
    if args.clip_norm.is_some_and(|c| !c.is_finite()) {
        return Err(bad_flag("--clip-norm must be finite".into()));
    }
    Ok(())
}

/// The schedule the flags ask for, in steps of an epoch of `steps_per_epoch`.
pub(crate) fn schedule_of(args: &TrainArgs, steps_per_epoch: u64) -> Schedule {
    match args.schedule {
        ScheduleArg::Constant => Schedule::Constant,
        ScheduleArg::Step => Schedule::Step {
            step_size: 10 * steps_per_epoch,
            gamma: 0.1,
        },
        ScheduleArg::Exp => Schedule::Exponential {
            gamma: 0.95f64.powf(1.0 / steps_per_epoch as f64),
        },
        ScheduleArg::Cosine => Schedule::Cosine {
            total_steps: (args.epochs as u64).saturating_mul(steps_per_epoch),
            min_lr: 0.0,
        },
    }
}

pub(crate) fn loss_of(args: &TrainArgs) -> Loss {
    match (args.loss, args.data.task) {
        (Some(LossArg::CrossEntropy), _) | (None, TaskArg::Classify) => Loss::CrossEntropy,
        (Some(LossArg::Mse), _) | (None, TaskArg::Regress) => Loss::Mse,
        (Some(LossArg::Bce), _) => Loss::BceWithLogits,
        (Some(LossArg::Huber), _) => Loss::Huber { delta: 1.0 },
    }
}

/// Outputs checked against inputs and each other (see `check_paths`).
pub(crate) fn check_train_paths(args: &TrainArgs) -> Result<()> {
    let mut inputs: Vec<(&str, PathBuf)> = data_files(&args.data, &args.data.data)
        .into_iter()
        .map(|p| ("--data", p))
        .collect();
    if let Some(test) = &args.test {
        inputs.extend(
            data_files(&args.data, test)
                .into_iter()
                .map(|p| ("--test", p)),
        );
    }
    for (flag, path) in [
        ("--model", &args.model),
        ("--init", &args.init),
        ("--resume", &args.resume),
    ] {
        inputs.extend(path.iter().map(|p| (flag, p.clone())));
    }
    let outputs: Vec<(&str, &Path)> = [
        ("--save", &args.save),
        ("--metrics-json", &args.metrics_json),
        ("--log-steps", &args.log_steps),
        ("--plot", &args.plot),
    ]
    .into_iter()
    .filter_map(|(flag, p)| Some((flag, p.as_deref()?)))
    .collect();
    check_paths(&inputs, &outputs, &[("--save", "--resume")])?;
    Ok(())
}
