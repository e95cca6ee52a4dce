//! One forward and one VJP rule per op kind, grouped by family (`dense`, `pointwise`,
//! `layout`, `norm`, `image`). Each rule also declares which values it reads and writes,
//! which is what liveness analysis works from; `Ctx::get` checks every value a rule touches
//! was declared.
//!
//! Gradient slots: a backward rule writes one gradient per *slot*: slot k < inputs is ∂L/∂
//! (input k), the following slots are ∂L/∂(each parameter the op owns, in `owned_params`
//! order). The planner hands each slot a sink: the gradient buffer itself when this is the
//! first contribution to it in backward order, otherwise a partial that is then added in,
//! always in the same order, so fan-out sums are bit-identical run to run. A slot whose input
//! needs no gradient gets no sink.
//!
//! `Grad(i)` holds ∂L/∂(output of node i), except for a Linear or Conv2d with a fused
//! activation, where it holds ∂L/∂(pre-activation): every consumer's dX product applies the
//! activation's derivative in its epilogue (the fusion pass only fuses where all consumers
//! are Linears or Conv2ds).

mod attention;
mod custom;
mod dense;
mod image;
mod layout;
mod norm;
mod pointwise;

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, Tensor};
use crate::graph::{Graph, NodeId, Op, ParamId};
use crate::kernels::pool::{Pool2d, PoolKind};
use crate::kernels::{conv, loss};

/// A value the plan allocates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Value {
    /// Output of a node.
    Out(NodeId),
    /// Gradient flowing into a node's output (see the module doc).
    Grad(NodeId),
    /// What a node keeps from forward to backward (statistics) or uses as scratch.
    Saved(NodeId),
    /// Gradient slot `k` of node `n` when it adds to an already-written gradient.
    Partial(NodeId, usize),
    /// The loss targets.
    Target,
    /// Per-row losses, `[rows]`.
    RowLoss,
    /// The mean loss, `[1]`.
    MeanLoss,
}

/// Where a gradient slot's contribution goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum GradTarget {
    Node(NodeId),
    Param(ParamId),
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
    pub batch: usize,
    pub values: &'a HashMap<Value, Tensor>,
    pub params: &'a [Tensor],
    pub buffers: &'a [Tensor],
    pub step_ring: &'a wgpu::Buffer,
}

impl<'a> Ctx<'a> {
    fn get(&self, value: Value) -> Result<&'a Tensor> {
        self.values
            .get(&value)
            .ok_or_else(|| Error::Gpu(format!("plan bug: {value:?} was used but never allocated")))
    }

    /// Node `n`'s output in its full shape: its own buffer, its source's for a view, or the
    /// parameter itself.
    pub fn out(&self, n: NodeId) -> Result<Tensor> {
        let shape = self.graph.nodes[n.0].shape(self.batch);
        match storage(self.graph, n) {
            Storage::Param(p) => self.params[p.0].reshape(&shape),
            Storage::Value(v) => self.get(v)?.reshape(&shape),
        }
    }

    /// ∂L/∂(node n's output), full shape.
    fn grad(&self, n: NodeId) -> Result<&'a Tensor> {
        self.get(Value::Grad(n))
    }

    fn saved(&self, n: NodeId) -> Result<&'a Tensor> {
        self.get(Value::Saved(n))
    }

    fn input(&self, n: NodeId, k: usize) -> Result<Tensor> {
        self.out(self.graph.nodes[n.0].inputs[k])
    }
}

/// The sink of gradient slot `k`, an owned parameter's: the planner gives every parameter
/// slot one (parameters always need their gradient).
fn param_sink(sinks: &[Option<Tensor>], k: usize) -> &Tensor {
    sinks[k]
        .as_ref()
        .expect("parameter slots always have a sink")
}

/// `[.., c]` seen as `[rows, c]`: the layout every last-axis kernel takes.
pub(crate) fn as_rows(t: &Tensor) -> Result<Tensor> {
    let c = *t.shape().last().unwrap_or(&1);
    t.reshape(&[t.len() / c.max(1), c])
}

/// Where a node's output lives.
pub(crate) enum Storage {
    Value(Value),
    Param(ParamId),
}

/// Views (reshape) live in their source's buffer and parameters in the flat parameter buffer.
pub(crate) fn storage(graph: &Graph, mut n: NodeId) -> Storage {
    loop {
        match graph.nodes[n.0].op {
            Op::Reshape { .. } => n = graph.nodes[n.0].inputs[0],
            Op::Param { param } => return Storage::Param(param),
            _ => return Storage::Value(Value::Out(n)),
        }
    }
}

