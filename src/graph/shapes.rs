//! The shape rule of every op kind: from the op and its inputs, the output's feature dims,
//! whether it is batched, and its dtype, or an `Error::ShapeMismatch` naming the op and the
//! shapes. Shapes are written with `B` for the batch where it appears.

use crate::error::{Error, Result};
use crate::graph::{DType, Graph, Node, Op, shape_error};

/// `(dims, batched, dtype)` of a new node.
pub(crate) type Inferred = (Vec<usize>, bool, DType);

pub(crate) fn infer(graph: &Graph, op: &Op, inputs: &[crate::graph::NodeId]) -> Result<Inferred> {
    let nodes: Vec<&Node> = inputs.iter().map(|&i| &graph.nodes[i.0]).collect();
    let arity = |n: usize| -> Result<()> {
        if nodes.len() == n {
            Ok(())
        } else {
            Err(Error::InvalidArgument(format!(
                "{} takes {n} input(s), got {}",
                name(op),
                nodes.len()
            )))
        }
    };
    // Ops over floats refuse index values: they carry no gradient and no meaning as numbers.
    let floats = |what: &str| -> Result<()> {
        match nodes.iter().find(|n| n.dtype != DType::F32) {
            Some(_) => Err(Error::InvalidArgument(format!(
                "{what} needs f32 inputs; u32 indices feed only an Embedding or a loss target"
            ))),
            None => Ok(()),
        }
    };
    let same_as_input = |n: &Node| (n.dims.clone(), n.batched, n.dtype);
    match op {
        Op::Input { dims, dtype, .. } => {
            arity(0)?;
            check_size(dims)?;
            if dims.is_empty() || dims.contains(&0) {
                return Err(Error::InvalidArgument(format!(
                    "an input needs at least one element per sample, got dims {dims:?}"
                )));
            }
            Ok((dims.clone(), true, *dtype))
        }
        Op::Param { param } => {
            arity(0)?;
            check_size(&graph.param_spec(*param)?.shape)?;
            Ok((graph.param_spec(*param)?.shape.clone(), false, DType::F32))
        }
        Op::Linear {
            weight,
            bias,
            activation,
        } => {
            arity(1)?;
            if *activation != crate::kernels::Activation::Identity {
                return Err(Error::InvalidArgument(
                    "a Linear's activation is set by the fusion pass; add the activation as its own node".into(),
                ));
            }
            floats("linear")?;
            let x = nodes[0];
            let w = &graph.param_spec(*weight)?.shape;
            let [out, w_in] = w[..] else {
                return Err(shape_error("linear weight (expects [out, in])", w, &[]));
            };
            if x.dims.last() != Some(&w_in) {
                return Err(shape_error(
                    "linear (weight [out, in] vs input [B, ..., in])",
                    w,
                    &x.dims,
                ));
            }
            if let Some(bias) = bias {
                let b = &graph.param_spec(*bias)?.shape;
                if b[..] != [out] {
                    return Err(shape_error("linear bias", b, &[out]));
                }
            }
            let mut dims = x.dims.clone();
            *dims.last_mut().expect("checked non-empty above") = out;
            Ok((dims, x.batched, DType::F32))
        }
        Op::Activation { .. } | Op::Scale { .. } => {
            arity(1)?;
            floats(name(op))?;
            // JSON reads 1e39 as an f32 infinity: every output would be ±inf or NaN.
            let factor = match op {
                Op::Scale { alpha } => Some(("scale alpha", *alpha)),
                Op::Activation {
                    activation: crate::kernels::Activation::LeakyRelu(slope),
                } => Some(("leaky_relu slope", *slope)),
                _ => None,
            };
            if let Some((what, value)) = factor
                && !value.is_finite()
            {
                return Err(Error::InvalidArgument(format!(
                    "{what} {value} must be finite"
                )));
            }
            Ok(same_as_input(nodes[0]))
        }
        Op::Dropout { p } => {
            arity(1)?;
            floats("dropout")?;
            if !(0.0..1.0).contains(p) {
                return Err(Error::InvalidArgument(format!(
                    "dropout probability {p} must lie in [0, 1)"
                )));
            }
            Ok(same_as_input(nodes[0]))
        }
        Op::BatchNorm {
            gamma,
            beta,
            config,
            ..
        } => {
            arity(1)?;
            floats("batch_norm")?;
            // torch takes any momentum, but outside [0, 1] the running statistics diverge,
            // and a zero eps divides a constant channel by zero.
            if !(config.eps > 0.0
                && config.eps.is_finite()
                && (0.0..=1.0).contains(&config.momentum))
            {
                return Err(Error::InvalidArgument(format!(
                    "batch_norm eps {} must be positive and finite, momentum {} in [0, 1]",
                    config.eps, config.momentum
                )));
            }
            let x = nodes[0];
            let (Some(&channels), true) = (x.dims.first(), x.batched) else {
                return Err(shape_error(
                    "batch_norm (expects a batched [B, C, ...])",
                    &x.dims,
                    &[],
                ));
            };
            for p in [gamma, beta] {
                let shape = &graph.param_spec(*p)?.shape;
                if shape[..] != [channels] {
                    return Err(shape_error("batch_norm affine", shape, &[channels]));
                }
            }
            Ok(same_as_input(x))
        }
        Op::Conv2d {
            weight,
            bias,
            config,
            activation,
        } => {
            arity(1)?;
            if *activation != crate::kernels::Activation::Identity {
                return Err(Error::InvalidArgument(
                    "a Conv2d's activation is set by the fusion pass; add the activation as its own node".into(),
                ));
            }
            floats("conv2d")?;
            let x = nodes[0];
            let w = &graph.param_spec(*weight)?.shape;
            let (&[c, h, wd], true, &[o, wc, kh, kw]) = (&x.dims[..], x.batched, &w[..]) else {
                return Err(shape_error(
                    "conv2d (weight [O, C, kh, kw] vs input [B, C, H, W])",
                    w,
                    &x.dims,
                ));
            };
            let out = config
                .output_size(0, h, kh)
                .zip(config.output_size(1, wd, kw));
            let Some((oh, ow)) = out.filter(|&(oh, ow)| c == wc && oh * ow > 0) else {
                return Err(shape_error(
                    &format!(
                        "conv2d (weight [O, C, kh, kw] vs input [B, C, H, W], stride {:?}, padding {:?}, dilation {:?})",
                        config.stride, config.padding, config.dilation
                    ),
                    w,
                    &x.dims,
                ));
            };
            if let Some(bias) = bias {
                let b = &graph.param_spec(*bias)?.shape;
                if b[..] != [o] {
                    return Err(shape_error("conv2d bias", b, &[o]));
                }
            }
            Ok((vec![o, oh, ow], true, DType::F32))
        }
        Op::Pool2d(pool) => {
            arity(1)?;
            floats("pool2d")?;
            let x = nodes[0];
            let out = match (&x.dims[..], x.batched) {
                (&[c, h, w], true) => pool.output(h, w).map(|(oh, ow)| vec![c, oh, ow]),
                _ => None,
            };
            let Some(dims) = out else {
                return Err(shape_error(
                    &format!(
                        "pool2d (input [B, C, H, W] vs kernel {:?}, stride {:?}, padding {:?}; padding at most half the kernel)",
                        pool.kernel, pool.stride, pool.padding
                    ),
                    &x.dims,
                    &pool.kernel,
                ));
            };
            Ok((dims, true, DType::F32))
        }
        Op::Add | Op::Sub | Op::Mul => {
            arity(2)?;
            floats(name(op))?;
            broadcast(name(op), nodes[0], nodes[1])
        }
        Op::Concat => {
            if nodes.is_empty() {
                return Err(Error::InvalidArgument(
                    "concat needs at least one input".into(),
                ));
            }
            floats("concat")?;
            let first = nodes[0];
            let lead = |n: &Node| (n.batched, n.dims[..n.dims.len().saturating_sub(1)].to_vec());
            let mut width = 0;
            for n in &nodes {
                if n.dims.is_empty() || lead(n) != lead(first) {
                    return Err(shape_error(
                        "concat (all but the last axis must agree)",
                        &first.dims,
                        &n.dims,
                    ));
                }
                width += n.dims[n.dims.len() - 1];
            }
            let mut dims = first.dims.clone();
            *dims.last_mut().expect("checked non-empty") = width;
            Ok((dims, first.batched, DType::F32))
        }
        Op::Slice { start, len } => {
            arity(1)?;
            floats("slice")?;
            let x = nodes[0];
            let width = *x.dims.last().unwrap_or(&0);
            if *len == 0 || start.checked_add(*len).is_none_or(|end| end > width) {
                return Err(shape_error(
                    &format!(
                        "slice {start}..{} of the last axis",
                        start.saturating_add(*len)
                    ),
                    &x.dims,
                    &[],
                ));
            }
            let mut dims = x.dims.clone();
            *dims.last_mut().expect("checked non-empty") = *len;
            Ok((dims, x.batched, DType::F32))
        }
        Op::Reshape { dims } => {
            arity(1)?;
            let x = nodes[0];
            check_size(dims)?;
            if dims.iter().product::<usize>() != x.dims.iter().product::<usize>() || dims.is_empty()
            {
                return Err(shape_error("reshape (element count)", &x.dims, dims));
            }
            Ok((dims.clone(), x.batched, x.dtype))
        }
        Op::Transpose { axes: [a, b] } => {
            arity(1)?;
            floats("transpose")?;
            let x = nodes[0];
            let full = x.shape(0);
            let first_movable = usize::from(x.batched);
            if a == b || (*a).max(*b) >= full.len() || (*a).min(*b) < first_movable {
                return Err(Error::InvalidArgument(format!(
                    "transpose of axes {a} and {b} of a value of rank {} (the batch axis stays first)",
                    full.len()
                )));
            }
            let mut shape = full;
            shape.swap(*a, *b);
            Ok((shape[first_movable..].to_vec(), x.batched, DType::F32))
        }
        Op::MatMul { trans_a, trans_b } => {
            arity(2)?;
            floats("matmul")?;
            let (a, b) = (nodes[0], nodes[1]);
            let mismatch = || {
                shape_error(
                    "matmul (per-sample [.., m, k] · [.., k, n])",
                    &a.dims,
                    &b.dims,
                )
            };
            if a.dims.len() < 2 || b.dims.len() < 2 || a.batched != b.batched {
                return Err(mismatch());
            }
            let split = |n: &Node, t: bool| {
                let d = &n.dims;
                let (r, c) = (d[d.len() - 2], d[d.len() - 1]);
                (d[..d.len() - 2].to_vec(), if t { (c, r) } else { (r, c) })
            };
            let (lead_a, (m, k)) = split(a, *trans_a);
            let (lead_b, (kb, n)) = split(b, *trans_b);
            if lead_a != lead_b || k != kb {
                return Err(mismatch());
            }
            let mut dims = lead_a;
            dims.extend([m, n]);
            Ok((dims, a.batched, DType::F32))
        }
        Op::CausalSelfAttention { heads } => {
            arity(1)?;
            floats("causal_self_attention")?;
            let d = &nodes[0].dims;
            let packed = d.last().copied().unwrap_or(0);
            let head_dim = packed / 3 / (*heads).max(1);
            if d.len() < 2
                || *heads == 0
                || packed == 0
                || packed != 3 * heads * head_dim
                || head_dim > crate::kernels::attention::MAX_HEAD_DIM
            {
                return Err(shape_error(
                    &format!(
                        "causal self-attention of {heads} heads (expects [.., T, 3·heads·D] \
                         packed q, k, v with D ≤ {})",
                        crate::kernels::attention::MAX_HEAD_DIM
                    ),
                    d,
                    &[],
                ));
            }
            let mut dims = d.clone();
            *dims.last_mut().expect("checked rank") = packed / 3;
            Ok((dims, nodes[0].batched, DType::F32))
        }
        Op::Softmax { causal } => {
            arity(1)?;
            floats("softmax")?;
            let x = nodes[0];
            let d = &x.dims;
            if *causal && (d.len() < 2 || d[d.len() - 1] != d[d.len() - 2]) {
                return Err(shape_error(
                    "causal softmax (expects [.., T, T] scores)",
                    d,
                    &[],
                ));
            }
            Ok(same_as_input(x))
        }
        Op::LayerNorm { gamma, beta, eps } => {
            arity(1)?;
            floats("layer_norm")?;
            let x = nodes[0];
            let c = *x.dims.last().unwrap_or(&0);
            for p in [gamma, beta] {
                let shape = &graph.param_spec(*p)?.shape;
                if shape[..] != [c] {
                    return Err(shape_error("layer_norm affine", shape, &[c]));
                }
            }
            if !(*eps > 0.0 && eps.is_finite()) {
                return Err(Error::InvalidArgument(format!(
                    "layer_norm eps {eps} must be positive and finite"
                )));
            }
            Ok(same_as_input(x))
        }
        Op::Embedding { weight } => {
            arity(1)?;
            let x = nodes[0];
            if x.dtype != DType::U32 {
                return Err(Error::InvalidArgument(
                    "embedding takes u32 indices (an input made with Graph::input_indices)".into(),
                ));
            }
            let w = &graph.param_spec(*weight)?.shape;
            let [_, dim] = w[..] else {
                return Err(shape_error(
                    "embedding weight (expects [vocab, dim])",
                    w,
                    &[],
                ));
            };
            let mut dims = x.dims.clone();
            dims.push(dim);
            Ok((dims, x.batched, DType::F32))
        }
        Op::Reduce { axis, .. } => {
            arity(1)?;
            floats(name(op))?;
            let x = nodes[0];
            let first_reducible = usize::from(x.batched);
            let full = x.shape(0);
            if *axis < first_reducible || *axis >= full.len() || x.dims.len() < 2 {
                return Err(Error::InvalidArgument(format!(
                    "{} over axis {axis} of a value of rank {}: reduce a feature axis (not the batch) and keep at least one",
                    name(op),
                    full.len()
                )));
            }
            let mut dims = x.dims.clone();
            dims.remove(axis - first_reducible);
            Ok((dims, x.batched, DType::F32))
        }
        Op::Custom(op) => custom(op, &nodes),
    }
}

