//! The library in one call each: predict on host rows, save a trainer and load it back to
//! continue exactly.

#[path = "common/mod.rs"]
mod common;

use wgtrain::data::{Dataset, DeviceDataset};
use wgtrain::kernels::Activation;
use wgtrain::kernels::loss::Loss;
use wgtrain::nn::Sequential;
use wgtrain::optim::Optimizer;
use wgtrain::train::{TrainConfig, Trainer};

use common::*;

#[test]
fn a_saved_trainer_loads_to_the_same_predictions_and_the_same_next_steps() {
    let mut rng = rng("save and load");
    // Dropout and Adam: the dropout key (seed, step) and the moments must come back too.
    let model = Sequential::mlp(5, &[12], 3, Activation::Relu, 0.3, false);
    let config = TrainConfig {
        optimizer: Optimizer::adam(0.01),
        seed: 9,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::for_model(gpu(), &model, Loss::CrossEntropy, config).expect("new");
    let batches: Vec<(Vec<f32>, Vec<f32>)> = (0..5)
        .map(|_| (rng.uniform(16 * 5, -1.0, 1.0), rng.below(16, 3)))
        .collect();
    for (x, y) in &batches[..3] {
        trainer.train_batch(x, y).expect("step");
    }
    let path = std::env::temp_dir().join(format!("wgtrain-library-{}.safetensors", rng.seed));
    trainer.save(&path).expect("save");
    let mut loaded = Trainer::load(gpu(), &path).expect("load");
    let _ = std::fs::remove_file(&path);
    assert_eq!(loaded.step, 3);

    let rows = rng.uniform(7 * 5, -1.0, 1.0);
    let before = trainer.predict(&rows).expect("predict");
    assert_eq!(before.len(), 7 * 3);
    assert_eq!(
        loaded.predict(&rows).expect("predict"),
        before,
        "bit-identical"
    );
    for (x, y) in &batches[3..] {
        let (a, b) = (
            trainer.train_batch(x, y).expect("step"),
            loaded.train_batch(x, y).expect("step"),
        );
        assert_eq!(a.to_bits(), b.to_bits(), "the same next step");
    }
    assert_eq!(
        trainer.weights().read_params(gpu()).expect("read"),
        loaded.weights().read_params(gpu()).expect("read")
    );
}

#[test]
fn predict_needs_no_labels_and_checks_its_rows() {
    let mut rng = rng("predict");
    let model = Sequential::mlp(4, &[6], 3, Activation::Tanh, 0.0, false);
    let mut trainer =
        Trainer::for_model(gpu(), &model, Loss::CrossEntropy, TrainConfig::default()).expect("new");
    let rows = rng.uniform(10 * 4, -1.0, 1.0);
    // The same outputs as evaluating a labelled set of those rows.
    let labelled = Dataset::classification(rows.clone(), 4, vec![1; 10]).expect("data");
    let device = DeviceDataset::upload(gpu(), &labelled).expect("upload");
    let want = trainer.evaluate(&device).expect("evaluate").outputs;
    assert_eq!(trainer.predict(&rows).expect("predict"), want);
    let classes = trainer.predict_classes(&rows).expect("classes");
    assert_eq!(classes.len(), 10);
    assert!(classes.iter().all(|&c| c < 3));

    assert!(trainer.predict(&rows[..7]).is_err(), "not a whole row");
    assert!(trainer.predict(&[]).is_err(), "no rows");
    let mut bad = rows.clone();
    bad[13] = f32::NAN;
    assert!(trainer.predict(&bad).is_err(), "a NaN feature");
}
