//! Fused causal self-attention: one kernel forward, two backward (queries, then keys and
//! values), with each query row's logsumexp and Δ kept in `Saved(n)`.

use super::{Ctx, Value};
use crate::error::Result;
use crate::gpu::{Dispatch, Tensor};
use crate::graph::{Graph, NodeId, Op};
use crate::kernels::attention::{self, AttentionShape};

/// The kernel's sizes for node `n` at `batch`: leading axes fold into sequences.
pub(super) fn shape(graph: &Graph, n: NodeId, batch: usize) -> AttentionShape {
    let node = &graph.nodes[n.0];
    let Op::CausalSelfAttention { heads } = node.op else {
        unreachable!("attention::shape is only called for attention nodes")
    };
    let (seq, width) = (
        node.dims[node.dims.len() - 2],
        node.dims[node.dims.len() - 1],
    );
    AttentionShape {
        batch: node.len(batch) / (seq * width),
        seq,
        heads,
        head_dim: width / heads,
    }
}

fn packed(ctx: &Ctx<'_>, n: NodeId) -> Result<(AttentionShape, Tensor, Tensor, Tensor)> {
    let shape = shape(ctx.graph, n, ctx.batch);
    let (b, t, c) = (shape.batch, shape.seq, shape.heads * shape.head_dim);
    Ok((
        shape,
        ctx.input(n, 0)?.reshape(&[b, t, 3 * c])?,
        ctx.out(n)?.reshape(&[b, t, c])?,
        ctx.saved(n)?.reshape(&shape.stats_shape())?,
    ))
}

pub(super) fn forward(ctx: &Ctx<'_>, n: NodeId) -> Result<Vec<Dispatch>> {
    let (shape, qkv, out, stats) = packed(ctx, n)?;
    Ok(vec![attention::attention_forward(
        ctx.gpu, shape, &qkv, &out, &stats,
    )?])
}

pub(super) fn backward(
    ctx: &Ctx<'_>,
    n: NodeId,
    sinks: &[Option<Tensor>],
) -> Result<Vec<Dispatch>> {
    let Some(dqkv) = &sinks[0] else {
        return Ok(vec![]);
    };
    let (shape, qkv, out, stats) = packed(ctx, n)?;
    let dout = ctx.get(Value::Grad(n))?.reshape(out.shape())?;
    attention::attention_backward(
        ctx.gpu,
        shape,
        (&qkv, &out, &stats),
        &dout,
        &dqkv.reshape(qkv.shape())?,
    )
}
