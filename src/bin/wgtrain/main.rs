//! The `wgtrain` command-line program: info, train, eval, predict, bench.

mod commands;
mod flags;
mod signals;
mod train;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "wgtrain",
    version,
    about = "Train neural networks on any GPU through wgpu"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Time every matmul shape again instead of reading and writing the autotune cache
    /// (`~/.cache/wgtrain/autotune.json`, or under `$WGTRAIN_CACHE_DIR` / `$XDG_CACHE_HOME`).
    #[arg(long, global = true)]
    no_cache: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Print the GPU adapter wgtrain picks, its backend, driver, features and limits.
    Info,
    /// Train a model on IDX or CSV data.
    Train(Box<TrainArgs>),
    /// Evaluate a saved model on a dataset.
    Eval(EvalArgs),
    /// Write a saved model's predictions for a dataset as CSV.
    Predict(PredictArgs),
    /// Continue a prompt with a saved language model (`cargo run --example gpt -- --save`).
    Generate(GenerateArgs),
    /// Run the benchmark suite (see BENCH.md).
    Bench(wgtrain::bench::BenchArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    Idx,
    Csv,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum TaskArg {
    Classify,
    Regress,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum LossArg {
    CrossEntropy,
    Mse,
    Bce,
    Huber,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ScheduleArg {
    Constant,
    Step,
    Exp,
    Cosine,
}

/// Where data comes from and how to read it.
#[derive(Args, Clone)]
struct DataArgs {
    /// A CSV file, or a directory of MNIST-style IDX files.
    #[arg(long)]
    data: PathBuf,
    /// Default: csv for *.csv, else idx.
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// The CSV target column (default: the last).
    #[arg(long)]
    target: Option<String>,
    #[arg(long, value_enum, default_value = "classify")]
    task: TaskArg,
}

#[derive(Args)]
struct TrainArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Test data (CSV file or IDX directory); for IDX the default is `--data`'s t10k files.
    #[arg(long)]
    test: Option<PathBuf>,
    /// Hold out this fraction of the training rows for validation.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    val_split: f64,
    /// Stop when the validation loss has not improved for this many epochs (needs
    /// --val-split).
    #[arg(long)]
    patience: Option<usize>,
    /// Hidden layer widths; "" or "none" for a linear / logistic model.
    #[arg(long, default_value = "256,128", conflicts_with = "resume")]
    layers: String,
    /// Train the graph in this JSON file (the format of `examples/models/*.json` and of a
    /// checkpoint's architecture) instead of an MLP from --layers.
    #[arg(long, conflicts_with = "resume")]
    model: Option<PathBuf>,
    #[arg(long, default_value = "relu", conflicts_with = "resume")]
    activation: String,
    #[arg(
        long,
        default_value_t = 0.0,
        conflicts_with = "resume",
        allow_negative_numbers = true
    )]
    dropout: f32,
    #[arg(long, conflicts_with = "resume")]
    batchnorm: bool,
    /// Default: cross-entropy to classify, mse to regress.
    #[arg(long, value_enum, conflicts_with = "resume")]
    loss: Option<LossArg>,
    #[arg(long, default_value = "adam", conflicts_with = "resume")]
    optimizer: String,
    #[arg(
        long,
        default_value_t = 1e-3,
        conflicts_with = "resume",
        allow_negative_numbers = true
    )]
    lr: f32,
    #[arg(
        long,
        default_value_t = 0.9,
        conflicts_with = "resume",
        allow_negative_numbers = true
    )]
    momentum: f32,
    #[arg(
        long,
        default_value_t = 0.0,
        conflicts_with = "resume",
        allow_negative_numbers = true
    )]
    weight_decay: f32,
    #[arg(
        long,
        default_value_t = 0.0,
        conflicts_with = "resume",
        allow_negative_numbers = true
    )]
    l1: f32,
    #[arg(long, conflicts_with = "resume", allow_negative_numbers = true)]
    clip_norm: Option<f32>,
    /// step: ×0.1 every 10 epochs; exp: ×0.95 per epoch; cosine: to 0 over the run.
    #[arg(
        long,
        value_enum,
        default_value = "constant",
        conflicts_with = "resume"
    )]
    schedule: ScheduleArg,
    /// Steps of linear learning-rate warm-up.
    #[arg(long, default_value_t = 0, conflicts_with = "resume")]
    warmup: u64,
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    #[arg(long, default_value_t = 64, conflicts_with = "resume")]
    batch_size: usize,
    #[arg(long, default_value_t = 0, conflicts_with = "resume")]
    seed: u64,
    /// Feed batches in file order (the last partial batch included).
    #[arg(long, conflicts_with = "resume")]
    no_shuffle: bool,
    /// z-score features with the training set's mean and population std.
    #[arg(long, conflicts_with = "resume")]
    standardize: bool,
    /// Initial weights from a safetensors file (PyTorch names and layouts).
    #[arg(long, conflicts_with = "resume")]
    init: Option<PathBuf>,
    /// Save the model and training state here after every epoch (atomically).
    #[arg(long)]
    save: Option<PathBuf>,
    /// Also save every N optimizer steps (0: only after each epoch).
    #[arg(long, default_value_t = 0)]
    save_every: usize,
    /// Skip (and log) steps whose loss or gradient is not finite instead of stopping.
    #[arg(long)]
    skip_nonfinite: bool,
    /// Continue the run saved in this checkpoint, up to --epochs in total. The model,
    /// optimizer, schedule, batch size, seed and standardisation come from the checkpoint:
    /// the flags that set them are refused alongside --resume.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// One JSON line per optimizer step: {"epoch":E,"step":S,"loss":L,"lr":LR}.
    #[arg(long)]
    log_steps: Option<PathBuf>,
    #[arg(long)]
    metrics_json: Option<PathBuf>,
    /// Loss curves as SVG.
    #[arg(long)]
    plot: Option<PathBuf>,
}

