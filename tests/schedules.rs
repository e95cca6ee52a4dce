//! Learning-rate schedules against `torch.optim.lr_scheduler`'s closed forms.

#[path = "common/mod.rs"]
mod common;

use wgtrain::optim::Schedule;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * b.abs().max(1.0)
}

#[test]
fn schedules_follow_torch_closed_forms() {
    let base = 0.1;
    for t in 1..=50u64 {
        let epoch = (t - 1) as f64; // torch counts scheduler steps from 0
        assert!(close(Schedule::Constant.lr_at(base, t, 0), base));
        // StepLR(step_size=10, gamma=0.5): lr · γ^⌊epoch / 10⌋
        let step = Schedule::Step {
            step_size: 10,
            gamma: 0.5,
        }
        .lr_at(base, t, 0);
        assert!(
            close(step, base * 0.5f64.powi((epoch / 10.0).floor() as i32)),
            "step {t}: {step}"
        );
        // ExponentialLR(gamma=0.9): lr · γ^epoch
        let exp = Schedule::Exponential { gamma: 0.9 }.lr_at(base, t, 0);
        assert!(close(exp, base * 0.9f64.powf(epoch)), "exp {t}: {exp}");
        // CosineAnnealingLR(T_max=40, eta_min=0.01): η_min + (lr − η_min)(1 + cos(π·epoch/T_max))/2
        let cosine = Schedule::Cosine {
            total_steps: 40,
            min_lr: 0.01,
        }
        .lr_at(base, t, 0);
        let want = 0.01
            + (base - 0.01) * (1.0 + (std::f64::consts::PI * epoch.min(40.0) / 40.0).cos()) / 2.0;
        assert!(close(cosine, want), "cosine {t}: {cosine} vs {want}");
    }
}

#[test]
fn warm_up_ramps_linearly_then_hands_over() {
    let schedule = Schedule::Cosine {
        total_steps: 110,
        min_lr: 0.0,
    };
    for t in 1..=10u64 {
        assert!(
            close(schedule.lr_at(1.0, t, 10), t as f64 / 10.0),
            "warm-up step {t}"
        );
    }
    // The first step after warm-up starts the cosine at its top.
    assert!(close(schedule.lr_at(1.0, 11, 10), 1.0));
    assert!(schedule.lr_at(1.0, 110, 10) < 1e-3);
}

#[test]
fn a_trainer_follows_its_configured_schedule() {
    use wgtrain::prelude::*;
    let gpu = Gpu::new().expect("adapter");
    let config = TrainConfig {
        optimizer: Optimizer::sgd(0.2),
        schedule: Schedule::Cosine {
            total_steps: 100,
            min_lr: 0.0,
        },
        warmup_steps: 0,
        ..TrainConfig::default()
    };
    let trainer = Trainer::for_model(&gpu, &Sequential::new(2).linear(1), Loss::Mse, config)
        .expect("trainer");
    // Half-way through a cosine from 0.2 to 0: 0.1 (f32 base rate, hence the tolerance).
    assert!(
        (trainer.lr_at(51) - 0.1).abs() < 1e-8,
        "{}",
        trainer.lr_at(51)
    );
    assert!(trainer.lr_at(101) < 1e-9);
}

/// A fixed regression set of 24 rows, 3 features (fresh per test, shared by its trainers).
fn regression_data() -> wgtrain::data::DeviceDataset {
    let mut rng = common::rng("schedule data");
    let data = wgtrain::data::Dataset::regression(
        rng.uniform(24 * 3, -1.0, 1.0),
        3,
        rng.uniform(24, -1.0, 1.0),
        1,
    )
    .expect("data");
    wgtrain::data::DeviceDataset::upload(common::gpu(), &data).expect("upload")
}

/// A trainer of `Linear(3, 1)` with SGD and momentum, batches of 4 in order.
fn regression_trainer(schedule: Schedule) -> wgtrain::train::Trainer {
    use wgtrain::prelude::*;
    let config = TrainConfig {
        optimizer: Optimizer::momentum(0.1, 0.9),
        schedule,
        batch_size: 4,
        shuffle: false,
        ..TrainConfig::default()
    };
    let model = Sequential::new(3).linear(1);
    Trainer::for_model(common::gpu(), &model, Loss::Mse, config).expect("trainer")
}

#[test]
fn a_schedule_stepped_by_hand_trains_exactly_as_one_handed_to_fit() {
    let schedule = Schedule::Step {
        step_size: 2,
        gamma: 0.5,
    };
    let data = regression_data();
    let mut handed = regression_trainer(schedule);
    let mut handed_lrs = vec![];
    handed
        .fit_epoch(&data, 0, &mut |log| handed_lrs.push(log.lr))
        .expect("fit");

    let mut by_hand = regression_trainer(Schedule::Constant);
    let mut by_hand_lrs = vec![];
    for batch in 0..6 {
        let lr = schedule.lr_at(0.1f32.into(), by_hand.step() + 1, 0);
        by_hand.set_lr(lr as f32).expect("set lr");
        by_hand
            .fit_batches(&data, 0, batch..batch + 1, &mut |log| {
                by_hand_lrs.push(log.lr)
            })
            .expect("one step");
    }
    assert_eq!(handed_lrs.len(), 6);
    for (a, b) in handed_lrs.iter().zip(&by_hand_lrs) {
        assert_eq!(*a as f32, *b as f32, "{handed_lrs:?} vs {by_hand_lrs:?}");
    }
    let params =
        |t: &wgtrain::train::Trainer| t.weights().read_params(common::gpu()).expect("read");
    assert_eq!(params(&handed), params(&by_hand), "bit-identical weights");
}

#[test]
fn a_schedule_set_mid_run_continues_from_the_trainers_step() {
    let data = regression_data();
    let mut trainer = regression_trainer(Schedule::Constant);
    trainer
        .fit_batches(&data, 0, 0..3, &mut |_| {})
        .expect("3 steps");
    let decay = Schedule::Exponential { gamma: 0.5 };
    trainer.set_schedule(decay, 0).expect("schedule");
    let mut lrs = vec![];
    trainer
        .fit_batches(&data, 0, 3..5, &mut |log| lrs.push((log.step, log.lr)))
        .expect("2 steps");
    // Steps 4 and 5 of an exponential decay started at step 1: 0.1 · 0.5³ and 0.1 · 0.5⁴.
    let base = f64::from(0.1f32);
    assert_eq!(lrs, vec![(4, base * 0.125), (5, base * 0.0625)]);

    for bad in [
        Schedule::Exponential { gamma: f64::NAN },
        Schedule::Step {
            step_size: 0,
            gamma: 0.5,
        },
        Schedule::Cosine {
            total_steps: 10,
            min_lr: -1.0,
        },
    ] {
        assert!(trainer.set_schedule(bad, 0).is_err(), "{bad:?}");
        assert_eq!(trainer.config().schedule, decay, "left as it was");
    }
}
