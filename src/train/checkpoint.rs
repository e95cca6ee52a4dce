//! Checkpoints as safetensors in PyTorch's `state_dict` names and layouts (`0.weight` or
//! `blocks.0.fc.weight` is `[out, in]`; BatchNorm1d has `weight`, `bias`, `running_mean`,
//! `running_var`, `num_batches_tracked`), with optimizer state as `optim.<param>.<state>` and
//! the architecture (the graph) and training state as JSON metadata. Written atomically: a temp file beside the target,
//! fsync'd, then renamed over it, so a crash mid-write leaves the previous checkpoint whole.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

use crate::data::{Standardizer, Vocabulary};
use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::kernels::loss::Loss;
use crate::nn::Sequential;
use crate::optim::{Optimizer, ParamGroup, Schedule};
use crate::train::Trainer;

/// Where training stood when a checkpoint was written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainingState {
    /// Epochs completed.
    pub epoch: usize,
    /// Batches of the next epoch already done (a checkpoint taken mid-epoch), per rank.
    #[serde(default)]
    pub batch: usize,
    /// The data-parallel ranks that trained it (1 alone): a resume with another number
    /// continues from the same rows.
    #[serde(default = "one_rank")]
    pub ranks: usize,
    /// Optimizer steps taken.
    pub step: u64,
    /// The run's seed (shuffling, dropout and augmentation continue from it).
    pub seed: u64,
    /// The optimizer and its hyper-parameters at the time of saving.
    pub optimizer: Optimizer,
    /// How the run trains, so that a resume continues it exactly (absent in checkpoints
    /// written before it was kept).
    #[serde(default)]
    pub run: Option<RunSettings>,
}

fn one_rank() -> usize {
    1
}

/// The settings of a run besides the model and optimizer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSettings {
    /// Rows per step.
    pub batch_size: usize,
    /// L1 penalty.
    pub l1: f32,
    /// Gradient clipping norm.
    pub clip_norm: Option<f32>,
    /// The learning-rate schedule; its position is the step.
    pub schedule: Schedule,
    /// Warm-up steps.
    pub warmup_steps: u64,
    /// Whether rows are reshuffled each epoch.
    pub shuffle: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    /// Parameter groups with their own rate or decay.
    pub param_groups: Vec<ParamGroup>,
}

impl RunSettings {
    /// The settings `config` trains with.
    pub fn of(config: &crate::train::TrainConfig) -> Self {
        Self {
            batch_size: config.batch_size,
            l1: config.l1,
            clip_norm: config.clip_norm,
            schedule: config.schedule,
            warmup_steps: config.warmup_steps,
            shuffle: config.shuffle,
            param_groups: config.param_groups.clone(),
        }
    }

    /// A training configuration with these settings, `optimizer` and `seed`; the rest
    /// (augmentation, submission size) at their defaults.
    pub fn config(&self, optimizer: Optimizer, seed: u64) -> crate::train::TrainConfig {
        crate::train::TrainConfig {
            optimizer,
            seed,
            batch_size: self.batch_size,
            l1: self.l1,
            clip_norm: self.clip_norm,
            schedule: self.schedule,
            warmup_steps: self.warmup_steps,
            shuffle: self.shuffle,
            param_groups: self.param_groups.clone(),
            ..Default::default()
        }
    }
}

/// The model a checkpoint holds: its graph (ops, shapes, parameter names; see
/// [`Graph::to_json`]) and the input standardisation it was trained with.
#[derive(Clone, Debug, PartialEq)]
pub struct Architecture {
    /// The model.
    pub graph: Graph,
    /// The z-scores applied to inputs in training, to apply again at eval and predict time.
    pub standardize: Option<Standardizer>,
    /// A language model's characters in token order: what its token ids mean.
    pub vocabulary: Option<Vocabulary>,
}

/// The JSON under the `architecture` metadata key: `graph` since graph format 1; checkpoints
/// written before it hold a `Sequential` as `model` with its `loss`, and still load.
#[derive(Serialize, Deserialize)]
struct ArchitectureJson {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    graph: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    model: Option<Sequential>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    loss: Option<Loss>,
    #[serde(default)]
    standardize: Option<Standardizer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    vocabulary: Option<String>,
}

impl Architecture {
    /// Features per sample of the model's only input.
    pub fn in_features(&self) -> Option<usize> {
        self.graph.input_features()
    }

    /// Elements per sample of the output (classes for a classifier).
    pub fn out_features(&self) -> usize {
        self.graph.output_features().unwrap_or(0)
    }

    /// The loss the model was trained with (MSE for a file that names none).
    pub fn loss(&self) -> Loss {
        self.graph.loss().unwrap_or(Loss::Mse)
    }

