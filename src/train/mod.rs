//! The training loop: plans per batch size, batches gathered on the GPU, several steps per
//! submission, per-step losses copied into a ring read back asynchronously, schedules fed
//! through the step-uniform ring, and evaluation.

pub mod checkpoint;
mod feed;

use feed::Gathered;
mod metrics;
#[cfg(feature = "cli")]
mod plot;
#[cfg(feature = "cli")]
mod progress;
mod text;

pub use metrics::{ClassificationMetrics, RegressionMetrics};
#[cfg(feature = "cli")]
pub use plot::plot_curves;
#[cfg(feature = "cli")]
pub use progress::EpochProgress;
pub use text::Sampling;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::data::device::{OrderKey, Shard, Storage};
use crate::data::{Dataset, DeviceDataset, Vocabulary};
use crate::dist::{Communicator, Solo};
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, PendingRead, STEP_SLOT_BYTES, Tensor};
use crate::graph::{Feed, Graph, Mode, Plan, Weights};
use crate::kernels::data::{RowFormat, gather_rows};
use crate::kernels::loss::Loss;
use crate::kernels::optim::StepParams;
use crate::kernels::random::random_shift;
use crate::kernels::reduce::copy_to_step_slot;
use crate::nn::Sequential;
use crate::optim::{Optimizer, OptimizerState, ParamGroup, Schedule};

/// How to train.
///
/// ```
/// use wgtrain::optim::{Optimizer, ParamGroup, ParamSelect, Schedule};
/// use wgtrain::train::TrainConfig;
/// // nanoGPT's recipe: AdamW, warm-up then cosine decay, no decay on vectors, clipped gradients.
/// let config = TrainConfig {
///     optimizer: Optimizer::adamw(1e-3),
///     schedule: Schedule::Cosine { total_steps: 5000, min_lr: 1e-4 },
///     warmup_steps: 100,
///     param_groups: vec![ParamGroup::new(ParamSelect::RankBelow(2)).with_weight_decay(0.0)],
///     clip_norm: Some(1.0),
///     batch_size: 64,
///     ..TrainConfig::default()
/// };
/// assert_eq!(config.seed, TrainConfig::default().seed);
/// ```
#[derive(Clone, Debug)]
pub struct TrainConfig {
    /// The update rule and its hyper-parameters (`lr` is the base rate the schedule scales).
    pub optimizer: Optimizer,
    /// λ₁ of an L1 penalty added to the gradient (0: none).
    pub l1: f32,
    /// Clip gradients to this global L2 norm, as `torch.nn.utils.clip_grad_norm_`.
    pub clip_norm: Option<f32>,
    /// How the rate moves with the step after the warm-up.
    pub schedule: Schedule,
    /// Steps of linear warm-up from 0 to the base rate (0: none).
    pub warmup_steps: u64,
    /// Weight decay per group of parameters (`torch.optim`'s param groups); empty: the
    /// optimizer's for all.
    pub param_groups: Vec<ParamGroup>,
    /// Rows per optimizer step (the last batch of an epoch may have fewer).
    pub batch_size: usize,
    /// Reshuffle the rows every epoch (from `seed` and the epoch, so resumes draw alike).
    pub shuffle: bool,
    /// Seeds initialisation, shuffling, dropout and augmentation.
    pub seed: u64,
    /// The most steps recorded into one submission (a loop's first submissions hold 1, 4, ...
    /// to get the GPU going sooner); the host waits for none of them.
    pub steps_per_submit: usize,
    /// Random image shifts of up to ± this many pixels (0: none); needs image rows.
    pub augment_shift: u32,
    /// Random rotations (± degrees) and scalings (1 ± scale) of image rows, with
    /// `augment_shift` as the translation: torchvision's `RandomAffine`, bilinear. Zero for
    /// both keeps the exact whole-pixel shifts.
    pub augment_degrees: f32,
    /// Random scaling by a factor in `1 ± augment_scale` (see `augment_degrees`).
    pub augment_scale: f32,
    /// Skip updates whose gradient is not finite (and report their loss) instead of stopping
    /// with `Error::NonFinite`.
    pub skip_nonfinite: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            optimizer: Optimizer::adam(1e-3),
            l1: 0.0,
            clip_norm: None,
            schedule: Schedule::Constant,
            warmup_steps: 0,
            param_groups: vec![],
            batch_size: 64,
            shuffle: true,
            seed: 0,
            steps_per_submit: 16,
            augment_shift: 0,
            augment_degrees: 0.0,
            augment_scale: 0.0,
            skip_nonfinite: false,
        }
    }
}

/// One optimizer step as reported to callbacks and `--log-steps`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepLog {
    /// The 0-based epoch the step belongs to.
    pub epoch: usize,
    /// The step's 1-based number over the whole run.
    pub step: u64,
    /// The batch's mean loss before the update (the global batch's, data-parallel).
    pub loss: f32,
    /// The learning rate the step used.
    pub lr: f64,
    /// Rows in the step's batch: data-parallel, the global batch's (all ranks').
    pub rows: usize,
}

/// Loss and outputs of a pass over a dataset in eval mode.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// Mean loss per row.
    pub loss: f64,
    /// `[rows, outputs]`, in dataset order.
    pub outputs: Vec<f32>,
}

