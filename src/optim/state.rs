//! Optimizer state on the device: the state tensors (`exp_avg`, ...) as flat buffers with the
//! parameters' layout, the clip coefficient, and the dispatches of one update (optional
//! gradient clipping by global norm, then the fused rule).

use crate::error::Result;
use crate::gpu::{Dispatch, Gpu, Tensor};
use crate::graph::Weights;
use crate::kernels::optim::{OptimParams, UpdateBuffers, update_with};
use crate::kernels::reduce;
use crate::optim::{GroupSettings, Optimizer};

/// Everything an optimizer adds to a training step.
#[derive(Debug)]
pub struct OptimizerState {
    pub(crate) optimizer: Optimizer,
    /// Flat state tensors in the kernel's binding order; unused ones are one-vec4 stand-ins.
    pub(crate) states: Vec<Tensor>,
    /// Per parameter, what its parameter group sets.
    groups: Vec<GroupSettings>,
    dispatches: Vec<Dispatch>,
}

impl OptimizerState {
    /// `clip_norm` clips by global norm; `skip_nonfinite` leaves a step with a non-finite
    /// gradient undone instead of applying it; `groups` overrides the optimizer's weight
    /// decay and rate per parameter (its [`ParamGroup`](crate::optim::ParamGroup)).
    pub(crate) fn new(
        gpu: &Gpu,
        weights: &Weights,
        (optimizer, l1): (Optimizer, f32),
        (clip_norm, skip_nonfinite): (Option<f32>, bool),
        groups: Vec<GroupSettings>,
        step_ring: &wgpu::Buffer,
    ) -> Result<Self> {
        let n = weights.params.len();
        let names = optimizer.state_names();
        let states: Vec<Tensor> = (0..3)
            .map(|i| {
                let used = names.get(i).is_some_and(|name| !name.is_empty());
                gpu.zeros(&[if used { n } else { 4 }])
            })
            .collect::<Result<_>>()?;
        Self::with_states(
            gpu,
            weights,
            (optimizer, l1),
            (clip_norm, skip_nonfinite),
            step_ring,
            (states, groups),
        )
    }

    /// The same optimizer family with other hyper-parameters (learning rate, betas, decay,
    /// ...), keeping its state tensors: what changing a `param_group` does in `torch.optim`.
    /// A change of family, or one that adds or drops a state tensor (AMSGrad, centred
    /// RMSprop, SGD momentum), is refused: the state it needs does not exist.
    pub fn reconfigured(
        &self,
        gpu: &Gpu,
        weights: &Weights,
        (optimizer, l1): (Optimizer, f32),
        (clip_norm, skip_nonfinite): (Option<f32>, bool),
        step_ring: &wgpu::Buffer,
    ) -> Result<Self> {
        let family = |o: &Optimizer| (o.kernel_params(0.0).0, o.state_names());
        if family(&optimizer) != family(&self.optimizer) {
            return Err(crate::Error::InvalidArgument(format!(
                "{optimizer:?} cannot take over the state of {:?}: change hyper-parameters \
                 within one optimizer, or start a new trainer",
                self.optimizer
            )));
        }
        Self::with_states(
            gpu,
            weights,
            (optimizer, l1),
            (clip_norm, skip_nonfinite),
            step_ring,
            (self.states.clone(), self.groups.clone()),
        )
    }

    fn with_states(
        gpu: &Gpu,
        weights: &Weights,
        (optimizer, l1): (Optimizer, f32),
        (clip_norm, skip_nonfinite): (Option<f32>, bool),
        step_ring: &wgpu::Buffer,
        (states, groups): (Vec<Tensor>, Vec<GroupSettings>),
    ) -> Result<Self> {
        optimizer.validate()?;
        // A negative max norm would reverse every gradient (ascent), a NaN one skip clipping.
        if clip_norm.is_some_and(|c| !(c > 0.0 && c.is_finite())) || !(l1 >= 0.0 && l1.is_finite())
        {
            return Err(crate::Error::InvalidArgument(format!(
                "clip_norm {clip_norm:?} must be positive and finite, l1 {l1} finite and not negative"
            )));
        }
        if groups.len() != weights.param_views.len() {
            return Err(crate::Error::InvalidArgument(format!(
                "parameter-group settings for {} parameters, the model has {}",
                groups.len(),
                weights.param_views.len()
            )));
        }
        let base_lr = optimizer.lr();
        if base_lr == 0.0 && groups.iter().any(|g| g.lr.is_some_and(|lr| lr != 0.0)) {
            return Err(crate::Error::InvalidArgument(
                "a parameter group's own rate is a multiple of the optimizer's, which is 0".into(),
            ));
        }
        let clip = gpu.tensor(&[0.0, 1.0], &[2])?;
        // Skipping non-finite steps needs the gradient norm every step; without clipping, a
        // max norm of f32::MAX keeps the coefficient at 1.
        let max_norm = clip_norm.or(skip_nonfinite.then_some(f32::MAX));
        let mut dispatches = match max_norm {
            Some(max_norm) => reduce::clip_coefficient(gpu, max_norm, &weights.grads, &clip)?,
            None => vec![],
        };
        let (rule, mut params) = optimizer.kernel_params(l1);
        if skip_nonfinite {
            params.flags |= OptimParams::SKIP_NONFINITE;
        }
        // One fused dispatch per run of neighbouring parameters that share a weight decay and
        // rate (one for the whole model without parameter groups), each on views of the flat
        // buffers: parameters start on 256-byte boundaries, as bindings need.
        let total = weights.params.len();
        let settings_of = |i: usize| {
            let g = groups[i];
            let lr_scale =
                g.lr.map_or(1.0, |lr| if lr == 0.0 { 0.0 } else { lr / base_lr });
            (g.weight_decay.unwrap_or(params.weight_decay), lr_scale)
        };
        let same = |a: (f32, f32), b: (f32, f32)| {
            (a.0.to_bits(), a.1.to_bits()) == (b.0.to_bits(), b.1.to_bits())
        };
        let offsets = weights.offsets();
        let mut first = 0;
        while first < offsets.len() {
            let mut end = first + 1;
            while end < offsets.len() && same(settings_of(end), settings_of(first)) {
                end += 1;
            }
            let (weight_decay, lr_scale) = settings_of(first);
            let start = offsets[first];
            let len = offsets.get(end).copied().unwrap_or(total) - start;
            let view = |t: &Tensor| {
                if t.len() == total {
                    t.view(start, &[len])
                } else {
                    Ok(t.clone())
                }
            };
            dispatches.push(update_with(
                gpu,
                rule,
                OptimParams {
                    weight_decay,
                    lr_scale,
                    ..params
                },
                &UpdateBuffers {
                    step_ring,
                    grad: &view(&weights.grads)?,
                    clip: &clip,
                    param: &view(&weights.params)?,
                    states: [&view(&states[0])?, &view(&states[1])?, &view(&states[2])?],
                },
            )?);
            first = end;
        }
        Ok(Self {
            optimizer,
            states,
            groups,
            dispatches,
        })
    }

    pub(crate) fn record(&self, pass: &mut wgpu::ComputePass<'_>, slot: u32) {
        for dispatch in &self.dispatches {
            dispatch.record(pass, slot);
        }
    }

    /// Update dispatches per step: one per run of parameters sharing a group's settings.
    pub fn dispatch_count(&self) -> usize {
        self.dispatches.len()
    }
}
