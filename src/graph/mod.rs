//! The op graph: a DAG of nodes over N-d values `[batch, d1, ..., dk]` (the batch is a
//! parameter of each compiled plan; parameters enter as unbatched values), reverse-mode
//! differentiation with one VJP rule per op kind (`ops/`), a fusion pass over the graph
//! (`fuse.rs`), and compilation into a plan of dispatches (`plan.rs`).
//!
//! Every node is created through one private `push`, which runs the op's shape rule
//! (`shapes.rs`): shape errors surface when the graph is built (or loaded from JSON), never
//! when a plan runs. Nodes are stored in creation order, which is a topological order.

mod builder;
mod custom;
mod fuse;
mod json;
mod liveness;
mod ops;
mod plan;
mod shapes;
mod weights;

pub use custom::{CustomOp, CustomShape};
pub use json::GRAPH_FORMAT_VERSION;
pub(crate) use ops::loss_rows;
pub use plan::{Feed, Mode, Plan, PlanInput, PlanStats};
pub use weights::Weights;

use crate::error::{Error, Result};
use crate::kernels::Activation;
use crate::kernels::conv::Conv2dConfig;
use crate::kernels::loss::Loss;
use crate::kernels::norm::BatchNormConfig;
use crate::kernels::pool::Pool2d;

/// A node of the graph, by creation index.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct NodeId(pub(crate) usize);

/// A parameter tensor of the graph (weight, bias, γ, β, embedding table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct ParamId(pub(crate) usize);

/// How a parameter starts.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Init {
    /// U(−bound, bound): PyTorch's Linear init, where Kaiming-uniform with a = √5 gives
    /// bound = 1/√fan_in for the weight, and the bias uses the same bound.
    Uniform {
        /// The half-width of the interval.
        bound: f32,
    },
    /// N(0, std²), as `nn.Embedding` (std 1) or GPT-style initialisations.
    Normal {
        /// The standard deviation.
        std: f32,
    },
    /// Every element the same value (BatchNorm's γ = 1, β = 0).
    Constant(f32),
}

impl Init {
    /// Refuses an init no generator can draw (a hand-written graph file may hold one): a
    /// negative or non-finite spread, a span past f32's range, a non-finite constant.
    pub(crate) fn check(self, param: &str) -> Result<()> {
        let (what, value, fits) = match self {
            Init::Uniform { bound } => ("bound", bound, bound >= 0.0 && (2.0 * bound).is_finite()),
            Init::Normal { std } => ("std", std, std >= 0.0 && std.is_finite()),
            Init::Constant(value) => ("constant", value, value.is_finite()),
        };
        if fits {
            return Ok(());
        }
        Err(Error::InvalidArgument(format!(
            "init of {param}: {what} {value} (a spread must be finite and not negative, a uniform's whole span a finite f32)"
        )))
    }
}

/// A named parameter with PyTorch's name and layout (`0.weight` is `[out, in]`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ParamSpec {
    /// The `state_dict` name, e.g. `0.weight` or `transformer.h.0.attn.c_attn.weight`.
    pub name: String,
    /// PyTorch's layout: Linear weights `[out, in]`, Conv2d's `[O, C, kh, kw]`.
    pub shape: Vec<usize>,
    /// How the first step finds it.
    pub init: Init,
    /// Further `state_dict` names of this one tensor: a weight tied to another module's
    /// (nanoGPT's `lm_head.weight` is `transformer.wte.weight`) is saved under each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
}

impl ParamSpec {
    /// Elements in the tensor.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the tensor has no elements (a zero in its shape).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A non-trainable state tensor carried by the model (BatchNorm's running statistics).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BufferSpec {
    /// The PyTorch module prefix, e.g. `1` for `1.running_mean`.
    pub module: String,
    /// Channels: the buffer holds running mean and variance of each.
    pub features: usize,
}

/// Element type of a value. Indices (token ids, class labels) are u32; they carry no gradient.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum DType {
    /// 32-bit floats: activations, parameters, regression targets.
    F32,
    /// Unsigned 32-bit indices.
    U32,
}

