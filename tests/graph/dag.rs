//! Every graph op alone and in DAG compositions: the GPU forward against the f64 graph
//! interpreter, and the GPU gradients of every parameter against f64 finite differences of
//! the same loss. Each op input that is not already a product of parameters is made
//! trainable as `x + p` (a parameter of the input's feature shape, broadcast over the batch),
//! so the checks reach every VJP slot of every op. Gradient buffers are NaN-poisoned first:
//! a gradient nobody writes fails.

use wgtrain::graph::{DType, Feed, Graph, Mode, NodeId, Weights};
use wgtrain::kernels::Activation;
use wgtrain::kernels::loss::Loss;
use wgtrain::reference;
use wgtrain::train::{TrainConfig, Trainer};

use crate::common::*;
use crate::gradients::assert_gradients_match;

const BATCH: usize = 3;

/// `x + p` with `p` a new parameter of `x`'s feature shape.
pub(crate) fn trainable(g: &mut Graph, name: &str, x: NodeId) -> NodeId {
    let dims = g.shape_of(x, 1).expect("node")[1..].to_vec();
    let p = g.param(name, &dims, wgtrain::graph::Init::Constant(0.0));
    let p = g.value(p).expect("param value");
    g.add(x, p).expect("broadcast add")
}

/// Checks `graph`'s forward and every parameter gradient on random data (u32 inputs drawn
/// below `vocab`); returns the GPU gradients.
pub(crate) fn check(name: &str, graph: &Graph, vocab: u32) -> Vec<Vec<f32>> {
    check_against(name, graph, graph, vocab)
}

/// [`check`] with the f64 side computed from `truth`, a graph with the same inputs and
/// parameters that computes the same function (how a custom op is checked).
pub(crate) fn check_against(name: &str, graph: &Graph, truth: &Graph, vocab: u32) -> Vec<Vec<f32>> {
    let mut rng = rng(name);
    let params: Vec<Vec<f32>> = graph
        .params()
        .iter()
        .map(|p| rng.uniform(p.len(), -1.0, 1.0))
        .collect();
    let inputs: Vec<(Vec<f32>, Vec<u32>, DType)> = graph
        .inputs()
        .iter()
        .map(|&(_, dims, dtype)| {
            let n = BATCH * dims.iter().product::<usize>();
            match dtype {
                DType::F32 => (rng.uniform(n, -1.0, 1.0), vec![], dtype),
                DType::U32 => {
                    let idx: Vec<u32> = rng.below(n, vocab).iter().map(|&v| v as u32).collect();
                    (vec![], idx, dtype)
                }
            }
        })
        .collect();
    let feeds: Vec<Feed<'_>> = inputs
        .iter()
        .map(|(f, u, dtype)| match dtype {
            DType::F32 => Feed::F32(f),
            DType::U32 => Feed::U32(u),
        })
        .collect();
    let loss = graph.loss().expect("output");
    let out_dims = graph.output_dims().expect("output").to_vec();
    let cols = *out_dims.last().expect("feature axis");
    let rows = BATCH * out_dims.iter().product::<usize>() / cols;
    let target = match loss {
        Loss::CrossEntropy => rng.below(rows, cols as u32),
        _ => rng.uniform(rows * cols, -1.0, 1.0),
    };

    let seed = u64::from(rng.next_u32());
    let weights = Weights::from_values(gpu(), graph, &params).expect("weights");
    let config = TrainConfig {
        seed,
        ..Default::default()
    };
    let mut trainer = Trainer::new(gpu(), graph.clone(), weights, config).expect("trainer");
    let poison = vec![f32::NAN; trainer.weights().grads.len()];
    gpu()
        .write(&trainer.weights().grads, &poison)
        .expect("poison");
    let gpu_loss = trainer
        .compute_gradients_inputs(&feeds, &target)
        .expect("step");
    let gpu_grads = trainer.weights().read_grads(gpu()).expect("read grads");
    let gpu_out = read(trainer.plan(BATCH, Mode::Train).expect("plan").output());

    let params64: Vec<Vec<f64>> = params.iter().map(|p| f64s(p)).collect();
    let inputs64: Vec<Vec<f64>> = inputs
        .iter()
        .map(|(f, u, dtype)| match dtype {
            DType::F32 => f64s(f),
            DType::U32 => u.iter().map(|&v| f64::from(v)).collect(),
        })
        .collect();
    let target64 = f64s(&target);
    // The GPU's dropout masks are keyed by (seed, step 1) for the first step.
    let key = Some((seed as u32, 1));
    let output = &reference::graph_output(truth, &params64, &inputs64, BATCH, key);
    let want_loss = reference::graph_loss(truth, &params64, &inputs64, &target64, BATCH, key);
    // Each value is a few f32 operations over sums of ≤ 16 terms of magnitude ≤ ~4: a few
    // dozen u of the values' scale; 1e-4 of the scale (plus 1e-4 relative) leaves margin
    // while any wrong index or missing term is off by O(scale).
    let scale = output.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    assert_close(
        &format!("{name}: forward"),
        &gpu_out,
        output,
        1e-4 * scale,
        1e-4,
    );
    assert_close(
        &format!("{name}: loss"),
        &[gpu_loss],
        &[want_loss],
        1e-4,
        1e-4,
    );
    let fd = reference::finite_difference_grads(&params64, |p| {
        reference::graph_loss(truth, p, &inputs64, &target64, BATCH, key)
    });
    assert_gradients_match(name, &gpu_grads, &fd);
    gpu_grads
}