/// The planned value behind node `n`'s output, if it has one of its own.
pub(crate) fn out_value(graph: &Graph, n: NodeId) -> Option<Value> {
    match storage(graph, n) {
        Storage::Value(v) => Some(v),
        Storage::Param(_) => None,
    }
}

/// The parameters an op owns, in gradient-slot order.
pub(crate) fn owned_params(op: &Op) -> Vec<ParamId> {
    match *op {
        Op::Linear { weight, bias, .. } | Op::Conv2d { weight, bias, .. } => {
            [Some(weight), bias].into_iter().flatten().collect()
        }
        Op::BatchNorm { gamma, beta, .. } | Op::LayerNorm { gamma, beta, .. } => vec![gamma, beta],
        Op::Embedding { weight } => vec![weight],
        _ => vec![],
    }
}

/// Shape of what node `n` keeps in `Saved(n)` on `gpu`, if anything.
pub(crate) fn saved_shape(
    gpu: &Gpu,
    graph: &Graph,
    n: NodeId,
    batch: usize,
    training: bool,
) -> Option<Vec<usize>> {
    let node = &graph.nodes[n.0];
    match node.op {
        // The im2col matrix of x that the forward builds where it stores one (CPU adapters),
        // which the weight gradient reads.
        Op::Conv2d { weight, config, .. } if training => conv::stored_im2col_shape(
            gpu,
            &graph.nodes[node.inputs[0].0].shape(batch),
            &graph.params[weight.0].shape,
            config,
        )
        .map(Vec::from),
        Op::BatchNorm { .. } if training => Some(vec![2, node.dims[0]]),
        Op::LayerNorm { .. } => {
            let c = node.dims[node.dims.len() - 1];
            Some(vec![node.len(batch) / c, 2])
        }
        Op::Mul if training && pointwise::broadcasts(graph, n) => Some(node.shape(batch)),
        // Each query row's logsumexp (forward) and Δ (backward).
        Op::CausalSelfAttention { .. } => {
            Some(attention::shape(graph, n, batch).stats_shape().to_vec())
        }
        _ => None,
    }
}

/// Reads and writes of node `n`'s forward at `batch` on `gpu`.
pub(crate) fn forward_uses(
    gpu: &Gpu,
    graph: &Graph,
    (n, batch): (NodeId, usize),
    training: bool,
) -> Uses {
    let node = &graph.nodes[n.0];
    if matches!(
        node.op,
        Op::Input { .. } | Op::Param { .. } | Op::Reshape { .. }
    ) {
        return Uses::default();
    }
    let mut uses = Uses {
        reads: node
            .inputs
            .iter()
            .filter_map(|&x| out_value(graph, x))
            .collect(),
        writes: vec![Value::Out(n)],
    };
    if saved_shape(gpu, graph, n, batch, training).is_some() && !matches!(node.op, Op::Mul) {
        uses.writes.push(Value::Saved(n));
    }
    uses
}

pub(crate) fn forward(ctx: &Ctx<'_>, n: NodeId, training: bool) -> Result<Vec<Dispatch>> {
    match &ctx.graph.nodes[n.0].op {
        Op::Input { .. } | Op::Param { .. } | Op::Reshape { .. } => Ok(vec![]),
        Op::Linear { .. } | Op::MatMul { .. } | Op::Embedding { .. } => dense::forward(ctx, n),
        Op::Activation { .. }
        | Op::Dropout { .. }
        | Op::Scale { .. }
        | Op::Add
        | Op::Sub
        | Op::Mul => pointwise::forward(ctx, n, training),
        Op::Concat | Op::Slice { .. } | Op::Transpose { .. } | Op::Reduce { .. } => {
            layout::forward(ctx, n)
        }
        Op::Conv2d { .. } | Op::Pool2d(_) => image::forward(ctx, n),
        Op::BatchNorm { .. } | Op::LayerNorm { .. } | Op::Softmax { .. } => {
            norm::forward(ctx, n, training)
        }
        Op::CausalSelfAttention { .. } => attention::forward(ctx, n),
        Op::Custom(_) => custom::forward(ctx, n),
    }
}