    fn to_json(&self) -> Result<String> {
        to_json(&ArchitectureJson {
            graph: Some(self.graph.to_json_value()?),
            model: None,
            loss: None,
            standardize: self.standardize.clone(),
            vocabulary: self.vocabulary.as_ref().map(Vocabulary::chars),
        })
    }

    fn from_json(path: &Path, json: &str) -> Result<Self> {
        let invalid = |e: String| Error::invalid_data(path, "metadata.architecture", e);
        let file: ArchitectureJson =
            serde_json::from_str(json).map_err(|e| invalid(e.to_string()))?;
        let graph = match (file.graph, file.model, file.loss) {
            (Some(graph), _, _) => Graph::from_json_value(graph, path)?,
            (None, Some(model), Some(loss)) => {
                model.build(loss).map_err(|e| invalid(e.to_string()))?
            }
            _ => return Err(invalid("neither a graph nor a model with its loss".into())),
        };
        let vocabulary = file
            .vocabulary
            .map(|chars| Vocabulary::from_chars(&chars))
            .transpose()
            .map_err(|e| invalid(e.to_string()))?;
        Ok(Self {
            graph,
            standardize: file.standardize,
            vocabulary,
        })
    }
}

/// A loaded checkpoint: tensors by name, plus what the metadata says.
#[derive(Debug)]
pub struct Checkpoint {
    /// Where the bytes came from, for messages.
    pub path: PathBuf,
    /// Every tensor as f32 by name: shape and values.
    pub tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
    /// The model, if the file says (wgtrain's own files do; a bare `state_dict` does not).
    pub architecture: Option<Architecture>,
    /// Where training stood, if the file is a resumable checkpoint.
    pub training: Option<TrainingState>,
}

/// Writes `trainer`'s parameters, buffers and optimizer state to `path`, atomically.
#[cfg(not(target_arch = "wasm32"))]
pub fn save(
    path: &Path,
    trainer: &Trainer,
    architecture: &Architecture,
    training: &TrainingState,
) -> Result<()> {
    let bytes = pollster::block_on(serialize(trainer, architecture, Some(training)))?;
    write(path, &bytes)
}

/// Writes the model alone: parameters (under every name of a tied one) and buffers, exactly
/// the module's `state_dict`, so PyTorch's `load_state_dict` takes the file's tensors with no
/// key left over, and the architecture; no optimizer or training state, so it does not resume.
#[cfg(not(target_arch = "wasm32"))]
pub fn save_model(path: &Path, trainer: &Trainer, architecture: &Architecture) -> Result<()> {
    let bytes = pollster::block_on(serialize(trainer, architecture, None))?;
    write(path, &bytes)
}

/// Checkpoint bytes over `path`, atomically, after checking that they load: every
/// checkpoint written must, so a bad one never replaces a good one.
#[cfg(not(target_arch = "wasm32"))]
fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    parse(path, bytes)?;
    crate::files::write_atomically(path, bytes)
}

/// The safetensors bytes of `trainer`'s model (and, with `training`, its optimizer state).
async fn serialize(
    trainer: &Trainer,
    architecture: &Architecture,
    training: Option<&TrainingState>,
) -> Result<Vec<u8>> {
    let gpu = trainer.gpu();
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>, Dtype)> = vec![];
    let f32_bytes = |v: &[f32]| bytemuck::cast_slice::<f32, u8>(v).to_vec();
    let params = trainer
        .weights
        .split(&gpu.read_async(&trainer.weights.params).await?)?;
    for (spec, values) in trainer.graph.params().iter().zip(&params) {
        for name in std::iter::once(&spec.name).chain(&spec.aliases) {
            tensors.push((
                name.clone(),
                spec.shape.clone(),
                f32_bytes(values),
                Dtype::F32,
            ));
        }
    }
    for (spec, buffer) in trainer.graph.buffers().iter().zip(&trainer.weights.buffers) {
        let stats = gpu.read_async(buffer).await?;
        let (mean, var) = stats.split_at(spec.features);
        tensors.push((
            format!("{}.running_mean", spec.module),
            vec![spec.features],
            f32_bytes(mean),
            Dtype::F32,
        ));
        tensors.push((
            format!("{}.running_var", spec.module),
            vec![spec.features],
            f32_bytes(var),
            Dtype::F32,
        ));
        let step = training.map_or(trainer.step, |t| t.step);
        let tracked = i64::try_from(step).unwrap_or(i64::MAX);
        tensors.push((
            format!("{}.num_batches_tracked", spec.module),
            vec![],
            tracked.to_le_bytes().to_vec(),
            Dtype::I64,
        ));
    }
    let state = trainer.optimizer_state();
    let optimizer_states = match training {
        Some(_) => state.optimizer.state_names(),
        None => &[],
    };
    for (name, flat) in optimizer_states.iter().zip(&state.states) {
        if name.is_empty() {
            continue;
        }
        let per_param = trainer.weights.split(&gpu.read_async(flat).await?)?;
        for (spec, values) in trainer.graph.params().iter().zip(&per_param) {
            tensors.push((
                format!("optim.{}.{name}", spec.name),
                spec.shape.clone(),
                f32_bytes(values),
                Dtype::F32,
            ));
        }
    }
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(name, shape, bytes, dtype)| {
            TensorView::new(*dtype, shape.clone(), bytes)
                .map(|view| (name.clone(), view))
                .map_err(|e| Error::InvalidArgument(format!("tensor {name}: {e}")))
        })
        .collect::<Result<_>>()?;
    let mut metadata = HashMap::from([
        ("format".to_string(), "wgtrain".to_string()),
        ("architecture".to_string(), architecture.to_json()?),
    ]);
    if let Some(training) = training {
        metadata.insert("training".to_string(), to_json(training)?);
    }
    let bytes = safetensors::serialize(views, Some(metadata))
        .map_err(|e| Error::InvalidArgument(e.to_string()))?;
    sort_metadata(bytes)
}