/// A graph with one f32 input of `dims`, made trainable, fed to `body`, trained with `loss`.
pub(crate) fn unary(
    dims: &[usize],
    loss: Loss,
    body: impl FnOnce(&mut Graph, NodeId) -> NodeId,
) -> Graph {
    let mut g = Graph::new();
    let x = g.input("x", dims).expect("input");
    let x = trainable(&mut g, "x_bias", x);
    let y = body(&mut g, x);
    g.set_output(y, loss).expect("output");
    g
}

#[test]
fn activations_at_rank_three_match_finite_differences() {
    for a in [
        Activation::Relu,
        Activation::LeakyRelu(0.1),
        Activation::Gelu,
        Activation::Tanh,
        Activation::Sigmoid,
    ] {
        let g = unary(&[2, 5], Loss::Mse, |g, x| g.activation(x, a).expect("op"));
        check(&format!("{a:?}"), &g, 0);
    }
}

#[test]
fn add_sub_mul_with_and_without_broadcasting() {
    for (op, broadcast) in [
        (0, false),
        (1, false),
        (2, false),
        (0, true),
        (1, true),
        (2, true),
    ] {
        let mut g = Graph::new();
        let x = g.input("x", &[3, 5]).expect("input");
        let a = trainable(&mut g, "a", x);
        let b = if broadcast {
            // [5] and [3, 5] are both suffixes of [B, 3, 5]
            let p = g.param("b", &[5], wgtrain::graph::Init::Constant(0.0));
            g.value(p).expect("value")
        } else {
            let y = g.input("y", &[3, 5]).expect("input");
            trainable(&mut g, "b", y)
        };
        let y = match op {
            0 => g.add(a, b),
            1 => g.sub(a, b),
            _ => g.mul(a, b),
        }
        .expect("op");
        g.set_output(y, Loss::Mse).expect("output");
        check(&format!("binary op {op}, broadcast {broadcast}"), &g, 0);
    }
}

#[test]
fn linear_over_the_last_axis_with_cross_entropy_over_positions() {
    // [B, T, C] → [B, T, V] logits, cross-entropy over the B·T positions
    let g = unary(&[4, 6], Loss::CrossEntropy, |g, x| {
        g.linear("proj", x, 5).expect("linear")
    });
    check("linear rank 3", &g, 0);
}

