//! Optimizer state on the device: the state tensors (`exp_avg`, ...) as flat buffers with the
//! parameters' layout, the clip coefficient, and the dispatches of one update (optional
//! gradient clipping by global norm, then the fused rule).

use crate::error::Result;
use crate::gpu::{Dispatch, Gpu, Tensor};
use crate::graph::Weights;
use crate::kernels::optim::{OptimParams, UpdateBuffers, update};
use crate::kernels::reduce;
use crate::optim::Optimizer;

/// Everything an optimizer adds to a training step.
pub struct OptimizerState {
    pub optimizer: Optimizer,
    /// Flat state tensors in the kernel's binding order; unused ones are one-element stand-ins.
    pub states: Vec<Tensor>,
    dispatches: Vec<Dispatch>,
}

impl OptimizerState {
    /// `clip_norm` clips by global norm; `skip_nonfinite` leaves a step with a non-finite
    /// gradient undone instead of applying it.
    pub fn new(
        gpu: &Gpu,
        weights: &Weights,
        (optimizer, l1): (Optimizer, f32),
        clip_norm: Option<f32>,
        skip_nonfinite: bool,
        step_ring: &wgpu::Buffer,
    ) -> Result<Self> {
        let n = weights.params.len();
        let names = optimizer.state_names();
        let states: Vec<Tensor> = (0..3)
            .map(|i| {
                let used = names.get(i).is_some_and(|name| !name.is_empty());
                gpu.zeros(&[if used { n } else { 1 }])
            })
            .collect::<Result<_>>()?;
        Self::with_states(
            gpu,
            weights,
            (optimizer, l1),
            (clip_norm, skip_nonfinite),
            step_ring,
            states,
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
            self.states.clone(),
        )
    }

    fn with_states(
        gpu: &Gpu,
        weights: &Weights,
        (optimizer, l1): (Optimizer, f32),
        (clip_norm, skip_nonfinite): (Option<f32>, bool),
        step_ring: &wgpu::Buffer,
        states: Vec<Tensor>,
    ) -> Result<Self> {
        optimizer.validate()?;
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
        dispatches.push(update(
            gpu,
            rule,
            params,
            &UpdateBuffers {
                step_ring,
                grad: &weights.grads,
                clip: &clip,
                param: &weights.params,
                states: [&states[0], &states[1], &states[2]],
            },
        )?);
        Ok(Self {
            optimizer,
            states,
            dispatches,
        })
    }

    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>, slot: u32) {
        for dispatch in &self.dispatches {
            dispatch.record(pass, slot);
        }
    }

    pub fn dispatch_count(&self) -> usize {
        self.dispatches.len()
    }
}
