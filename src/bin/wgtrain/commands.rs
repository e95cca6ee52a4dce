//! What each subcommand does, on top of the library.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::json;
use wgtrain::data::{
    Dataset, DeviceDataset, Split, Standardizer, Task, load_csv, load_mnist, mnist_files,
};
use wgtrain::graph::Weights;
use wgtrain::kernels::Activation;
use wgtrain::kernels::loss::Loss;
use wgtrain::nn::Sequential;
use wgtrain::optim::{Optimizer, Schedule};
use wgtrain::train::checkpoint::{self, Architecture, TrainingState};
use wgtrain::train::{
    ClassificationMetrics, EpochProgress, RegressionMetrics, TrainConfig, Trainer, plot_curves,
};
use wgtrain::{Error, Gpu, Result};

use crate::{DataArgs, EvalArgs, Format, LossArg, PredictArgs, ScheduleArg, TaskArg, TrainArgs};

pub fn info() -> Result<()> {
    println!("{}", Gpu::new()?);
    Ok(())
}

fn bad_flag(message: String) -> Error {
    Error::InvalidArgument(message)
}

fn task(args: &DataArgs) -> Task {
    match args.task {
        TaskArg::Classify => Task::Classify,
        TaskArg::Regress => Task::Regress,
    }
}

/// Reads `path` as the data flags say: a CSV file, or the `split` half of an IDX directory.
fn load(args: &DataArgs, path: &Path, split: Split) -> Result<Dataset> {
    if is_csv(args, path) {
        load_csv(path, args.target.as_deref(), task(args))
    } else {
        if task(args) == Task::Regress {
            return Err(bad_flag(
                "IDX data holds class labels: use --task classify".into(),
            ));
        }
        load_mnist(path, split)
    }
}

/// CSV when `--format csv` says so, or by default for a `.csv` path.
fn is_csv(args: &DataArgs, path: &Path) -> bool {
    args.format == Some(Format::Csv)
        || (args.format.is_none() && path.extension().is_some_and(|e| e == "csv"))
}

fn activation(name: &str) -> Result<Activation> {
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

fn hidden_layers(spec: &str) -> Result<Vec<usize>> {
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

fn validate(args: &TrainArgs) -> Result<()> {
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
    if args.patience.is_some() && args.val_split == 0.0 {
        return Err(bad_flag(
            "--patience watches the validation loss: give --val-split too".into(),
        ));
    }
    if args.l1 < 0.0 || args.weight_decay < 0.0 {
        return Err(bad_flag(
            "--l1 and --weight-decay must not be negative".into(),
        ));
    }
    Ok(())
}

/// A file written on the side and renamed into place on success; removed otherwise, so no
/// half-written output is ever left behind.
struct PendingFile {
    path: PathBuf,
    temp: PathBuf,
    file: Option<std::io::BufWriter<std::fs::File>>,
}

impl PendingFile {
    fn create(path: &Path) -> Result<Self> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
        let file = std::fs::File::create(&temp).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            temp,
            file: Some(std::io::BufWriter::new(file)),
        })
    }

    fn line(&mut self, text: &str) -> Result<()> {
        let io = |source| Error::Io {
            path: self.path.clone(),
            source,
        };
        match &mut self.file {
            Some(f) => writeln!(f, "{text}").map_err(io),
            None => Ok(()),
        }
    }

    fn commit(mut self) -> Result<()> {
        let io = |source| Error::Io {
            path: self.path.clone(),
            source,
        };
        if let Some(file) = self.file.take() {
            file.into_inner()
                .map_err(|e| io(e.into_error()))?
                .sync_all()
                .map_err(io)?;
        }
        std::fs::rename(&self.temp, &self.path).map_err(io)
    }
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| bad_flag(e.to_string()))?;
    checkpoint::write_atomically(path, text.as_bytes())
}

/// Prints and returns the metrics of `outputs` against `data`'s targets.
fn report_metrics(
    loss: Loss,
    data: &Dataset,
    outputs: &[f32],
    mean_loss: f64,
    label: &str,
) -> serde_json::Value {
    if data.target_cols == 0 {
        let classes = if loss == Loss::CrossEntropy {
            outputs.len() / data.rows.max(1)
        } else {
            2
        };
        let predicted = if loss == Loss::CrossEntropy {
            ClassificationMetrics::argmax(outputs, classes)
        } else {
            outputs.iter().map(|&v| usize::from(v > 0.0)).collect()
        };
        let m = ClassificationMetrics::new(&predicted, &data.labels(), classes);
        println!("{label}: loss {mean_loss:.4}\n{m}");
        json!({"loss": mean_loss, "accuracy": m.accuracy, "precision": m.precision, "recall": m.recall, "f1": m.f1,
               "macro_precision": m.macro_precision, "macro_recall": m.macro_recall, "macro_f1": m.macro_f1,
               "confusion_matrix": m.confusion})
    } else {
        let m = RegressionMetrics::new(outputs, &data.targets);
        println!(
            "{label}: loss {mean_loss:.4}  MSE {:.6}  MAE {:.6}  R² {:.4}",
            m.mse, m.mae, m.r2
        );
        json!({"loss": mean_loss, "mse": m.mse, "mae": m.mae, "r2": m.r2})
    }
}

