//! House prices by gradient descent, checked against the closed-form least-squares fit.
//!
//!     cargo run --release --example linear_regression
//!
//! In PyTorch terms: `nn.Linear(4, 1)`, `MSELoss`, `SGD(lr=0.1)`, full-batch, on standardized
//! features. Gradient descent on this convex problem must land on the least-squares optimum.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use wgtrain::data::{Dataset, DeviceDataset, Standardizer};
use wgtrain::graph::Weights;
use wgtrain::kernels::Activation;
use wgtrain::kernels::loss::Loss;
use wgtrain::nn::Sequential;
use wgtrain::optim::Optimizer;
use wgtrain::train::{TrainConfig, Trainer};
use wgtrain::{Gpu, Result, reference};

const FEATURES: [&str; 4] = [
    "area (m²)",
    "rooms",
    "age (years)",
    "distance to centre (km)",
];

/// 1000 synthetic houses: price (k€) = 3·area + 12·rooms − 1.5·age − 8·distance + 50 + noise.
fn houses(rng: &mut StdRng) -> (Vec<f32>, Vec<f32>) {
    let mut x = vec![];
    let mut price = vec![];
    for _ in 0..1000 {
        let row = [
            rng.random_range(40.0..220.0),
            rng.random_range(1.0..7.0f32).round(),
            rng.random_range(0.0..80.0),
            rng.random_range(0.5..25.0),
        ];
        let noise: f32 = rng.random_range(-30.0..30.0);
        price.push(3.0 * row[0] + 12.0 * row[1] - 1.5 * row[2] - 8.0 * row[3] + 50.0 + noise);
        x.extend(row);
    }
    (x, price)
}

fn main() -> Result<()> {
    let gpu = Gpu::new()?;
    let (x, price) = houses(&mut StdRng::seed_from_u64(42));
    let mut data = Dataset::regression(x, 4, price.clone(), 1)?;
    // Gradient descent converges fastest on z-scored features (a round loss surface).
    Standardizer::fit(&data).apply(&mut data)?;

    let graph = Sequential::mlp(4, &[], 1, Activation::Identity, 0.0, false).build(Loss::Mse)?;
    let weights = Weights::init(&gpu, &graph, 0)?;
    let config = TrainConfig {
        optimizer: Optimizer::sgd(0.1),
        batch_size: data.rows,
        shuffle: false,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(&gpu, graph, weights, config)?;
    let device = DeviceDataset::upload(&gpu, &data)?;
    for epoch in 0..300 {
        let mse = trainer.fit_epoch(&device, epoch, &mut |_| {})?;
        if epoch % 50 == 0 {
            println!("step {epoch:>3}  MSE {mse:>10.3}");
        }
    }
    let mse = trainer.evaluate(&device)?.loss;

    // The closed form on the same standardized features, in f64.
    let z: Vec<f64> = (0..data.rows)
        .flat_map(|r| data.row(r))
        .map(f64::from)
        .collect();
    let y: Vec<f64> = price.iter().map(|&p| f64::from(p)).collect();
    let beta = reference::least_squares(&z, &y, data.rows, 4);
    let optimum: f64 = (0..data.rows)
        .map(|r| ((0..4).map(|c| beta[c] * z[r * 4 + c]).sum::<f64>() + beta[4] - y[r]).powi(2))
        .sum::<f64>()
        / data.rows as f64;

    let learned = trainer.weights().read_params(&gpu)?;
    println!(
        "\n{:<26} {:>14} {:>14}",
        "coefficient (standardized)", "gradient descent", "least squares"
    );
    for (c, name) in FEATURES.iter().enumerate() {
        println!("{name:<26} {:>14.4} {:>14.4}", learned[0][c], beta[c]);
    }
    println!(
        "{:<26} {:>14.4} {:>14.4}",
        "intercept", learned[1][0], beta[4]
    );
    println!(
        "\nMSE: gradient descent {mse:.4}, least squares {optimum:.4} ({:+.4}%)",
        100.0 * (mse / optimum - 1.0)
    );
    Ok(())
}