/// The most elements one sample of a value (or one parameter) may have: far past any binding
/// an adapter offers, and small enough that sizes never overflow.
/// (2⁴⁰, or a quarter of a 32-bit address space on wasm32, so byte counts fit a usize).
const MAX_ELEMENTS: usize = if usize::BITS >= 64 {
    1 << 40
} else {
    usize::MAX / 4
};

/// Fails when `dims` hold more than [`MAX_ELEMENTS`] elements (or overflow counting them).
pub(crate) fn check_size(dims: &[usize]) -> Result<()> {
    match dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d)) {
        Some(n) if n <= MAX_ELEMENTS => Ok(()),
        _ => Err(Error::InvalidArgument(format!(
            "a value or parameter of shape {dims:?} is too large"
        ))),
    }
}

/// A custom op: f32 inputs, its WGSL valid, its output shaped by its rule.
fn custom(op: &crate::graph::CustomOp, nodes: &[&Node]) -> Result<Inferred> {
    use crate::graph::CustomShape;
    if nodes.is_empty() || nodes.len() > 8 || nodes.iter().any(|n| n.dtype != DType::F32) {
        return Err(Error::InvalidArgument(format!(
            "custom op {:?} takes 1 to 8 f32 inputs, got {}",
            op.name,
            nodes.len()
        )));
    }
    op.validate(nodes.len())?;
    match &op.output {
        CustomShape::SameAsInput(k) => nodes
            .get(*k)
            .map(|n| (n.dims.clone(), n.batched, DType::F32))
            .ok_or_else(|| {
                Error::InvalidArgument(format!("custom op {:?}: no input {k}", op.name))
            }),
        CustomShape::Dims(dims) if !dims.is_empty() && !dims.contains(&0) => {
            Ok((dims.clone(), true, DType::F32))
        }
        CustomShape::Dims(dims) => Err(Error::InvalidArgument(format!(
            "custom op {:?}: output dims {dims:?}",
            op.name
        ))),
    }
}