/// What a node computes. The serialized form of a graph (checkpoint metadata, `--model`
/// files) is a list of these with their inputs; each kind's shape rule is in `shapes.rs`,
/// its kernels and VJP in `ops/`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum Op {
    /// A batched input the host (or a gather) fills: `[batch, dims...]`.
    Input {
        name: String,
        dims: Vec<usize>,
        dtype: DType,
    },
    /// A parameter as an unbatched value of its own shape.
    Param {
        param: ParamId,
    },
    /// `y = x · Wᵀ + b` over the last axis, `W` being `[out, in]` as in PyTorch. The fusion
    /// pass may set an activation applied in the same kernel; builders never do.
    Linear {
        weight: ParamId,
        bias: Option<ParamId>,
        #[serde(default = "identity", skip_serializing_if = "is_identity")]
        activation: Activation,
    },
    Activation {
        activation: Activation,
    },
    /// Inverted dropout (kept values scaled by 1/(1 − p)); the identity in eval mode.
    Dropout {
        p: f32,
    },
    /// Batch normalisation over axis 1 of `[batch, C, ...]`: statistics per channel over the
    /// batch and every other axis, as BatchNorm1d (`[B, C]`, `[B, C, L]`) and BatchNorm2d
    /// (`[B, C, H, W]`).
    BatchNorm {
        gamma: ParamId,
        beta: ParamId,
        buffer: usize,
        config: BatchNormConfig,
    },
    /// `a + b`, `a − b`, `a ⊙ b`: `b` has `a`'s shape, or is unbatched with a suffix of it
    /// (broadcast over the leading axes, as numpy aligns trailing axes).
    Add,
    Sub,
    Mul,
    /// `alpha · x`
    Scale {
        alpha: f32,
    },
    /// Concatenation of the inputs along the last axis.
    Concat,
    /// Columns `start .. start + len` of the last axis (`x[..., start:start + len]`).
    Slice {
        start: usize,
        len: usize,
    },
    /// The same elements under other feature dims (a free view).
    Reshape {
        dims: Vec<usize>,
    },
    /// Swaps two axes (indices into the full shape; the batch axis stays first).
    Transpose {
        axes: [usize; 2],
    },
    /// `op(a) · op(b)` over the last two axes, batched over the leading ones (equal in both).
    MatMul {
        trans_a: bool,
        trans_b: bool,
    },
    /// Softmax over the last axis; `causal` masks key j > query i of the last two (square) axes.
    Softmax {
        causal: bool,
    },
    /// LayerNorm over the last axis with affine γ, β.
    LayerNorm {
        gamma: ParamId,
        beta: ParamId,
        eps: f32,
    },
    /// Causal multi-head self-attention on `c_attn`'s packed output, `[.., T, 3C] → [.., T, C]`:
    /// per head h, `softmax(mask(q_h·k_hᵀ/√D))·v_h` with q, k, v the three C-wide column
    /// blocks, heads side by side in the output. One fused kernel per direction; the
    /// `T × T` scores never exist in memory.
    CausalSelfAttention {
        heads: usize,
    },
    /// Rows of `weight` (`[vocab, dim]`) picked by u32 indices: `[batch, ...] → [batch, ..., dim]`.
    Embedding {
        weight: ParamId,
    },
    /// Sum (or mean) over one non-batch axis, which disappears from the shape.
    Reduce {
        axis: usize,
        mean: bool,
    },
    /// `nn.Conv2d` over `[batch, C, H, W]`: weight `[O, C, kh, kw]`, bias `[O]`. Like
    /// Linear's, its activation is set by the fusion pass only.
    Conv2d {
        weight: ParamId,
        bias: Option<ParamId>,
        #[serde(default)]
        config: Conv2dConfig,
        #[serde(default = "identity", skip_serializing_if = "is_identity")]
        activation: Activation,
    },
    /// `nn.MaxPool2d` or `nn.AvgPool2d` over `[batch, C, H, W]`.
    Pool2d(Pool2d),
    /// A user-defined op: WGSL forward and VJP kernels and a shape rule.
    Custom(CustomOp),
}

fn identity() -> Activation {
    Activation::Identity
}

fn is_identity(a: &Activation) -> bool {
    *a == Activation::Identity
}

/// One node: its op, its inputs, and the shape and type its shape rule gave it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Node {
    pub op: Op,
    pub inputs: Vec<NodeId>,
    /// The feature dims; the full shape is `[batch, dims...]` when `batched`.
    pub dims: Vec<usize>,
    pub batched: bool,
    pub dtype: DType,
}

impl Node {
    /// The value's shape at `batch` rows.
    pub fn shape(&self, batch: usize) -> Vec<usize> {
        let mut shape = Vec::with_capacity(self.dims.len() + 1);
        if self.batched {
            shape.push(batch);
        }
        shape.extend(&self.dims);
        shape
    }

    /// Elements at `batch` rows.
    pub fn len(&self, batch: usize) -> usize {
        self.shape(batch).iter().product()
    }
}