/// safetensors writes its `__metadata__` map in a `HashMap`'s random order; sorting it
/// makes a checkpoint's bytes a function of its contents (the same state, the same file).
/// The header keeps its length: the same entries, reordered.
fn sort_metadata(mut bytes: Vec<u8>) -> Result<Vec<u8>> {
    let malformed = || Error::InvalidArgument("safetensors wrote a malformed header".into());
    let len = bytes
        .get(..8)
        .and_then(|n| usize::try_from(u64::from_le_bytes(n.try_into().ok()?)).ok())
        .ok_or_else(malformed)?;
    let header = bytes.get(8..8 + len).ok_or_else(malformed)?;
    let mut json: serde_json::Value = serde_json::from_slice(header).map_err(|_| malformed())?;
    if let Some(serde_json::Value::Object(metadata)) = json.get_mut("__metadata__") {
        metadata.sort_keys();
    }
    let mut sorted = serde_json::to_vec(&json).map_err(|_| malformed())?;
    if sorted.len() > len {
        return Err(malformed());
    }
    sorted.resize(len, b' ');
    bytes[8..8 + len].copy_from_slice(&sorted);
    Ok(bytes)
}

fn to_json(value: &impl Serialize) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::InvalidArgument(e.to_string()))
}

/// Reads a safetensors checkpoint (ours or PyTorch's `save_file` of a `state_dict`).
pub fn load(path: &Path) -> Result<Checkpoint> {
    parse(path, &crate::files::read_regular(path)?)
}

/// Parses checkpoint bytes; `path` only names the source in errors.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<Checkpoint> {
    let (_, metadata) = SafeTensors::read_metadata(bytes)
        .map_err(|e| Error::invalid_data(path, "header", format!("not a safetensors file: {e}")))?;
    let file = SafeTensors::deserialize(bytes)
        .map_err(|e| Error::invalid_data(path, "header", format!("not a safetensors file: {e}")))?;
    let meta = metadata.metadata().clone().unwrap_or_default();
    let parse = |key: &str| -> Result<Option<String>> { Ok(meta.get(key).cloned()) };
    let architecture = parse("architecture")?
        .map(|s| Architecture::from_json(path, &s))
        .transpose()?;
    let training = parse("training")?
        .map(|s| {
            serde_json::from_str(&s)
                .map_err(|e| Error::invalid_data(path, "metadata.training", e.to_string()))
        })
        .transpose()?;
    let mut tensors = HashMap::new();
    for name in file.names() {
        let view = file
            .tensor(name)
            .map_err(|e| Error::invalid_data(path, format!("tensor {name}"), e.to_string()))?;
        let values: Vec<f32> = match view.dtype() {
            Dtype::F32 => bytemuck::pod_collect_to_vec(view.data()),
            Dtype::I64 => bytemuck::pod_collect_to_vec::<u8, i64>(view.data())
                .iter()
                .map(|&v| v as f32)
                .collect(),
            other => {
                return Err(Error::invalid_data(
                    path,
                    format!("tensor {name}"),
                    format!("dtype {other:?} is not supported (f32 expected)"),
                ));
            }
        };
        tensors.insert(name.to_string(), (view.shape().to_vec(), values));
    }
    Ok(Checkpoint {
        path: path.to_path_buf(),
        tensors,
        architecture,
        training,
    })
}

