//! Ops that move elements: concatenation and slices along the last axis, transposes, sums and means over
//! an axis, and reshape (free forward; its backward copies the gradient).

use super::{Ctx, Value};
use crate::error::Result;
use crate::gpu::{Dispatch, Tensor};
use crate::graph::{NodeId, Op};
use crate::kernels::{elementwise, tensor};

/// `(outer, axis_len, inner)` of a full shape around `axis`.
fn around(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (
        shape[..axis].iter().product(),
        shape[axis],
        shape[axis + 1..].iter().product(),
    )
}

/// Each input's width and column offset inside the concatenation, and the total width.
fn windows(ctx: &Ctx<'_>, n: NodeId) -> (Vec<(usize, usize)>, usize) {
    let mut offset = 0;
    let parts = ctx.graph.nodes[n.0]
        .inputs
        .iter()
        .map(|&x| {
            let w = *ctx.graph.nodes[x.0]
                .dims
                .last()
                .expect("concat inputs have a last axis");
            offset += w;
            (w, offset - w)
        })
        .collect();
    (parts, offset)
}

pub(super) fn forward(ctx: &Ctx<'_>, n: NodeId) -> Result<Vec<Dispatch>> {
    let gpu = ctx.gpu;
    let y = ctx.out(n)?;
    Ok(match ctx.graph.nodes[n.0].op {
        // y[r, offset_k + j] = x_k[r, j]
        Op::Concat => {
            let (parts, width) = windows(ctx, n);
            let rows = y.len() / width;
            parts
                .iter()
                .enumerate()
                .map(|(k, &(w, offset))| {
                    tensor::column_window(
                        gpu,
                        (rows, w, width, offset),
                        true,
                        &ctx.input(n, k)?,
                        &y,
                    )
                })
                .collect::<Result<_>>()?
        }
        // y[r, j] = x[r, start + j]
        Op::Slice { start, len } => {
            let x = ctx.input(n, 0)?;
            let width = *x.shape().last().unwrap_or(&1);
            let rows = x.len() / width;
            vec![tensor::column_window(
                gpu,
                (rows, len, width, start),
                false,
                &x,
                &y,
            )?]
        }
        Op::Transpose { axes: [a, b] } => {
            vec![tensor::transpose(gpu, (a, b), &ctx.input(n, 0)?, &y)?]
        }
        // y[o, j] = (1/len) · Σ_a x[o, a, j]
        Op::Reduce { axis, mean } => {
            let x = ctx.input(n, 0)?;
            let dims = around(x.shape(), axis);
            let alpha = if mean { 1.0 / dims.1 as f32 } else { 1.0 };
            vec![tensor::axis_sum(gpu, dims, alpha, &x, &y)?]
        }
        _ => unreachable!("layout::forward is only called for layout ops"),
    })
}

pub(super) fn backward(
    ctx: &Ctx<'_>,
    n: NodeId,
    sinks: &[Option<Tensor>],
) -> Result<Vec<Dispatch>> {
    let gpu = ctx.gpu;
    let dy = ctx.get(Value::Grad(n))?;
    let mut out = vec![];
    match ctx.graph.nodes[n.0].op {
        // dx_k = dy[:, offset_k .. offset_k + w_k]
        Op::Concat => {
            let (parts, width) = windows(ctx, n);
            let rows = dy.len() / width;
            for (sink, &(w, offset)) in sinks.iter().zip(&parts) {
                if let Some(dx) = sink {
                    out.push(tensor::column_window(
                        gpu,
                        (rows, w, width, offset),
                        false,
                        dy,
                        dx,
                    )?);
                }
            }
        }
        // dx = dy in the window, zeros around it
        Op::Slice { start, len } => {
            if let Some(dx) = &sinks[0] {
                let width = *dx.shape().last().unwrap_or(&1);
                let rows = dx.len() / width;
                out.push(tensor::pad_columns(gpu, (rows, len, width, start), dy, dx)?);
            }
        }
        // a transpose is its own inverse
        Op::Transpose { axes: [a, b] } => {
            if let Some(dx) = &sinks[0] {
                out.push(tensor::transpose(gpu, (a, b), dy, dx)?);
            }
        }
        Op::Reduce { axis, mean } => {
            if let Some(dx) = &sinks[0] {
                let dims = around(dx.shape(), axis);
                let alpha = if mean { 1.0 / dims.1 as f32 } else { 1.0 };
                out.push(tensor::axis_broadcast(gpu, dims, alpha, dy, dx)?);
            }
        }
        Op::Reshape { .. } => {
            if let Some(dx) = &sinks[0] {
                out.push(elementwise::scale(gpu, 1.0, dy, dx)?);
            }
        }
        _ => unreachable!("layout::backward is only called for layout ops"),
    }
    Ok(out)
}