#[test]
fn batched_matmul_in_every_transpose() {
    for (trans_a, trans_b) in [(false, false), (false, true), (true, false), (true, true)] {
        // op(a) is [2, 3, 4] per sample, op(b) [2, 4, 5]
        let a_dims = if trans_a { [2, 4, 3] } else { [2, 3, 4] };
        let b_dims = if trans_b { [2, 5, 4] } else { [2, 4, 5] };
        let mut g = Graph::new();
        let a = g.input("a", &a_dims).expect("input");
        let b = g.input("b", &b_dims).expect("input");
        let a = trainable(&mut g, "pa", a);
        let b = trainable(&mut g, "pb", b);
        let c = g.matmul(a, b, trans_a, trans_b).expect("matmul");
        g.set_output(c, Loss::Mse).expect("output");
        check(&format!("matmul ta={trans_a} tb={trans_b}"), &g, 0);
    }
}

#[test]
fn slices_of_the_last_axis_and_a_split() {
    let g = unary(&[2, 7], Loss::Mse, |g, x| g.slice(x, 2, 4).expect("op"));
    check("slice 2..6 of 7", &g, 0);
    // Three pieces of one value, recombined: their gradients add into one buffer.
    let g = unary(&[9], Loss::Mse, |g, x| {
        let parts = g.split(x, 3).expect("split");
        let ab = g.mul(parts[0], parts[1]).expect("op");
        g.sub(ab, parts[2]).expect("op")
    });
    check("split in three", &g, 0);
}

#[test]
fn transpose_reshape_and_axis_reductions() {
    let g = unary(&[2, 3, 4], Loss::Mse, |g, x| {
        g.transpose(x, 1, 3).expect("op")
    });
    check("transpose(1, 3)", &g, 0);
    let g = unary(&[2, 6], Loss::Mse, |g, x| {
        let r = g.reshape(x, &[3, 4]).expect("op");
        g.scale(r, -1.5).expect("op")
    });
    check("reshape + scale", &g, 0);
    for mean in [false, true] {
        for axis in [1, 2, 3] {
            let g = unary(&[3, 4, 5], Loss::Mse, |g, x| {
                if mean {
                    g.mean(x, axis)
                } else {
                    g.sum(x, axis)
                }
                .expect("op")
            });
            check(&format!("reduce axis {axis} mean {mean}"), &g, 0);
        }
    }
}

#[test]
fn softmax_plain_and_causal() {
    for causal in [false, true] {
        let g = unary(&[2, 4, 4], Loss::Mse, |g, x| {
            if causal {
                g.causal_softmax(x)
            } else {
                g.softmax(x)
            }
            .expect("op")
        });
        check(&format!("softmax causal={causal}"), &g, 0);
    }
}

#[test]
fn layer_norm_over_the_last_axis() {
    let g = unary(&[3, 7], Loss::Mse, |g, x| {
        g.layer_norm("ln", x).expect("op")
    });
    check("layer_norm", &g, 0);
}

#[test]
fn embedding_rows_and_their_scatter_add() {
    // Five tokens from a vocabulary of seven: repeats are certain, so the backward must sum.
    let mut g = Graph::new();
    let idx = g.input_indices("tokens", &[5]).expect("input");
    let e = g.embedding("wte", idx, 7, 4).expect("embedding");
    let y = g.linear("head", e, 7).expect("head");
    g.set_output(y, Loss::CrossEntropy).expect("output");
    check("embedding", &g, 7);
}

