//! `info`, `eval` and `predict`, and what every subcommand shares: reading data as the flags
//! say, writing outputs atomically, printing metrics.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::json;
use wgtrain::data::{
    Dataset, DeviceDataset, Split, Task, csv_columns, load_csv, load_csv_features, load_mnist,
    mnist_files,
};
use wgtrain::graph::Weights;
use wgtrain::kernels::loss::Loss;
use wgtrain::train::checkpoint::{self, Architecture};
use wgtrain::train::say;
use wgtrain::train::{ClassificationMetrics, RegressionMetrics, Sampling, TrainConfig, Trainer};
use wgtrain::{Error, Gpu, Result};

use crate::{DataArgs, EvalArgs, Format, GenerateArgs, PredictArgs, TaskArg};

pub fn info() -> Result<()> {
    say(format_args!("{}", Gpu::new()?));
    Ok(())
}

pub(crate) fn bad_flag(message: String) -> Error {
    Error::InvalidArgument(message)
}

/// The files a data flag reads: the CSV itself, or both splits of an IDX directory.
pub(crate) fn data_files(args: &DataArgs, path: &Path) -> Vec<PathBuf> {
    if is_csv(args, path) || !path.is_dir() {
        return vec![path.to_path_buf()];
    }
    let (a, b) = mnist_files(path, Split::Train);
    let (c, d) = mnist_files(path, Split::Test);
    vec![a, b, c, d]
}

/// Checks every output before any work: each is a regular file (or absent) in an existing
/// directory, no two outputs are one file, and no output is one of the inputs, except the
/// pairs in `may_replace` (a resumed checkpoint saved over itself). Temp files a killed run
/// left beside an output go now, not at the first save, which an early stop never reaches.
pub(crate) fn check_paths(
    inputs: &[(&str, PathBuf)],
    outputs: &[(&str, &Path)],
    may_replace: &[(&str, &str)],
) -> Result<()> {
    for (i, &(flag, path)) in outputs.iter().enumerate() {
        let target = wgtrain::files::output_target(path)
            .map_err(|e| bad_flag(format!("{flag} {}: {e}", path.display())))?;
        wgtrain::files::remove_stale_temps(&target);
        for &(other, earlier) in &outputs[..i] {
            if wgtrain::files::same_file(path, earlier) {
                return Err(bad_flag(format!(
                    "{flag} and {other} name the same file {}: each output needs its own",
                    path.display()
                )));
            }
        }
        for (input, source) in inputs {
            if wgtrain::files::same_file(path, source) && !may_replace.contains(&(flag, input)) {
                return Err(bad_flag(format!(
                    "{flag} {} would overwrite the {input} input {}",
                    path.display(),
                    source.display()
                )));
            }
        }
    }
    Ok(())
}

/// A class label the model has no output for would make the loss NaN and drop rows from the
/// metrics: refused by file and row.
pub(crate) fn check_labels(architecture: &Architecture, path: &Path, data: &Dataset) -> Result<()> {
    let outputs = architecture.out_features();
    if architecture.loss() != Loss::CrossEntropy || data.target_cols > 0 {
        return Ok(());
    }
    match data.labels().iter().position(|&l| l >= outputs) {
        Some(row) => Err(Error::invalid_data(
            path,
            format!("row {row}"),
            format!(
                "label {} but the model has {outputs} classes",
                data.labels()[row]
            ),
        )),
        None => Ok(()),
    }
}

/// Data rows feed a model with exactly one f32 input as wide as a row (`Standardizer::apply`
/// checks the checkpoint's standardizer, if any, against the rows).
pub(crate) fn check_model_input(architecture: &Architecture, data: &Dataset) -> Result<()> {
    if let [(name, _, dtype)] = architecture.graph.inputs()[..]
        && dtype != wgtrain::graph::DType::F32
    {
        return Err(bad_flag(format!(
            "the model's input {name:?} takes {dtype:?} indices (tokens); data files feed f32 features"
        )));
    }
    match architecture.graph.inputs()[..] {
        [(_, dims, _)] if data.fits_input(dims) => Ok(()),
        [(_, dims, _)] => Err(Error::ShapeMismatch {
            op: "model input vs data (features per sample)".into(),
            left: dims.to_vec(),
            right: data.sample_dims(),
        }),
        _ => Err(bad_flag(format!(
            "the model has {} inputs; data files feed models with exactly one",
            architecture.graph.inputs().len()
        ))),
    }
}

