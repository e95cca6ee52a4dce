//! The f64 forward of a whole graph, op by op from the math: what the graph's finite-difference
//! gradient checks differentiate and what its GPU forward is compared with. Training-mode
//! semantics (batch statistics); dropout draws the same masks as the GPU when given the key.
//! A custom op has no f64 form here: its output is NaN, so a check through one fails loudly
//! (test a custom op against a graph of built-in ops that computes the same function).

use crate::graph::{Graph, Op};
use crate::kernels::loss::Loss;

/// The (seed, step) of the GPU's dropout masks; `None` runs dropout as the identity.
pub type DropoutKey = Option<(u32, u32)>;

/// Every node's value (full shape, row-major) for `params` in graph order and `inputs` in the
/// graph's input order (u32 indices given as f64).
pub fn graph_forward(
    graph: &Graph,
    params: &[Vec<f64>],
    inputs: &[Vec<f64>],
    batch: usize,
    dropout: DropoutKey,
) -> Vec<Vec<f64>> {
    let mut values: Vec<Vec<f64>> = Vec::with_capacity(graph.nodes.len());
    let mut next_input = inputs.iter();
    for (i, node) in graph.nodes.iter().enumerate() {
        let x = |k: usize| -> &Vec<f64> { &values[node.inputs[k].0] };
        let shape_of = |k: usize| graph.nodes[node.inputs[k].0].shape(batch);
        let last = |k: usize| *shape_of(k).last().expect("values have a last axis");
        let value = match &node.op {
            Op::Input { .. } => next_input.next().expect("one host batch per input").clone(),
            Op::Param { param } => params[param.0].clone(),
            Op::Linear {
                weight,
                bias,
                activation,
            } => {
                let (cols, out) = (last(0), node.dims[node.dims.len() - 1]);
                let rows = x(0).len() / cols;
                let mut y = super::matmul(x(0), &params[weight.0], (rows, out, cols), false, true);
                for (j, v) in y.iter_mut().enumerate() {
                    let b = bias.map_or(0.0, |b| params[b.0][j % out]);
                    *v = activation.apply_f64(*v + b);
                }
                y
            }
            Op::Activation { activation } => {
                x(0).iter().map(|&v| activation.apply_f64(v)).collect()
            }
            Op::Dropout { p } => match dropout {
                Some((seed, step)) => x(0)
                    .iter()
                    .enumerate()
                    .map(|(e, &v)| {
                        let keep = super::dropout_keeps(*p, seed, step, i as u32 + 1, e as u32);
                        if keep { v / (1.0 - f64::from(*p)) } else { 0.0 }
                    })
                    .collect(),
                None => x(0).clone(),
            },
            Op::BatchNorm {
                gamma,
                beta,
                config,
                ..
            } => {
                // Channels last, so each channel is a column of [B·S, C].
                let bcs = (batch, node.dims[0], node.dims[1..].iter().product());
                let (y, _, _) = super::batchnorm_forward(
                    &super::channels_last(x(0), bcs),
                    batch * bcs.2,
                    bcs.1,
                    &params[gamma.0],
                    &params[beta.0],
                    f64::from(config.eps),
                );
                super::channels_first(&y, bcs)
            }
            Op::Conv2d {
                weight,
                bias,
                config,
                activation,
            } => {
                let (x_shape, w_shape) = (shape_of(0), &graph.params[weight.0].shape);
                let shape = super::ConvShape {
                    x: [x_shape[0], x_shape[1], x_shape[2], x_shape[3]],
                    weight: [w_shape[0], w_shape[1], w_shape[2], w_shape[3]],
                    config: *config,
                };
                let bias = bias.map(|b| &params[b.0][..]);
                super::conv2d(&shape, x(0), &params[weight.0], bias)
                    .into_iter()
                    .map(|v| activation.apply_f64(v))
                    .collect()
            }
            Op::Pool2d(pool) => {
                let s = shape_of(0);
                super::pool2d(pool, x(0), s[0] * s[1], (s[2], s[3]))
            }
            Op::Add | Op::Sub | Op::Mul => {
                let (a, b) = (x(0), x(1));
                a.iter()
                    .enumerate()
                    .map(|(j, &av)| {
                        let bv = b[j % b.len()];
                        match node.op {
                            Op::Add => av + bv,
                            Op::Sub => av - bv,
                            _ => av * bv,
                        }
                    })
                    .collect()
            }
            Op::Scale { alpha } => x(0).iter().map(|v| v * f64::from(*alpha)).collect(),
            Op::Concat => {
                let width = node.dims[node.dims.len() - 1];
                let rows = node.len(batch) / width;
                let mut y = Vec::with_capacity(rows * width);
                for r in 0..rows {
                    for k in 0..node.inputs.len() {
                        let w = last(k);
                        y.extend_from_slice(&x(k)[r * w..(r + 1) * w]);
                    }
                }
                y
            }
            Op::Reshape { .. } => x(0).clone(),
            Op::Slice { start, len } => x(0)
                .chunks(last(0))
                .flat_map(|row| row[*start..start + len].to_vec())
                .collect(),
            Op::Transpose { axes: [a, b] } => super::transpose(x(0), &shape_of(0), (*a, *b)),
            Op::MatMul { trans_a, trans_b } => {
                let (sa, sb) = (shape_of(0), shape_of(1));
                let dims = |s: &[usize], t: bool| {
                    let (r, c) = (s[s.len() - 2], s[s.len() - 1]);
                    if t { (c, r) } else { (r, c) }
                };
                let ((m, k), (_, n)) = (dims(&sa, *trans_a), dims(&sb, *trans_b));
                let count = x(0).len() / (m * k);
                (0..count)
                    .flat_map(|i| {
                        super::matmul(
                            &x(0)[i * m * k..(i + 1) * m * k],
                            &x(1)[i * k * n..(i + 1) * k * n],
                            (m, n, k),
                            *trans_a,
                            *trans_b,
                        )
                    })
                    .collect()
            }
            Op::CausalSelfAttention { heads } => {
                let (t, c) = (
                    node.dims[node.dims.len() - 2],
                    node.dims[node.dims.len() - 1],
                );
                super::causal_self_attention(x(0), t, *heads, c / heads)
            }
            Op::Softmax { causal } => {
                let cols = node.dims[node.dims.len() - 1];
                super::softmax(x(0), cols, if *causal { cols } else { 0 })
            }
            Op::LayerNorm { gamma, beta, eps } => super::layer_norm(
                x(0),
                node.dims[node.dims.len() - 1],
                &params[gamma.0],
                &params[beta.0],
                f64::from(*eps),
            ),
            Op::Embedding { weight } => {
                let idx: Vec<usize> = x(0).iter().map(|&v| v as usize).collect();
                super::embedding(&params[weight.0], node.dims[node.dims.len() - 1], &idx)
            }
            Op::Reduce { axis, mean } => {
                let from = shape_of(0);
                let dims = (
                    from[..*axis].iter().product(),
                    from[*axis],
                    from[axis + 1..].iter().product(),
                );
                super::axis_sum(x(0), dims, if *mean { 1.0 / dims.1 as f64 } else { 1.0 })
            }
            Op::Custom(_) => vec![f64::NAN; node.len(batch)],
        };
        values.push(value);
    }
    values
}

/// The graph's output in f64.
pub fn graph_output(
    graph: &Graph,
    params: &[Vec<f64>],
    inputs: &[Vec<f64>],
    batch: usize,
    dropout: DropoutKey,
) -> Vec<f64> {
    let (output, _) = graph.output.expect("the graph has an output");
    graph_forward(graph, params, inputs, batch, dropout).swap_remove(output.0)
}

/// The graph's mean loss against `target` in f64.
pub fn graph_loss(
    graph: &Graph,
    params: &[Vec<f64>],
    inputs: &[Vec<f64>],
    target: &[f64],
    batch: usize,
    dropout: DropoutKey,
) -> f64 {
    let (output, kind): (_, Loss) = graph.output.expect("the graph has an output");
    let values = graph_forward(graph, params, inputs, batch, dropout);
    let (rows, cols) = crate::graph::loss_rows(graph, output, batch);
    super::loss(kind, &values[output.0], target, rows, cols).0
}
