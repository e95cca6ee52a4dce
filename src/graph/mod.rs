//! The op graph: nodes over `[batch, features]` values with static feature shapes (the batch
//! is a parameter of each compiled plan), reverse-mode differentiation with one VJP rule per op
//! kind (`ops.rs`), and compilation into a plan of dispatches (`plan.rs`).
//!
//! Shape errors surface here, when the graph is built, never when a plan runs.

mod liveness;
mod ops;
mod plan;
mod weights;

pub use plan::{Mode, Plan, PlanStats};
pub use weights::Weights;

use crate::error::{Error, Result};
use crate::kernels::Activation;
use crate::kernels::loss::Loss;
use crate::kernels::norm::BatchNormConfig;

/// A node of the graph; its value is `[batch, features]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub(crate) usize);

/// A parameter tensor of the graph (weight, bias, γ, β).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ParamId(pub(crate) usize);

/// How a parameter starts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// U(−bound, bound): PyTorch's Linear init, where Kaiming-uniform with a = √5 gives
    /// bound = 1/√fan_in for the weight, and the bias uses the same bound.
    Uniform {
        bound: f32,
    },
    Constant(f32),
}

/// A named parameter with PyTorch's name and layout (`0.weight` is `[out, in]`).
#[derive(Clone, Debug, PartialEq)]
pub struct ParamSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub init: Init,
}

impl ParamSpec {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A non-trainable state tensor carried by the model (BatchNorm's running statistics).
#[derive(Clone, Debug, PartialEq)]
pub struct BufferSpec {
    /// The PyTorch module prefix, e.g. `1` for `1.running_mean`.
    pub module: String,
    pub features: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Op {
    Input,
    /// `y = act(x · Wᵀ + b)`; only activations whose derivative can be read off `y`
    /// (identity, ReLU, LeakyReLU with slope > 0) are fused here.
    Linear {
        weight: ParamId,
        bias: Option<ParamId>,
        activation: Activation,
    },
    Activation(Activation),
    Dropout {
        p: f32,
    },
    BatchNorm {
        gamma: ParamId,
        beta: ParamId,
        buffer: usize,
        config: BatchNormConfig,
    },
}

#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub op: Op,
    pub input: Option<NodeId>,
    pub features: usize,
}

/// A model as a graph: one input, a chain or tree of ops, one output, one loss.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub(crate) nodes: Vec<Node>,
    pub(crate) params: Vec<ParamSpec>,
    pub(crate) buffers: Vec<BufferSpec>,
    pub(crate) output: Option<(NodeId, Loss)>,
}

impl Graph {
    pub fn new() -> Self {
        Self::default()
    }

    /// The input node, `[batch, features]`.
    pub fn input(&mut self, features: usize) -> Result<NodeId> {
        if self.nodes.iter().any(|n| n.op == Op::Input) {
            return Err(Error::InvalidArgument(
                "a graph has exactly one input".into(),
            ));
        }
        if features == 0 {
            return Err(Error::InvalidArgument(
                "an input needs at least one feature".into(),
            ));
        }
        Ok(self.push(Op::Input, None, features))
    }

    pub fn param(&mut self, name: impl Into<String>, shape: &[usize], init: Init) -> ParamId {
        self.params.push(ParamSpec {
            name: name.into(),
            shape: shape.to_vec(),
            init,
        });
        ParamId(self.params.len() - 1)
    }

    /// `x · Wᵀ + b` then `activation`, with `W` of shape `[out, in]` as in PyTorch.
    pub fn linear(
        &mut self,
        x: NodeId,
        weight: ParamId,
        bias: Option<ParamId>,
        activation: Activation,
    ) -> Result<NodeId> {
        let in_features = self.features(x)?;
        let w = self.param_shape(weight)?;
        let [out, w_in] = w[..] else {
            return Err(shape_error("linear weight (expects [out, in])", &w, &[]));
        };
        if w_in != in_features {
            return Err(shape_error(
                "linear (weight [out, in] vs input [batch, in])",
                &w,
                &[in_features],
            ));
        }
        if let Some(bias) = bias {
            let b = self.param_shape(bias)?;
            if b != [out] {
                return Err(shape_error("linear bias", &b, &[out]));
            }
        }
        if !fusable(activation) {
            return Err(Error::InvalidArgument(format!(
                "{activation:?} cannot be fused into a Linear: its derivative needs the pre-activation; add it as its own node"
            )));
        }
        Ok(self.push(
            Op::Linear {
                weight,
                bias,
                activation,
            },
            Some(x),
            out,
        ))
    }

    pub fn activation(&mut self, x: NodeId, activation: Activation) -> Result<NodeId> {
        let features = self.features(x)?;
        Ok(self.push(Op::Activation(activation), Some(x), features))
    }

    pub fn dropout(&mut self, x: NodeId, p: f32) -> Result<NodeId> {
        if !(0.0..1.0).contains(&p) {
            return Err(Error::InvalidArgument(format!(
                "dropout probability {p} must lie in [0, 1)"
            )));
        }
        let features = self.features(x)?;
        Ok(self.push(Op::Dropout { p }, Some(x), features))
    }

    /// BatchNorm1d over `x`'s features, with γ/β named `<module>.weight`/`<module>.bias`.
    pub fn batch_norm(
        &mut self,
        x: NodeId,
        module: &str,
        config: BatchNormConfig,
    ) -> Result<NodeId> {
        let features = self.features(x)?;
        let gamma = self.param(format!("{module}.weight"), &[features], Init::Constant(1.0));
        let beta = self.param(format!("{module}.bias"), &[features], Init::Constant(0.0));
        self.buffers.push(BufferSpec {
            module: module.to_string(),
            features,
        });
        let buffer = self.buffers.len() - 1;
        Ok(self.push(
            Op::BatchNorm {
                gamma,
                beta,
                buffer,
                config,
            },
            Some(x),
            features,
        ))
    }

    /// Marks `output` as the model's prediction, trained against `loss`.
    pub fn set_output(&mut self, output: NodeId, loss: Loss) -> Result<()> {
        self.features(output)?;
        self.output = Some((output, loss));
        Ok(())
    }

    pub fn params(&self) -> &[ParamSpec] {
        &self.params
    }

    pub fn buffers(&self) -> &[BufferSpec] {
        &self.buffers
    }

    pub fn input_features(&self) -> Option<usize> {
        self.nodes
            .iter()
            .find(|n| n.op == Op::Input)
            .map(|n| n.features)
    }

    pub fn output_features(&self) -> Option<usize> {
        self.output.map(|(id, _)| self.nodes[id.0].features)
    }

    pub fn loss(&self) -> Option<Loss> {
        self.output.map(|(_, loss)| loss)
    }

    fn push(&mut self, op: Op, input: Option<NodeId>, features: usize) -> NodeId {
        self.nodes.push(Node {
            op,
            input,
            features,
        });
        NodeId(self.nodes.len() - 1)
    }

    fn features(&self, id: NodeId) -> Result<usize> {
        self.nodes
            .get(id.0)
            .map(|n| n.features)
            .ok_or_else(|| Error::InvalidArgument(format!("node {id:?} is not in this graph")))
    }

    fn param_shape(&self, id: ParamId) -> Result<Vec<usize>> {
        self.params
            .get(id.0)
            .map(|p| p.shape.clone())
            .ok_or_else(|| Error::InvalidArgument(format!("parameter {id:?} is not in this graph")))
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