pub(crate) fn task(args: &DataArgs) -> Task {
    match args.task {
        TaskArg::Classify => Task::Classify,
        TaskArg::Regress => Task::Regress,
    }
}

/// Reads `path` as the data flags say: a CSV file, or the `split` half of an IDX directory.
pub(crate) fn load(args: &DataArgs, path: &Path, split: Split) -> Result<Dataset> {
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
pub(crate) fn is_csv(args: &DataArgs, path: &Path) -> bool {
    args.format == Some(Format::Csv)
        || (args.format.is_none() && path.extension().is_some_and(|e| e == "csv"))
}

/// A file written on the side and renamed into place on success; removed otherwise, so no
/// half-written output is ever left behind.
pub(crate) struct PendingFile {
    path: PathBuf,
    temp: PathBuf,
    file: Option<std::io::BufWriter<std::fs::File>>,
}

impl PendingFile {
    pub(crate) fn create(path: &Path) -> Result<Self> {
        let target = wgtrain::files::output_target(path)?;
        wgtrain::files::remove_stale_temps(&target);
        let temp = wgtrain::files::temp_path(&target);
        let file = std::fs::File::create(&temp).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self {
            path: target,
            temp,
            file: Some(std::io::BufWriter::new(file)),
        })
    }

    pub(crate) fn line(&mut self, text: &str) -> Result<()> {
        let io = |source| Error::Io {
            path: self.path.clone(),
            source,
        };
        match &mut self.file {
            Some(f) => writeln!(f, "{text}").map_err(io),
            None => Ok(()),
        }
    }

    pub(crate) fn commit(mut self) -> Result<()> {
        let flushed = match self.file.take() {
            Some(file) => file
                .into_inner()
                .map_err(|e| e.into_error())
                .and_then(|f| f.sync_all()),
            None => Ok(()),
        };
        let result = flushed.and_then(|()| std::fs::rename(&self.temp, &self.path));
        // A flush that failed (a full disk) leaves no temp file behind either.
        if result.is_err() {
            let _ = std::fs::remove_file(&self.temp);
        }
        result.map_err(|source| Error::Io {
            path: self.path.clone(),
            source,
        })
    }
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

pub(crate) fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| bad_flag(e.to_string()))?;
    wgtrain::files::write_atomically(path, text.as_bytes())
}

/// Prints and returns the metrics of `outputs` against `data`'s targets.
pub(crate) fn report_metrics(
    loss: Loss,
    data: &Dataset,
    outputs: &[f32],
    mean_loss: f64,
    label: &str,
) -> Result<serde_json::Value> {
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
        let m = ClassificationMetrics::new(&predicted, &data.labels(), classes)?;
        say(format_args!("{label}: loss {mean_loss:.4}\n{m}"));
        Ok(
            json!({"loss": mean_loss, "accuracy": m.accuracy, "precision": m.precision, "recall": m.recall, "f1": m.f1,
               "macro_precision": m.macro_precision, "macro_recall": m.macro_recall, "macro_f1": m.macro_f1,
               "confusion_matrix": m.confusion}),
        )
    } else {
        let m = RegressionMetrics::new(outputs, &data.targets)?;
        say(format_args!(
            "{label}: loss {mean_loss:.4}  MSE {:.6}  MAE {:.6}  R² {:.4}",
            m.mse, m.mae, m.r2
        ));
        Ok(json!({"loss": mean_loss, "mse": m.mse, "mae": m.mae, "r2": m.r2}))
    }
}

/// The most classes `eval` reports per-class metrics for.
const MAX_METRIC_CLASSES: usize = 4096;