/// Every index input's bound is the smallest table that reads it, through views: a token
/// past it is refused before the step (it would read another row's memory), as is a language
/// model whose tokens index a table smaller than its vocabulary.
#[test]
fn indices_are_bounded_by_the_smallest_table_they_reach() {
    let mut g = Graph::new();
    let x = g.input("x", &[2]).expect("input");
    let idx = g.input_indices("tokens", &[4]).expect("input");
    let _unread = g.input_indices("unread", &[1]).expect("input");
    let wide = g.embedding("wide", idx, 9, 2).expect("embedding");
    let viewed = g.reshape(idx, &[2, 2]).expect("a view of the indices");
    let narrow = g.embedding("narrow", viewed, 6, 2).expect("embedding");
    let narrow = g.reshape(narrow, &[4, 2]).expect("reshape");
    let h = g.add(wide, narrow).expect("add");
    let h = g.flatten(h).expect("flatten");
    let h = g.concat(&[h, x]).expect("concat");
    let y = g.linear("head", h, 3).expect("head");
    g.set_output(y, Loss::CrossEntropy).expect("output");
    assert_eq!(g.index_limits(), vec![None, Some(6), None]);

    let mut trainer = Trainer::for_graph(gpu(), g, TrainConfig::default()).expect("trainer");
    let feeds =
        |tokens: &'static [u32]| [Feed::F32(&[0.5, 0.5]), Feed::U32(tokens), Feed::U32(&[99])];
    let error = trainer
        .train_inputs(&feeds(&[0, 5, 6, 1]), &[1.0])
        .expect_err("6 of a 6-row table");
    assert!(
        error
            .to_string()
            .contains("element 2 is 6, past the 6 rows"),
        "{error}"
    );
    assert_eq!(trainer.step(), 0);
    trainer
        .train_inputs(&feeds(&[0, 5, 5, 1]), &[1.0])
        .expect("below every table; the unread input is free");

    let mut lm = Graph::new();
    let idx = lm.input_indices("tokens", &[4]).expect("input");
    let e = lm.embedding("wte", idx, 5, 4).expect("embedding");
    let logits = lm.linear("head", e, 7).expect("head");
    lm.set_output(logits, Loss::CrossEntropy).expect("output");
    let mut trainer = Trainer::for_graph(gpu(), lm, TrainConfig::default()).expect("trainer");
    let error = trainer.logits(&[1, 2]).expect_err("5 rows for 7 tokens");
    assert!(
        error.to_string().contains("5 rows for a vocabulary of 7"),
        "{error}"
    );
}

#[test]
fn dropout_at_rank_three_uses_the_gpu_masks() {
    let g = unary(&[4, 5], Loss::Mse, |g, x| g.dropout(x, 0.3).expect("op"));
    check("dropout", &g, 0);
}

#[test]
fn residual_block_fan_out_and_add() {
    let mut g = Graph::new();
    let x = g.input("x", &[6]).expect("input");
    let h0 = g.linear("embed", x, 5).expect("op");
    let h = g.linear("fc", h0, 5).expect("op");
    let h = g.relu(h).expect("op");
    let h = g.add(h, h0).expect("residual"); // h0 feeds two ops
    let y = g.linear("head", h, 4).expect("op");
    g.set_output(y, Loss::CrossEntropy).expect("output");
    check("residual", &g, 0);
}

#[test]
fn two_inputs_concatenated() {
    let mut g = Graph::new();
    let a = g.input("a", &[3]).expect("input");
    let b = g.input("b", &[4]).expect("input");
    let a = g.linear("fa", a, 2).expect("op");
    let b = g.linear("fb", b, 5).expect("op");
    let c = g.concat(&[a, b]).expect("concat");
    let y = g.linear("head", c, 3).expect("op");
    g.set_output(y, Loss::CrossEntropy).expect("output");
    check("concat of two inputs", &g, 0);
}

#[test]
fn a_parameter_tied_between_two_ops() {
    // The same [5, 5] weight in two Linears: its gradient is the sum of both uses.
    let mut g = Graph::new();
    let x = g.input("x", &[5]).expect("input");
    let w = g.param(
        "shared.weight",
        &[5, 5],
        wgtrain::graph::Init::Constant(0.0),
    );
    let h = g.linear_with(x, w, None).expect("op");
    let h = g.tanh(h).expect("op");
    let y = g.linear_with(h, w, None).expect("op");
    g.set_output(y, Loss::Mse).expect("output");
    check("tied weight", &g, 0);

    // nanoGPT's tying: the token embedding table is also the output projection.
    let mut g = Graph::new();
    let idx = g.input_indices("tokens", &[4]).expect("input");
    let wte = g.param("wte.weight", &[6, 3], wgtrain::graph::Init::Constant(0.0));
    let e = g.embedding_with(idx, wte).expect("op");
    let y = g.linear_with(e, wte, None).expect("op");
    g.set_output(y, Loss::CrossEntropy).expect("output");
    check("tied embedding and head", &g, 6);
}