/// A model as a graph: inputs, parameters, a DAG of ops, one output trained with one loss.
///
/// A residual block PyTorch would write as a module, with its `state_dict` names:
///
/// ```
/// use wgtrain::graph::Graph;
/// use wgtrain::kernels::loss::Loss;
/// let mut g = Graph::new();
/// let x = g.input("x", &[16])?;
/// let h = g.linear("fc1", x, 32)?;
/// let h = g.relu(h)?;
/// let h = g.linear("fc2", h, 16)?;
/// let y = g.add(x, h)?; // x + fc2(relu(fc1(x)))
/// let logits = g.linear("head", y, 4)?;
/// g.set_output(logits, Loss::CrossEntropy)?;
/// let names: Vec<_> = g.params().iter().map(|p| p.name.as_str()).collect();
/// assert_eq!(names, ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "head.weight", "head.bias"]);
/// // Shapes are checked as the graph is built, not when it runs:
/// assert!(g.add(x, logits).is_err());
/// # Ok::<(), wgtrain::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Graph {
    pub(crate) nodes: Vec<Node>,
    pub(crate) params: Vec<ParamSpec>,
    pub(crate) buffers: Vec<BufferSpec>,
    pub(crate) output: Option<(NodeId, Loss)>,
    /// Module prefix for the names of parameters created now (`blocks.0.attn`).
    scope: Vec<String>,
}

impl Graph {
    /// An empty graph; add inputs, ops and an output with the builder methods.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a node after checking its inputs with the op's shape rule.
    pub(crate) fn push(&mut self, op: Op, inputs: &[NodeId]) -> Result<NodeId> {
        for &x in inputs {
            self.node(x)?;
        }
        let (dims, batched, dtype) = shapes::infer(self, &op, inputs)?;
        shapes::check_size(&dims)?;
        for p in ops::owned_params(&op) {
            shapes::check_size(&self.param_spec(p)?.shape)?;
        }
        self.nodes.push(Node {
            op,
            inputs: inputs.to_vec(),
            dims,
            batched,
            dtype,
        });
        Ok(NodeId(self.nodes.len() - 1))
    }

    /// A new parameter named `<scope>.<name>`.
    pub fn param(&mut self, name: impl AsRef<str>, shape: &[usize], init: Init) -> ParamId {
        self.params.push(ParamSpec {
            name: self.scoped_name(name.as_ref()),
            shape: shape.to_vec(),
            init,
            aliases: vec![],
        });
        ParamId(self.params.len() - 1)
    }

    /// Also names `param` `name` (scoped) in checkpoints: the tensor of a module that shares
    /// another's weight, as PyTorch's `state_dict` lists a tied weight under both modules.
    pub fn alias(&mut self, param: ParamId, name: impl AsRef<str>) -> Result<()> {
        let name = self.scoped_name(name.as_ref());
        if self
            .params
            .iter()
            .any(|p| p.name == name || p.aliases.contains(&name))
        {
            return Err(Error::InvalidArgument(format!(
                "parameter name {name} is taken"
            )));
        }
        let spec = self
            .params
            .get_mut(param.0)
            .ok_or_else(|| Error::InvalidArgument(format!("no parameter {}", param.0)))?;
        spec.aliases.push(name);
        Ok(())
    }

    /// Runs `build` with `name` appended to the module prefix of new parameters, as a PyTorch
    /// submodule attribute prefixes its `state_dict` keys.
    pub fn scope<T>(
        &mut self,
        name: impl std::fmt::Display,
        build: impl FnOnce(&mut Self) -> Result<T>,
    ) -> Result<T> {
        self.scope.push(name.to_string());
        let result = build(self);
        self.scope.pop();
        result
    }