/// `a ∘ b`: same shape, or `b` unbatched with a suffix of `a`'s full shape.
fn broadcast(op: &str, a: &Node, b: &Node) -> Result<Inferred> {
    let full_a = a.shape(1);
    let same = a.batched == b.batched && a.dims == b.dims;
    let suffix = !b.batched && !b.dims.is_empty() && full_a.ends_with(&b.dims);
    if same || (suffix && b.dims.len() <= a.dims.len()) {
        Ok((a.dims.clone(), a.batched, DType::F32))
    } else {
        Err(shape_error(
            &format!(
                "{op} (per-sample shapes; b must have a's shape, or be an unbatched value whose shape ends a's)"
            ),
            &a.dims,
            &b.dims,
        ))
    }
}

/// The op's name in messages.
pub(crate) fn name(op: &Op) -> &'static str {
    match op {
        Op::Input { .. } => "input",
        Op::Param { .. } => "param",
        Op::Linear { .. } => "linear",
        Op::Activation { .. } => "activation",
        Op::Dropout { .. } => "dropout",
        Op::BatchNorm { .. } => "batch_norm",
        Op::Add => "add",
        Op::Sub => "sub",
        Op::Mul => "mul",
        Op::Scale { .. } => "scale",
        Op::Concat => "concat",
        Op::Slice { .. } => "slice",
        Op::Reshape { .. } => "reshape",
        Op::Transpose { .. } => "transpose",
        Op::MatMul { .. } => "matmul",
        Op::Softmax { .. } => "softmax",
        Op::CausalSelfAttention { .. } => "causal_self_attention",
        Op::LayerNorm { .. } => "layer_norm",
        Op::Embedding { .. } => "embedding",
        Op::Reduce { mean: true, .. } => "mean",
        Op::Reduce { mean: false, .. } => "sum",
        Op::Conv2d { .. } => "conv2d",
        Op::Pool2d(_) => "pool2d",
        Op::Custom(_) => "custom",
    }
}
