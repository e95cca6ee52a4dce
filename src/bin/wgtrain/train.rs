//! `wgtrain train`: data, model, optimizer and schedule from the flags (or a checkpoint to
//! resume), then epochs with progress, checkpoints, step logs, metrics and plots.

use std::sync::Arc;
use std::time::Instant;

use wgtrain::data::{Dataset, DeviceDataset, Split, Standardizer, mnist_files};
use wgtrain::dist::Communicator;
use wgtrain::graph::{Graph, Weights};
use wgtrain::kernels::loss::Loss;
use wgtrain::nn::Sequential;
use wgtrain::optim::Optimizer;
use wgtrain::train::checkpoint::{self, Architecture, RunSettings, TrainingState};
use wgtrain::train::say;
use wgtrain::train::{EpochProgress, TrainConfig, Trainer, plot_curves, steps_per_epoch};
use wgtrain::{Error, Gpu, Result};

use crate::commands::{
    PendingFile, bad_flag, check_labels, check_model_input, is_csv, load, report_metrics,
    write_json,
};
use crate::flags::{activation, check_train_paths, hidden_layers, loss_of, schedule_of, validate};
use crate::{LossArg, TrainArgs, signals};

/// How long a piece of training runs between looks at the signal flag, the first piece being
/// one batch and each later one sized by the pace of the one before. Each look waits for the
/// piece's last loss, and the GPU idles from then until the next piece's first submission
/// (about a millisecond on an H200, where the 32 batches of the old fixed pieces took 5 ms of
/// mlp-bench): pieces this long make that cost a fraction of a percent and still stop a run
/// soon after a signal, however slow its steps.
const SIGNAL_POLL_SECONDS: f64 = 0.25;

