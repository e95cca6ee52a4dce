//! Parameters in one flat device buffer and gradients in a second with the same layout, so a
//! single fused optimizer dispatch updates the whole model. Each parameter starts on a
//! 64-float (256-byte) boundary, the alignment storage bindings need; the gaps hold zeros in
//! both buffers and stay zero under every update rule.

use rand::RngExt;
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::error::{Error, Result};
use crate::gpu::{Gpu, Tensor};
use crate::graph::{Graph, Init};

const ALIGN: usize = 64;

/// Where each parameter starts in the flat buffers.
fn param_offsets(graph: &Graph) -> Vec<usize> {
    graph
        .params
        .iter()
        .scan(0, |next, p| {
            let offset = *next;
            *next += p.len().div_ceil(ALIGN) * ALIGN;
            Some(offset)
        })
        .collect()
}

/// Elements of the flat buffers: a multiple of `ALIGN`, never 0, so an empty model still binds
/// and the optimizer runs its vec4 kernel.
fn flat_len(graph: &Graph) -> usize {
    graph
        .params
        .iter()
        .map(|p| p.len().div_ceil(ALIGN) * ALIGN)
        .sum::<usize>()
        .max(ALIGN)
}

/// The model's trainable parameters, their gradients, and its non-trainable buffers.
#[derive(Debug)]
pub struct Weights {
    /// Every parameter in one flat buffer, each starting on an aligned offset.
    pub params: Tensor,
    /// The gradients, laid out as `params`.
    pub grads: Tensor,
    /// Each parameter as a view into `params`, in the graph's order.
    pub param_views: Vec<Tensor>,
    /// Each gradient as a view into `grads`.
    pub grad_views: Vec<Tensor>,
    /// BatchNorm running statistics, `[2, features]`: running_mean then running_var.
    pub buffers: Vec<Tensor>,
    offsets: Vec<usize>,
}

impl Weights {
    /// Initialises every parameter from a seeded generator, as PyTorch's defaults do.
    pub fn init(gpu: &Gpu, graph: &Graph, seed: u64) -> Result<Self> {
        // Refuse an impossible model before drawing (or uploading) anything.
        gpu.check_size("the flat parameter buffer", 4 * flat_len(graph) as u64)?;
        let mut rng = StdRng::seed_from_u64(seed);
        let values: Vec<Vec<f32>> = graph
            .params
            .iter()
            .map(|p| -> Result<Vec<f32>> {
                p.init.check(&p.name)?;
                Ok(match p.init {
                    Init::Uniform { bound } => (0..p.len())
                        .map(|_| rng.random_range(-bound..=bound))
                        .collect(),
                    Init::Normal { std } => {
                        let normal = rand_distr::Normal::new(0.0, std).map_err(|e| {
                            Error::InvalidArgument(format!("init of {}: {e}", p.name))
                        })?;
                        (0..p.len()).map(|_| rng.sample(normal)).collect()
                    }
                    Init::Constant(c) => vec![c; p.len()],
                })
            })
            .collect::<Result<_>>()?;
        Self::from_values(gpu, graph, &values)
    }

    /// Parameters from given values, in the graph's parameter order.
    pub fn from_values(gpu: &Gpu, graph: &Graph, values: &[Vec<f32>]) -> Result<Self> {
        let offsets = param_offsets(graph);
        let total = flat_len(graph);
        let flat = flatten(graph, values)?;
        let params = gpu.tensor(&flat, &[total])?;
        let grads = gpu.zeros(&[total])?;
        let views = |t: &Tensor| -> Result<Vec<Tensor>> {
            graph
                .params
                .iter()
                .zip(&offsets)
                .map(|(p, &o)| t.view(o, &p.shape))
                .collect()
        };
        let buffers = graph
            .buffers
            .iter()
            .map(|b| {
                gpu.tensor(
                    &[vec![0.0; b.features], vec![1.0; b.features]].concat(),
                    &[2, b.features],
                )
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            param_views: views(&params)?,
            grad_views: views(&grads)?,
            params,
            grads,
            buffers,
            offsets,
        })
    }

    /// Each parameter's values, in graph order (one readback of the flat buffer).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read_params(&self, gpu: &Gpu) -> Result<Vec<Vec<f32>>> {
        pollster::block_on(self.read_params_async(gpu))
    }

    /// [`Weights::read_params`] as a future.
    pub async fn read_params_async(&self, gpu: &Gpu) -> Result<Vec<Vec<f32>>> {
        self.split(&gpu.read_async(&self.params).await?)
    }

    /// Each parameter's gradient from the last step, in graph order.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read_grads(&self, gpu: &Gpu) -> Result<Vec<Vec<f32>>> {
        self.split(&gpu.read(&self.grads)?)
    }

    /// Cuts a flat host copy into per-parameter vectors.
    pub fn split(&self, flat: &[f32]) -> Result<Vec<Vec<f32>>> {
        Ok(self
            .param_views
            .iter()
            .zip(&self.offsets)
            .map(|(v, &o)| flat[o..o + v.len()].to_vec())
            .collect())
    }

    /// Overwrites every parameter with `values` (graph order, each its parameter's length),
    /// in place: plans and the optimizer keep the buffers they were built on.
    pub fn write_params(&self, gpu: &Gpu, graph: &Graph, values: &[Vec<f32>]) -> Result<()> {
        gpu.write(&self.params, &flatten(graph, values)?)
    }

    /// Element offset of each parameter inside the flat buffers.
    pub fn offsets(&self) -> &[usize] {
        &self.offsets
    }
}

/// `values` (one vector per parameter, graph order) as the flat parameter buffer's contents,
/// after checking their number, lengths and finiteness.
fn flatten(graph: &Graph, values: &[Vec<f32>]) -> Result<Vec<f32>> {
    if values.len() != graph.params.len() {
        return Err(Error::InvalidArgument(format!(
            "{} parameter tensors given for a model with {}",
            values.len(),
            graph.params.len()
        )));
    }
    let mut flat = vec![0.0f32; flat_len(graph)];
    for ((p, v), &offset) in graph.params.iter().zip(values).zip(&param_offsets(graph)) {
        if v.len() != p.len() {
            return Err(Error::ShapeMismatch {
                op: format!("parameter {}", p.name),
                left: p.shape.clone(),
                right: vec![v.len()],
            });
        }
        // As in a checkpoint: a NaN weight can hide behind a ReLU and train "fine".
        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
            return Err(Error::InvalidArgument(format!(
                "parameter {}, element {i} is {}: parameters must be finite",
                p.name, v[i]
            )));
        }
        flat[offset..offset + v.len()].copy_from_slice(v);
    }
    Ok(flat)
}
