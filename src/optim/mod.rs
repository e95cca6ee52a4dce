//! Optimizer configurations (the formulas of `torch.optim`), their per-step host values, and
//! learning-rate schedules. The update itself is one fused kernel (`kernels::optim`).

mod schedule;
mod state;

pub use schedule::Schedule;
pub use state::OptimizerState;

use crate::error::{Error, Result};
use crate::graph::ParamSpec;
use crate::kernels::optim::{OptimParams, StepParams, UpdateRule};

/// A `torch.optim` parameter group: the parameters `select` picks train with this group's
/// weight decay and learning rate where it sets them, the optimizer's otherwise. The first
/// group that picks a parameter decides; the rest keep the optimizer's values. A group's rate
/// is its base rate: schedules and warm-up scale it as they scale the optimizer's, and
/// [`Trainer::set_lr`](crate::train::Trainer::set_lr) leaves it as it is. nanoGPT's recipe
/// is `ParamGroup::new(ParamSelect::RankBelow(2)).with_weight_decay(0.0)`: decay only on
/// matrices, never on biases, LayerNorm gains or other vectors.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ParamGroup {
    /// Which parameters the group holds.
    pub select: ParamSelect,
    /// Weight decay for the group instead of the optimizer's (0 for no decay).
    pub weight_decay: Option<f32>,
    /// Learning rate for the group instead of the optimizer's; schedules scale it alike.
    pub lr: Option<f32>,
}

/// Which parameters a [`ParamGroup`] holds.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum ParamSelect {
    /// Parameters with fewer than this many dimensions.
    RankBelow(usize),
    /// Parameters by `state_dict` name (`transformer.wpe.weight`).
    Names(Vec<String>),
}

/// What a parameter's group sets; `None`: the optimizer's own.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct GroupSettings {
    pub(crate) weight_decay: Option<f32>,
    pub(crate) lr: Option<f32>,
}

impl ParamGroup {
    /// A group of the parameters `select` picks that sets nothing yet.
    pub fn new(select: ParamSelect) -> Self {
        Self {
            select,
            weight_decay: None,
            lr: None,
        }
    }

    /// Sets the group's weight decay (`param_group['weight_decay']`).
    pub fn with_weight_decay(mut self, weight_decay: f32) -> Self {
        self.weight_decay = Some(weight_decay);
        self
    }

    /// Sets the group's learning rate (`param_group['lr']`).
    pub fn with_lr(mut self, lr: f32) -> Self {
        self.lr = Some(lr);
        self
    }

    /// Per parameter, what its group sets, after checking that every name a group lists
    /// exists and every value is finite and not negative.
    pub(crate) fn resolve(
        groups: &[ParamGroup],
        params: &[ParamSpec],
    ) -> Result<Vec<GroupSettings>> {
        for group in groups {
            if let ParamSelect::Names(names) = &group.select
                && let Some(missing) = names.iter().find(|n| !params.iter().any(|p| &p.name == *n))
            {
                return Err(Error::InvalidArgument(format!(
                    "parameter group names {missing}, which the model does not have"
                )));
            }
            if let Some(bad) = [group.weight_decay, group.lr]
                .into_iter()
                .flatten()
                .find(|v| !(v.is_finite() && *v >= 0.0))
            {
                return Err(Error::InvalidArgument(format!(
                    "parameter group {:?}: {bad} is not a finite value ≥ 0",
                    group.select
                )));
            }
        }
        Ok(params
            .iter()
            .map(|p| {
                groups
                    .iter()
                    .find(|g| match &g.select {
                        ParamSelect::RankBelow(rank) => p.shape.len() < *rank,
                        ParamSelect::Names(names) => names.contains(&p.name),
                    })
                    .map_or_else(GroupSettings::default, |g| GroupSettings {
                        weight_decay: g.weight_decay,
                        lr: g.lr,
                    })
            })
            .collect())
    }
}

