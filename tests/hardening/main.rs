//! Hardening: determinism, limits, a lost device, bounded memory.

#[path = "../common/mod.rs"]
mod common;

use wgtrain::data::{Dataset, DeviceDataset};
use wgtrain::graph::Weights;
use wgtrain::kernels::Activation;
use wgtrain::kernels::loss::Loss;
use wgtrain::nn::Sequential;
use wgtrain::train::{TrainConfig, Trainer};
use wgtrain::{Error, Gpu};

use common::*;

fn small_problem(rng: &mut Rand, rows: usize) -> Dataset {
    Dataset::classification(
        rng.uniform(rows * 6, -1.0, 1.0),
        6,
        rng.below(rows, 3).iter().map(|&l| l as u32).collect(),
    )
    .expect("dataset")
}

fn trainer(gpu: &Gpu, model: &Sequential, seed: u64) -> Trainer {
    let graph = model.build(Loss::CrossEntropy).expect("valid");
    let weights = Weights::init(gpu, &graph, seed).expect("weights");
    let config = TrainConfig {
        batch_size: 16,
        seed,
        ..TrainConfig::default()
    };
    Trainer::new(gpu, graph, weights, config).expect("trainer")
}

#[test]
fn the_same_seed_gives_bit_identical_losses_and_weights() {
    let mut rng = rng("determinism");
    let data = DeviceDataset::upload(gpu(), &small_problem(&mut rng, 100)).expect("upload");
    // Dropout and BatchNorm included: their randomness and reductions must replay exactly.
    let model = Sequential::mlp(6, &[16, 8], 3, Activation::Gelu, 0.2, true);
    let run = || {
        let mut t = trainer(gpu(), &model, 11);
        let mut losses = vec![];
        for epoch in 0..3 {
            t.fit_epoch(&data, epoch, &mut |log| losses.push(log.loss.to_bits()))
                .expect("epoch");
        }
        let weights: Vec<u32> = t
            .weights()
            .read_params(gpu())
            .expect("read")
            .concat()
            .iter()
            .map(|v| v.to_bits())
            .collect();
        (losses, weights)
    };
    let (first, second) = (run(), run());
    assert_eq!(first.0.len(), 21);
    assert_eq!(first, second, "same seed, same adapter: same bits");
}

#[test]
fn a_model_over_the_adapter_limit_is_refused_before_any_gpu_work() {
    let allowed = gpu().max_binding_bytes();
    // One weight matrix one row larger than a binding can hold.
    let width = (allowed / (4 * 64)) as usize + 1;
    let graph = Sequential::mlp(64, &[width], 2, Activation::Relu, 0.0, false)
        .build(Loss::CrossEntropy)
        .expect("valid");
    let before = gpu().pool_stats();
    match Weights::init(gpu(), &graph, 0) {
        Err(Error::OverLimit {
            requested,
            allowed: limit,
            ..
        }) => {
            assert!(requested > limit, "{requested} vs {limit}");
            assert_eq!(limit, allowed);
        }
        other => panic!("expected OverLimit, got {:?}", other.err()),
    }
    assert_eq!(gpu().pool_stats(), before, "nothing was allocated");

    // A batch too large for the activations: refused when the plan is compiled.
    let graph = Sequential::mlp(64, &[256], 2, Activation::Relu, 0.0, false)
        .build(Loss::CrossEntropy)
        .expect("valid");
    let weights = Weights::init(gpu(), &graph, 0).expect("small weights fit");
    let mut t = Trainer::new(gpu(), graph, weights, TrainConfig::default()).expect("trainer");
    let batch = (allowed / (4 * 256)) as usize + 1;
    let error = t
        .plan(batch, wgtrain::graph::Mode::Train)
        .expect_err("too large a batch");
    assert!(matches!(error, Error::OverLimit { .. }), "{error}");
    assert!(
        error
            .to_string()
            .contains("bytes but the adapter allows at most"),
        "{error}"
    );

    // A submission too long for its step ring: refused before the ring is created. Created,
    // it failed wgpu's validation out of band, and the next unrelated call reported it.
    let graph = Sequential::mlp(64, &[8], 2, Activation::Relu, 0.0, false)
        .build(Loss::CrossEntropy)
        .expect("valid");
    let config = TrainConfig {
        steps_per_submit: 1 << 30,
        ..TrainConfig::default()
    };
    let error = Trainer::for_graph(gpu(), graph.clone(), config)
        .map(|_| ())
        .expect_err("a 256 GiB step ring");
    assert!(error.to_string().contains("step ring"), "{error}");
    let mut next = Trainer::for_graph(gpu(), graph, TrainConfig::default()).expect("trainer");
    next.train_batch(&vec![0.5; 64], &[1.0])
        .expect("no error left behind for the next caller");
}

