//! One forward and one VJP rule per op kind, side by side. Each rule also declares which
//! values it reads and writes, which is what liveness analysis works from; `Ctx::get` checks
//! every value a rule touches was declared.
//!
//! Gradients: `Grad(i)` holds ∂L/∂(output of node i), except for a Linear with a fused
//! activation, where it holds ∂L/∂(pre-activation): the consumer's dX product applies the
//! activation's derivative in its epilogue, so no separate pass over the gradient is needed.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, Tensor};
use crate::graph::{Graph, NodeId, Op, ParamId};
use crate::kernels::matmul::{Epilogue, Matmul};
use crate::kernels::norm::{self, BatchNormTensors};
use crate::kernels::{Activation, elementwise, loss, random};

/// A value the plan allocates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Value {
    /// Output of a node, `[batch, features]`.
    Out(NodeId),
    /// Gradient flowing into a node's output (see the module doc), `[batch, features]`.
    Grad(NodeId),
    /// BatchNorm's batch mean and 1/σ, `[2, features]`.
    Saved(NodeId),
    Target,
    /// Per-row losses, `[batch]`.
    RowLoss,
    /// The mean loss, `[1]`.
    MeanLoss,
}

/// What one rule touches.
#[derive(Clone, Debug, Default)]
pub(crate) struct Uses {
    pub reads: Vec<Value>,
    pub writes: Vec<Value>,
}

/// Everything a rule needs to create its dispatches.
pub(crate) struct Ctx<'a> {
    pub gpu: &'a Gpu,
    pub graph: &'a Graph,
    pub values: &'a HashMap<Value, Tensor>,
    pub params: &'a [Tensor],
    pub grads: &'a [Tensor],
    pub buffers: &'a [Tensor],
    pub step_ring: &'a wgpu::Buffer,
}

impl<'a> Ctx<'a> {
    /// A BatchNorm layer's tensors: its γ, β and running statistics, with `saved` statistics.
    fn batch_norm(
        &self,
        (gamma, beta, buffer): (ParamId, ParamId, usize),
        saved: &'a Tensor,
    ) -> BatchNormTensors<'a> {
        BatchNormTensors {
            gamma: &self.params[gamma.0],
            beta: &self.params[beta.0],
            saved,
            running: &self.buffers[buffer],
        }
    }

    fn get(&self, value: Value) -> Result<&'a Tensor> {
        self.values
            .get(&value)
            .ok_or_else(|| Error::Gpu(format!("plan bug: {value:?} was used but never allocated")))
    }
}

fn input_of(graph: &Graph, node: NodeId) -> Option<NodeId> {
    graph.nodes[node.0].input
}

/// The activation whose derivative the producer of `Grad(node)` must apply, if any.
pub(crate) fn pending_mask(graph: &Graph, node: NodeId) -> Option<Activation> {
    match graph.nodes[node.0].op {
        Op::Linear { activation, .. } if activation != Activation::Identity => Some(activation),
        _ => None,
    }
}

pub(crate) fn forward_uses(graph: &Graph, node: NodeId, training: bool) -> Uses {
    let Some(x) = input_of(graph, node) else {
        return Uses::default();
    };
    let mut uses = Uses {
        reads: vec![Value::Out(x)],
        writes: vec![Value::Out(node)],
    };
    if let Op::BatchNorm { .. } = graph.nodes[node.0].op
        && training
    {
        uses.writes.push(Value::Saved(node));
    }
    uses
}

pub(crate) fn forward(ctx: &Ctx<'_>, node: NodeId, training: bool) -> Result<Vec<Dispatch>> {
    let Some(x_id) = input_of(ctx.graph, node) else {
        return Ok(vec![]);
    };
    let gpu = ctx.gpu;
    let x = ctx.get(Value::Out(x_id))?;
    let y = ctx.get(Value::Out(node))?;
    let dispatch = match ctx.graph.nodes[node.0].op {
        Op::Input => return Ok(vec![]),
        // out[b, o] = act(Σ_i x[b, i] · w[o, i] + bias[o])
        Op::Linear {
            weight,
            bias,
            activation,
        } => Matmul {
            trans_b: true,
            epilogue: Epilogue::Activate {
                bias: bias.map(|b| &ctx.params[b.0]),
                activation,
                accumulate: false,
            },
            ..Default::default()
        }
        .dispatch(gpu, x, &ctx.params[weight.0], y)?,
        Op::Activation(activation) => elementwise::activation_forward(gpu, activation, x, y)?,
        Op::Dropout { p } if training => random::dropout(gpu, p, salt(node), ctx.step_ring, x, y)?,
        Op::Dropout { .. } => elementwise::scale(gpu, 1.0, x, y)?,
        Op::BatchNorm {
            gamma,
            beta,
            buffer,
            config,
        } => {
            // Eval uses no batch statistics: the running ones stand in for them.
            let saved = if training {
                ctx.get(Value::Saved(node))?
            } else {
                &ctx.buffers[buffer]
            };
            let tensors = ctx.batch_norm((gamma, beta, buffer), saved);
            if training {
                norm::batchnorm_forward(gpu, config, x, &tensors, y)?
            } else {
                norm::batchnorm_eval(gpu, config, x, &tensors, y)?
            }
        }
    };
    Ok(vec![dispatch])
}

