//! wgtrain from another program, through the prelude alone: train, lower the learning rate
//! mid-run, save, load into a fresh trainer, and predict the same outputs.
//!
//!     cargo run --release --example library
//!
//! The task: two features, the class says whether x·y > 0 (not linearly separable). The model
//! is `nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 2))` with Adam.

use std::process::ExitCode;

use wgtrain::prelude::*;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let gpu = Gpu::new()?;
    let points: Vec<f32> = (0..400)
        .flat_map(|i| [(i % 20) as f32 / 9.5 - 1.0, (i / 20) as f32 / 9.5 - 1.0])
        .collect();
    let labels: Vec<u32> = points
        .chunks(2)
        .map(|p| u32::from(p[0] * p[1] > 0.0))
        .collect();
    let data = DeviceDataset::upload(&gpu, &Dataset::classification(points.clone(), 2, labels)?)?;

    let model = Sequential::new(2).linear(32).relu().linear(2);
    let config = TrainConfig {
        optimizer: Optimizer::adam(0.02),
        batch_size: 32,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::for_model(&gpu, &model, Loss::CrossEntropy, config)?;
    for epoch in 0..60 {
        // As `param_group['lr'] = ...`: the optimizer keeps its moments.
        if epoch == 40 {
            trainer.set_lr(0.002)?;
        }
        let loss = trainer.fit_epoch(&data, epoch, &mut |_| {})?;
        if epoch % 20 == 19 {
            println!(
                "epoch {:>2}  loss {loss:.4}  lr {}",
                epoch + 1,
                trainer.config().optimizer.lr()
            );
        }
    }

    let path = std::env::temp_dir().join("wgtrain-library-example.safetensors");
    trainer.save(&path)?;
    let mut loaded = Trainer::load(&gpu, &path)?;
    let _ = std::fs::remove_file(&path);

    // Four new points, no labels needed.
    let rows = [0.5, 0.5, -0.5, 0.5, -0.5, -0.5, 0.5, -0.5];
    let before = trainer.predict(&rows)?;
    let after = loaded.predict(&rows)?;
    println!(
        "classes of (±0.5, ±0.5): {:?}",
        loaded.predict_classes(&rows)?
    );
    if before != after {
        return Err(Error::InvalidArgument(
            "the loaded trainer predicts differently".into(),
        ));
    }
    println!(
        "saved, loaded and predicted the same outputs ({} values)",
        after.len()
    );
    Ok(())
}
