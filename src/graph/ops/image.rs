//! Image ops over `[batch, C, H, W]`: Conv2d and 2-D pooling.

use super::dense::pending_mask;
use super::{Ctx, Value, param_sink};
use crate::error::Result;
use crate::gpu::{Dispatch, Tensor};
use crate::graph::{NodeId, Op};
use crate::kernels::conv::{conv2d_backward_input, conv2d_backward_weight, conv2d_forward};
use crate::kernels::pool::{pool2d_backward, pool2d_forward};

pub(super) fn forward(ctx: &Ctx<'_>, n: NodeId) -> Result<Vec<Dispatch>> {
    let (x, y) = (ctx.input(n, 0)?, ctx.out(n)?);
    Ok(match ctx.graph.nodes[n.0].op {
        // y[b, o] = act(Σ_c w[o, c] ⋆ x[b, c] + bias[o])
        Op::Conv2d {
            weight,
            bias,
            config,
            activation,
        } => conv2d_forward(
            ctx.gpu,
            config,
            &x,
            &ctx.params[weight.0],
            (bias.map(|b| &ctx.params[b.0]), activation),
            (&y, ctx.values.get(&Value::Saved(n))),
        )?,
        Op::Pool2d(pool) => vec![pool2d_forward(ctx.gpu, &pool, &x, &y)?],
        _ => unreachable!("image::forward is only called for image ops"),
    })
}

pub(super) fn backward(
    ctx: &Ctx<'_>,
    n: NodeId,
    sinks: &[Option<Tensor>],
) -> Result<Vec<Dispatch>> {
    let node = &ctx.graph.nodes[n.0];
    let dy = ctx.get(Value::Grad(n))?;
    let x = ctx.input(n, 0)?;
    let mut out = vec![];
    match node.op {
        Op::Conv2d {
            weight,
            bias,
            config,
            ..
        } => {
            // dweight[o, c] = Σ_b dy[b, o] ⋆ x[b, c]; dbias[o] = Σ_{b, p} dy[b, o, p]
            let dweight = param_sink(sinks, 1);
            let dbias = bias.and(sinks.get(2).and_then(Option::as_ref));
            let columns = ctx.values.get(&Value::Saved(n));
            out.extend(conv2d_backward_weight(
                ctx.gpu,
                config,
                (&x, columns),
                dy,
                dweight,
                dbias,
            )?);
            // dx = Σ_o w[o] ⋆ᵀ dy[b, o], times act'(x) when x's activation is fused
            if let Some(dx) = &sinks[0] {
                let mask = pending_mask(ctx, node.inputs[0]).map(|a| (&x, a));
                out.extend(conv2d_backward_input(
                    ctx.gpu,
                    config,
                    dy,
                    &ctx.params[weight.0],
                    mask,
                    dx,
                )?);
            }
        }
        Op::Pool2d(pool) => {
            if let Some(dx) = &sinks[0] {
                let mask = pending_mask(ctx, node.inputs[0]);
                out.push(pool2d_backward(ctx.gpu, &pool, (&x, mask), dy, dx)?);
            }
        }
        _ => unreachable!("image::backward is only called for image ops"),
    }
    Ok(out)
}
