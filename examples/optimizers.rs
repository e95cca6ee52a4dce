//! The same model trained with each optimizer from the same initial weights: a table of final
//! loss and accuracy, and the loss curves in one SVG.
//!
//!     cargo run --release --example optimizers -- --epochs 3 --plot optimizers.svg
//!
//! In PyTorch terms: `nn.Sequential(Linear(784, 128), ReLU(), Linear(128, 10))` on the
//! bundled MNIST digits, `CrossEntropyLoss`, batches of 64, one run per `torch.optim` class.

use std::path::PathBuf;

use clap::Parser;
use wgtrain::data::{DeviceDataset, Split, load_mnist};
use wgtrain::graph::Weights;
use wgtrain::kernels::Activation;
use wgtrain::kernels::loss::Loss;
use wgtrain::nn::Sequential;
use wgtrain::optim::Optimizer;
use wgtrain::train::{ClassificationMetrics, TrainConfig, Trainer, plot_curves};
use wgtrain::{Gpu, Result};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "data/mnist-10k")]
    data_dir: PathBuf,
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    #[arg(long, default_value = "optimizers.svg")]
    plot: PathBuf,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let gpu = Gpu::new()?;
    let (train, test) = (
        load_mnist(&args.data_dir, Split::Train)?,
        load_mnist(&args.data_dir, Split::Test)?,
    );
    let (train_data, test_data) = (
        DeviceDataset::upload(&gpu, &train)?,
        DeviceDataset::upload(&gpu, &test)?,
    );
    let model = Sequential::mlp(784, &[128], 10, Activation::Relu, 0.0, false);

    // Learning rates in each optimizer's usual range for this problem.
    let runs = [
        ("SGD", Optimizer::sgd(0.1)),
        ("momentum", Optimizer::momentum(0.02, 0.9)),
        ("Nesterov", Optimizer::nesterov(0.02, 0.9)),
        ("AdaGrad", Optimizer::adagrad(0.02)),
        ("RMSProp", Optimizer::rmsprop(1e-3)),
        ("Adam", Optimizer::adam(1e-3)),
        ("AdamW", Optimizer::adamw(1e-3)),
    ];
    let mut curves = vec![];
    println!(
        "{:<10} {:>12} {:>12} {:>14}",
        "optimizer", "train loss", "test loss", "test accuracy"
    );
    for (name, optimizer) in runs {
        let graph = model.build(Loss::CrossEntropy)?;
        // The same seed gives every run the same initial weights and batch order.
        let weights = Weights::init(&gpu, &graph, 1)?;
        let config = TrainConfig {
            optimizer,
            seed: 1,
            ..TrainConfig::default()
        };
        let mut trainer = Trainer::new(&gpu, graph, weights, config)?;
        let mut losses = vec![];
        let mut last = 0.0;
        for epoch in 0..args.epochs {
            last = trainer.fit_epoch(&train_data, epoch, &mut |log| {
                losses.push(f64::from(log.loss))
            })?;
        }
        let eval = trainer.evaluate(&test_data)?;
        let predicted = ClassificationMetrics::argmax(&eval.outputs, 10);
        let accuracy = ClassificationMetrics::new(&predicted, &test.labels(), 10)?.accuracy;
        println!(
            "{name:<10} {last:>12.4} {:>12.4} {:>13.2}%",
            eval.loss,
            100.0 * accuracy
        );
        // A running mean over 20 steps keeps the curves readable.
        let smooth: Vec<(f64, f64)> = losses
            .windows(20)
            .enumerate()
            .map(|(i, w)| ((i + 20) as f64, w.iter().sum::<f64>() / 20.0))
            .collect();
        curves.push((name.to_string(), smooth));
    }
    plot_curves(
        &args.plot,
        "training loss, 784-128-10 MLP on MNIST",
        "step",
        &curves,
    )?;
    println!("\nloss curves: {}", args.plot.display());
    Ok(())
}
