//! Products: Linear over the last axis of any rank, batched matmul, embedding lookup.

use super::{Ctx, Value, as_rows, param_sink};
use crate::error::Result;
use crate::gpu::{Dispatch, Tensor};
use crate::graph::{NodeId, Op};
use crate::kernels::Activation;
use crate::kernels::matmul::{Epilogue, Matmul};
use crate::kernels::tensor;

/// `[.., r, c]` as `[lead, r, c]`.
fn as_batch(t: &Tensor) -> Result<Tensor> {
    let s = t.shape();
    let (r, c) = (s[s.len() - 2], s[s.len() - 1]);
    t.reshape(&[t.len() / (r * c).max(1), r, c])
}

/// The activation a fused Linear or Conv2d producer left for its consumers' dX products to
/// apply.
pub(crate) fn pending_mask(ctx: &Ctx<'_>, x: NodeId) -> Option<Activation> {
    match ctx.graph.nodes[x.0].op {
        Op::Linear { activation, .. } | Op::Conv2d { activation, .. }
            if activation != Activation::Identity =>
        {
            Some(activation)
        }
        _ => None,
    }
}

pub(super) fn forward(ctx: &Ctx<'_>, n: NodeId) -> Result<Vec<Dispatch>> {
    let gpu = ctx.gpu;
    let y = ctx.out(n)?;
    let dispatches = match ctx.graph.nodes[n.0].op {
        // out[r, o] = act(Σ_i x[r, i] · w[o, i] + bias[o]) over every leading position r
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
        .dispatches(
            gpu,
            &as_rows(&ctx.input(n, 0)?)?,
            &ctx.params[weight.0],
            &as_rows(&y)?,
        )?,
        // c[i] = op(a[i]) · op(b[i]) for every leading index i
        Op::MatMul { trans_a, trans_b } => Matmul {
            trans_a,
            trans_b,
            ..Default::default()
        }
        .dispatch_batched(
            gpu,
            &as_batch(&ctx.input(n, 0)?)?,
            &as_batch(&ctx.input(n, 1)?)?,
            &as_batch(&y)?,
        )
        .map(|d| vec![d])?,
        // out[r, :] = weight[idx[r], :]
        Op::Embedding { weight } => {
            let idx = ctx.input(n, 0)?;
            vec![tensor::embedding_forward(
                gpu,
                &ctx.params[weight.0],
                &idx,
                &as_rows(&y)?,
            )?]
        }
        _ => unreachable!("dense::forward is only called for products"),
    };
    Ok(dispatches)
}

pub(super) fn backward(
    ctx: &Ctx<'_>,
    n: NodeId,
    sinks: &[Option<Tensor>],
) -> Result<Vec<Dispatch>> {
    let gpu = ctx.gpu;
    let node = &ctx.graph.nodes[n.0];
    let dy = ctx.get(Value::Grad(n))?;
    let mut out = vec![];
    match node.op {
        Op::Linear { weight, bias, .. } => {
            let dy = as_rows(dy)?;
            let x_id = node.inputs[0];
            let x = as_rows(&ctx.out(x_id)?)?;
            // dweight[o, i] = Σ_r dy[r, o] · x[r, i], and in the same product
            // dbias[o] = Σ_r dy[r, o] (a column of ones appended to x)
            let dweight = param_sink(sinks, 1);
            let dbias = bias.and(sinks.get(2).and_then(Option::as_ref));
            out.extend(
                Matmul {
                    trans_a: true,
                    row_sums: dbias,
                    ..Default::default()
                }
                .dispatches(gpu, &dy, &x, dweight)?,
            );
            // dx[r, i] = Σ_o dy[r, o] · w[o, i], times act'(x) when x's activation is fused
            if let Some(dx) = &sinks[0] {
                let epilogue = match pending_mask(ctx, x_id) {
                    Some(activation) => Epilogue::ActivationGrad {
                        pre: &x,
                        activation,
                    },
                    None => Epilogue::Store,
                };
                out.extend(
                    Matmul {
                        epilogue,
                        ..Default::default()
                    }
                    .dispatches(
                        gpu,
                        &dy,
                        &ctx.params[weight.0],
                        &as_rows(dx)?,
                    )?,
                );
            }
        }
        Op::MatMul { trans_a, trans_b } => {
            let (a, b) = (as_batch(&ctx.input(n, 0)?)?, as_batch(&ctx.input(n, 1)?)?);
            let dc = as_batch(dy)?;
            // C = op(A)·op(B): dop(A) = dC·op(B)ᵀ and dop(B) = op(A)ᵀ·dC, stored back in the
            // layout each operand has.
            let product = |ta: bool, tb: bool, l: &Tensor, r: &Tensor, sink: &Tensor| {
                Matmul {
                    trans_a: ta,
                    trans_b: tb,
                    ..Default::default()
                }
                .dispatch_batched(gpu, l, r, &as_batch(sink)?)
            };
            if let Some(da) = &sinks[0] {
                out.push(if trans_a {
                    product(trans_b, true, &b, &dc, da)? // A stored [k, m]: op(B)·dCᵀ
                } else {
                    product(false, !trans_b, &dc, &b, da)?
                });
            }
            if let Some(db) = &sinks[1] {
                out.push(if trans_b {
                    product(true, trans_a, &dc, &a, db)? // B stored [n, k]: dCᵀ·op(A)
                } else {
                    product(!trans_a, false, &a, &dc, db)?
                });
            }
        }
        Op::Embedding { .. } => {
            let dweight = param_sink(sinks, 1);
            out.push(tensor::embedding_backward(
                gpu,
                &as_rows(dy)?,
                &ctx.input(n, 0)?,
                dweight,
            )?);
        }
        _ => unreachable!("dense::backward is only called for products"),
    }
    Ok(out)
}