/// A model, its optimizer, and everything compiled to train it.
///
/// Train, lower the rate, save, load, predict:
///
/// ```
/// use wgtrain::prelude::*;
/// let gpu = Gpu::new()?;
/// // y = 2x - 1, from 32 points.
/// let x: Vec<f32> = (0..32).map(|i| i as f32 / 16.0 - 1.0).collect();
/// let y: Vec<f32> = x.iter().map(|v| 2.0 * v - 1.0).collect();
/// let data = DeviceDataset::upload(&gpu, &Dataset::regression(x, 1, y, 1)?)?;
/// let config = TrainConfig { optimizer: Optimizer::adam(0.1), batch_size: 8, ..Default::default() };
/// let mut trainer = Trainer::for_model(&gpu, &Sequential::new(1).linear(1), Loss::Mse, config)?;
/// for epoch in 0..40 {
///     if epoch == 30 {
///         trainer.set_lr(0.01)?; // from the next step on; Adam keeps its moments
///     }
///     trainer.fit_epoch(&data, epoch, &mut |_step| {})?;
/// }
/// let bytes = trainer.to_bytes()?; // or trainer.save(path)
/// let mut loaded = Trainer::from_bytes(&gpu, &bytes)?;
/// assert_eq!(loaded.predict(&[0.5])?, trainer.predict(&[0.5])?);
/// assert!((loaded.predict(&[0.5])?[0] - 0.0).abs() < 0.05);
/// # Ok::<(), wgtrain::Error>(())
/// ```
pub struct Trainer {
    gpu: Gpu,
    graph: Graph,
    /// Private: plans and the optimizer are bound to these buffers, so a replaced `Weights`
    /// would be trained by nobody. Values go in through [`Trainer::set_params`].
    pub(crate) weights: Weights,
    optimizer: OptimizerState,
    config: TrainConfig,
    step_ring: wgpu::Buffer,
    loss_ring: Tensor,
    plans: HashMap<(usize, Mode), Plan>,
    /// How each batch reaches the plan, per (dataset, batch offset, batch size, mode).
    gathers: HashMap<(usize, usize, usize, Mode), Gathered>,
    scratch: HashMap<usize, Tensor>,
    /// Per training batch size: the dispatch that copies a step's loss into its ring slot.
    loss_copies: HashMap<usize, Dispatch>,
    /// Optimizer steps taken so far: the schedule's position and the random kernels' key.
    pub(crate) step: u64,
    /// What a language model's token ids mean; saved with it, so a checkpoint can generate.
    vocabulary: Option<Vocabulary>,
    /// The data-parallel ranks this trainer averages gradients with ([`Solo`] alone).
    comm: Arc<dyn Communicator>,
    /// Steps between two comparisons of the ranks' weights.
    weight_check_steps: u64,
    /// Time spent averaging gradients over the ranks so far.
    averaging: AveragingTime,
}

/// Seconds a data-parallel trainer has spent averaging gradients, by part.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct AveragingTime {
    /// The gradients read back from the GPU, and handed to the queue to be written again.
    pub copies: f64,
    /// The collectives between the ranks (all-to-all, sum, all-gather).
    pub collectives: f64,
}

/// By default a data-parallel trainer compares its weights across ranks after every this many
/// steps ([`Trainer::set_weight_check_steps`]).
pub const WEIGHT_CHECK_STEPS: u64 = 100;