#[test]
fn a_destroyed_device_reports_device_lost_instead_of_hanging() {
    let gpu = Gpu::new().expect("adapter");
    let mut rng = rng("device lost");
    let model = Sequential::mlp(6, &[8], 3, Activation::Relu, 0.0, false);
    let mut t = trainer(&gpu, &model, 1);
    let (x, y) = (rng.uniform(16 * 6, -1.0, 1.0), rng.below(16, 3));
    t.train_batch(&x, &y).expect("a healthy step");
    gpu.device().destroy();
    let started = std::time::Instant::now();
    let error = t.train_batch(&x, &y).expect_err("the device is gone");
    eprintln!("after destroy: {error}");
    assert!(matches!(error, Error::DeviceLost(_)), "{error}");
    assert!(started.elapsed().as_secs() < 30, "reported, not hung");
}

#[test]
fn a_streamed_dataset_trains_exactly_like_a_resident_one() {
    let mut rng = rng("streaming");
    // 6×6 byte images, so the u8 path and shift augmentation run too; 90 rows: a partial batch.
    let (rows, side) = (90, 6);
    let bytes: Vec<u8> = rng
        .uniform(rows * side * side, 0.0, 255.0)
        .iter()
        .map(|&v| v as u8)
        .collect();
    let labels: Vec<f32> = rng.below(rows, 3);
    let mut data = Dataset::new(
        wgtrain::data::Features::U8 {
            bytes,
            scale: 1.0 / 255.0,
        },
        side * side,
        labels,
        0,
    )
    .expect("dataset");
    data.image = Some((side, side));
    let model = Sequential::mlp(side * side, &[12], 3, Activation::Relu, 0.1, false);
    let run = |streamed: bool| {
        let device = if streamed {
            DeviceDataset::streamed(&data)
        } else {
            DeviceDataset::upload(gpu(), &data)
        }
        .expect("dataset");
        assert_eq!(device.is_streamed(), streamed);
        let config = TrainConfig {
            batch_size: 16,
            seed: 4,
            augment_shift: 1,
            steps_per_submit: 4,
            ..TrainConfig::default()
        };
        let mut t = Trainer::for_model(gpu(), &model, Loss::CrossEntropy, config).expect("trainer");
        let mut losses = vec![];
        for epoch in 0..3 {
            t.fit_epoch(&device, epoch, &mut |log| losses.push(log.loss.to_bits()))
                .expect("epoch");
        }
        let eval = t.evaluate(&device).expect("eval");
        (
            losses,
            eval.outputs.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        )
    };
    let (resident, streamed) = (run(false), run(true));
    assert_eq!(resident.0.len(), 18);
    assert_eq!(
        resident, streamed,
        "the same batches, bit for bit, by either path"
    );
}

#[test]
fn data_is_checked_where_it_enters() {
    // A NaN feature, from the library as from a file, is refused naming its row and column.
    let error = Dataset::classification(vec![0.0, 1.0, f32::NAN, 2.0], 2, vec![0, 1])
        .expect_err("a NaN feature");
    assert!(error.to_string().contains("row 1, column 0"), "{error}");
    let error = Dataset::regression(vec![0.0, 1.0], 1, vec![0.5, f32::INFINITY], 1)
        .expect_err("an infinite target");
    assert!(error.to_string().contains("target 1"), "{error}");
    let error = Dataset::classification(vec![], 3, vec![]).expect_err("no rows");
    assert!(error.to_string().contains("at least one row"), "{error}");
    // Host batches too.
    let gpu = gpu();
    let mut trainer = trainer(gpu, &Sequential::new(2).linear(2), 0);
    let error = trainer
        .train_batch(&[0.0, f32::NAN, 1.0, 1.0], &[0.0, 1.0])
        .expect_err("a NaN input");
    assert!(error.to_string().contains("sample 0, element 1"), "{error}");
    assert_eq!(trainer.step(), 0, "nothing was trained");
}

#[test]
fn a_dataset_edited_through_its_public_fields_is_checked_again_at_upload() {
    let good = Dataset::classification(vec![0.0, 1.0, 2.0, 3.0], 2, vec![0, 1]).expect("data");
    let mut nan = good.clone();
    nan.features = wgtrain::data::Features::F32(vec![0.0, 1.0, 2.0, f32::NAN]);
    let mut short = good.clone();
    short.rows = 3;
    let mut fractional = good.clone();
    fractional.targets[1] = 0.5;
    let mut image = good.clone();
    image.image = Some((2, 2));
    for (what, data, says) in [
        ("a NaN feature", nan, "row 1, column 1"),
        ("rows past the features", short, "3 rows of 2"),
        ("a fractional label", fractional, "label of row 1"),
        ("an image size that is not the width", image, "image size"),
    ] {
        for upload in [
            DeviceDataset::upload(gpu(), &data).map(|_| ()),
            DeviceDataset::streamed(&data).map(|_| ()),
        ] {
            let error = upload.expect_err(what);
            assert!(error.to_string().contains(says), "{what}: {error}");
        }
    }
}