impl Checkpoint {
    /// The tensor `name` with exactly `shape`, or an error naming the file and tensor.
    pub fn expect(&self, name: &str, shape: &[usize]) -> Result<&[f32]> {
        let (found, values) = self
            .tensors
            .get(name)
            .ok_or_else(|| Error::invalid_data(&self.path, format!("tensor {name}"), "missing"))?;
        if found != shape {
            return Err(Error::invalid_data(
                &self.path,
                format!("tensor {name}"),
                format!("shape {found:?}, the model needs {shape:?}"),
            ));
        }
        // A NaN weight can hide behind a ReLU and train "fine" into an all-NaN layer.
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(Error::invalid_data(
                &self.path,
                format!("tensor {name}, element {i}"),
                format!("{} is not finite", values[i]),
            ));
        }
        Ok(values)
    }

    /// Loads parameters and BatchNorm buffers into `trainer` (as `--init` does).
    pub fn load_weights(&self, trainer: &mut Trainer) -> Result<()> {
        let gpu = trainer.gpu().clone();
        let mut flat = vec![0.0f32; trainer.weights.params.len()];
        let offsets = trainer.weights.offsets().to_vec();
        for (spec, &offset) in trainer.graph.params().iter().zip(&offsets) {
            flat[offset..offset + spec.len()]
                .copy_from_slice(self.expect(&spec.name, &spec.shape)?);
        }
        gpu.write(&trainer.weights.params, &flat)?;
        for (spec, buffer) in trainer.graph.buffers().iter().zip(&trainer.weights.buffers) {
            let mean = self.expect(&format!("{}.running_mean", spec.module), &[spec.features])?;
            let var = self.expect(&format!("{}.running_var", spec.module), &[spec.features])?;
            gpu.write(buffer, &[mean, var].concat())?;
        }
        Ok(())
    }

    /// Loads everything `--resume` needs: weights, optimizer state and the step counter.
    pub fn load_training_state(&self, trainer: &mut Trainer) -> Result<TrainingState> {
        let training = self.training.clone().ok_or_else(|| {
            Error::invalid_data(
                &self.path,
                "metadata.training",
                "missing: this checkpoint cannot be resumed",
            )
        })?;
        // Checked before anything is written into the trainer.
        if training.ranks == 0 {
            return Err(Error::invalid_data(
                &self.path,
                "metadata.training",
                "saved by 0 ranks",
            ));
        }
        self.load_weights(trainer)?;
        let gpu = trainer.gpu().clone();
        let offsets = trainer.weights.offsets().to_vec();
        let names = trainer.optimizer_state().optimizer.state_names();
        for (name, flat_tensor) in names.iter().zip(&trainer.optimizer_state().states) {
            if name.is_empty() {
                continue;
            }
            // Squares' averages and sums: a negative one is a square root away from NaN
            // weights, which a ReLU can hide as a model that trains "fine".
            let squares = matches!(
                *name,
                "exp_avg_sq" | "max_exp_avg_sq" | "square_avg" | "sum"
            );
            let mut flat = vec![0.0f32; flat_tensor.len()];
            for (spec, &offset) in trainer.graph.params().iter().zip(&offsets) {
                let tensor = format!("optim.{}.{name}", spec.name);
                let values = self.expect(&tensor, &spec.shape)?;
                if squares && let Some(i) = values.iter().position(|&v| v < 0.0) {
                    return Err(Error::invalid_data(
                        &self.path,
                        format!("tensor {tensor}, element {i}"),
                        format!("{} is negative: it holds squares", values[i]),
                    ));
                }
                flat[offset..offset + spec.len()].copy_from_slice(values);
            }
            gpu.write(flat_tensor, &flat)?;
        }
        trainer.step = training.step;
        let ranks = trainer.communicator().size();
        if training.ranks == ranks {
            return Ok(training);
        }
        // Batch k of every rank is global batch k, a prefix of the epoch's order: the rows
        // done are batch · ranks of the old batches, which must be whole batches of the new.
        let global = training.batch * training.ranks;
        if !global.is_multiple_of(ranks) {
            return Err(Error::InvalidArgument(format!(
                "{}: saved by {} ranks after {} batches of an epoch, which is not a whole \
                 number of batches for {ranks} ranks; resume from an epoch's end, or with a \
                 number of ranks that divides {global}",
                self.path.display(),
                training.ranks,
                training.batch
            )));
        }
        Ok(TrainingState {
            batch: global / ranks,
            ranks,
            ..training
        })
    }
}

