//! Learning-rate schedules against `torch.optim.lr_scheduler`'s closed forms.

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
