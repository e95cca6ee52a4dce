//! Elementwise ops: activations, dropout, scaling, and add / sub / mul with broadcasting of
//! the second operand over the first's leading axes.

use super::{Ctx, Value, salt};
use crate::error::Result;
use crate::gpu::{Dispatch, Tensor};
use crate::graph::{Graph, NodeId, Op};
use crate::kernels::{elementwise, random, reduce, tensor};

/// True when the second operand is smaller than the first (repeated over its leading axes).
pub(crate) fn broadcasts(graph: &Graph, n: NodeId) -> bool {
    let node = &graph.nodes[n.0];
    let b = &graph.nodes[node.inputs[1].0];
    b.batched != node.batched || b.dims != node.dims
}

/// `[rows, cols]` view of `t` where `cols` is the broadcast operand's length.
fn by_rows(t: &Tensor, cols: usize) -> Result<Tensor> {
    t.reshape(&[t.len() / cols, cols])
}

pub(super) fn forward(ctx: &Ctx<'_>, n: NodeId, training: bool) -> Result<Vec<Dispatch>> {
    let gpu = ctx.gpu;
    let x = ctx.input(n, 0)?;
    let y = ctx.out(n)?;
    let dispatch = match ctx.graph.nodes[n.0].op {
        Op::Activation { activation } => elementwise::activation_forward(gpu, activation, &x, &y)?,
        Op::Dropout { p } if training => random::dropout(gpu, p, salt(n), ctx.step_ring, &x, &y)?,
        Op::Dropout { .. } => elementwise::scale(gpu, 1.0, &x, &y)?,
        Op::Scale { alpha } => elementwise::scale(gpu, alpha, &x, &y)?,
        Op::Add => tensor::add_broadcast(gpu, 1.0, &x, &ctx.input(n, 1)?, &y)?,
        Op::Sub => tensor::add_broadcast(gpu, -1.0, &x, &ctx.input(n, 1)?, &y)?,
        Op::Mul => tensor::mul_broadcast(gpu, &x, &ctx.input(n, 1)?, &y)?,
        _ => unreachable!("pointwise::forward is only called for elementwise ops"),
    };
    Ok(vec![dispatch])
}

pub(super) fn backward(
    ctx: &Ctx<'_>,
    n: NodeId,
    sinks: &[Option<Tensor>],
) -> Result<Vec<Dispatch>> {
    let gpu = ctx.gpu;
    let dy = ctx.get(Value::Grad(n))?;
    let mut out = vec![];
    let op = &ctx.graph.nodes[n.0].op;
    if let Some(dx) = &sinks[0] {
        out.push(match *op {
            // dx = dy · act'(x)
            Op::Activation { activation } => {
                elementwise::activation_backward(gpu, activation, &ctx.input(n, 0)?, dy, dx)?
            }
            // the same mask (same key) on the way back
            Op::Dropout { p } => random::dropout(gpu, p, salt(n), ctx.step_ring, dy, dx)?,
            Op::Scale { alpha } => elementwise::scale(gpu, alpha, dy, dx)?,
            Op::Add | Op::Sub => elementwise::scale(gpu, 1.0, dy, dx)?,
            // da = dy ⊙ b
            Op::Mul => tensor::mul_broadcast(gpu, dy, &ctx.input(n, 1)?, dx)?,
            _ => unreachable!("pointwise::backward is only called for elementwise ops"),
        });
    }
    if let Some(Some(db)) = sinks.get(1) {
        let sign = if *op == Op::Sub { -1.0 } else { 1.0 };
        let cols = db.len();
        let db = &db.reshape(&[cols])?;
        let broadcast = broadcasts(ctx.graph, n);
        match op {
            // db = ±dy, summed over the leading axes b was repeated along
            Op::Add | Op::Sub if broadcast => {
                out.push(reduce::sum_rows(gpu, sign, &by_rows(dy, cols)?, db)?)
            }
            Op::Add | Op::Sub => out.push(elementwise::scale(gpu, sign, dy, db)?),
            // db = dy ⊙ a, likewise summed
            Op::Mul if broadcast => {
                let scratch = ctx.get(Value::Saved(n))?;
                out.push(tensor::mul_broadcast(gpu, dy, &ctx.input(n, 0)?, scratch)?);
                out.push(reduce::sum_rows(gpu, 1.0, &by_rows(scratch, cols)?, db)?);
            }
            Op::Mul => out.push(tensor::mul_broadcast(gpu, dy, &ctx.input(n, 0)?, db)?),
            _ => {}
        }
    }
    Ok(out)
}
