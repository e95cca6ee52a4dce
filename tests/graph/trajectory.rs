use wgtrain::graph::Weights;
use wgtrain::kernels::Activation;
use wgtrain::kernels::loss::Loss;
use wgtrain::nn::Sequential;
use wgtrain::optim::Optimizer;
use wgtrain::reference::{self, OptimizerReference};
use wgtrain::train::{TrainConfig, Trainer};

use crate::common::*;

/// The parameters' initial values in f64, the reference trajectories' starting point.
fn params_f64(weights: &Weights) -> Vec<Vec<f64>> {
    let params = weights.read_params(gpu()).expect("read");
    params.iter().map(|p| f64s(p)).collect()
}

fn optimizers() -> [(&'static str, Optimizer); 8] {
    [
        ("sgd", Optimizer::sgd(0.1)),
        ("momentum", Optimizer::momentum(0.05, 0.9)),
        ("nesterov", Optimizer::nesterov(0.05, 0.9)),
        ("adagrad", Optimizer::adagrad(0.05)),
        ("rmsprop", Optimizer::rmsprop(0.005)),
        ("adam", Optimizer::adam(0.01)),
        (
            "adam amsgrad",
            Optimizer::Adam {
                lr: 0.01,
                betas: (0.9, 0.999),
                eps: 1e-8,
                weight_decay: 1e-3,
                amsgrad: true,
            },
        ),
        ("adamw", Optimizer::adamw(0.01)),
    ]
}

#[test]
fn fifty_steps_match_an_f64_implementation_for_every_optimizer() {
    let mut rng = rng("trajectories");
    let model = Sequential::mlp(4, &[6], 3, Activation::Tanh, 0.0, false);
    let (batch, loss) = (8, Loss::CrossEntropy);
    let batches: Vec<(Vec<f32>, Vec<f32>)> = (0..4)
        .map(|_| (rng.uniform(batch * 4, -1.0, 1.0), rng.below(batch, 3)))
        .collect();
    for (name, optimizer) in optimizers() {
        let graph = model.build(loss).expect("valid model");
        let reference_graph = graph.clone();
        let weights = Weights::init(gpu(), &graph, 7).expect("weights");
        let mut params = params_f64(&weights);
        let config = TrainConfig {
            optimizer,
            ..Default::default()
        };
        let mut trainer = Trainer::new(gpu(), graph, weights, config).expect("trainer");
        let mut states: Vec<OptimizerReference> = params
            .iter()
            .map(|p| OptimizerReference::new(optimizer, 0.0, p.len()))
            .collect();
        for step in 0..50 {
            let (x, y) = &batches[step % batches.len()];
            let (inputs, y64) = ([f64s(x)], f64s(y));
            let f = |p: &[Vec<f64>]| {
                reference::graph_loss(&reference_graph, p, &inputs, &y64, batch, None)
            };
            let want_loss = f(&params);
            let grads = reference::finite_difference_grads(&params, f);
            for ((p, g), state) in params.iter_mut().zip(&grads).zip(&mut states) {
                state.step(f64::from(optimizer.lr()), p, g);
            }
            let got = trainer.train_batch(x, y).expect("step");
            // The loss is a mean of 8 log-sum-exps over 3 classes of an f32 forward: its
            // relative error is ~10 u per stage; the weights' f32 drift below adds more, so 1e-4.
            assert_close(
                &format!("{name} loss at step {step}"),
                &[got],
                &[want_loss],
                1e-5,
                1e-4,
            );
        }
        let got = trainer.weights().read_params(gpu()).expect("read");
        for (t, (g, want)) in got.iter().zip(&params).enumerate() {
            // 50 updates, each with f32 gradients good to ~1e-5 relative, move weights of order
            // 1 by ≤ 50 · lr · 1e-5 · |update| plus the update's rounding: 2e-4 covers all of
            // them (adaptive rules scale steps to ~lr, which is ≤ 0.1).
            assert_close(
                &format!("{name} parameter {t} after 50 steps"),
                g,
                want,
                2e-4,
                2e-4,
            );
        }
    }
}

#[test]
fn several_steps_in_one_submission_report_each_steps_own_loss() {
    let mut rng = rng("loss ring");
    // 5 steps, submitted 1 and then 4 at a time: the last, of 6 rows, in slot 3 of the ring.
    let (rows, batch) = (70, 16);
    let x = rng.uniform(rows * 4, -1.0, 1.0);
    let labels = rng.below(rows, 3);
    let model = Sequential::mlp(4, &[8], 3, Activation::Relu, 0.0, false);
    let config = TrainConfig {
        batch_size: batch,
        shuffle: false,
        steps_per_submit: 16,
        ..TrainConfig::default()
    };
    let data = wgtrain::data::Dataset::classification(
        x.clone(),
        4,
        labels.iter().map(|&l| l as u32).collect(),
    )
    .expect("dataset");
    let device = wgtrain::data::DeviceDataset::upload(gpu(), &data).expect("upload");

    let mut ring =
        Trainer::for_model(gpu(), &model, Loss::CrossEntropy, config.clone()).expect("trainer");
    let mut from_ring = vec![];
    ring.fit_epoch(&device, 0, &mut |log| from_ring.push(log.loss))
        .expect("epoch");

    // The same steps one at a time, each loss read straight from the plan.
    let mut single =
        Trainer::for_model(gpu(), &model, Loss::CrossEntropy, config).expect("trainer");
    let one_by_one: Vec<f32> = (0..rows)
        .step_by(batch)
        .map(|o| {
            let end = (o + batch).min(rows);
            single
                .train_batch(&x[o * 4..end * 4], &labels[o..end])
                .expect("step")
        })
        .collect();
    assert_eq!(from_ring.len(), 5);
    assert_eq!(from_ring, one_by_one, "each slot holds its own step's loss");
}

#[test]
fn a_learning_rate_set_between_steps_takes_effect_from_the_next_step() {
    let mut rng = rng("set lr");
    let model = Sequential::mlp(4, &[6], 3, Activation::Tanh, 0.0, false);
    let batch = 8;
    let batches: Vec<(Vec<f32>, Vec<f32>)> = (0..4)
        .map(|_| (rng.uniform(batch * 4, -1.0, 1.0), rng.below(batch, 3)))
        .collect();
    let graph = model.build(Loss::CrossEntropy).expect("valid model");
    let weights = Weights::init(gpu(), &graph, 3).expect("weights");
    let mut params = params_f64(&weights);
    let optimizer = Optimizer::adam(0.02);
    let config = TrainConfig {
        optimizer,
        ..Default::default()
    };
    let reference_graph = graph.clone();
    let mut trainer = Trainer::new(gpu(), graph, weights, config).expect("trainer");
    let mut states: Vec<OptimizerReference> = params
        .iter()
        .map(|p| OptimizerReference::new(optimizer, 0.0, p.len()))
        .collect();
    for step in 0..20 {
        // Adam's moments carry over the change, as a param_group edit in torch.optim.
        let lr = if step < 10 { 0.02 } else { 0.002 };
        if step == 10 {
            trainer.set_lr(0.002).expect("same optimizer, new rate");
        }
        let (x, y) = &batches[step % batches.len()];
        let (inputs, y64) = ([f64s(x)], f64s(y));
        let f =
            |p: &[Vec<f64>]| reference::graph_loss(&reference_graph, p, &inputs, &y64, batch, None);
        let grads = reference::finite_difference_grads(&params, f);
        for ((p, g), state) in params.iter_mut().zip(&grads).zip(&mut states) {
            state.step(lr, p, g);
        }
        trainer.train_batch(x, y).expect("step");
    }
    let got = trainer.weights().read_params(gpu()).expect("read");
    for (t, (g, want)) in got.iter().zip(&params).enumerate() {
        // As the 50-step trajectory above: f32 drift over 20 steps of ≤ 0.02 each. Ten steps at
        // the old rate would move weights by ~0.1 more than the reference.
        assert_close(
            &format!("parameter {t} after 20 steps"),
            g,
            want,
            2e-4,
            2e-4,
        );
    }
    // Another family, or AMSGrad's extra state, cannot take over Adam's state.
    assert!(trainer.set_optimizer(Optimizer::sgd(0.1)).is_err());
    let amsgrad = Optimizer::Adam {
        lr: 0.002,
        betas: (0.9, 0.999),
        eps: 1e-8,
        weight_decay: 0.0,
        amsgrad: true,
    };
    assert!(trainer.set_optimizer(amsgrad).is_err());
    assert_eq!(
        trainer.config().optimizer.lr(),
        0.002,
        "a refused change changes nothing"
    );
    assert!(trainer.set_lr(f32::NAN).is_err());
}

#[test]
fn parameters_set_on_a_trainer_are_the_ones_it_trains() {
    let mut rng = rng("set params");
    let model = Sequential::mlp(4, &[5], 3, Activation::Tanh, 0.0, false);
    let mut trainer = Trainer::for_model(gpu(), &model, Loss::CrossEntropy, TrainConfig::default())
        .expect("trainer");
    let (x, y) = (rng.uniform(8 * 4, -1.0, 1.0), rng.below(8, 3));
    let shapes: Vec<usize> = trainer.graph().params().iter().map(|p| p.len()).collect();
    // Zero weights give equal logits: a loss of ln 3 whatever the data.
    let zeros: Vec<Vec<f32>> = shapes.iter().map(|&n| vec![0.0; n]).collect();
    trainer.set_params(&zeros).expect("valid shapes");
    let loss = trainer.train_batch(&x, &y).expect("step");
    assert_close("loss at zero weights", &[loss], &[3f64.ln()], 1e-6, 1e-6);
    // And the step moved the weights from zero (the optimizer trains the same buffers).
    let moved = trainer.weights().read_params(gpu()).expect("read");
    assert!(moved.concat().iter().any(|&v| v != 0.0));

    let values: Vec<Vec<f32>> = shapes.iter().map(|&n| rng.uniform(n, -1.0, 1.0)).collect();
    trainer.set_params(&values).expect("valid shapes");
    assert_eq!(trainer.weights().read_params(gpu()).expect("read"), values);
    let mut short = values.clone();
    short[1].pop();
    assert!(trainer.set_params(&short).is_err(), "a tensor one short");
    assert!(
        trainer.set_params(&values[1..]).is_err(),
        "a tensor missing"
    );
    let mut nan = values.clone();
    nan[2][4] = f32::NAN;
    let error = trainer.set_params(&nan).expect_err("a NaN weight");
    assert!(
        error.to_string().contains("2.weight, element 4 is NaN"),
        "{error}"
    );
    assert_eq!(
        trainer.weights().read_params(gpu()).expect("read"),
        values,
        "the refused values were not written"
    );
}

#[test]
fn parameter_groups_set_each_parameters_weight_decay_and_rate_for_many_steps() {
    use wgtrain::optim::{ParamGroup, ParamSelect};
    let mut rng = rng("param groups");
    // 0.weight [6, 4], 0.bias [6], 2.weight [3, 6], 2.bias [3]. The first group that picks a
    // parameter decides: 2.weight decays by 0.5 at a rate of 0.05, the biases do not decay,
    // 0.weight keeps the optimizer's 0.1 and 0.02. The large values make a wrong assignment
    // visible within a few steps.
    let model = Sequential::mlp(4, &[6], 3, Activation::Tanh, 0.0, false);
    let optimizer = Optimizer::adamw(0.02).with_weight_decay(0.1);
    let groups = vec![
        ParamGroup::new(ParamSelect::Names(vec!["2.weight".into()]))
            .with_weight_decay(0.5)
            .with_lr(0.05),
        ParamGroup::new(ParamSelect::RankBelow(2)).with_weight_decay(0.0),
    ];
    let settings = [(0.1, 0.02), (0.0, 0.02), (0.5, 0.05), (0.0, 0.02)];
    let graph = model.build(Loss::CrossEntropy).expect("model");
    let weights = Weights::init(gpu(), &graph, 3).expect("weights");
    let mut params = params_f64(&weights);
    let config = TrainConfig {
        optimizer,
        param_groups: groups,
        ..Default::default()
    };
    let mut trainer = Trainer::new(gpu(), graph.clone(), weights, config).expect("trainer");
    let mut states: Vec<OptimizerReference> = params
        .iter()
        .zip(settings)
        .map(|(p, (decay, lr))| {
            let optimizer = optimizer.with_weight_decay(decay).with_lr(lr);
            OptimizerReference::new(optimizer, 0.0, p.len())
        })
        .collect();
    let (x, y) = (rng.uniform(8 * 4, -1.0, 1.0), rng.below(8, 3));
    let (inputs, y64) = ([f64s(&x)], f64s(&y));
    for _ in 0..30 {
        let f = |p: &[Vec<f64>]| reference::graph_loss(&graph, p, &inputs, &y64, 8, None);
        let grads = reference::finite_difference_grads(&params, f);
        for ((p, g), state) in params.iter_mut().zip(&grads).zip(&mut states) {
            state.step(f64::from(state.optimizer.lr()), p, g);
        }
        trainer.train_batch(&x, &y).expect("step");
    }
    let got = trainer.weights().read_params(gpu()).expect("read");
    for (t, (g, want)) in got.iter().zip(&params).enumerate() {
        // As in the fifty-step test above: f32 gradients and updates drift by ≤ 2e-4.
        assert_close(
            &format!("parameter {t} (decay, lr {:?})", settings[t]),
            g,
            want,
            2e-4,
            2e-4,
        );
    }
}

#[test]
fn a_parameter_group_naming_a_missing_parameter_is_refused() {
    use wgtrain::optim::{ParamGroup, ParamSelect};
    let model = Sequential::mlp(4, &[6], 3, Activation::Tanh, 0.0, false);
    let config = TrainConfig {
        param_groups: vec![ParamGroup::new(ParamSelect::Names(vec!["1.weight".into()]))],
        ..Default::default()
    };
    let Err(err) = Trainer::for_model(gpu(), &model, Loss::CrossEntropy, config) else {
        panic!("1.weight is a Tanh's: it has none");
    };
    assert!(err.to_string().contains("1.weight"), "{err}");
}

/// An epoch's order depends on (seed, epoch) alone: drawn ahead while the epoch before ran,
/// or when the epoch starts (a fresh upload of the same data has none drawn), the losses
/// come out bit for bit the same, after a skipped epoch too.
#[test]
fn an_epoch_drawn_ahead_visits_its_own_order() {
    let mut rng = rng("orders drawn ahead");
    let (rows, batch) = (50, 8);
    let data = wgtrain::data::Dataset::classification(
        rng.uniform(rows * 4, -1.0, 1.0),
        4,
        rng.below(rows, 3).iter().map(|&l| l as u32).collect(),
    )
    .expect("dataset");
    let model = Sequential::mlp(4, &[8], 3, Activation::Relu, 0.0, false);
    let config = TrainConfig {
        batch_size: batch,
        seed: 3,
        ..TrainConfig::default()
    };
    let trainer =
        || Trainer::for_model(gpu(), &model, Loss::CrossEntropy, config.clone()).expect("trainer");
    let upload = || wgtrain::data::DeviceDataset::upload(gpu(), &data).expect("upload");
    let (mut ahead, mut fresh, kept) = (trainer(), trainer(), upload());
    for epoch in [0, 1, 3] {
        let (mut want, mut got) = (vec![], vec![]);
        fresh
            .fit_epoch(&upload(), epoch, &mut |log| want.push(log.loss))
            .expect("epoch");
        ahead
            .fit_epoch(&kept, epoch, &mut |log| got.push(log.loss))
            .expect("epoch");
        assert_eq!(got, want, "epoch {epoch}");
    }
}

/// `run_steps` (the benchmark's loop) trains on the dataset's batches in order, wrapping round
/// at its last whole batch, and returns the last step's loss: the same steps one at a time
/// give the same loss bit for bit. Zero steps have no loss to return, and a batch of no rows
/// or of more rows than the dataset holds is refused.
#[test]
fn run_steps_trains_the_batches_in_order_and_returns_the_last_loss() {
    let mut rng = rng("run_steps");
    // 4 whole batches, so steps 5 to 7 wrap round; submitted 1, 4 and 2 at a time.
    let (rows, batch, steps) = (70, 16, 7);
    let x = rng.uniform(rows * 4, -1.0, 1.0);
    let labels = rng.below(rows, 3);
    let data = wgtrain::data::Dataset::classification(
        x.clone(),
        4,
        labels.iter().map(|&l| l as u32).collect(),
    )
    .expect("dataset");
    let device = wgtrain::data::DeviceDataset::upload(gpu(), &data).expect("upload");
    let model = Sequential::mlp(4, &[8], 3, Activation::Relu, 0.0, false);
    let config = TrainConfig {
        batch_size: batch,
        ..TrainConfig::default()
    };
    let trainer =
        || Trainer::for_model(gpu(), &model, Loss::CrossEntropy, config.clone()).expect("trainer");
    let mut looped = trainer();
    let got = looped.run_steps(&device, batch, steps).expect("steps");
    let mut single = trainer();
    let mut want = f32::NAN;
    for s in 0..steps {
        let o = (s % 4) * batch;
        want = single
            .train_batch(&x[o * 4..(o + batch) * 4], &labels[o..o + batch])
            .expect("step");
    }
    assert_eq!(got, want, "the last of {steps} steps");
    assert_eq!(looped.step(), steps as u64);
    assert!(looped.run_steps(&device, batch, 0).is_err(), "0 steps");
    for bad in [0, rows + 1] {
        let error = looped
            .run_steps(&device, bad, 1)
            .expect_err("no such batch");
        assert!(error.to_string().contains("1..=70"), "batch {bad}: {error}");
    }
    assert_eq!(
        looped.step(),
        steps as u64,
        "the refused calls trained nothing"
    );
    looped
        .run_steps(&device, rows, 1)
        .expect("one batch of every row");
}

/// `evaluate` keeps several batches in flight and reads each one's outputs and loss in the
/// submission that computed them: over 6 batches (the last partial), resident and streamed,
/// the outputs come back in row order and the loss is the whole set's mean, both as the f64
/// forward pass of the same weights gives them.
#[test]
fn evaluation_in_flight_returns_every_batchs_outputs_in_order() {
    let mut rng = rng("evaluation in flight");
    let (rows, cols, batch) = (45, 5, 8);
    let x = rng.uniform(rows * cols, -1.0, 1.0);
    let labels = rng.below(rows, 3);
    let data = wgtrain::data::Dataset::classification(
        x.clone(),
        cols,
        labels.iter().map(|&l| l as u32).collect(),
    )
    .expect("dataset");
    let graph = Sequential::mlp(cols, &[7], 3, Activation::Tanh, 0.0, false)
        .build(Loss::CrossEntropy)
        .expect("valid model");
    let weights = Weights::init(gpu(), &graph, 5).expect("weights");
    let params = params_f64(&weights);
    let (inputs, targets) = ([f64s(&x)], f64s(&labels));
    let want_outputs = reference::graph_output(&graph, &params, &inputs, rows, None);
    let want_loss = reference::graph_loss(&graph, &params, &inputs, &targets, rows, None);
    let config = TrainConfig {
        batch_size: batch,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(gpu(), graph, weights, config).expect("trainer");
    for streamed in [false, true] {
        let device = if streamed {
            wgtrain::data::DeviceDataset::streamed(&data)
        } else {
            wgtrain::data::DeviceDataset::upload(gpu(), &data)
        }
        .expect("device data");
        let eval = trainer.evaluate(&device).expect("evaluate");
        // A 5-7-3 tanh forward in f32: each output is within a few ulps of sums of 5 and 7
        // terms of order 1, so 1e-5; the loss, a mean of log-sum-exps of those, likewise.
        let what = if streamed { "streamed" } else { "resident" };
        assert_close(
            &format!("{what} outputs"),
            &eval.outputs,
            &want_outputs,
            1e-5,
            1e-5,
        );
        assert_close(
            &format!("{what} loss"),
            &[eval.loss as f32],
            &[want_loss],
            1e-5,
            1e-5,
        );
    }
}