/// How errors name checkpoint bytes that came from no file.
const BYTES: &str = "(checkpoint bytes)";

impl Trainer {
    /// Saves the model (graph and weights, PyTorch names), the optimizer's state, the step
    /// and the run's settings to `path` in one call, atomically; [`Trainer::load`] continues
    /// from it exactly. Augmentation and submission settings are not saved.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn save(&self, path: &Path) -> Result<()> {
        write(path, &self.to_bytes()?)
    }

    /// What [`Trainer::save`] writes, as bytes: for callers that keep checkpoints elsewhere
    /// than in a file (a browser's storage, a network).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        pollster::block_on(self.to_bytes_async())
    }

    /// [`Trainer::to_bytes`] as a future.
    pub async fn to_bytes_async(&self) -> Result<Vec<u8>> {
        let c = self.config();
        let state = TrainingState {
            epoch: 0,
            batch: 0,
            ranks: self.communicator().size(),
            step: self.step,
            seed: c.seed,
            optimizer: c.optimizer,
            run: Some(RunSettings::of(c)),
        };
        serialize(self, &self.architecture(), Some(&state)).await
    }

    /// Saves the model alone (see [`save_model`]): what PyTorch loads with
    /// `load_state_dict` and `wgtrain generate` or [`Trainer::load_model`] read back.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn save_model(&self, path: &Path) -> Result<()> {
        write(path, &pollster::block_on(self.model_to_bytes_async())?)
    }

    /// What [`Trainer::save_model`] writes, as bytes.
    pub async fn model_to_bytes_async(&self) -> Result<Vec<u8>> {
        serialize(self, &self.architecture(), None).await
    }

    fn architecture(&self) -> Architecture {
        Architecture {
            graph: self.graph.clone(),
            standardize: None,
            vocabulary: self.vocabulary.clone(),
        }
    }

    /// A trainer holding the model of any wgtrain checkpoint or model file (graph, weights,
    /// vocabulary), with a fresh optimizer: for inference and generation, or to fine-tune.
    pub fn load_model(gpu: &crate::Gpu, path: &Path) -> Result<Trainer> {
        Self::with_model(gpu, load(path)?)
    }

    /// [`Trainer::load_model`] from bytes.
    pub fn model_from_bytes(gpu: &crate::Gpu, bytes: &[u8]) -> Result<Trainer> {
        Self::with_model(gpu, parse(Path::new(BYTES), bytes)?)
    }

    fn with_model(gpu: &crate::Gpu, checkpoint: Checkpoint) -> Result<Trainer> {
        let architecture = checkpoint.architecture.clone().ok_or_else(|| {
            Error::invalid_data(
                &checkpoint.path,
                "metadata.architecture",
                "missing: a bare state_dict does not say which model it is",
            )
        })?;
        let mut trainer = Trainer::for_graph(gpu, architecture.graph, Default::default())?;
        trainer.vocabulary = architecture.vocabulary;
        checkpoint.load_weights(&mut trainer)?;
        Ok(trainer)
    }

    /// The trainer a checkpoint describes (from [`Trainer::save`] or `wgtrain train
    /// --save`): graph, weights, optimizer and its state, step, seed and run settings, so
    /// that the next step is the one the saved trainer would have taken.
    pub fn load(gpu: &crate::Gpu, path: &Path) -> Result<Trainer> {
        Self::resume(gpu, load(path)?)
    }

    /// [`Trainer::load`] from the bytes [`Trainer::to_bytes`] gave.
    pub fn from_bytes(gpu: &crate::Gpu, bytes: &[u8]) -> Result<Trainer> {
        Self::resume(gpu, parse(Path::new(BYTES), bytes)?)
    }

    fn resume(gpu: &crate::Gpu, checkpoint: Checkpoint) -> Result<Trainer> {
        let path = checkpoint.path.clone();
        let missing = |what: &str| {
            Error::invalid_data(&path, what, "missing: not a checkpoint wgtrain can resume")
        };
        let architecture = checkpoint
            .architecture
            .clone()
            .ok_or_else(|| missing("metadata.architecture"))?;
        let training = checkpoint
            .training
            .clone()
            .ok_or_else(|| missing("metadata.training"))?;
        let config = match &training.run {
            Some(run) => run.config(training.optimizer, training.seed),
            None => crate::train::TrainConfig {
                optimizer: training.optimizer,
                seed: training.seed,
                ..Default::default()
            },
        };
        let mut trainer = Trainer::for_graph(gpu, architecture.graph, config)?;
        trainer.vocabulary = architecture.vocabulary;
        checkpoint.load_training_state(&mut trainer)?;
        Ok(trainer)
    }
}