/// An optimizer with `torch.optim`'s hyper-parameters and defaults.
///
/// ```
/// use wgtrain::optim::Optimizer;
/// // torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-4)
/// let sgd = Optimizer::momentum(0.1, 0.9).with_weight_decay(1e-4);
/// assert_eq!(sgd.lr(), 0.1);
/// // What torch.optim refuses is refused here too.
/// assert!(Optimizer::adam(-1.0).validate().is_err());
/// assert!(Optimizer::momentum(0.1, -0.9).validate().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Optimizer {
    /// `torch.optim.SGD`
    Sgd {
        /// Learning rate.
        lr: f32,
        /// Momentum factor (0: plain SGD).
        momentum: f32,
        /// Dampening of the momentum's gradient term.
        dampening: f32,
        /// Nesterov momentum.
        nesterov: bool,
        /// L2 penalty added to the gradient.
        weight_decay: f32,
    },
    /// `torch.optim.Adagrad`
    Adagrad {
        /// Learning rate.
        lr: f32,
        /// The rate divides by `1 + (t − 1)·lr_decay`.
        lr_decay: f32,
        /// L2 penalty added to the gradient.
        weight_decay: f32,
        /// Added to the root of the accumulated squares.
        eps: f32,
    },
    /// `torch.optim.RMSprop`
    Rmsprop {
        /// Learning rate.
        lr: f32,
        /// Smoothing constant of the squared-gradient average.
        alpha: f32,
        /// Added to the denominator.
        eps: f32,
        /// L2 penalty added to the gradient.
        weight_decay: f32,
        /// Momentum factor.
        momentum: f32,
        /// Normalise by the gradient's variance estimate instead of its second moment.
        centered: bool,
    },
    /// `torch.optim.Adam`
    Adam {
        /// Learning rate.
        lr: f32,
        /// Decay rates of the first and second moment averages.
        betas: (f32, f32),
        /// Added to the denominator.
        eps: f32,
        /// L2 penalty added to the gradient.
        weight_decay: f32,
        /// Use the maximum of past second moments (AMSGrad).
        amsgrad: bool,
    },
    /// `torch.optim.AdamW`: weight decay decoupled from the gradient.
    AdamW {
        /// Learning rate.
        lr: f32,
        /// Decay rates of the first and second moment averages.
        betas: (f32, f32),
        /// Added to the denominator.
        eps: f32,
        /// Decoupled decay: parameters shrink by `lr · weight_decay` each step.
        weight_decay: f32,
        /// Use the maximum of past second moments (AMSGrad).
        amsgrad: bool,
    },
}

impl Optimizer {
    /// Plain SGD at rate `lr`.
    pub fn sgd(lr: f32) -> Self {
        Optimizer::Sgd {
            lr,
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        }
    }

    /// SGD with (heavy-ball) momentum.
    pub fn momentum(lr: f32, momentum: f32) -> Self {
        Optimizer::Sgd {
            lr,
            momentum,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        }
    }

    /// SGD with Nesterov momentum.
    pub fn nesterov(lr: f32, momentum: f32) -> Self {
        Optimizer::Sgd {
            lr,
            momentum,
            dampening: 0.0,
            nesterov: true,
            weight_decay: 0.0,
        }
    }

    /// Adagrad with PyTorch's defaults.
    pub fn adagrad(lr: f32) -> Self {
        Optimizer::Adagrad {
            lr,
            lr_decay: 0.0,
            weight_decay: 0.0,
            eps: 1e-10,
        }
    }

    /// RMSprop with PyTorch's defaults (α 0.99, ε 1e-8).
    pub fn rmsprop(lr: f32) -> Self {
        Optimizer::Rmsprop {
            lr,
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            momentum: 0.0,
            centered: false,
        }
    }

    /// Adam with PyTorch's defaults (β 0.9, 0.999, ε 1e-8).
    pub fn adam(lr: f32) -> Self {
        Optimizer::Adam {
            lr,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            amsgrad: false,
        }
    }

    /// AdamW with PyTorch's default weight decay of 0.01.
    pub fn adamw(lr: f32) -> Self {
        Optimizer::AdamW {
            lr,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.01,
            amsgrad: false,
        }
    }