#[test]
fn labels_past_the_models_classes_are_refused_before_training_or_evaluating() {
    let mut rng = rng("labels past classes");
    let model = Sequential::mlp(6, &[8], 3, Activation::Relu, 0.0, false);
    let mut data = small_problem(&mut rng, 40);
    data.targets[17] = 5.0; // classes 0..2 in the model, a 5 in the data
    for device in [
        DeviceDataset::upload(gpu(), &data).expect("upload"),
        DeviceDataset::streamed(&data).expect("streamed"),
    ] {
        let mut trainer = trainer(gpu(), &model, 1);
        let before = trainer.weights().read_params(gpu()).expect("read");
        let error = trainer
            .fit_epoch(&device, 0, &mut |_| {})
            .expect_err("a label of 5 for 3 classes");
        assert!(
            matches!(&error, Error::InvalidArgument(m) if m.contains("up to 5") && m.contains("3 classes")),
            "{error}"
        );
        assert!(
            trainer.evaluate(&device).is_err(),
            "evaluate must refuse too"
        );
        assert_eq!(trainer.step(), 0);
        let after = trainer.weights().read_params(gpu()).expect("read");
        assert_eq!(before, after, "no step ran");
    }
    // Host batches too: a class past the model's, a negative one, a fraction. Each would give
    // a NaN loss, but only after an update from a wrong gradient.
    let mut trainer = trainer(gpu(), &model, 1);
    let before = trainer.weights().read_params(gpu()).expect("read");
    let x = rng.uniform(2 * 6, -1.0, 1.0);
    for (bad, says) in [(3.0, "is 3"), (-1.0, "is -1"), (0.5, "is 0.5")] {
        let error = trainer
            .train_batch(&x, &[0.0, bad])
            .expect_err("not a class index");
        assert!(
            matches!(&error, Error::InvalidArgument(m) if m.contains(says) && m.contains("target 1")),
            "{error}"
        );
    }
    assert_eq!(trainer.step(), 0);
    let after = trainer.weights().read_params(gpu()).expect("read");
    assert_eq!(before, after, "no step ran");
    trainer
        .train_batch(&x, &[0.0, 2.0])
        .expect("classes 0..2 train");
}

#[test]
fn data_of_another_width_is_refused_naming_both_widths() {
    let mut rng = rng("data width");
    let model = Sequential::mlp(6, &[8], 3, Activation::Relu, 0.0, false);
    let narrow = Dataset::classification(
        rng.uniform(20 * 5, -1.0, 1.0),
        5,
        rng.below(20, 3).iter().map(|&l| l as u32).collect(),
    )
    .expect("dataset");
    let device = DeviceDataset::upload(gpu(), &narrow).expect("upload");
    let mut trainer = trainer(gpu(), &model, 1);
    let error = trainer
        .fit_epoch(&device, 0, &mut |_| {})
        .expect_err("5 columns for a 6-feature model");
    let message = error.to_string();
    assert!(
        message.contains("5 columns") && message.contains("[6]"),
        "{message}"
    );
    assert!(trainer.evaluate(&device).is_err());
    assert_eq!(trainer.step(), 0);
}

/// A model whose evaluation loss is NaN (a NaN running variance, here written by hand) is an
/// error from `evaluate`, not a loss of NaN beside an accuracy computed from NaN outputs.
#[test]
fn a_non_finite_evaluation_loss_is_an_error() {
    let mut rng = rng("non-finite evaluation");
    // Tanh, not ReLU: max(NaN, 0) is 0 on GPUs, which would hide the NaN channel.
    let model = Sequential::mlp(6, &[8], 3, Activation::Tanh, 0.0, true);
    let data = DeviceDataset::upload(gpu(), &small_problem(&mut rng, 40)).expect("upload");
    let mut trainer = trainer(gpu(), &model, 2);
    trainer.fit_epoch(&data, 0, &mut |_| {}).expect("an epoch");
    assert!(trainer.evaluate(&data).expect("finite").loss.is_finite());
    let running = &trainer.weights().buffers[0];
    let mut stats = gpu().read(running).expect("read");
    *stats.last_mut().expect("channels") = f32::NAN; // the last channel's running variance
    gpu().write(running, &stats).expect("write");
    let error = trainer.evaluate(&data).expect_err("a NaN channel");
    assert!(
        matches!(&error, Error::NonFinite { what, step: 3 } if what == "evaluation loss"),
        "{error}"
    );
}

