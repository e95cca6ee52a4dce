//! User-defined ops (`graph/custom.rs`): the forward over the output's elements, one
//! `backward_<i>` dispatch per input that needs a gradient.

use std::sync::Arc;

use super::{Ctx, Value};
use crate::error::{Error, Result};
use crate::gpu::kernel::{Access, Bind, RuntimeKernel, grid_1d};
use crate::gpu::{Dispatch, Tensor};
use crate::graph::custom::{CustomOp, WORKGROUP};
use crate::graph::{NodeId, Op};
use crate::kernels::to_u32;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct CustomParams {
    n: u32,
    batch: u32,
    _pad0: u32,
    _pad1: u32,
}

fn op<'a>(ctx: &Ctx<'a>, n: NodeId) -> &'a CustomOp {
    match &ctx.graph.nodes[n.0].op {
        Op::Custom(op) => op,
        _ => unreachable!("custom rules are only called for custom ops"),
    }
}

/// One dispatch of `entry` writing `written` elements; `out`, `dout`, `dinp` as in the header.
fn launch(
    ctx: &Ctx<'_>,
    n: NodeId,
    entry: &str,
    (out, dout, dinp): (&Tensor, &Tensor, &Tensor),
    written: usize,
) -> Result<Dispatch> {
    let inputs: Vec<Tensor> = (0..ctx.graph.nodes[n.0].inputs.len())
        .map(|k| ctx.input(n, k))
        .collect::<Result<_>>()?;
    let source: Arc<str> = Arc::from(op(ctx, n).source(inputs.len()));
    let params = ctx.gpu.uniform(&CustomParams {
        n: to_u32(written),
        batch: to_u32(ctx.batch),
        _pad0: 0,
        _pad1: 0,
    });
    let mut bindings = vec![Access::Uniform];
    bindings.extend(inputs.iter().map(|_| Access::Read));
    bindings.extend([Access::ReadWrite, Access::Read, Access::ReadWrite]);
    let mut binds = vec![Bind::Uniform(&params)];
    binds.extend(inputs.iter().map(Bind::Tensor));
    binds.extend([Bind::Tensor(out), Bind::Tensor(dout), Bind::Tensor(dinp)]);
    ctx.gpu.dispatch_runtime(
        &RuntimeKernel {
            source: &source,
            entry,
            bindings: &bindings,
        },
        &binds,
        grid_1d(written, WORKGROUP),
    )
}

pub(super) fn forward(ctx: &Ctx<'_>, n: NodeId) -> Result<Vec<Dispatch>> {
    let y = ctx.out(n)?;
    // The forward reads no `dout` and writes no `dinp`: each gets a buffer of its own.
    let [unused_dout, unused_dinp] = ctx.gpu.stand_ins()?;
    Ok(vec![launch(
        ctx,
        n,
        "forward",
        (&y, &unused_dout, &unused_dinp),
        y.len(),
    )?])
}

pub(super) fn backward(
    ctx: &Ctx<'_>,
    n: NodeId,
    sinks: &[Option<Tensor>],
) -> Result<Vec<Dispatch>> {
    let custom = op(ctx, n);
    let has_backward = custom.validate(ctx.graph.nodes[n.0].inputs.len())?;
    let (y, dy) = (ctx.out(n)?, ctx.get(Value::Grad(n))?);
    let mut out = vec![];
    for (i, sink) in sinks.iter().enumerate() {
        let Some(dx) = sink else { continue };
        if !has_backward[i] {
            return Err(Error::InvalidArgument(format!(
                "custom op {:?} has no backward_{i}, so its input {i} cannot be differentiated (it depends on a parameter)",
                custom.name
            )));
        }
        out.push(launch(
            ctx,
            n,
            &format!("backward_{i}"),
            (&y, dy, dx),
            dx.len(),
        )?);
    }
    Ok(out)
}