/// Values node `n`'s backward reads at `batch` on `gpu`, besides its gradient slots' sinks.
pub(crate) fn backward_reads(gpu: &Gpu, graph: &Graph, (n, batch): (NodeId, usize)) -> Vec<Value> {
    let node = &graph.nodes[n.0];
    let mut reads = vec![Value::Grad(n)];
    let out_of = |k: usize| out_value(graph, node.inputs[k]);
    let extra: Vec<Option<Value>> = match node.op {
        // dW needs x; a fused mask of x's producer needs x too.
        Op::Linear { .. } | Op::Conv2d { .. } | Op::Activation { .. } => vec![out_of(0)],
        // Max pooling finds each window's maximum again in x.
        Op::Pool2d(Pool2d {
            kind: PoolKind::Max,
            ..
        }) => vec![out_of(0)],
        Op::MatMul { .. } | Op::Mul => vec![out_of(0), out_of(1)],
        Op::Embedding { .. } => vec![out_of(0)],
        Op::BatchNorm { .. } | Op::LayerNorm { .. } => vec![out_of(0), Some(Value::Saved(n))],
        Op::Softmax { .. } => vec![Some(Value::Out(n))],
        Op::CausalSelfAttention { .. } => {
            vec![out_of(0), Some(Value::Out(n)), Some(Value::Saved(n))]
        }
        // A user's VJP may read any input and the output.
        Op::Custom(_) => (0..node.inputs.len())
            .map(out_of)
            .chain([Some(Value::Out(n))])
            .collect(),
        _ => vec![],
    };
    reads.extend(extra.into_iter().flatten());
    if matches!(node.op, Op::Mul | Op::Conv2d { .. })
        && saved_shape(gpu, graph, n, batch, true).is_some()
    {
        reads.push(Value::Saved(n));
    }
    reads
}

/// Node `n`'s VJP: one contribution per slot that has a sink.
pub(crate) fn backward(
    ctx: &Ctx<'_>,
    n: NodeId,
    sinks: &[Option<Tensor>],
) -> Result<Vec<Dispatch>> {
    match &ctx.graph.nodes[n.0].op {
        Op::Input { .. } | Op::Param { .. } => Ok(vec![]),
        Op::Linear { .. } | Op::MatMul { .. } | Op::Embedding { .. } => {
            dense::backward(ctx, n, sinks)
        }
        Op::Activation { .. }
        | Op::Dropout { .. }
        | Op::Scale { .. }
        | Op::Add
        | Op::Sub
        | Op::Mul => pointwise::backward(ctx, n, sinks),
        Op::Concat
        | Op::Slice { .. }
        | Op::Transpose { .. }
        | Op::Reduce { .. }
        | Op::Reshape { .. } => layout::backward(ctx, n, sinks),
        Op::Conv2d { .. } | Op::Pool2d(_) => image::backward(ctx, n, sinks),
        Op::BatchNorm { .. } | Op::LayerNorm { .. } | Op::Softmax { .. } => {
            norm::backward(ctx, n, sinks)
        }
        Op::CausalSelfAttention { .. } => attention::backward(ctx, n, sinks),
        Op::Custom(_) => custom::backward(ctx, n, sinks),
    }
}

pub(crate) fn loss_uses(graph: &Graph, output: NodeId) -> Uses {
    Uses {
        reads: out_value(graph, output)
            .into_iter()
            .chain([Value::Target])
            .collect(),
        writes: vec![Value::RowLoss, Value::Grad(output), Value::MeanLoss],
    }
}

/// The loss and ∂L/∂output in one kernel, then the mean into `MeanLoss`. The output is seen as
/// `[rows, classes]` with every leading axis (batch, positions) folded into rows.
pub(crate) fn loss(ctx: &Ctx<'_>, output: NodeId, kind: loss::Loss) -> Result<Vec<Dispatch>> {
    let (rows, cols) = loss_rows(ctx.graph, output, ctx.batch);
    let pred = ctx.out(output)?.reshape(&[rows, cols])?;
    let row_loss = ctx.get(Value::RowLoss)?;
    let target = ctx.get(Value::Target)?;
    let target = target.reshape(&kind.target_shape(rows, cols))?;
    let grad = ctx.grad(output)?.reshape(&[rows, cols])?;
    Ok(vec![
        loss::loss_forward_backward(ctx.gpu, kind, &pred, &target, row_loss, &grad)?,
        loss::loss_mean(ctx.gpu, kind, cols, row_loss, ctx.get(Value::MeanLoss)?)?,
    ])
}

/// `(rows, cols)` the loss sees: the last axis against everything before it.
pub(crate) fn loss_rows(graph: &Graph, output: NodeId, batch: usize) -> (usize, usize) {
    let node = &graph.nodes[output.0];
    let cols = node.dims[node.dims.len() - 1];
    (node.len(batch) / cols, cols)
}

/// Dropout's random stream per node, so two dropout layers draw independent masks.
pub(crate) fn salt(node: NodeId) -> u32 {
    node.0 as u32 + 1
}