impl std::fmt::Debug for Trainer {
    /// The adapter, the model's size, the step and the settings: not the compiled plans.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("gpu", &self.gpu)
            .field("params", &self.graph.params().len())
            .field("step", &self.step)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Trainer {
    /// A trainer over `graph` with `weights` already allocated for it (from [`Weights::init`]
    /// or a checkpoint); [`Trainer::for_graph`] allocates and initialises them instead.
    pub fn new(gpu: &Gpu, graph: Graph, weights: Weights, config: TrainConfig) -> Result<Self> {
        if config.batch_size == 0 {
            return Err(Error::InvalidArgument(
                "batch size must be at least 1".into(),
            ));
        }
        config.schedule.validate()?;
        let slots = config.steps_per_submit.max(1);
        // Checked before creating it: a buffer past the device's limits is an out-of-band
        // error that the next, unrelated call would have reported.
        gpu.check_size(
            &format!("the step ring of steps_per_submit = {slots}"),
            (slots as u64).saturating_mul(STEP_SLOT_BYTES),
        )?;
        let step_ring = gpu.device().create_buffer(&wgpu::BufferDescriptor {
            label: Some("wgtrain step ring"),
            size: slots as u64 * STEP_SLOT_BYTES,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let optimizer = OptimizerState::new(
            gpu,
            &weights,
            (config.optimizer, config.l1),
            (config.clip_norm, config.skip_nonfinite),
            ParamGroup::resolve(&config.param_groups, graph.params())?,
            &step_ring,
        )?;
        Ok(Self {
            gpu: gpu.clone(),
            loss_ring: gpu.zeros(&[slots])?,
            graph,
            weights,
            optimizer,
            config,
            step_ring,
            plans: HashMap::new(),
            gathers: HashMap::new(),
            scratch: HashMap::new(),
            loss_copies: HashMap::new(),
            step: 0,
            vocabulary: None,
            comm: Arc::new(Solo),
            weight_check_steps: WEIGHT_CHECK_STEPS,
            averaging: AveragingTime::default(),
        })
    }

    /// Builds `model`'s graph with `loss`, initialises its weights from `config.seed` as
    /// PyTorch's defaults do, and compiles nothing yet: plans compile on first use.
    pub fn for_model(
        gpu: &Gpu,
        model: &Sequential,
        loss: Loss,
        config: TrainConfig,
    ) -> Result<Self> {
        Self::for_graph(gpu, model.build(loss)?, config)
    }

    /// A trainer for `graph` with weights initialised from `config.seed` as PyTorch's
    /// defaults do (plans compile on first use).
    pub fn for_graph(gpu: &Gpu, graph: Graph, config: TrainConfig) -> Result<Self> {
        let weights = Weights::init(gpu, &graph, config.seed)?;
        Self::new(gpu, graph, weights, config)
    }

    /// Trains data-parallel with the ranks of `comm` ([`dist::from_env`](crate::dist::from_env)
    /// under `mpirun`), as PyTorch's DistributedDataParallel does: each rank takes its own
    /// shard of every epoch (`batch_size` rows per step, so a global batch is `batch_size`
    /// times the ranks), the gradients are averaged over the ranks before every update,
    /// the losses `fit` reports are the global batch's, and the ranks' weights are compared
    /// every [`WEIGHT_CHECK_STEPS`] steps by default. Every rank must make the same calls.
    ///
    /// The ranks' weights must be the same to start with (the same seed, or the same
    /// checkpoint loaded after this call): it checks, on every rank.
    pub fn set_communicator(&mut self, comm: Arc<dyn Communicator>) -> Result<()> {
        self.comm = comm;
        if self.comm.size() > 1 {
            self.check_same_weights()?;
        }
        Ok(())
    }

    /// The ranks this trainer trains with.
    pub fn communicator(&self) -> &dyn Communicator {
        &*self.comm
    }

    /// Compares the ranks' weights after every `steps` data-parallel steps (at least 1).
    pub fn set_weight_check_steps(&mut self, steps: u64) {
        self.weight_check_steps = steps.max(1);
    }

    /// The time this trainer has spent averaging gradients over its ranks (none alone).
    pub fn averaging_time(&self) -> AveragingTime {
        self.averaging
    }

    fn shard(&self) -> Shard {
        Shard {
            rank: self.comm.rank(),
            ranks: self.comm.size(),
        }
    }

    /// How this trainer trains. The optimizer's hyper-parameters and the schedule can change
    /// between steps ([`Trainer::set_lr`], [`Trainer::set_optimizer`],
    /// [`Trainer::set_schedule`]); the rest is fixed at construction.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// Changes the base learning rate from the next step on (the schedule, if any, scales
    /// the new base), as setting `param_group['lr']` does in PyTorch.
    pub fn set_lr(&mut self, lr: f32) -> Result<()> {
        self.set_optimizer(self.config.optimizer.with_lr(lr))
    }

    /// Hands the trainer a new schedule (and warm-up) from the next step on. Its position is
    /// the trainer's step count, so a schedule given mid-run continues where the run is, as
    /// a PyTorch scheduler built with `last_epoch = step` does; it is saved with the trainer.
    /// To step a schedule by hand instead, keep [`Schedule::Constant`] here and call
    /// [`Trainer::set_lr`] with [`Schedule::lr_at`] before each step.
    pub fn set_schedule(&mut self, schedule: Schedule, warmup_steps: u64) -> Result<()> {
        schedule.validate()?;
        self.config.schedule = schedule;
        self.config.warmup_steps = warmup_steps;
        Ok(())
    }

    /// Changes the optimizer's hyper-parameters from the next step on, keeping its state
    /// (moments, step count). Refused, leaving the trainer as it was, for another optimizer
    /// family or a change that needs state the current one lacks (turning on AMSGrad).
    pub fn set_optimizer(&mut self, optimizer: Optimizer) -> Result<()> {
        self.optimizer = self.optimizer.reconfigured(
            &self.gpu,
            &self.weights,
            (optimizer, self.config.l1),
            (self.config.clip_norm, self.config.skip_nonfinite),
            &self.step_ring,
        )?;
        self.config.optimizer = optimizer;
        Ok(())
    }

    /// The device the trainer's buffers live on.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// The model being trained.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Optimizer steps taken so far (a loaded checkpoint's count included): the next step
    /// is `step() + 1`, which the schedule and the random kernels key on.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// What a language model's token ids mean, if the trainer knows.
    pub fn vocabulary(&self) -> Option<&Vocabulary> {
        self.vocabulary.as_ref()
    }

    /// Names the model's token ids, so that checkpoints carry the vocabulary and can
    /// generate text. Refused unless the model is a language model over exactly
    /// `vocabulary.len()` tokens (its output's last axis).
    pub fn set_vocabulary(&mut self, vocabulary: Vocabulary) -> Result<()> {
        let (_, logits) = self.language_model_sizes()?;
        if logits != vocabulary.len() {
            return Err(Error::ShapeMismatch {
                op: "vocabulary against the model's logits".into(),
                left: vec![vocabulary.len()],
                right: vec![logits],
            });
        }
        self.vocabulary = Some(vocabulary);
        Ok(())
    }

    /// The parameters, their gradients and the BatchNorm buffers on the device. Read-only:
    /// plans and the optimizer are bound to these buffers, so values go in through
    /// [`Trainer::set_params`] (checked against the model's shapes) and training alone.
    /// Neither the weights nor the model nor the step count can be swapped from outside:
    ///
    /// ```compile_fail
    /// # fn swap(trainer: &mut wgtrain::train::Trainer, weights: wgtrain::graph::Weights) {
    /// trainer.weights = weights;
    /// # }
    /// ```
    /// ```compile_fail
    /// # fn swap(trainer: &mut wgtrain::train::Trainer, graph: wgtrain::graph::Graph) {
    /// trainer.graph = graph;
    /// # }
    /// ```
    /// ```compile_fail
    /// # fn rewind(trainer: &mut wgtrain::train::Trainer) {
    /// trainer.step = 0;
    /// # }
    /// ```
    pub fn weights(&self) -> &Weights {
        &self.weights
    }

    /// The model's outputs for host `rows` (`[n, features]`, flat), in eval mode (dropout off,
    /// BatchNorm's running statistics): `[n, outputs]`. No labels needed; rows are checked
    /// as datasets are (finite, the model's width).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn predict(&mut self, rows: &[f32]) -> Result<Vec<f32>> {
        pollster::block_on(self.predict_async(rows))
    }

    /// [`Trainer::predict`] as a future, for callers that must not block (a browser).
    pub async fn predict_async(&mut self, rows: &[f32]) -> Result<Vec<f32>> {
        let (Some(cols), Some(outputs)) =
            (self.graph.input_features(), self.graph.output_features())
        else {
            return Err(Error::InvalidArgument(
                "predict feeds models with one input and an output".into(),
            ));
        };
        if rows.is_empty() || !rows.len().is_multiple_of(cols) {
            return Err(Error::ShapeMismatch {
                op: "predict (rows of the model's input width)".into(),
                left: vec![rows.len()],
                right: vec![cols],
            });
        }
        let n = rows.len() / cols;
        // Targets the loss ignores for the outputs: class 0, or zeros.
        let data = match self.graph.loss() {
            Some(Loss::CrossEntropy) => Dataset::classification(rows.to_vec(), cols, vec![0; n])?,
            _ => Dataset::regression(rows.to_vec(), cols, vec![0.0; n * outputs], outputs)?,
        };
        let device = DeviceDataset::streamed(&data)?;
        let outputs = self.evaluate_async(&device).await.map(|eval| eval.outputs);
        // The set lives for this call only: forget the batch feeds prepared for it, or each
        // call would leave its own behind.
        self.gathers.retain(|key, _| key.0 != device.id);
        outputs
    }

    /// The most likely class of each row (first on ties): [`Trainer::predict`] then argmax.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn predict_classes(&mut self, rows: &[f32]) -> Result<Vec<usize>> {
        pollster::block_on(self.predict_classes_async(rows))
    }

    /// [`Trainer::predict_classes`] as a future.
    pub async fn predict_classes_async(&mut self, rows: &[f32]) -> Result<Vec<usize>> {
        let classes = self.graph.output_features().unwrap_or(1);
        let outputs = self.predict_async(rows).await?;
        Ok(ClassificationMetrics::argmax(&outputs, classes))
    }

    /// Sets every parameter (graph order, PyTorch layouts), checked against the model's
    /// shapes; the next step trains from these values.
    pub fn set_params(&mut self, values: &[Vec<f32>]) -> Result<()> {
        self.weights.write_params(&self.gpu, &self.graph, values)
    }

    /// The optimizer's state tensors and its update dispatches.
    pub fn optimizer_state(&self) -> &OptimizerState {
        &self.optimizer
    }

    /// The training plan for `batch` beside the optimizer update that follows it: the
    /// dispatches of one step, for `bench --profile` (native only, as the bench is).
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn step_dispatches(&mut self, batch: usize) -> Result<(&Plan, &OptimizerState)> {
        self.plan(batch, Mode::Train)?;
        Ok((&self.plans[&(batch, Mode::Train)], &self.optimizer))
    }

    /// The compiled plan for `batch` in `mode` (compiled on first use).
    pub fn plan(&mut self, batch: usize, mode: Mode) -> Result<&Plan> {
        if !self.plans.contains_key(&(batch, mode)) {
            let plan = self.gpu.compiling_concurrently(|| {
                Plan::compile(
                    &self.gpu,
                    &self.graph,
                    &self.weights,
                    &self.step_ring,
                    batch,
                    mode,
                )
            })?;
            self.plans.insert((batch, mode), plan);
        }
        Ok(&self.plans[&(batch, mode)])
    }

    /// The learning rate at 1-based step `t`.
    pub fn lr_at(&self, t: u64) -> f64 {
        self.config.schedule.lr_at(
            f64::from(self.config.optimizer.lr()),
            t,
            self.config.warmup_steps,
        )
    }

    fn write_step_params(&self, slot: usize, t: u64) {
        // Each data-parallel rank keys its own random draws (dropout masks, augmentations, a
        // language model's blocks); rank 0 draws what a single process would.
        let rank_key = (self.comm.rank() as u32).wrapping_mul(0x9e37_79b9);
        let seed = (self.config.seed as u32).wrapping_add(rank_key);
        let params = StepParams {
            slot: slot as u32,
            ..self.config.optimizer.step_params(t, self.lr_at(t), seed)
        };

        self.gpu.queue().write_buffer(
            &self.step_ring,
            slot as u64 * STEP_SLOT_BYTES,
            bytemuck::bytes_of(&params),
        );
    }

    /// One training step on host data: `x` is `[batch, in]`, `y` the targets. Waits for the
    /// loss (tests and small programs; `fit_epoch` never waits per step).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn train_batch(&mut self, x: &[f32], y: &[f32]) -> Result<f32> {
        pollster::block_on(self.batch_step(&[Feed::F32(x)], y, true))
    }