/// Trains as rank `comm.rank()` of `comm.size()` (1 without `mpirun`): rank 0 alone reports
/// and writes files.
pub fn train(args: &TrainArgs, comm: &Arc<dyn Communicator>) -> Result<()> {
    let writer = comm.rank() == 0;
    wgtrain::train::set_quiet(!writer);
    validate(args)?;
    check_train_paths(args)?;
    let resumed = args.resume.as_deref().map(checkpoint::load).transpose()?;
    let saved_state = resumed.as_ref().and_then(|c| c.training.clone());
    let seed = saved_state.as_ref().map_or(args.seed, |t| t.seed);
    let mut train = load(&args.data, &args.data.data, Split::Train)?;
    let mut val = if args.val_split > 0.0 {
        let held = ((train.rows as f64) * args.val_split).round() as usize;
        if held == 0 || held >= train.rows {
            return Err(bad_flag(format!(
                "--val-split {} of {} rows holds out {held}: it must leave at least one row on each side",
                args.val_split, train.rows
            )));
        }
        // A seeded shuffle first: a file sorted by label must not give a one-class split.
        train.shuffle_rows(seed);
        Some(train.split_off(train.rows - held)?)
    } else {
        None
    };
    let mut test = match &args.test {
        Some(path) => Some(load(&args.data, path, Split::Test)?),
        // An IDX directory brings its own test split when its t10k files are there.
        None if !is_csv(&args.data, &args.data.data)
            && mnist_files(&args.data.data, Split::Test).0.exists() =>
        {
            Some(load(&args.data, &args.data.data, Split::Test)?)
        }
        None => None,
    };
    if let Some(test) = &test
        && test.cols != train.cols
    {
        return Err(Error::invalid_data(
            args.test.as_deref().unwrap_or(&args.data.data),
            "header",
            format!(
                "{} feature columns, the training data has {}",
                test.cols, train.cols
            ),
        ));
    }

    let from_file = args
        .model
        .as_deref()
        .map(|path| {
            let bytes = wgtrain::files::read_regular(path)?;
            let json = String::from_utf8(bytes)
                .map_err(|_| Error::invalid_data(path, "graph", "not UTF-8 text"))?;
            Graph::from_json(&json, path)
        })
        .transpose()?;
    let architecture = match (
        resumed.as_ref().and_then(|c| c.architecture.clone()),
        from_file,
    ) {
        (Some(architecture), _) => architecture,
        (None, Some(graph)) => Architecture {
            graph,
            standardize: args.standardize.then(|| Standardizer::fit(&train)),
            vocabulary: None,
        },
        (None, None) => {
            let loss = loss_of(args);
            let classes = train
                .classes()
                .max(test.as_ref().map_or(0, Dataset::classes))
                .max(2);
            // One output (and one confusion-matrix row) per class: labels far beyond the
            // rows there are would make a model, and metrics, the data cannot support.
            if train.target_cols == 0 && classes > train.rows.max(2) {
                return Err(Error::invalid_data(
                    &args.data.data,
                    "labels",
                    format!(
                        "the largest label, {}, means {classes} classes for {} training rows: class labels must run 0, 1, 2, ... (use --task regress for numeric targets)",
                        classes - 1,
                        train.rows
                    ),
                ));
            }
            let outputs = match (loss, train.target_cols) {
                // Numeric targets under cross-entropy: refused below, with every graph.
                (Loss::CrossEntropy, _) => classes,
                (Loss::BceWithLogits, 0) if classes <= 2 => 1,
                (_, 0) => {
                    return Err(bad_flag(format!(
                        "--loss {:?} on class labels ({classes} classes): classify with cross-entropy (or bce for two classes), or use --task regress for numeric targets",
                        args.loss.unwrap_or(LossArg::CrossEntropy)
                    )));
                }
                _ => train.target_cols,
            };
            let model = Sequential::mlp(
                train.cols,
                &hidden_layers(&args.layers)?,
                outputs,
                activation(&args.activation)?,
                args.dropout,
                args.batchnorm,
            );
            let standardize = args.standardize.then(|| Standardizer::fit(&train));
            Architecture {
                graph: model.build(loss)?,
                standardize,
                vocabulary: None,
            }
        }
    };
    check_model_input(&architecture, &train)?;
    // The targets must be what the loss compares the output with.
    let (loss, outputs) = (architecture.loss(), architecture.out_features());
    match (loss, train.target_cols) {
        (Loss::CrossEntropy, 0) => {}
        (Loss::CrossEntropy, _) => {
            return Err(bad_flag(
                "this model classifies (cross-entropy): its data needs class labels, --task classify".into(),
            ));
        }
        (_, cols) if cols.max(1) != outputs || cols == 0 && loss != Loss::BceWithLogits => {
            return Err(bad_flag(format!(
                "this model has {outputs} output(s) trained with {loss:?}; the data has {} target column(s){}",
                cols,
                if cols == 0 {
                    " of class labels (use --task regress for numeric targets)"
                } else {
                    ""
                }
            )));
        }
        _ => {}
    }
    let data_path = args.data.data.as_path();
    for (path, data) in [
        (data_path, Some(&train)),
        (data_path, val.as_ref()),
        (args.test.as_deref().unwrap_or(data_path), test.as_ref()),
    ] {
        if let Some(data) = data {
            check_labels(&architecture, path, data)?;
        }
    }
    if let Some(standardize) = &architecture.standardize {
        for data in [Some(&mut train), val.as_mut(), test.as_mut()]
            .into_iter()
            .flatten()
        {
            standardize.apply(data)?;
        }
    }

    // What the run is: the checkpoint's when resuming, the flags' otherwise.
    let epoch_steps = |batch| steps_per_epoch(train.rows, comm.size(), batch) as u64;
    let run = match saved_state.as_ref().and_then(|t| t.run.clone()) {
        Some(run) => run,
        None => RunSettings {
            batch_size: args.batch_size,
            l1: args.l1,
            clip_norm: args.clip_norm,
            schedule: schedule_of(args, epoch_steps(args.batch_size)),
            warmup_steps: args.warmup,
            shuffle: !args.no_shuffle,
            param_groups: vec![],
        },
    };
    let steps_per_epoch = epoch_steps(run.batch_size);
    if (args.epochs as u64)
        .checked_mul(steps_per_epoch)
        .is_none_or(|s| s > u64::from(u32::MAX))
    {
        return Err(bad_flag(format!(
            "--epochs {} of {steps_per_epoch} steps each is more steps than a run can count (2^32)",
            args.epochs
        )));
    }
    if let Some(state) = &saved_state
        && state.epoch >= args.epochs
    {
        say(format_args!(
            "the checkpoint has trained {} epochs; --epochs {} is the total, so there is nothing to train",
            state.epoch, args.epochs
        ));
    }
    // BatchNorm cannot train on a batch of one row: find the last batch before the first step.
    if !architecture.graph.buffers().is_empty() && train.rows % run.batch_size == 1 {
        return Err(bad_flag(format!(
            "{} rows in batches of {} leave a last batch of one row, which BatchNorm cannot train on: choose another --batch-size",
            train.rows, run.batch_size
        )));
    }

    let gpu = Gpu::new()?;
    let graph = architecture.graph.clone();
    let weights = Weights::init(&gpu, &graph, seed)?;
    let optimizer = match &saved_state {
        Some(state) => state.optimizer,
        None => Optimizer::from_name(&args.optimizer, args.lr, args.momentum, args.weight_decay)?,
    };
    let config = TrainConfig {
        skip_nonfinite: args.skip_nonfinite,
        ..run.config(optimizer, seed)
    };
    let mut trainer = Trainer::new(&gpu, graph, weights, config)?;
    trainer.set_communicator(Arc::clone(comm))?;

    let (mut start_epoch, mut start_batch) = (0, 0);
    if let Some(c) = &resumed {
        let state = c.load_training_state(&mut trainer)?;
        (start_epoch, start_batch) = (state.epoch, state.batch);
    } else if let Some(path) = &args.init {
        checkpoint::load(path)?.load_weights(&mut trainer)?;
    }

    let train_data = DeviceDataset::upload(&gpu, &train)?;
    let val_data = val
        .as_ref()
        .map(|v| DeviceDataset::upload(&gpu, v))
        .transpose()?;
    let mut log = args
        .log_steps
        .as_deref()
        .filter(|_| writer)
        .map(PendingFile::create)
        .transpose()?;
    let mut curves: Vec<(String, Vec<(f64, f64)>)> =
        vec![("train".into(), vec![]), ("validation".into(), vec![])];
    let batches = trainer.epoch_batches(train.rows).len();
    if start_batch > batches {
        return Err(Error::InvalidArgument(format!(
            "the checkpoint stopped after batch {start_batch} of an epoch, but epochs of this data \
             have {batches} batches: resume with the data the run was trained on"
        )));
    }
    let segment = if args.save_every > 0 {
        args.save_every
    } else {
        batches
    };
    // What the last checkpoint holds, for the message of an interrupted run.
    let mut last_saved: Option<String> = None;
    let mut save = |trainer: &Trainer, epoch: usize, batch: usize| -> Result<()> {
        if let Some(path) = args.save.as_ref().filter(|_| writer) {
            let state = TrainingState {
                epoch,
                batch,
                ranks: trainer.communicator().size(),
                step: trainer.step(),
                seed,
                optimizer,
                run: Some(run.clone()),
            };
            checkpoint::save(path, trainer, &architecture, &state)?;
            last_saved = Some(format!(
                "the last checkpoint is {} (step {}, epoch {epoch}, batch {batch})",
                path.display(),
                trainer.step()
            ));
        }
        Ok(())
    };
    let mut best_val = (f64::INFINITY, 0);
    let mut stopped_by = None;
    let mut piece_batches = 1;
    'epochs: for epoch in start_epoch..args.epochs {
        let mut progress = EpochProgress::new(epoch, args.epochs, batches);
        let (mut loss_rows, mut rows) = (0.0, 0);
        let mut log_error = Ok(());
        let first = if epoch == start_epoch { start_batch } else { 0 };
        for start in (first..batches).step_by(segment.max(1)) {
            let end = (start + segment).min(batches);
            // Pieces of about SIGNAL_POLL_SECONDS, so a signal is noticed soon.
            let mut piece = start;
            while piece < end {
                let piece_end = (piece + piece_batches).min(end);
                let timed = Instant::now();
                let (sum, n) =
                    trainer.fit_batches(&train_data, epoch, piece..piece_end, &mut |step| {
                        progress.step(step);
                        if let Some(log) = &mut log
                            && log_error.is_ok()
                        {
                            // Written by hand to keep the documented key order; JSON has no NaN.
                            let loss = if step.loss.is_finite() {
                                step.loss.to_string()
                            } else {
                                "null".into()
                            };
                            log_error = log.line(&format!(
                                "{{\"epoch\":{},\"step\":{},\"loss\":{loss},\"lr\":{}}}",
                                step.epoch, step.step, step.lr
                            ));
                        }
                    })?;
                (loss_rows, rows) = (loss_rows + sum, rows + n);
                // Rank 0's pace sizes the next piece for all, so the ranks look together.
                let pace = timed.elapsed().as_secs_f64() / (piece_end - piece) as f64;
                let wanted = (SIGNAL_POLL_SECONDS / pace.max(1e-9)) as u64;
                piece_batches = comm.all_gather_u64(wanted.max(1))?[0] as usize;
                piece = piece_end;
                // Data-parallel ranks stop together, at the first look after any of them saw
                // a signal: one that stopped alone would leave the others waiting for it.
                let seen = signals::received().map_or(0, |signal| signal as u64 + 1);
                let first_seen = comm.all_gather_u64(seen)?.into_iter().max();
                if let Some(signal) = first_seen.filter(|&s| s > 0) {
                    stopped_by = Some((signal - 1) as i32);
                    break 'epochs;
                }
            }
            if end < batches {
                save(&trainer, epoch, end)?;
            }
        }
        log_error?;
        let loss = loss_rows / rows.max(1) as f64;
        curves[0].1.push(((epoch + 1) as f64, loss));
        let mut extra = String::new();
        if let Some(val_data) = &val_data {
            let eval = trainer.evaluate(val_data)?;
            curves[1].1.push(((epoch + 1) as f64, eval.loss));
            extra = format!("  val loss {:.4}", eval.loss);
            if eval.loss < best_val.0 {
                best_val = (eval.loss, epoch);
            }
        }
        progress.finish(loss, &extra);
        save(&trainer, epoch + 1, 0)?;
        if let Some(patience) = args.patience
            && epoch - best_val.1 >= patience
        {
            say(format_args!(
                "early stop: validation loss has not improved for {patience} epochs (best {:.4} after epoch {})",
                best_val.0,
                best_val.1 + 1
            ));
            break;
        }
        if let Some(signal) = signals::received() {
            stopped_by = Some(signal);
            break;
        }
    }
    // No epoch ran (--epochs 0 to save or score initial weights): the model is still saved.
    if args.save.is_some() && start_epoch >= args.epochs {
        save(&trainer, start_epoch, start_batch)?;
    }
    if let Some(signal) = stopped_by {
        // The step log is complete up to the last step reported; nothing else is written.
        if let Some(log) = log {
            log.commit()?;
        }
        return Err(Error::Interrupted {
            signal,
            detail: format!(
                "stopped after step {}; {}",
                trainer.step(),
                last_saved.unwrap_or_else(|| "no checkpoint was written".into())
            ),
        });
    }
    if let Some(log) = log {
        log.commit()?;
    }

    let mut metrics = serde_json::Map::new();
    for (name, data) in [("validation", val.as_ref()), ("test", test.as_ref())] {
        if let Some(data) = data {
            let device = DeviceDataset::upload(&gpu, data)?;
            let eval = trainer.evaluate(&device)?;
            metrics.insert(
                name.into(),
                report_metrics(architecture.loss(), data, &eval.outputs, eval.loss, name)?,
            );
        }
    }
    if metrics.is_empty() {
        let eval = trainer.evaluate(&train_data)?;
        metrics.insert(
            "train".into(),
            report_metrics(
                architecture.loss(),
                &train,
                &eval.outputs,
                eval.loss,
                "train",
            )?,
        );
    }
    if !writer {
        return Ok(());
    }
    if let Some(path) = &args.metrics_json {
        write_json(path, &serde_json::Value::Object(metrics))?;
    }
    if let Some(path) = &args.plot {
        curves.retain(|(_, points)| !points.is_empty());
        plot_curves(path, "wgtrain", "epoch", &curves)?;
    }
    Ok(())
}