/// A clip norm that is not positive and finite (a negative one reversed every gradient:
/// ascent) and an L1 penalty that is negative or not finite are refused with the trainer.
#[test]
fn clip_norms_and_l1_penalties_that_cannot_train_are_refused() {
    let model = Sequential::mlp(6, &[8], 3, Activation::Relu, 0.0, false);
    let config = |clip_norm, l1| TrainConfig {
        clip_norm,
        l1,
        ..TrainConfig::default()
    };
    for (what, bad) in [
        ("a negative clip norm", config(Some(-1.0), 0.0)),
        ("a zero clip norm", config(Some(0.0), 0.0)),
        ("a NaN clip norm", config(Some(f32::NAN), 0.0)),
        ("a negative l1", config(None, -1e-4)),
        ("an infinite l1", config(None, f32::INFINITY)),
    ] {
        let error = Trainer::for_model(gpu(), &model, Loss::CrossEntropy, bad)
            .map(|_| ())
            .expect_err(what);
        assert!(
            matches!(&error, Error::InvalidArgument(m) if m.contains("clip_norm")),
            "{what}: {error}"
        );
    }
    Trainer::for_model(gpu(), &model, Loss::CrossEntropy, config(Some(1.0), 1e-4))
        .expect("a positive clip norm and penalty");
}

/// A standardizer maps a constant column to 0 (std 1, not a division by zero), and refuses
/// data of another width (an index panic) and statistics `fit` could not have made (an
/// edited checkpoint's std of 0 gave infinite features).
#[test]
fn a_standardizer_checks_its_statistics_and_the_datas_width() {
    use wgtrain::data::Standardizer;
    let mut data =
        Dataset::regression(vec![1.0, 5.0, 3.0, 5.0, 5.0, 5.0], 2, vec![0.0; 3], 1).expect("data");
    let z = Standardizer::fit(&data);
    assert_eq!(z.std[1], 1.0, "a constant column");
    z.apply(&mut data).expect("its own data");
    assert_eq!(data.row(0)[1], 0.0);
    assert!(
        (data.row(0)[0] + 1.224_745).abs() < 1e-5,
        "{:?}",
        data.row(0)
    );
    let mut wide = Dataset::regression(vec![1.0; 6], 3, vec![0.0; 2], 1).expect("data");
    let error = z.apply(&mut wide).expect_err("3 columns for 2 statistics");
    assert!(matches!(error, Error::ShapeMismatch { .. }), "{error}");
    for edit in [
        |z: &mut Standardizer| z.std[0] = 0.0,
        |z: &mut Standardizer| z.std[1] = -1.0,
        |z: &mut Standardizer| z.mean[0] = f32::NAN,
    ] {
        let mut edited = z.clone();
        edit(&mut edited);
        let error = edited.apply(&mut data).expect_err("not fitted statistics");
        assert!(error.to_string().contains("standardizer"), "{error}");
    }
}

/// Augmentation needs rows with an image size: configured over rows without one (a CSV of
/// pixels), training is refused where it trained unaugmented in silence. Evaluation never
/// augments, so it is not refused.
#[test]
fn augmentation_over_rows_without_an_image_size_is_refused() {
    let mut rng = rng("augment without image");
    let model = Sequential::mlp(6, &[8], 3, Activation::Relu, 0.0, false);
    let data = DeviceDataset::upload(gpu(), &small_problem(&mut rng, 20)).expect("upload");
    let config = TrainConfig {
        augment_shift: 1,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::for_model(gpu(), &model, Loss::CrossEntropy, config).expect("new");
    let error = trainer
        .fit_epoch(&data, 0, &mut |_| {})
        .expect_err("no image to shift");
    assert!(error.to_string().contains("needs image rows"), "{error}");
    assert_eq!(trainer.step(), 0);
    trainer
        .evaluate(&data)
        .expect("evaluation does not augment");
}

/// A layer so wide that its product needs more workgroups along one axis than the adapter
/// allows (65535 on every adapter wgpu knows) is refused as its plan compiles, naming the
/// kernel, where wgpu's validation failed the submission; the device stays usable.
#[test]
fn a_grid_past_the_workgroup_limit_is_refused_when_the_plan_compiles() {
    // Past 65535 workgroups of even the 128-wide tile.
    let wide = 65_535 * 128 + 1;
    let model = Sequential::new(1).linear(wide);
    let mut trainer = Trainer::for_model(gpu(), &model, Loss::Mse, TrainConfig::default())
        .expect("the weights fit a binding");
    let error = trainer.predict(&[0.5]).expect_err("too wide a grid");
    assert!(
        matches!(&error, Error::InvalidArgument(m) if m.contains("workgroups") && m.contains("65535")),
        "{error}"
    );
    let small = Sequential::mlp(6, &[8], 3, Activation::Relu, 0.0, false);
    let mut next =
        Trainer::for_model(gpu(), &small, Loss::CrossEntropy, TrainConfig::default()).expect("new");
    next.train_batch(&[0.5; 6], &[1.0])
        .expect("the device is fine");
}