    /// Forward and backward without the update: leaves ∂L/∂params in `weights.grads`.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn compute_gradients(&mut self, x: &[f32], y: &[f32]) -> Result<f32> {
        pollster::block_on(self.batch_step(&[Feed::F32(x)], y, false))
    }

    /// One training step of a graph with any number of inputs, one host batch per input in
    /// graph order (u32 for index inputs).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn train_inputs(&mut self, inputs: &[Feed<'_>], y: &[f32]) -> Result<f32> {
        pollster::block_on(self.train_inputs_async(inputs, y))
    }

    /// [`Trainer::train_inputs`] as a future.
    pub async fn train_inputs_async(&mut self, inputs: &[Feed<'_>], y: &[f32]) -> Result<f32> {
        self.batch_step(inputs, y, true).await
    }

    /// [`Trainer::compute_gradients`] for a graph with any number of inputs.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn compute_gradients_inputs(&mut self, inputs: &[Feed<'_>], y: &[f32]) -> Result<f32> {
        pollster::block_on(self.batch_step(inputs, y, false))
    }

    async fn batch_step(&mut self, inputs: &[Feed<'_>], y: &[f32], update: bool) -> Result<f32> {
        let batch = self.feed_batch(inputs)?;
        self.check_targets(y)?;
        self.plan(batch, Mode::Train)?;
        let plan = &self.plans[&(batch, Mode::Train)];
        plan.write_inputs(&self.gpu, inputs)?;
        self.gpu.write(plan.target(), y)?;
        let t = self.step + 1;
        self.write_step_params(0, t);
        let averaged = self.comm.size() > 1;
        self.gpu.run_pass(|pass| {
            plan.record(pass, 0);
            if update && !averaged {
                self.optimizer.record(pass, 0);
            }
        })?;
        if averaged {
            // Data-parallel: this rank's batch is its shard; the update uses every rank's.
            self.average_gradients()?;
            if update {
                self.gpu.run_pass(|pass| self.optimizer.record(pass, 0))?;
            }
        }
        if update {
            self.step = t;
        }
        let plan = &self.plans[&(batch, Mode::Train)];
        let mut loss = self.gpu.read_async(plan.loss()).await?;
        self.comm.mean(&mut loss)?;
        let loss = loss[0];
        if !loss.is_finite() {
            return Err(Error::NonFinite {
                what: "loss".into(),
                step: t,
            });
        }
        Ok(loss)
    }

    /// Refuses a target that is not finite, or, under cross-entropy, not a class index of
    /// the model's: either would give a NaN loss, but only after the step's update had
    /// trained on it (and a NaN gradient leaves NaN weights).
    fn check_targets(&self, y: &[f32]) -> Result<()> {
        if let Some(i) = y.iter().position(|t| !t.is_finite()) {
            return Err(Error::InvalidArgument(format!(
                "target {i} is {}: targets must be finite",
                y[i]
            )));
        }
        let Some(classes) = self.classes() else {
            return Ok(());
        };
        let is_class = |t: f32| t >= 0.0 && t.fract() == 0.0 && t < classes as f32;
        match y.iter().position(|&t| !is_class(t)) {
            Some(i) => Err(Error::InvalidArgument(format!(
                "target {i} is {}: cross-entropy takes class indices 0..{} (the model has {classes} classes)",
                y[i],
                classes - 1
            ))),
            None => Ok(()),
        }
    }

    /// The model's classes where it classifies (cross-entropy over its output's last axis):
    /// what a label must lie below.
    pub(super) fn classes(&self) -> Option<usize> {
        match self.graph.loss() {
            Some(Loss::CrossEntropy) => self.graph.output_dims()?.last().copied(),
            _ => None,
        }
    }

    /// The batch size host inputs imply, checked against every input's per-sample size.
    fn feed_batch(&self, inputs: &[Feed<'_>]) -> Result<usize> {
        let specs = self.graph.inputs();
        if inputs.len() != specs.len() {
            return Err(Error::InvalidArgument(format!(
                "{} input batches given for a graph with {} inputs",
                inputs.len(),
                specs.len()
            )));
        }
        let mut batch = None;
        let limits = self.graph.index_limits();
        for (((name, dims, _), feed), limit) in specs.iter().zip(inputs).zip(limits) {
            let per_sample: usize = dims.iter().product();
            // A non-finite feature, or an index past its table (which would read another
            // row's memory): garbage the update would then train on.
            let (len, bad) = match feed {
                Feed::F32(d) => (
                    d.len(),
                    d.iter()
                        .position(|v| !v.is_finite())
                        .map(|i| (i, format!("{}: inputs must be finite", d[i]))),
                ),
                Feed::U32(d) => (
                    d.len(),
                    limit.and_then(|rows| {
                        d.iter().position(|&t| t as usize >= rows).map(|i| {
                            let what = format!(
                                "{}, past the {rows} rows of the embedding it indexes",
                                d[i]
                            );
                            (i, what)
                        })
                    }),
                ),
            };
            if let Some((i, what)) = bad {
                return Err(Error::InvalidArgument(format!(
                    "input {name}: sample {}, element {} is {what}",
                    i / per_sample.max(1),
                    i % per_sample.max(1),
                )));
            }
            if len == 0
                || !len.is_multiple_of(per_sample)
                || batch.is_some_and(|b| b != len / per_sample)
            {
                return Err(Error::ShapeMismatch {
                    op: format!("input {name} (whole samples, the same batch for every input)"),
                    left: dims.to_vec(),
                    right: vec![len],
                });
            }
            batch = Some(len / per_sample);
        }
        batch.ok_or_else(|| Error::InvalidArgument("the graph has no input".into()))
    }

    /// The batches of one epoch over `rows` rows, as `(offset, size)`: the last one partial.
    /// A data-parallel trainer's are those of its rank's shard; there are
    /// [`steps_per_epoch`] of them.
    pub fn epoch_batches(&self, rows: usize) -> Vec<(usize, usize)> {
        let rows = self.shard().rows(rows);
        let bs = self.config.batch_size;
        (0..rows)
            .step_by(bs)
            .map(|o| (o, bs.min(rows - o)))
            .collect()
    }

    /// One epoch over `data`: shuffled (seeded by seed and epoch) unless configured not to, the
    /// last partial batch included. `on_step` sees each step's loss as it arrives. Returns the
    /// epoch's mean loss.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn fit_epoch(
        &mut self,
        data: &DeviceDataset,
        epoch: usize,
        on_step: &mut dyn FnMut(&StepLog),
    ) -> Result<f64> {
        pollster::block_on(self.fit_epoch_async(data, epoch, on_step))
    }

    /// [`Trainer::fit_epoch`] as a future: it awaits each submission's losses instead of
    /// blocking on them.
    pub async fn fit_epoch_async(
        &mut self,
        data: &DeviceDataset,
        epoch: usize,
        on_step: &mut dyn FnMut(&StepLog),
    ) -> Result<f64> {
        let batches = self.epoch_batches(data.rows).len();
        let (loss_rows, rows) = self
            .fit_batches_async(data, epoch, 0..batches, on_step)
            .await?;
        Ok(loss_rows / rows.max(1) as f64)
    }

    /// Batches `range` of epoch `epoch` (the order depends only on seed and epoch, so an epoch
    /// can be split at any batch and resumed). Returns Σ loss·rows and the rows seen; every
    /// loss has been checked finite when it returns, so a checkpoint taken now is a good one.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn fit_batches(
        &mut self,
        data: &DeviceDataset,
        epoch: usize,
        range: std::ops::Range<usize>,
        on_step: &mut dyn FnMut(&StepLog),
    ) -> Result<(f64, usize)> {
        pollster::block_on(self.fit_batches_async(data, epoch, range, on_step))
    }

    /// [`Trainer::fit_batches`] as a future.
    pub async fn fit_batches_async(
        &mut self,
        data: &DeviceDataset,
        epoch: usize,
        range: std::ops::Range<usize>,
        on_step: &mut dyn FnMut(&StepLog),
    ) -> Result<(f64, usize)> {
        let order = if self.config.shuffle {
            OrderKey::Shuffled {
                seed: self.config.seed,
                epoch,
            }
        } else {
            OrderKey::Identity
        };

        if self.comm.size() > 1 {
            crate::dist::expect_same(&*self.comm, data.rows as u64, |rows| {
                format!(
                    "the ranks' datasets have different sizes ({rows:?} rows by rank): every \
                     rank must load the same data"
                )
            })?;
        }
        data.use_order(&self.gpu, order, self.shard())?;
        let all = self.epoch_batches(data.rows);
        let batches = all.get(range.clone()).ok_or_else(|| {
            Error::InvalidArgument(format!("batches {range:?} of an epoch of {}", all.len()))
        })?;
        let chunks = in_submissions(batches, self.steps_per_submit(data));
        let sizes: Vec<Vec<usize>> = chunks
            .iter()
            .map(|chunk| chunk.iter().map(|&(_, b)| b).collect())
            .collect();
        let next_order = match order {
            OrderKey::Shuffled { seed, epoch } if range.end == all.len() => {
                Some(OrderKey::Shuffled {
                    seed,
                    epoch: epoch + 1,
                })
            }
            _ => None,
        };
        let mut submit = |trainer: &mut Self, i: usize| {
            let (steps, _staged) = trainer.record_steps(data, chunks[i])?;
            let read = trainer.submit_reading_losses(steps, chunks[i].len())?;
            // The GPU has the epoch's last steps: the host draws the next epoch's order.
            if let Some(next) = next_order.filter(|_| i + 1 == chunks.len()) {
                data.draw_ahead(next, trainer.shard())?;
            }
            Ok(read)
        };
        let total = self.pipelined(epoch, &sizes, &mut submit, on_step).await?;
        Ok((total, batches.iter().map(|&(_, b)| b).sum()))
    }

    /// `steps` training steps cycling through `data` in order, `batch` rows each, reading back
    /// only the last loss: the timed loop of the mlp-bench benchmark.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn run_steps(&mut self, data: &DeviceDataset, batch: usize, steps: usize) -> Result<f32> {
        if !(1..=data.rows).contains(&batch) {
            return Err(Error::InvalidArgument(format!(
                "run_steps at batch {batch} over a dataset of {} rows: the batch must be 1..={}",
                data.rows, data.rows
            )));
        }
        let per_epoch = data.rows / batch;
        let all: Vec<(usize, usize)> = (0..steps)
            .map(|s| ((s % per_epoch) * batch, batch))
            .collect();
        let chunks = in_submissions(&all, self.steps_per_submit(data));
        let mut last = None;
        for (i, chunk) in chunks.iter().enumerate() {
            let (encoder, _staged) = self.record_steps(data, chunk)?;
            if i + 1 < chunks.len() {
                self.gpu.queue().submit([encoder.finish()]);
                self.gpu.take_fault()?;
            } else {
                last = Some(self.submit_reading_losses(encoder, chunk.len())?);
            }
        }
        let Some(last) = last else {
            return Err(Error::InvalidArgument("run_steps of 0 steps".into()));
        };
        let losses = last.wait(&self.gpu)?;
        let loss = bytemuck::pod_read_unaligned::<f32>(&losses[losses.len() - 4..]);
        if !loss.is_finite() {
            return Err(Error::NonFinite {
                what: "loss".into(),
                step: self.step,
            });
        }
        Ok(loss)
    }

    /// Submits one submission per entry of `chunks` (its steps' batch rows) through
    /// `submit(self, i)`, which records and submits them with the read of their losses (see
    /// [`Trainer::submit_reading_losses`]) and advances `self.step`, handing each step's loss
    /// to `on_step` as it lands; returns Σ loss · batch rows.
    async fn pipelined(
        &mut self,
        epoch: usize,
        chunks: &[Vec<usize>],
        submit: &mut dyn FnMut(&mut Self, usize) -> Result<PendingRead>,
        on_step: &mut dyn FnMut(&StepLog),
    ) -> Result<f64> {
        let firsts: Vec<u64> = chunks
            .iter()
            .scan(self.step + 1, |next, chunk| {
                let first = *next;
                *next += chunk.len() as u64;
                Some(first)
            })
            .collect();
        let mut total = 0.0;
        let mut land = |trainer: &mut Self, i: usize, bytes: Vec<u8>| {
            total += trainer.report(epoch, firsts[i], &chunks[i], bytes, on_step)?;
            Ok(())
        };
        self.in_flight(chunks.len(), submit, &mut land).await?;
        Ok(total)
    }

    /// Makes `count` submissions through `submit(self, i)`, each returning the read of its
    /// results, with up to three in flight so that the GPU is never left waiting for the host;
    /// hands each read's bytes to `land(self, i, bytes)` in order, as they arrive.
    async fn in_flight(
        &mut self,
        count: usize,
        submit: &mut dyn FnMut(&mut Self, usize) -> Result<PendingRead>,
        land: &mut Landing<'_>,
    ) -> Result<()> {
        let mut pending = VecDeque::new();
        for i in 0..=count {
            if i < count {
                pending.push_back((i, submit(self, i)?));
            }
            let keep = if i < count { 2 } else { 0 };
            while pending.len() > keep {
                let (j, read) = pending.pop_front().expect("more reads pending than kept");
                let bytes = read.bytes(&self.gpu).await?;
                land(self, j, bytes)?;
            }
        }
        Ok(())
    }

    /// Hands each step's loss to `on_step`; returns Σ loss · batch rows.
    fn report(
        &self,
        epoch: usize,
        first: u64,
        sizes: &[usize],
        bytes: Vec<u8>,
        on_step: &mut dyn FnMut(&StepLog),
    ) -> Result<f64> {
        let mut losses: Vec<f32> = bytemuck::pod_collect_to_vec(&bytes);
        // Each rank's batches are equally large: the global batch's loss is the ranks' mean.
        self.comm.mean(&mut losses)?;
        let mut weighted = 0.0;
        for (j, (&loss, &rows)) in losses.iter().zip(sizes).enumerate() {
            let step = first + j as u64;
            if !loss.is_finite() && !self.config.skip_nonfinite {
                return Err(Error::NonFinite {
                    what: "loss".into(),
                    step,
                });
            }
            on_step(&StepLog {
                epoch,
                step,
                loss,
                lr: self.lr_at(step),
                rows: rows * self.comm.size(),
            });
            // A skipped step (the optimizer left it undone on the GPU) stays out of the mean.
            if loss.is_finite() {
                weighted += f64::from(loss) * rows as f64;
            }
        }
        Ok(weighted)
    }

    /// Loss and outputs over `data` in eval mode (running statistics, no dropout).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn evaluate(&mut self, data: &DeviceDataset) -> Result<Evaluation> {
        pollster::block_on(self.evaluate_async(data))
    }

    /// [`Trainer::evaluate`] as a future.
    pub async fn evaluate_async(&mut self, data: &DeviceDataset) -> Result<Evaluation> {
        data.use_order(&self.gpu, OrderKey::Identity, Shard::WHOLE)?;
        let bs = self.config.batch_size;
        let batches: Vec<(usize, usize)> = (0..data.rows)
            .step_by(bs)
            .map(|offset| (offset, bs.min(data.rows - offset)))
            .collect();
        let mut outputs = Vec::with_capacity(data.rows * self.graph.output_features().unwrap_or(0));
        let mut total = 0.0;
        let mut land = |trainer: &mut Self, i: usize, bytes: Vec<u8>| {
            // The batch's outputs, then its loss.
            let values: Vec<f32> = bytemuck::pod_collect_to_vec(&bytes);
            let (batch_outputs, loss) = values.split_at(values.len() - 1);
            // A NaN loss means NaN weights or running statistics: such a model has no
            // accuracy worth reporting either. An infinite one is a diverged model's honest
            // (overflowed) error, which `--skip-nonfinite` runs report.
            if loss[0].is_nan() {
                return Err(Error::NonFinite {
                    what: "evaluation loss".into(),
                    step: trainer.step,
                });
            }
            outputs.extend_from_slice(batch_outputs);
            total += f64::from(loss[0]) * batches[i].1 as f64;
            Ok(())
        };
        self.in_flight(
            batches.len(),
            &mut |trainer, i| trainer.submit_eval_batch(data, batches[i]),
            &mut land,
        )
        .await?;
        Ok(Evaluation {
            loss: total / data.rows.max(1) as f64,
            outputs,
        })
    }

    /// Submits the eval-mode forward pass of rows `offset..offset + batch` of `data`'s current
    /// order with the read of its outputs and loss.
    fn submit_eval_batch(
        &mut self,
        data: &DeviceDataset,
        (offset, batch): (usize, usize),
    ) -> Result<PendingRead> {
        self.gather_dispatches(data, offset, batch, Mode::Eval)?;
        if data.is_streamed() {
            // Queued writes land between the submissions before and this one: in flight or
            // not, each batch reads its own rows.
            let gathered = &self.gathers[&(data.id, offset, batch, Mode::Eval)];
            let (x, y) = data.host_batch(offset, batch)?;
            self.gpu.write(&gathered.landing, &x)?;
            self.gpu.write(&gathered.target, &y)?;
        }
        let plan = &self.plans[&(batch, Mode::Eval)];
        let encoder = self.record_eval(data.id, (offset, batch));
        self.submit_reading(
            encoder,
            &[plan.output().byte_range(), plan.loss().byte_range()],
        )
    }

    /// An encoder holding the eval-mode forward pass of a batch: the gathers that
    /// `(source, offset, batch)` names (a dataset's or a token stream's), then the plan.
    pub(super) fn record_eval(
        &self,
        source: usize,
        (offset, batch): (usize, usize),
    ) -> wgpu::CommandEncoder {
        let mut encoder = self
            .gpu
            .device()
            .create_command_encoder(&Default::default());
        let mut pass = encoder.begin_compute_pass(&Default::default());
        for d in &self.gathers[&(source, offset, batch, Mode::Eval)].dispatches {
            d.record(&mut pass, 0);
        }
        self.plans[&(batch, Mode::Eval)].record(&mut pass, 0);
        drop(pass);
        encoder
    }

    /// Submits `encoder` with the read of `ranges` (see [`Gpu::submit_and_read`]).
    pub(super) fn submit_reading(
        &self,
        encoder: wgpu::CommandEncoder,
        ranges: &[(&wgpu::Buffer, u64, u64)],
    ) -> Result<PendingRead> {
        let read = self.gpu.submit_and_read(encoder, ranges);
        self.gpu.take_fault()?;
        Ok(read)
    }
}

