//! Learning-rate schedules, evaluated on the host per step (a few flops) and handed to the
//! GPU through the step-uniform ring, so changing the rate never recompiles the plan.

use std::f64::consts::PI;

use crate::error::{Error, Result};

/// How the learning rate moves with the step; an optional linear warm-up comes first.
///
/// Hand it to a trainer ([`TrainConfig::schedule`](crate::train::TrainConfig::schedule),
/// [`Trainer::set_schedule`](crate::train::Trainer::set_schedule)), or step it by hand:
///
/// ```
/// use wgtrain::optim::Schedule;
/// // StepLR(step_size=10, gamma=0.5) after 5 warm-up steps, from a base rate of 0.1.
/// let schedule = Schedule::Step { step_size: 10, gamma: 0.5 };
/// let lr = |t| schedule.lr_at(0.1, t, 5);
/// assert_eq!((lr(1), lr(5), lr(6), lr(16)), (0.02, 0.1, 0.1, 0.05));
/// // By hand: `trainer.set_lr(lr(trainer.step() + 1) as f32)?` before each step.
/// ```
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Schedule {
    /// The base rate throughout.
    Constant,
    /// `torch.optim.lr_scheduler.StepLR`: multiply by `gamma` every `step_size` steps.
    Step {
        /// Steps between decays.
        step_size: u64,
        /// Factor of each decay.
        gamma: f64,
    },
    /// `ExponentialLR`: multiply by `gamma` every step.
    Exponential {
        /// Factor per step.
        gamma: f64,
    },
    /// `CosineAnnealingLR` from the base rate down to `min_lr` over `total_steps`.
    Cosine {
        /// Steps, warm-up included, over which the rate falls to `min_lr`; it stays there after.
        total_steps: u64,
        /// The floor.
        min_lr: f64,
    },
}

impl Schedule {
    /// Refuses what would make a rate that is not finite, negative, or (a zero `gamma`)
    /// zero forever, as `torch.optim.lr_scheduler` would train into NaN or nothing.
    pub fn validate(&self) -> Result<()> {
        let ok = match *self {
            Schedule::Constant => true,
            Schedule::Step { step_size, gamma } => {
                step_size > 0 && gamma > 0.0 && gamma.is_finite()
            }
            Schedule::Exponential { gamma } => gamma > 0.0 && gamma.is_finite(),
            Schedule::Cosine { min_lr, .. } => min_lr >= 0.0 && min_lr.is_finite(),
        };
        if ok {
            Ok(())
        } else {
            Err(Error::InvalidArgument(format!(
                "{self:?}: step sizes must be at least 1, factors positive and finite, floors \
                 finite and not negative"
            )))
        }
    }

    /// The rate at 1-based step `t`, with `warmup` steps of linear warm-up (t/warmup · lr).
    pub fn lr_at(&self, base: f64, t: u64, warmup: u64) -> f64 {
        if warmup > 0 && t <= warmup {
            return base * t as f64 / warmup as f64;
        }
        let s = t.saturating_sub(warmup + 1);
        match *self {
            Schedule::Constant => base,
            Schedule::Step { step_size, gamma } => base * gamma.powf((s / step_size.max(1)) as f64),
            Schedule::Exponential { gamma } => base * gamma.powf(s as f64),
            Schedule::Cosine {
                total_steps,
                min_lr,
            } => {
                let span = total_steps.saturating_sub(warmup).max(1);
                let progress = (s.min(span)) as f64 / span as f64;
                min_lr + 0.5 * (base - min_lr) * (1.0 + (PI * progress).cos())
            }
        }
    }
}