pub(crate) fn backward_uses(graph: &Graph, node: NodeId) -> Uses {
    let Some(x) = input_of(graph, node) else {
        return Uses::default();
    };
    let needs_dx = graph.nodes[x.0].op != Op::Input;
    let mut reads = vec![Value::Grad(node)];
    let mut writes = vec![];
    match graph.nodes[node.0].op {
        Op::Input => return Uses::default(),
        // Linear reads x for dW (and, for a fused mask, for the sign of x's pre-activation).
        Op::Linear { .. } | Op::Activation(_) => reads.push(Value::Out(x)),
        Op::Dropout { .. } => {}
        Op::BatchNorm { .. } => {
            reads.push(Value::Out(x));
            reads.push(Value::Saved(node));
        }
    }
    if needs_dx {
        writes.push(Value::Grad(x));
    }
    Uses { reads, writes }
}

pub(crate) fn backward(ctx: &Ctx<'_>, node: NodeId) -> Result<Vec<Dispatch>> {
    let graph = ctx.graph;
    let Some(x_id) = input_of(graph, node) else {
        return Ok(vec![]);
    };
    let gpu = ctx.gpu;
    let needs_dx = graph.nodes[x_id.0].op != Op::Input;
    let dy = ctx.get(Value::Grad(node))?;
    let dx = if needs_dx {
        Some(ctx.get(Value::Grad(x_id))?)
    } else {
        None
    };
    let mut out = vec![];
    match graph.nodes[node.0].op {
        Op::Input => {}
        Op::Linear { weight, bias, .. } => {
            let x = ctx.get(Value::Out(x_id))?;
            // dweight[o, i] = Σ_b dy[b, o] · x[b, i], and in the same product
            // dbias[o] = Σ_b dy[b, o] (a column of ones appended to x)
            out.push(
                Matmul {
                    trans_a: true,
                    row_sums: bias.map(|b| &ctx.grads[b.0]),
                    ..Default::default()
                }
                .dispatch(gpu, dy, x, &ctx.grads[weight.0])?,
            );

            // dx[b, i] = Σ_o dy[b, o] · w[o, i], times act'(x) when x's activation is fused
            if let Some(dx) = dx {
                let epilogue = match pending_mask(graph, x_id) {
                    Some(activation) => Epilogue::ActivationGrad { pre: x, activation },
                    None => Epilogue::Store,
                };
                out.push(
                    Matmul {
                        epilogue,
                        ..Default::default()
                    }
                    .dispatch(gpu, dy, &ctx.params[weight.0], dx)?,
                );
            }
        }
        Op::Activation(activation) => {
            if let Some(dx) = dx {
                out.push(elementwise::activation_backward(
                    gpu,
                    activation,
                    ctx.get(Value::Out(x_id))?,
                    dy,
                    dx,
                )?);
            }
        }
        Op::Dropout { p } => {
            if let Some(dx) = dx {
                out.push(random::dropout(gpu, p, salt(node), ctx.step_ring, dy, dx)?);
            }
        }
        Op::BatchNorm {
            gamma,
            beta,
            buffer,
            config,
        } => {
            let tensors = ctx.batch_norm((gamma, beta, buffer), ctx.get(Value::Saved(node))?);
            // BatchNorm always computes dx; when x is the input it goes to a scratch value.
            let scratch;
            let dx = match dx {
                Some(dx) => dx,
                None => {
                    scratch = ctx.gpu.uninit(dy.shape())?;
                    &scratch
                }
            };
            out.push(norm::batchnorm_backward(
                gpu,
                config,
                ctx.get(Value::Out(x_id))?,
                &tensors,
                dy,
                dx,
                &ctx.grads[gamma.0],
                &ctx.grads[beta.0],
            )?);
        }
    }
    Ok(out)
}

pub(crate) fn loss_uses(output: NodeId) -> Uses {
    Uses {
        reads: vec![Value::Out(output), Value::Target],
        writes: vec![Value::RowLoss, Value::Grad(output), Value::MeanLoss],
    }
}

/// The loss and ∂L/∂output in one kernel, then the mean into `MeanLoss`.
pub(crate) fn loss(ctx: &Ctx<'_>, output: NodeId, kind: loss::Loss) -> Result<Vec<Dispatch>> {
    let pred = ctx.get(Value::Out(output))?;
    let row_loss = ctx.get(Value::RowLoss)?;
    Ok(vec![
        loss::loss_forward_backward(
            ctx.gpu,
            kind,
            pred,
            ctx.get(Value::Target)?,
            row_loss,
            ctx.get(Value::Grad(output))?,
        )?,
        loss::loss_mean(
            ctx.gpu,
            kind,
            ctx.graph.nodes[output.0].features,
            row_loss,
            ctx.get(Value::MeanLoss)?,
        )?,
    ])
}

/// Dropout's random stream per node, so two dropout layers draw independent masks.
fn salt(node: NodeId) -> u32 {
    node.0 as u32 + 1
}
