//! A residual MLP on the bundled MNIST digits through the functional graph API, trained,
//! saved, reloaded from its checkpoint and evaluated again to the same predictions.
//!
//!     cargo run --release --example residual
//!     cargo run --release --example residual -- --blocks 4 --width 512 --epochs 20
//!
//! In PyTorch terms (`wgtrain::nn::models::residual_mlp` builds exactly this):
//!
//! ```text
//! x = stem(x)                                          # nn.Linear(784, width)
//! for block in blocks:                                 # nn.ModuleList, blocks.{i}
//!     x = x + dropout(block.fc2(relu(block.fc1(block.ln(x)))))
//! logits = head(norm(x))                               # nn.LayerNorm, nn.Linear(width, 10)
//! ```
//!
//! with `CrossEntropyLoss`, `Adam(lr=1e-3)` with `CosineAnnealingLR` over the run, batches of
//! 64 and random ±2 px shifts. The
//! checkpoint holds the graph itself, so reloading needs no code that knows the model.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use wgtrain::data::{DeviceDataset, Split, load_mnist};
use wgtrain::graph::Graph;
use wgtrain::nn::models::residual_mlp;
use wgtrain::optim::{Optimizer, Schedule};
use wgtrain::train::checkpoint::{self, Architecture, TrainingState};
use wgtrain::train::{ClassificationMetrics, EpochProgress, TrainConfig, Trainer};
use wgtrain::{Error, Gpu, Result};

#[derive(Parser)]
struct Args {
    /// A directory with MNIST's four files (`train-images-idx3-ubyte[.gz]`, ...).
    #[arg(long, default_value = "data/mnist-10k")]
    data_dir: PathBuf,
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    #[arg(long, default_value_t = 1e-3)]
    lr: f32,
    #[arg(long, default_value_t = 256)]
    width: usize,
    #[arg(long, default_value_t = 2)]
    blocks: usize,
    #[arg(long, default_value_t = 0.1)]
    dropout: f32,
    /// Where the checkpoint goes (safetensors, PyTorch names: `blocks.0.fc1.weight`, ...).
    #[arg(long, default_value = "target/residual.safetensors")]
    save: PathBuf,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<()> {
    let gpu = Gpu::new()?;
    println!(
        "adapter: {} ({:?})",
        gpu.adapter_info().name,
        gpu.adapter_info().backend
    );
    let train = load_mnist(&args.data_dir, Split::Train)?;
    let test = load_mnist(&args.data_dir, Split::Test)?;

    let graph = residual_mlp(784, args.width, args.blocks, 10, args.dropout)?;
    let parameters: usize = graph.params().iter().map(|p| p.len()).sum();
    println!(
        "model: residual MLP, {} blocks of width {}, {parameters} parameters",
        args.blocks, args.width
    );
    let steps = train.rows.div_ceil(args.batch_size);
    let config = TrainConfig {
        optimizer: Optimizer::adam(args.lr),
        // CosineAnnealingLR over the whole run: the last epochs settle instead of bouncing.
        schedule: Schedule::Cosine {
            total_steps: (steps * args.epochs) as u64,
            min_lr: 0.0,
        },
        batch_size: args.batch_size,
        augment_shift: 2,
        seed: args.seed,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::for_graph(&gpu, graph.clone(), config)?;
    let train_data = DeviceDataset::upload(&gpu, &train)?;
    let test_data = DeviceDataset::upload(&gpu, &test)?;

    for epoch in 0..args.epochs {
        let mut progress = EpochProgress::new(epoch, args.epochs, steps);
        let loss = trainer.fit_epoch(&train_data, epoch, &mut |log| progress.step(log))?;
        let eval = trainer.evaluate(&test_data)?;
        let accuracy =
            ClassificationMetrics::from_outputs(&eval.outputs, &test.targets, 10)?.accuracy;
        progress.finish(
            loss,
            &format!(
                "  test loss {:.4}  test accuracy {:.2}%",
                eval.loss,
                100.0 * accuracy
            ),
        );
    }
    let before = trainer.evaluate(&test_data)?;

    // Save, then rebuild everything from the file alone: graph, weights, predictions.
    let architecture = Architecture {
        graph,
        standardize: None,
        vocabulary: None,
    };
    let state = TrainingState {
        epoch: args.epochs,
        batch: 0,
        ranks: trainer.communicator().size(),
        step: trainer.step(),
        seed: args.seed,
        optimizer: trainer.config().optimizer,
        run: None,
    };
    if let Some(dir) = args.save.parent() {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    checkpoint::save(&args.save, &trainer, &architecture, &state)?;
    let saved = checkpoint::load(&args.save)?;
    let graph: Graph = saved
        .architecture
        .clone()
        .map(|a| a.graph)
        .ok_or_else(|| Error::InvalidArgument("the checkpoint lost its architecture".into()))?;
    let mut reloaded = Trainer::for_graph(&gpu, graph, TrainConfig::default())?;
    saved.load_weights(&mut reloaded)?;
    let after = reloaded.evaluate(&test_data)?;
    let same = before.outputs == after.outputs;
    println!(
        "\nsaved {} and reloaded it: {} outputs on the {} test images",
        args.save.display(),
        if same { "bit-identical" } else { "DIFFERENT" },
        test.rows
    );
    if !same {
        return Err(Error::InvalidArgument(
            "the reloaded model predicts differently".into(),
        ));
    }
    let metrics = ClassificationMetrics::from_outputs(&after.outputs, &test.targets, 10)?;
    println!("\ntest set ({} images)\n{metrics}", test.rows);
    Ok(())
}