    /// The optimizer the CLI calls `name` (sgd, momentum, nesterov, adagrad, rmsprop, adam,
    /// adamw), with `torch.optim`'s defaults for everything not given.
    pub fn from_name(name: &str, lr: f32, momentum: f32, weight_decay: f32) -> Result<Self> {
        let optimizer = match name {
            "sgd" => Optimizer::sgd(lr),
            "momentum" => Optimizer::momentum(lr, momentum),
            "nesterov" => Optimizer::nesterov(lr, momentum),
            "adagrad" => Optimizer::adagrad(lr),
            "rmsprop" => Optimizer::rmsprop(lr),
            "adam" => Optimizer::adam(lr),
            "adamw" => Optimizer::adamw(lr),
            other => {
                return Err(Error::InvalidArgument(format!(
                    "unknown optimizer {other:?}: choose sgd, momentum, nesterov, adagrad, rmsprop, adam or adamw"
                )));
            }
        };
        // AdamW's decay is decoupled and defaults to 0.01; a given value replaces it.
        let optimizer = if weight_decay != 0.0 || name != "adamw" {
            optimizer.with_weight_decay(weight_decay)
        } else {
            optimizer
        };
        optimizer.validate()?;
        Ok(optimizer)
    }

    /// The base learning rate.
    pub fn lr(&self) -> f32 {
        match *self {
            Optimizer::Sgd { lr, .. }
            | Optimizer::Adagrad { lr, .. }
            | Optimizer::Rmsprop { lr, .. }
            | Optimizer::Adam { lr, .. }
            | Optimizer::AdamW { lr, .. } => lr,
        }
    }

    /// Sets the base learning rate.
    pub fn with_lr(mut self, value: f32) -> Self {
        match &mut self {
            Optimizer::Sgd { lr, .. }
            | Optimizer::Adagrad { lr, .. }
            | Optimizer::Rmsprop { lr, .. }
            | Optimizer::Adam { lr, .. }
            | Optimizer::AdamW { lr, .. } => *lr = value,
        }
        self
    }

    /// Sets Adam's and AdamW's (β1, β2); other optimizers have none and stay as they are.
    pub fn with_betas(mut self, beta1: f32, beta2: f32) -> Self {
        if let Optimizer::Adam { betas, .. } | Optimizer::AdamW { betas, .. } = &mut self {
            *betas = (beta1, beta2);
        }
        self
    }

    /// Sets the weight decay (L2 penalty; decoupled for AdamW).
    pub fn with_weight_decay(mut self, value: f32) -> Self {
        match &mut self {
            Optimizer::Sgd { weight_decay, .. }
            | Optimizer::Adagrad { weight_decay, .. }
            | Optimizer::Rmsprop { weight_decay, .. }
            | Optimizer::Adam { weight_decay, .. }
            | Optimizer::AdamW { weight_decay, .. } => *weight_decay = value,
        }
        self
    }

