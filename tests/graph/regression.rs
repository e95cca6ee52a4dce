use wgtrain::data::{Dataset, DeviceDataset};
use wgtrain::graph::Weights;
use wgtrain::kernels::Activation;
use wgtrain::kernels::loss::Loss;
use wgtrain::nn::Sequential;
use wgtrain::optim::Optimizer;
use wgtrain::reference;
use wgtrain::train::{TrainConfig, Trainer};

use crate::common::*;

#[test]
fn linear_regression_reaches_the_least_squares_optimum() {
    let mut rng = rng("linear regression");
    let (rows, cols) = (500, 4);
    let x = rng.uniform(rows * cols, -1.7, 1.7); // ≈ unit variance: standardized features
    let noise = rng.uniform(rows, -0.5, 0.5);
    let truth = [1.5, -2.0, 0.5, 3.0];
    let y: Vec<f32> = (0..rows)
        .map(|r| (0..cols).map(|c| truth[c] * x[r * cols + c]).sum::<f32>() + 0.7 + noise[r])
        .collect();
    let beta = reference::least_squares(&f64s(&x), &f64s(&y), rows, cols);
    let optimum_mse = (0..rows)
        .map(|r| {
            let fit: f64 = (0..cols)
                .map(|c| beta[c] * f64::from(x[r * cols + c]))
                .sum::<f64>()
                + beta[cols];
            (fit - f64::from(y[r])).powi(2)
        })
        .sum::<f64>()
        / rows as f64;

    let model = Sequential::mlp(cols, &[], 1, Activation::Identity, 0.0, false);
    let graph = model.build(Loss::Mse).expect("valid");
    let weights = Weights::init(gpu(), &graph, 1).expect("weights");
    let config = TrainConfig {
        optimizer: Optimizer::sgd(0.1),
        batch_size: rows,
        shuffle: false,
        ..Default::default()
    };
    let mut trainer = Trainer::new(gpu(), graph, weights, config).expect("trainer");
    let data = DeviceDataset::upload(gpu(), &Dataset::regression(x, cols, y, 1).expect("dataset"))
        .expect("upload");
    for epoch in 0..200 {
        trainer.fit_epoch(&data, epoch, &mut |_| {}).expect("epoch");
    }
    let mse = trainer.evaluate(&data).expect("eval").loss;
    // Full-batch gradient descent on a convex quadratic converges geometrically; 200 steps at
    // lr 0.1 on unit-variance features leaves it far inside 1%.
    assert!(
        mse <= optimum_mse * 1.01,
        "gradient descent MSE {mse} vs least squares {optimum_mse}"
    );
    assert!(
        mse >= optimum_mse * (1.0 - 1e-4),
        "below the optimum? {mse} vs {optimum_mse}"
    );
}