/// What [`Trainer::in_flight`] hands each submission's read bytes to, with its index.
type Landing<'a> = dyn FnMut(&mut Trainer, usize, Vec<u8>) -> Result<()> + 'a;

/// How a loop of `steps` training steps splits into submissions: 1, 4, 16, ... steps, up to
/// `most` at a time. A loop starts with the GPU idle (the call before drained it to read its
/// last losses): a one-step first submission sets it going after one step's recording rather
/// than a whole submission's, and each later one is recorded while the GPU runs those before.
/// Growing fourfold rather than twofold costs a loop of 16-step submissions two extra
/// submissions rather than four, which a host-bound loop (a tiny model) pays for in full.
pub(crate) fn submission_sizes(steps: usize, most: usize) -> Vec<usize> {
    let most = most.max(1);
    let (mut sizes, mut done, mut next) = (vec![], 0, 1);
    while done < steps {
        let size = next.min(most).min(steps - done);
        sizes.push(size);
        done += size;
        next = (4 * next).min(most);
    }
    sizes
}

/// `items` cut into consecutive submissions of [`submission_sizes`].
fn in_submissions<T>(items: &[T], most: usize) -> Vec<&[T]> {
    let mut rest = items;
    submission_sizes(items.len(), most)
        .into_iter()
        .map(|size| {
            let (chunk, after) = rest.split_at(size);
            rest = after;
            chunk
        })
        .collect()
}