    /// Rejects hyper-parameters `torch.optim` rejects.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str| Err(Error::InvalidArgument(format!("{what} in {self:?}")));
        if !(self.lr() > 0.0 && self.lr().is_finite()) {
            return bad("learning rate must be positive and finite");
        }
        // torch.optim's own checks (eps, weight_decay, momentum, alpha, lr_decay ≥ 0), and
        // finiteness, which it does not check: an infinite or NaN one makes every update NaN.
        let (not_negative, finite): (&[f32], &[f32]) = match *self {
            Optimizer::Sgd {
                momentum,
                dampening,
                weight_decay,
                ..
            } => (&[momentum, weight_decay], &[dampening]),
            Optimizer::Adagrad {
                lr_decay,
                weight_decay,
                eps,
                ..
            } => (&[lr_decay, weight_decay, eps], &[]),
            Optimizer::Rmsprop {
                alpha,
                eps,
                weight_decay,
                momentum,
                ..
            } => (&[alpha, eps, weight_decay, momentum], &[]),
            Optimizer::Adam {
                eps, weight_decay, ..
            }
            | Optimizer::AdamW {
                eps, weight_decay, ..
            } => (&[eps, weight_decay], &[]),
        };
        if !not_negative.iter().all(|v| *v >= 0.0 && v.is_finite())
            || !finite.iter().all(|v| v.is_finite())
        {
            return bad(
                "eps, weight_decay, momentum, alpha and lr_decay must be finite and not negative",
            );
        }
        match *self {
            Optimizer::Sgd {
                momentum,
                dampening,
                nesterov,
                ..
            } if nesterov && (momentum <= 0.0 || dampening != 0.0) => {
                bad("Nesterov momentum requires a momentum and zero dampening")
            }
            Optimizer::Adam { betas, .. } | Optimizer::AdamW { betas, .. }
                if !(0.0..1.0).contains(&betas.0) || !(0.0..1.0).contains(&betas.1) =>
            {
                bad("betas must lie in [0, 1)")
            }
            _ => Ok(()),
        }
    }

    /// State tensors per parameter, named as in `torch.optim`'s state dicts, in the order the
    /// kernel binds them.
    pub fn state_names(&self) -> &'static [&'static str] {
        match *self {
            Optimizer::Sgd { momentum, .. } if momentum != 0.0 => &["momentum_buffer"],
            Optimizer::Sgd { .. } => &[],
            Optimizer::Adagrad { .. } => &["sum"],
            Optimizer::Rmsprop {
                centered, momentum, ..
            } => match (centered, momentum > 0.0) {
                (false, false) => &["square_avg"],
                (true, false) => &["square_avg", "grad_avg"],
                (false, true) => &["square_avg", "", "momentum_buffer"],
                (true, true) => &["square_avg", "grad_avg", "momentum_buffer"],
            },
            Optimizer::Adam { amsgrad, .. } | Optimizer::AdamW { amsgrad, .. } => {
                if amsgrad {
                    &["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]
                } else {
                    &["exp_avg", "exp_avg_sq"]
                }
            }
        }
    }

    /// The kernel and its fixed parameters; `l1` adds λ₁·sign(p) to the gradient.
    pub(crate) fn kernel_params(&self, l1: f32) -> (UpdateRule, OptimParams) {
        let base = OptimParams {
            l1,
            lr_scale: 1.0,
            ..OptimParams::default()
        };
        match *self {
            Optimizer::Sgd {
                momentum,
                dampening,
                nesterov,
                weight_decay,
                ..
            } => (
                UpdateRule::Sgd,
                OptimParams {
                    flags: if nesterov { OptimParams::NESTEROV } else { 0 },
                    beta1: momentum,
                    dampening,
                    weight_decay,
                    ..base
                },
            ),
            Optimizer::Adagrad {
                weight_decay, eps, ..
            } => (
                UpdateRule::Adagrad,
                OptimParams {
                    eps,
                    weight_decay,
                    ..base
                },
            ),
            Optimizer::Rmsprop {
                alpha,
                eps,
                weight_decay,
                momentum,
                centered,
                ..
            } => (
                UpdateRule::Rmsprop,
                OptimParams {
                    flags: if centered { OptimParams::CENTERED } else { 0 },
                    beta1: momentum,
                    beta2: alpha,
                    eps,
                    weight_decay,
                    ..base
                },
            ),
            Optimizer::Adam {
                betas,
                eps,
                weight_decay,
                amsgrad,
                ..
            }
            | Optimizer::AdamW {
                betas,
                eps,
                weight_decay,
                amsgrad,
                ..
            } => {
                let decoupled = matches!(self, Optimizer::AdamW { .. });
                let flags = if amsgrad { OptimParams::AMSGRAD } else { 0 }
                    | if decoupled { OptimParams::DECOUPLED } else { 0 };
                (
                    UpdateRule::Adam,
                    OptimParams {
                        flags,
                        beta1: betas.0,
                        beta2: betas.1,
                        eps,
                        weight_decay,
                        ..base
                    },
                )
            }
        }
    }

    /// The per-step uniform for 1-based step `t` at learning rate `lr`. Bias corrections are
    /// computed here in f64, as WGPU_NOTES advises: `β^t` in f32 on the GPU drifts.
    pub fn step_params(&self, t: u64, lr: f64, seed: u32) -> StepParams {
        let t_f = t as f64;
        let (lr, step_size, bc2_sqrt) = match *self {
            Optimizer::Adagrad { lr_decay, .. } => {
                (lr / (1.0 + (t_f - 1.0) * f64::from(lr_decay)), 0.0, 1.0)
            }
            Optimizer::Adam { betas, .. } | Optimizer::AdamW { betas, .. } => {
                let bc1 = 1.0 - f64::from(betas.0).powf(t_f);
                let bc2 = 1.0 - f64::from(betas.1).powf(t_f);
                (lr, lr / bc1, bc2.sqrt())
            }
            _ => (lr, 0.0, 1.0),
        };
        StepParams {
            step: u32::try_from(t).unwrap_or(u32::MAX),
            seed,
            lr: lr as f32,
            step_size: step_size as f32,
            bias_correction2_sqrt: bc2_sqrt as f32,
            slot: 0,
            _pad: [0; 2],
        }
    }
}