#[derive(Args)]
struct EvalArgs {
    #[arg(long)]
    model: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    #[arg(long, default_value_t = 256)]
    batch_size: usize,
    #[arg(long)]
    metrics_json: Option<PathBuf>,
}

#[derive(Args)]
struct PredictArgs {
    #[arg(long)]
    model: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 256)]
    batch_size: usize,
}

#[derive(Args)]
struct GenerateArgs {
    /// A language model: a model file or checkpoint that keeps its vocabulary.
    #[arg(long)]
    model: PathBuf,
    /// The text to continue; every character must be in the model's vocabulary.
    #[arg(long)]
    prompt: String,
    /// Characters to generate.
    #[arg(long, default_value_t = 200)]
    tokens: usize,
    /// Divides the logits: below 1 sharper, above 1 more random, 0 always the likeliest.
    #[arg(long, default_value_t = 0.8)]
    temperature: f32,
    /// Draw only among the k likeliest characters (0: among all).
    #[arg(long, default_value_t = 40)]
    top_k: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// Mesa's Vulkan drivers (lavapipe included) print "error: XDG_RUNTIME_DIR is invalid or not
/// set in the environment." twice when the variable is missing, as on a server without a
/// desktop login, though compute never uses it. A newcomer reads that as wgtrain failing:
/// point it at the temp directory first.
fn quiet_mesa_runtime_dir_warning() {
    #[cfg(unix)]
    if std::env::var_os("XDG_RUNTIME_DIR").is_none_or(|dir| !std::path::Path::new(&dir).is_dir()) {
        // SAFETY: called first thing in main, before any other thread exists, so nothing
        // reads the environment concurrently.
        unsafe { std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir()) };
    }
}

fn main() -> ExitCode {
    quiet_mesa_runtime_dir_warning();
    let cli = Cli::parse();
    if cli.no_cache {
        wgtrain::gpu::autotune::disable_disk_cache();
    }
    // Only training polls for signals between steps; the other commands are short, or (bench)
    // should stop at once, so they keep the default: a signal ends them, and any temp file
    // they leave is removed by the next write beside it.
    if matches!(cli.command, Command::Train(_)) {
        signals::install();
    }
    // Under `mpirun`, training is one rank of a data-parallel job (`wgtrain::dist`).
    let comm = match &cli.command {
        Command::Train(_) => match wgtrain::dist::from_env() {
            Ok(comm) => Some(comm),
            Err(error) => {
                wgtrain::train::warn(format_args!("error: {error}"));
                return ExitCode::FAILURE;
            }
        },
        _ => None,
    };
    let result = match cli.command {
        Command::Info => commands::info(),
        Command::Train(args) => match &comm {
            Some(comm) => train::train(&args, comm),
            None => unreachable!("training has a communicator"),
        },
        Command::Eval(args) => commands::eval(&args),
        Command::Predict(args) => commands::predict(&args),
        Command::Generate(args) => commands::generate(&args),
        Command::Bench(args) => wgtrain::bench::run(&args).map(|_| ()),
    };
    // A run that finished while a signal was pending still reports the interruption.
    let result = match (result, signals::received()) {
        (Ok(()), Some(signal)) => Err(wgtrain::Error::Interrupted {
            signal,
            detail: "the command had finished; its outputs are complete".into(),
        }),
        (result, _) => result,
    };
    wgtrain::dist::exit_code(comm.as_deref(), result)
}