/// Steps in one epoch over `rows` rows at `batch` rows a step, on each of `ranks` data-parallel
/// ranks: each takes ⌈rows / ranks⌉ rows (PyTorch's `DistributedSampler`), its last batch
/// partial. What [`Trainer::epoch_batches`] counts, for a schedule sized before the trainer
/// exists.
pub fn steps_per_epoch(rows: usize, ranks: usize, batch: usize) -> usize {
    Shard { rank: 0, ranks }.rows(rows).div_ceil(batch.max(1))
}

/// One line to stdout. A closed or full stdout (`wgtrain train ... | head -1`) drops the line
/// instead of panicking as `println!` does: a report must never cost a run its checkpoint.
pub fn say(line: impl std::fmt::Display) {
    use std::io::Write;
    if QUIET.load(std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// Silences [`say`] (not [`warn`]): the data-parallel ranks other than 0 report nothing.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, std::sync::atomic::Ordering::Relaxed);
}

static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// [`say`] for stderr.
pub fn warn(line: impl std::fmt::Display) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

#[cfg(test)]
mod tests {
    use super::submission_sizes;

    /// Every step is submitted once, in submissions of 1, 4, 16, ... steps up to `most`, only
    /// the last cut short.
    #[test]
    fn submissions_ramp_up_to_the_most_steps_each() {
        for most in 0..=20 {
            for steps in 0..100 {
                let sizes = submission_sizes(steps, most);
                assert_eq!(sizes.iter().sum::<usize>(), steps, "{steps} steps, {most}");
                let mut ramp = 1;
                for (k, &size) in sizes.iter().enumerate() {
                    let full = ramp.min(most.max(1));
                    if k + 1 < sizes.len() {
                        assert_eq!(size, full, "{steps} steps, most {most}: {sizes:?}");
                    } else {
                        assert!((1..=full).contains(&size), "{steps}, {most}: {sizes:?}");
                    }
                    ramp = ramp.saturating_mul(4);
                }
            }
        }
    }
}