#[test]
fn an_output_feeding_three_consumers_and_a_value_used_twice_by_one_op() {
    let mut g = Graph::new();
    let x = g.input("x", &[4]).expect("input");
    let h = g.linear("fc", x, 3).expect("op");
    let a = g.relu(h).expect("op");
    let b = g.tanh(h).expect("op");
    let c = g.mul(h, h).expect("op"); // both slots of one op
    let y = g.concat(&[a, b, c]).expect("op");
    let y = g.linear("head", y, 2).expect("op");
    g.set_output(y, Loss::Mse).expect("output");
    check("three consumers", &g, 0);
}

#[test]
fn a_fused_relu_feeding_two_linears() {
    // The fusion pass moves the ReLU into fc's epilogue and its derivative into both
    // consumers' dX products; their contributions are summed.
    let mut g = Graph::new();
    let x = g.input("x", &[4]).expect("input");
    let h = g.linear("fc", x, 5).expect("op");
    let h = g.relu(h).expect("op");
    let a = g.linear("a", h, 3).expect("op");
    let b = g.linear("b", h, 3).expect("op");
    let y = g.add(a, b).expect("op");
    g.set_output(y, Loss::Mse).expect("output");
    check("fused relu fan-out", &g, 0);
}

#[test]
fn a_residual_model_with_dropout_reruns_bit_identically() {
    let build = || {
        let mut g = Graph::new();
        let x = g.input("x", &[8]).expect("input");
        let h0 = g.linear("embed", x, 16).expect("op");
        let h = g.linear("fc", h0, 16).expect("op");
        let h = g.gelu(h).expect("op");
        let h = g.dropout(h, 0.25).expect("op");
        let h = g.add(h, h0).expect("op");
        let h = g.layer_norm("ln", h).expect("op");
        let y = g.linear("head", h, 4).expect("op");
        g.set_output(y, Loss::CrossEntropy).expect("output");
        g
    };
    let mut rng = rng("residual rerun");
    let x = rng.uniform(16 * 8, -1.0, 1.0);
    let y = rng.below(16, 4);
    let run = || {
        let graph = build();
        let weights = Weights::init(gpu(), &graph, 7).expect("weights");
        let mut trainer =
            Trainer::new(gpu(), graph, weights, TrainConfig::default()).expect("trainer");
        let losses: Vec<u32> = (0..20)
            .map(|_| trainer.train_batch(&x, &y).expect("step").to_bits())
            .collect();
        let params = trainer.weights().read_params(gpu()).expect("read");
        (
            losses,
            params
                .concat()
                .iter()
                .map(|v| v.to_bits())
                .collect::<Vec<_>>(),
        )
    };
    let first = run();
    assert_eq!(first, run(), "same seed, same adapter: same bits");
}

#[test]
fn the_model_families_match_finite_differences() {
    use wgtrain::nn::models::{GptConfig, gpt, residual_mlp};
    let g = residual_mlp(6, 5, 2, 3, 0.0).expect("residual mlp");
    check("residual_mlp", &g, 0);
    // Attention: embeddings, a broadcast position table, per-head transposes, batched
    // products both ways, a causal softmax, LayerNorms and a GELU MLP, all in one graph.
    for (tie_head, fused_attention) in [(false, false), (true, true)] {
        let config = GptConfig {
            vocab: 5,
            block: 3,
            width: 4,
            heads: 2,
            layers: 1,
            dropout: 0.0,
            tie_head,
            fused_attention,
        };
        check("gpt", &gpt(config).expect("gpt"), 5);
    }
}