fn loss_of(args: &TrainArgs) -> Loss {
    match (args.loss, args.data.task) {
        (Some(LossArg::CrossEntropy), _) | (None, TaskArg::Classify) => Loss::CrossEntropy,
        (Some(LossArg::Mse), _) | (None, TaskArg::Regress) => Loss::Mse,
        (Some(LossArg::Bce), _) => Loss::BceWithLogits,
        (Some(LossArg::Huber), _) => Loss::Huber { delta: 1.0 },
    }
}

pub fn train(args: &TrainArgs) -> Result<()> {
    validate(args)?;
    let mut train = load(&args.data, &args.data.data, Split::Train)?;
    if train.rows < 2 && args.val_split > 0.0 {
        return Err(bad_flag("--val-split needs at least two rows".into()));
    }
    let mut val = if args.val_split > 0.0 {
        let keep = ((train.rows as f64) * (1.0 - args.val_split))
            .round()
            .max(1.0) as usize;
        Some(train.split_off(keep)?)
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

    let resumed = args.resume.as_deref().map(checkpoint::load).transpose()?;
    let architecture = match resumed.as_ref().and_then(|c| c.architecture.clone()) {
        Some(architecture) => architecture,
        None => {
            let loss = loss_of(args);
            let outputs = match loss {
                Loss::CrossEntropy => {
                    let classes = train
                        .classes()
                        .max(test.as_ref().map_or(0, Dataset::classes))
                        .max(2);
                    if train.target_cols > 0 {
                        return Err(bad_flag(
                            "cross-entropy needs class labels: use --task classify".into(),
                        ));
                    }
                    classes
                }
                _ => train.target_cols.max(1),
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
                model,
                loss,
                standardize,
            }
        }
    };
    // A class the model has no output for would make the loss NaN: refuse it by name.
    if architecture.loss == Loss::CrossEntropy {
        let outputs = architecture.model.out_features();
        let data_path = Some(args.data.data.as_path());
        let sources = [
            (data_path, Some(&train)),
            (data_path, val.as_ref()),
            (args.test.as_deref().or(data_path), test.as_ref()),
        ];

        for (path, data) in sources.into_iter().filter_map(|(p, d)| Some((p?, d?))) {
            if let Some(row) = data.labels().iter().position(|&l| l >= outputs) {
                return Err(Error::invalid_data(
                    path,
                    format!("row {row}"),
                    format!(
                        "label {} but the model has {outputs} classes",
                        data.labels()[row]
                    ),
                ));
            }
        }
    }
    if architecture.model.in_features != train.cols {
        return Err(Error::ShapeMismatch {
            op: "model input vs data columns".into(),
            left: vec![architecture.model.in_features],
            right: vec![train.cols],
        });
    }
    if let Some(standardize) = &architecture.standardize {
        for data in [Some(&mut train), val.as_mut(), test.as_mut()]
            .into_iter()
            .flatten()
        {
            standardize.apply(data);
        }
    }

    let gpu = Gpu::new()?;
    let graph = architecture.model.build(architecture.loss)?;
    let weights = Weights::init(&gpu, &graph, args.seed)?;
    let optimizer = match &resumed {
        Some(c) => c.training.as_ref().map(|t| t.optimizer),
        None => None,
    };
    let optimizer = match optimizer {
        Some(o) => o,
        None => Optimizer::from_name(&args.optimizer, args.lr, args.momentum, args.weight_decay)?,
    };
    let steps_per_epoch = train.rows.div_ceil(args.batch_size) as u64;
    let schedule = match args.schedule {
        ScheduleArg::Constant => Schedule::Constant,
        ScheduleArg::Step => Schedule::Step {
            step_size: 10 * steps_per_epoch,
            gamma: 0.1,
        },
        ScheduleArg::Exp => Schedule::Exponential {
            gamma: 0.95f64.powf(1.0 / steps_per_epoch as f64),
        },
        ScheduleArg::Cosine => Schedule::Cosine {
            total_steps: args.epochs as u64 * steps_per_epoch,
            min_lr: 0.0,
        },
    };
    let seed = resumed
        .as_ref()
        .and_then(|c| c.training.as_ref())
        .map_or(args.seed, |t| t.seed);
    let config = TrainConfig {
        optimizer,
        l1: args.l1,
        clip_norm: args.clip_norm,
        schedule,
        warmup_steps: args.warmup,
        batch_size: args.batch_size,
        shuffle: !args.no_shuffle,
        seed,
        skip_nonfinite: args.skip_nonfinite,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(&gpu, graph, weights, config)?;

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
        .map(PendingFile::create)
        .transpose()?;
    let mut curves: Vec<(String, Vec<(f64, f64)>)> =
        vec![("train".into(), vec![]), ("validation".into(), vec![])];
    let batches = trainer.epoch_batches(train.rows).len();
    let segment = if args.save_every > 0 {
        args.save_every
    } else {
        batches
    };
    let save = |trainer: &Trainer, epoch: usize, batch: usize| -> Result<()> {
        match &args.save {
            Some(path) => {
                let state = TrainingState {
                    epoch,
                    batch,
                    step: trainer.step,
                    seed,
                    optimizer,
                };
                checkpoint::save(path, trainer, &architecture, &state)
            }
            None => Ok(()),
        }
    };
    let mut best_val = (f64::INFINITY, 0);
    for epoch in start_epoch..args.epochs {
        let mut progress = EpochProgress::new(epoch, args.epochs, batches, args.batch_size);
        let (mut loss_rows, mut rows) = (0.0, 0);
        let mut log_error = Ok(());
        let first = if epoch == start_epoch {
            start_batch.min(batches)
        } else {
            0
        };
        for start in (first..batches).step_by(segment.max(1)) {
            let end = (start + segment).min(batches);
            let (sum, n) = trainer.fit_batches(&train_data, epoch, start..end, &mut |step| {
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
            println!(
                "early stop: validation loss has not improved for {patience} epochs (best {:.4} after epoch {})",
                best_val.0,
                best_val.1 + 1
            );
            break;
        }
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
                report_metrics(architecture.loss, data, &eval.outputs, eval.loss, name),
            );
        }
    }
    if metrics.is_empty() {
        let eval = trainer.evaluate(&train_data)?;
        metrics.insert(
            "train".into(),
            report_metrics(architecture.loss, &train, &eval.outputs, eval.loss, "train"),
        );
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

/// A trainer holding a saved model, and the dataset prepared as the model was trained.
fn restore(
    model: &Path,
    data_args: &DataArgs,
    batch_size: usize,
) -> Result<(Trainer, Dataset, Architecture)> {
    if batch_size == 0 {
        return Err(bad_flag("--batch-size must be at least 1".into()));
    }
    let saved = checkpoint::load(model)?;
    let architecture = saved.architecture.clone().ok_or_else(|| {
        Error::invalid_data(
            model,
            "metadata.architecture",
            "missing: not a wgtrain checkpoint",
        )
    })?;

    let mut data = load(data_args, &data_args.data, Split::Test)?;
    if data.cols != architecture.model.in_features {
        return Err(Error::ShapeMismatch {
            op: "model input vs data columns".into(),
            left: vec![architecture.model.in_features],
            right: vec![data.cols],
        });
    }
    if let Some(standardize) = &architecture.standardize {
        standardize.apply(&mut data);
    }
    let gpu = Gpu::new()?;
    let graph = architecture.model.build(architecture.loss)?;
    let weights = Weights::init(&gpu, &graph, 0)?;
    let config = TrainConfig {
        batch_size,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(&gpu, graph, weights, config)?;
    saved.load_weights(&mut trainer)?;
    Ok((trainer, data, architecture))
}

pub fn eval(args: &EvalArgs) -> Result<()> {
    let (mut trainer, data, architecture) = restore(&args.model, &args.data, args.batch_size)?;
    let device = DeviceDataset::upload(trainer.gpu(), &data)?;
    let eval = trainer.evaluate(&device)?;
    let metrics = report_metrics(architecture.loss, &data, &eval.outputs, eval.loss, "eval");
    if let Some(path) = &args.metrics_json {
        write_json(path, &metrics)?;
    }
    Ok(())
}

pub fn predict(args: &PredictArgs) -> Result<()> {
    let (mut trainer, data, architecture) = restore(&args.model, &args.data, args.batch_size)?;
    let device = DeviceDataset::upload(trainer.gpu(), &data)?;
    let outputs = trainer.evaluate(&device)?.outputs;
    let width = architecture.model.out_features();
    let mut out = PendingFile::create(&args.out)?;
    if architecture.loss == Loss::CrossEntropy {
        out.line("prediction")?;
        for class in ClassificationMetrics::argmax(&outputs, width) {
            out.line(&class.to_string())?;
        }
    } else {
        out.line(
            &(0..width)
                .map(|c| format!("prediction_{c}"))
                .collect::<Vec<_>>()
                .join(","),
        )?;
        for row in outputs.chunks(width) {
            out.line(&row.iter().map(f32::to_string).collect::<Vec<_>>().join(","))?;
        }
    }
    out.commit()
}