    /// Marks `output` as the model's prediction, trained against `loss`: for cross-entropy the
    /// last axis holds the classes and the targets are one index per other position. Refuses
    /// a graph where two parameters or two inputs share a name.
    pub fn set_output(&mut self, output: NodeId, loss: Loss) -> Result<()> {
        let node = self.node(output)?;
        if !node.batched || node.dtype != DType::F32 || node.dims.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "the output must be a batched f32 value with a feature axis, not {:?} {:?}",
                node.dtype,
                node.shape(0)
            )));
        }
        // torch's huber_loss refuses a delta that is not positive (0 trains on nothing, a
        // negative one gives negative losses).
        if let Loss::Huber { delta } = loss
            && (delta.is_nan() || delta <= 0.0)
        {
            return Err(Error::InvalidArgument(format!(
                "Huber delta {delta} must be positive"
            )));
        }
        // Names are how checkpoints and host batches find things: no two may be equal.
        let mut seen = std::collections::HashSet::new();
        let names = self.params.iter().map(|p| ("parameter", p.name.as_str()));
        let inputs = self
            .inputs()
            .into_iter()
            .map(|(name, _, _)| ("input", name));
        for (kind, name) in names.chain(inputs) {
            if !seen.insert((kind, name)) {
                return Err(Error::InvalidArgument(format!(
                    "two {kind}s are named {name:?}: give each layer its own name (or scope)"
                )));
            }
        }
        self.output = Some((output, loss));
        Ok(())
    }

    /// The parameters in creation order, which is the flat buffer's and the checkpoint's.
    pub fn params(&self) -> &[ParamSpec] {
        &self.params
    }

    /// The non-trainable buffers (BatchNorm's running statistics) in creation order.
    pub fn buffers(&self) -> &[BufferSpec] {
        &self.buffers
    }

    /// The graph's inputs in creation order: name, feature dims, dtype.
    pub fn inputs(&self) -> Vec<(&str, &[usize], DType)> {
        self.nodes
            .iter()
            .filter_map(|n| match &n.op {
                Op::Input { name, dims, dtype } => Some((name.as_str(), &dims[..], *dtype)),
                _ => None,
            })
            .collect()
    }

    /// For each input in creation order, the rows of the smallest embedding table its indices
    /// select from (through any views of them): every index fed to it must lie below. `None`
    /// for f32 inputs and for indices no table reads.
    pub fn index_limits(&self) -> Vec<Option<usize>> {
        let mut limits: Vec<Option<usize>> = vec![None; self.nodes.len()];
        let lower = |limit: &mut Option<usize>, rows: usize| {
            *limit = Some(limit.map_or(rows, |l| l.min(rows)));
        };
        // Consumers come after their inputs, so walking back reaches each node's readers first.
        for (at, node) in self.nodes.iter().enumerate().rev() {
            let rows = match node.op {
                Op::Embedding { weight } => self.params.get(weight.0).map(|p| p.shape[0]),
                _ if node.dtype == DType::U32 => limits[at],
                _ => None,
            };
            if let Some(rows) = rows {
                for input in &node.inputs {
                    if self.nodes[input.0].dtype == DType::U32 {
                        lower(&mut limits[input.0], rows);
                    }
                }
            }
        }
        self.nodes
            .iter()
            .zip(limits)
            .filter(|(n, _)| matches!(n.op, Op::Input { .. }))
            .map(|(_, limit)| limit)
            .collect()
    }

    /// Features per sample of the only input (`None` unless there is exactly one).
    pub fn input_features(&self) -> Option<usize> {
        match self.inputs()[..] {
            [(_, dims, _)] => Some(dims.iter().product()),
            _ => None,
        }
    }

    /// Elements per sample of the output.
    pub fn output_features(&self) -> Option<usize> {
        self.output
            .map(|(id, _)| self.nodes[id.0].dims.iter().product())
    }

    /// The output's feature dims.
    pub fn output_dims(&self) -> Option<&[usize]> {
        self.output.map(|(id, _)| &self.nodes[id.0].dims[..])
    }

    /// The loss the output is trained with, once [`Graph::set_output`] has named it.
    pub fn loss(&self) -> Option<Loss> {
        self.output.map(|(_, loss)| loss)
    }

    /// The shape of node `id`'s value at `batch` rows.
    pub fn shape_of(&self, id: NodeId, batch: usize) -> Result<Vec<usize>> {
        Ok(self.node(id)?.shape(batch))
    }

    pub(crate) fn node(&self, id: NodeId) -> Result<&Node> {
        self.nodes
            .get(id.0)
            .ok_or_else(|| Error::InvalidArgument(format!("node {id:?} is not in this graph")))
    }

    pub(crate) fn param_spec(&self, id: ParamId) -> Result<&ParamSpec> {
        self.params
            .get(id.0)
            .ok_or_else(|| Error::InvalidArgument(format!("parameter {id:?} is not in this graph")))
    }

    fn scoped_name(&self, name: &str) -> String {
        self.scope
            .iter()
            .map(String::as_str)
            .chain([name])
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(".")
    }
}

/// Activations whose derivative is a function of their output's sign, so the backward can
/// use the stored output instead of keeping the pre-activation.
pub(crate) fn fusable(activation: Activation) -> bool {
    match activation {
        Activation::Identity | Activation::Relu => true,
        Activation::LeakyRelu(slope) => slope > 0.0,
        _ => false,
    }
}

fn shape_error(op: &str, left: &[usize], right: &[usize]) -> Error {
    Error::ShapeMismatch {
        op: op.to_string(),
        left: left.to_vec(),
        right: right.to_vec(),
    }
}
