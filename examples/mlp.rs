//! Train a multi-layer perceptron on the bundled MNIST digits and report test metrics.
//!
//!     cargo run --release --example mlp
//!     cargo run --release --example mlp -- --data-dir ~/mnist --epochs 20 --optimizer sgd --lr 0.05
//!
//! In PyTorch terms: `nn.Sequential(Linear(784, 512), ReLU(), Dropout(0.2), Linear(512, 256),
//! ReLU(), Dropout(0.2), Linear(256, 10))`, `CrossEntropyLoss`, `Adam(lr=1e-3)`, batches of 64,
//! with every image shifted by up to ±2 pixels (seeded, on the GPU) as augmentation.
//!
//! Data-parallel on two processes (a build with `--features mpi`; see the README):
//!
//!     mpirun -np 2 target/release/examples/mlp --batch-size 32

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use wgtrain::data::{DeviceDataset, Split, load_mnist};
use wgtrain::dist::{self, Communicator};
use wgtrain::graph::Weights;
use wgtrain::kernels::Activation;
use wgtrain::kernels::loss::Loss;
use wgtrain::nn::Sequential;
use wgtrain::optim::Optimizer;
use wgtrain::train::{ClassificationMetrics, EpochProgress, TrainConfig, Trainer, say};
use wgtrain::{Gpu, Result};

#[derive(Parser)]
struct Args {
    /// A directory with MNIST's four files (`train-images-idx3-ubyte[.gz]`, ...).
    #[arg(long, default_value = "data/mnist-10k")]
    data_dir: PathBuf,
    #[arg(long, default_value_t = 12)]
    epochs: usize,
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    #[arg(long, default_value_t = 1e-3)]
    lr: f32,
    /// sgd, momentum, nesterov, adagrad, rmsprop, adam or adamw
    #[arg(long, default_value = "adam")]
    optimizer: String,
    /// Hidden layer widths.
    #[arg(long, value_delimiter = ',', default_value = "512,256")]
    hidden: Vec<usize>,
    #[arg(long, default_value_t = 0.2)]
    dropout: f32,
    /// Random shifts of up to ± this many pixels (0 turns augmentation off).
    #[arg(long, default_value_t = 2)]
    shift: u32,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// Under `mpirun -np N` each process trains as one rank of a data-parallel job (`--batch-size`
/// per rank) and rank 0 alone prints.
fn main() -> ExitCode {
    let args = Args::parse();
    dist::run_as_rank(|comm| run(args, comm))
}

fn run(args: Args, comm: &Arc<dyn Communicator>) -> Result<()> {
    let gpu = Gpu::new()?;
    say(format_args!(
        "adapter: {} ({:?}), rank {} of {}",
        gpu.adapter_info().name,
        gpu.adapter_info().backend,
        comm.rank(),
        comm.size()
    ));

    // Pixels stay bytes on the GPU (4× less memory) and are scaled to [0, 1] when gathered.
    let train = load_mnist(&args.data_dir, Split::Train)?;
    let test = load_mnist(&args.data_dir, Split::Test)?;
    say(format_args!(
        "data: {} training and {} test images from {}",
        train.rows,
        test.rows,
        args.data_dir.display()
    ));

    let model = Sequential::mlp(784, &args.hidden, 10, Activation::Relu, args.dropout, false);
    let graph = model.build(Loss::CrossEntropy)?;
    let weights = Weights::init(&gpu, &graph, args.seed)?;
    let config = TrainConfig {
        optimizer: Optimizer::from_name(&args.optimizer, args.lr, 0.9, 0.0)?,
        batch_size: args.batch_size,
        augment_shift: args.shift,
        seed: args.seed,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(&gpu, graph, weights, config)?;
    trainer.set_communicator(Arc::clone(comm))?;
    let train = DeviceDataset::upload(&gpu, &train)?;
    let test_data = DeviceDataset::upload(&gpu, &test)?;

    let steps = trainer.epoch_batches(train.rows()).len();
    for epoch in 0..args.epochs {
        let mut progress = EpochProgress::new(epoch, args.epochs, steps);
        let loss = trainer.fit_epoch(&train, epoch, &mut |log| progress.step(log))?;
        let eval = trainer.evaluate(&test_data)?;
        let accuracy = accuracy(&eval.outputs, &test.targets);
        progress.finish(
            loss,
            &format!(
                "  test loss {:.4}  test accuracy {:.2}%",
                eval.loss,
                100.0 * accuracy
            ),
        );
    }

    let eval = trainer.evaluate(&test_data)?;
    let predicted = ClassificationMetrics::argmax(&eval.outputs, 10);
    let actual: Vec<usize> = test.targets.iter().map(|&t| t as usize).collect();
    say(format_args!(
        "\ntest set ({} images)\n{}",
        test.rows,
        ClassificationMetrics::new(&predicted, &actual, 10)?
    ));
    Ok(())
}

fn accuracy(outputs: &[f32], labels: &[f32]) -> f64 {
    let predicted = ClassificationMetrics::argmax(outputs, 10);
    let correct = predicted
        .iter()
        .zip(labels)
        .filter(|(p, l)| **p == **l as usize)
        .count();
    correct as f64 / labels.len().max(1) as f64
}