/// A trainer holding a saved model, and the dataset prepared as the model was trained. The
/// targets are read as the model's loss needs them (class labels for cross-entropy, numbers
/// otherwise), whatever `--task` says; with `labels` false a CSV may also hold features only.
fn restore(
    model: &Path,
    data_args: &DataArgs,
    batch_size: usize,
    labels: bool,
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
    let loss = architecture.loss();
    let outputs = architecture.out_features();
    let path = &data_args.data;
    let mut data = if is_csv(data_args, path) {
        let task = if loss == Loss::CrossEntropy {
            Task::Classify
        } else {
            Task::Regress
        };
        let features = architecture.in_features().unwrap_or(0);
        if !labels && csv_columns(path)? == features {
            load_csv_features(path, if task == Task::Regress { outputs } else { 0 })?
        } else {
            if task == Task::Regress && outputs != 1 {
                return Err(bad_flag(format!(
                    "this model has {outputs} outputs; a CSV holds one target column"
                )));
            }
            load_csv(path, data_args.target.as_deref(), task)?
        }
    } else {
        if loss != Loss::CrossEntropy {
            return Err(bad_flag(format!(
                "IDX data holds class labels; this model was trained with {loss:?}"
            )));
        }
        load_mnist(path, Split::Test)?
    };
    check_model_input(&architecture, &data)?;
    // Metrics keep a classes × classes confusion matrix: 4096 classes is 128 MiB of it.
    if labels && loss == Loss::CrossEntropy && outputs > MAX_METRIC_CLASSES {
        return Err(bad_flag(format!(
            "the model has {outputs} classes; per-class metrics stop at {MAX_METRIC_CLASSES} (a confusion matrix of {outputs}² counts)"
        )));
    }
    if labels {
        check_labels(&architecture, path, &data)?;
    }
    if let Some(standardize) = &architecture.standardize {
        standardize.apply(&mut data)?;
    }
    let gpu = Gpu::new()?;
    let graph = architecture.graph.clone();
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
    let mut inputs = vec![("--model", args.model.clone())];
    inputs.extend(
        data_files(&args.data, &args.data.data)
            .into_iter()
            .map(|p| ("--data", p)),
    );
    let outputs: Vec<_> = args
        .metrics_json
        .iter()
        .map(|p| ("--metrics-json", p.as_path()))
        .collect();
    check_paths(&inputs, &outputs, &[])?;
    let (mut trainer, data, architecture) =
        restore(&args.model, &args.data, args.batch_size, true)?;
    let device = DeviceDataset::upload(trainer.gpu(), &data)?;
    let eval = trainer.evaluate(&device)?;
    let metrics = report_metrics(architecture.loss(), &data, &eval.outputs, eval.loss, "eval")?;
    if let Some(path) = &args.metrics_json {
        write_json(path, &metrics)?;
    }
    Ok(())
}

pub fn predict(args: &PredictArgs) -> Result<()> {
    let mut inputs = vec![("--model", args.model.clone())];
    inputs.extend(
        data_files(&args.data, &args.data.data)
            .into_iter()
            .map(|p| ("--data", p)),
    );
    check_paths(&inputs, &[("--out", &args.out)], &[])?;
    let (mut trainer, data, architecture) =
        restore(&args.model, &args.data, args.batch_size, false)?;
    let device = DeviceDataset::upload(trainer.gpu(), &data)?;
    let outputs = trainer.evaluate(&device)?.outputs;
    let width = architecture.out_features();
    let mut out = PendingFile::create(&args.out)?;
    if architecture.loss() == Loss::CrossEntropy {
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

/// Prints the prompt and its continuation, sampled as nanoGPT's `generate` does.
pub fn generate(args: &GenerateArgs) -> Result<()> {
    let gpu = Gpu::new()?;
    let mut trainer = Trainer::load_model(&gpu, &args.model)?;
    let vocabulary = trainer.vocabulary().cloned().ok_or_else(|| {
        Error::invalid_data(
            &args.model,
            "metadata.architecture.vocabulary",
            "missing: not a language model wgtrain trained (its characters are unknown)",
        )
    })?;
    let prompt = vocabulary.encode(&args.prompt)?;
    let sampling = Sampling {
        temperature: args.temperature,
        top_k: (args.top_k > 0).then_some(args.top_k),
        seed: args.seed,
    };
    let text = vocabulary.decode(&trainer.generate(&prompt, args.tokens, sampling)?)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}{text}", args.prompt).map_err(|e| Error::Io {
        path: PathBuf::from("<stdout>"),
        source: e,
    })
}

#[cfg(test)]
mod tests {
    use super::PendingFile;

    /// An output whose rename fails (here: a directory took its name meanwhile; a full disk
    /// fails the flush before it the same way) leaves no temp file behind.
    #[test]
    fn a_pending_file_that_cannot_be_committed_leaves_nothing_behind() {
        let dir = std::env::temp_dir().join(format!("wgtrain-pending-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let target = dir.join("steps.jsonl");
        let mut file = PendingFile::create(&target).expect("create");
        file.line("{}").expect("buffered");
        std::fs::create_dir_all(target.join("occupied")).expect("a directory in the way");
        let error = file.commit().expect_err("cannot replace a directory");
        assert!(error.to_string().contains("steps.jsonl"), "{error}");
        let left: Vec<_> = std::fs::read_dir(&dir)
            .expect("list")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("steps.jsonl")]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
