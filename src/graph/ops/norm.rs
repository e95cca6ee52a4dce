//! Normalisations over an axis: batch norm (per channel, over the batch and spatial axes),
//! LayerNorm and softmax (over the last axis).

use super::{Ctx, Value, as_rows, param_sink};
use crate::error::Result;
use crate::gpu::{Dispatch, Tensor};
use crate::graph::{NodeId, Op, ParamId};
use crate::kernels::layernorm::{self, LayerNormTensors};
use crate::kernels::norm::{self, BatchNormTensors};
use crate::kernels::softmax;

/// A BatchNorm layer's γ, β and running statistics, with `saved` statistics.
fn batch_norm_tensors<'a>(
    ctx: &Ctx<'a>,
    (gamma, beta, buffer): (ParamId, ParamId, usize),
    saved: &'a Tensor,
) -> BatchNormTensors<'a> {
    BatchNormTensors {
        gamma: &ctx.params[gamma.0],
        beta: &ctx.params[beta.0],
        saved,
        running: &ctx.buffers[buffer],
    }
}

/// T of a causal softmax over `[.., T, T]`, else 0.
fn causal_t(ctx: &Ctx<'_>, n: NodeId) -> usize {
    match ctx.graph.nodes[n.0].op {
        Op::Softmax { causal: true } => *ctx.graph.nodes[n.0].dims.last().unwrap_or(&0),
        _ => 0,
    }
}

/// `[B, C, ...]` as `[B, C, S]`: the layout the batch-norm kernels take.
fn as_channels(t: &Tensor) -> Result<Tensor> {
    let s = t.shape();
    t.reshape(&[s[0], s[1], s[2..].iter().product()])
}

pub(super) fn forward(ctx: &Ctx<'_>, n: NodeId, training: bool) -> Result<Vec<Dispatch>> {
    let gpu = ctx.gpu;
    let batch_norm = matches!(ctx.graph.nodes[n.0].op, Op::BatchNorm { .. });
    let view = if batch_norm { as_channels } else { as_rows };
    let x = view(&ctx.input(n, 0)?)?;
    let y = view(&ctx.out(n)?)?;
    let dispatch = match ctx.graph.nodes[n.0].op {
        Op::BatchNorm {
            gamma,
            beta,
            buffer,
            config,
        } => {
            // Eval uses no batch statistics: the running ones stand in for them.
            let running = &ctx.buffers[buffer];
            let saved = if training { ctx.saved(n)? } else { running };
            let tensors = batch_norm_tensors(ctx, (gamma, beta, buffer), saved);
            if training {
                norm::batchnorm_forward(gpu, config, &x, &tensors, &y)?
            } else {
                norm::batchnorm_eval(gpu, config, &x, &tensors, &y)?
            }
        }
        Op::LayerNorm { gamma, beta, eps } => layernorm::layernorm_forward(
            gpu,
            eps,
            &x,
            &LayerNormTensors {
                gamma: &ctx.params[gamma.0],
                beta: &ctx.params[beta.0],
                saved: ctx.saved(n)?,
            },
            &y,
        )?,
        Op::Softmax { .. } => softmax::softmax_forward(gpu, causal_t(ctx, n), &x, &y)?,
        _ => unreachable!("norm::forward is only called for normalisations"),
    };
    Ok(vec![dispatch])
}

pub(super) fn backward(
    ctx: &Ctx<'_>,
    n: NodeId,
    sinks: &[Option<Tensor>],
) -> Result<Vec<Dispatch>> {
    let gpu = ctx.gpu;
    let dy = as_rows(ctx.get(Value::Grad(n))?)?;
    let mut out = vec![];
    match ctx.graph.nodes[n.0].op {
        Op::BatchNorm {
            gamma,
            beta,
            buffer,
            config,
        } => {
            let tensors = batch_norm_tensors(ctx, (gamma, beta, buffer), ctx.saved(n)?);
            let dy = as_channels(ctx.get(Value::Grad(n))?)?;
            // The kernel always computes dx; without a sink it goes to scratch.
            let dx = match &sinks[0] {
                Some(dx) => as_channels(dx)?,
                None => ctx.gpu.uninit(dy.shape())?,
            };
            out.push(norm::batchnorm_backward(
                gpu,
                config,
                &as_channels(&ctx.input(n, 0)?)?,
                &tensors,
                &dy,
                &dx,
                param_sink(sinks, 1),
                param_sink(sinks, 2),
            )?);
        }
        Op::LayerNorm { gamma, beta, .. } => {
            let x = as_rows(&ctx.input(n, 0)?)?;
            let tensors = LayerNormTensors {
                gamma: &ctx.params[gamma.0],
                beta: &ctx.params[beta.0],
                saved: ctx.saved(n)?,
            };
            if let Some(dx) = &sinks[0] {
                out.push(layernorm::layernorm_backward_input(
                    gpu,
                    &x,
                    &tensors,
                    &dy,
                    &as_rows(dx)?,
                )?);
            }
            out.push(layernorm::layernorm_backward_params(
                gpu,
                &x,
                &tensors,
                &dy,
                (param_sink(sinks, 1), param_sink(sinks, 2)),
            )?);
        }
        Op::Softmax { .. } => {
            if let Some(dx) = &sinks[0] {
                let y = as_rows(&ctx.out(n)?)?;
                out.push(softmax::softmax_backward(gpu, &y, &dy, &as_rows(dx)?)?);
            }
        }
        _ => unreachable!("norm::backward is only called for normalisations"),
    }
    Ok(out)
}
