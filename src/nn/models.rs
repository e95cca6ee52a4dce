//! Ready-made graphs for the model families wgtrain trains, written with the functional API
//! so they read like the PyTorch modules they mirror (and give the same `state_dict` names).

use crate::error::{Error, Result};
use crate::graph::{Graph, Init, NodeId};
use crate::kernels::attention::MAX_HEAD_DIM;
use crate::kernels::conv::Conv2dConfig;
use crate::kernels::loss::Loss;
use crate::kernels::norm::BatchNormConfig;
#[cfg(not(target_arch = "wasm32"))]
use {
    crate::gpu::Gpu,
    crate::graph::Mode,
    crate::train::{TrainConfig, Trainer},
};

/// A pre-norm residual MLP classifier:
///
/// ```text
/// x = stem(x)                                   # Linear(inputs, width)
/// for block in blocks:                          # blocks.{i}
///     x = x + dropout(fc2(relu(fc1(ln(x)))))    # LayerNorm, Linear(width, width) × 2
/// logits = head(norm(x))                        # LayerNorm, Linear(width, classes)
/// ```
pub fn residual_mlp(
    inputs: usize,
    width: usize,
    blocks: usize,
    classes: usize,
    dropout: f32,
) -> Result<Graph> {
    let mut g = Graph::new();
    let x = g.input("x", &[inputs])?;
    let mut x = g.linear("stem", x, width)?;
    for i in 0..blocks {
        x = g.scope(format!("blocks.{i}"), |g| {
            let h = g.layer_norm("ln", x)?;
            let h = g.linear("fc1", h, width)?;
            let h = g.relu(h)?;
            let h = g.linear("fc2", h, width)?;
            let h = g.dropout(h, dropout)?;
            g.add(x, h)
        })?;
    }
    let x = g.layer_norm("norm", x)?;
    let logits = g.linear("head", x, classes)?;
    g.set_output(logits, Loss::CrossEntropy)?;
    Ok(g)
}

/// PyTorch's MNIST example network as an `nn.Sequential` over `[batch, 1, 28, 28]` images
/// (module indices are the checkpoint names: `0.weight` is `[32, 1, 3, 3]`):
///
/// ```text
/// Conv2d(1, 32, 3), ReLU, Conv2d(32, 64, 3), ReLU, MaxPool2d(2), Dropout(0.25), Flatten,
/// Linear(9216, 128), ReLU, Dropout(0.5), Linear(128, 10)
/// ```
///
/// With `batch_norm`, a `BatchNorm2d` follows each convolution (so the indices after it move
/// on by one each).
pub fn mnist_cnn(batch_norm: bool) -> Result<Graph> {
    let mut g = Graph::new();
    let x = g.input("x", &[1, 28, 28])?;
    // Module index `i` without BatchNorm2d; each norm before it shifts it by one.
    let bn = usize::from(batch_norm);
    let conv = |g: &mut Graph, at: usize, x, channels| -> Result<NodeId> {
        let h = g.conv2d(
            &at.to_string(),
            x,
            channels,
            [3, 3],
            Conv2dConfig::default(),
        )?;
        let h = if batch_norm {
            g.batch_norm(&(at + 1).to_string(), h, BatchNormConfig::default())?
        } else {
            h
        };
        g.relu(h)
    };
    let h = conv(&mut g, 0, x, 32)?;
    let h = conv(&mut g, 2 + bn, h, 64)?;
    let h = g.max_pool2d(h, [2, 2], [2, 2], [0, 0])?;
    let h = g.dropout(h, 0.25)?;
    let h = g.flatten(h)?;
    let h = g.linear(&(7 + 2 * bn).to_string(), h, 128)?;
    let h = g.relu(h)?;
    let h = g.dropout(h, 0.5)?;
    let logits = g.linear(&(10 + 2 * bn).to_string(), h, 10)?;
    g.set_output(logits, Loss::CrossEntropy)?;
    Ok(g)
}

/// Sizes and options of a [`gpt`], as nanoGPT's `GPTConfig`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GptConfig {
    /// Tokens in the vocabulary (the embedding's and the head's rows).
    pub vocab: usize,
    /// Tokens per sequence (T).
    pub block: usize,
    /// Embedding width (C), a multiple of `heads`.
    pub width: usize,
    /// Attention heads per layer.
    pub heads: usize,
    /// Transformer blocks.
    pub layers: usize,
    /// Dropout probability on embeddings, attention weights and residual paths.
    pub dropout: f32,
    /// `lm_head.weight` is `transformer.wte.weight`, as nanoGPT ties them.
    pub tie_head: bool,
    /// The fused attention kernel; `false` composes attention from the graph's ops (split,
    /// per-head transposes, batched products, causal softmax). With attention dropout, or
    /// heads wider than [`MAX_HEAD_DIM`], attention is composed either way.
    pub fused_attention: bool,
}

impl GptConfig {
    /// nanoGPT's "baby GPT" for characters: 4 layers of 4 heads, width 128, blocks of 64.
    pub fn baby(vocab: usize) -> Self {
        Self {
            vocab,
            block: 64,
            width: 128,
            heads: 4,
            layers: 4,
            dropout: 0.0,
            tie_head: true,
            fused_attention: true,
        }
    }
}

/// A GPT over u32 tokens `[batch, block]`, trained with cross-entropy on the next token at
/// every position: nanoGPT's `GPT` (with `bias=True`), with its module tree (`transformer.wte`, `transformer.wpe`,
/// `transformer.h.{i}.ln_1`, `.attn.c_attn` (`[3C, C]`, split into q, k, v), `.attn.c_proj`,
/// `.ln_2`, `.mlp.c_fc`, `.mlp.c_proj`, `transformer.ln_f`, `lm_head`) and its initialisation:
/// N(0, 0.02) weights and embeddings, zero biases, and N(0, 0.02/√(2·layers)) for the
/// projections into the residual stream.
pub fn gpt(c: GptConfig) -> Result<Graph> {
    if c.heads == 0 || !c.width.is_multiple_of(c.heads) {
        return Err(Error::InvalidArgument(format!(
            "width {} is not a multiple of {} heads",
            c.width, c.heads
        )));
    }
    let mut g = Graph::new();
    let tokens = g.input_indices("tokens", &[c.block])?;
    let normal = Init::Normal { std: 0.02 };
    let (x, wte) = g.scope("transformer", |g| {
        let wte = g.param("wte.weight", &[c.vocab, c.width], normal);
        let tok = g.embedding_with(tokens, wte)?;
        // wpe(arange(T)) is the whole table, broadcast over the batch.
        let wpe = g.param("wpe.weight", &[c.block, c.width], normal);
        let pos = g.value(wpe)?;
        let mut x = g.add(tok, pos)?;
        x = g.dropout(x, c.dropout)?;
        for i in 0..c.layers {
            x = g.scope(format!("h.{i}"), |g| block(g, x, c))?;
        }
        Ok((g.layer_norm("ln_f", x)?, wte))
    })?;
    let logits = if c.tie_head {
        g.alias(wte, "lm_head.weight")?;
        g.linear_with(x, wte, None)?
    } else {
        linear(&mut g, "lm_head", x, c.vocab, (0.02, false))?
    };
    g.set_output(logits, Loss::CrossEntropy)?;
    Ok(g)
}

/// `nn.Linear` with nanoGPT's initialisation: weight N(0, std), bias zero.
fn linear(
    g: &mut Graph,
    name: &str,
    x: NodeId,
    out: usize,
    (std, bias): (f32, bool),
) -> Result<NodeId> {
    let fan_in = *g.node(x)?.dims.last().unwrap_or(&0);
    let weight = g.param(
        format!("{name}.weight"),
        &[out, fan_in],
        Init::Normal { std },
    );
    let bias = bias.then(|| g.param(format!("{name}.bias"), &[out], Init::Constant(0.0)));
    g.linear_with(x, weight, bias)
}

/// One pre-LayerNorm transformer block: causal self-attention, then a 4× GELU MLP.
fn block(g: &mut Graph, x: NodeId, c: GptConfig) -> Result<NodeId> {
    let head_dim = c.width / c.heads;
    let residual_std = 0.02 / (2.0 * c.layers as f32).sqrt();
    let h = g.layer_norm("ln_1", x)?;
    let attn = g.scope("attn", |g| {
        // One c_attn product to q, k, v (nanoGPT's [3C, C] weight).
        let qkv = linear(g, "c_attn", h, 3 * c.width, (0.02, true))?;
        let y = if c.fused_attention && c.dropout == 0.0 && head_dim <= MAX_HEAD_DIM {
            g.causal_self_attention(qkv, c.heads)?
        } else {
            g.causal_self_attention_composed(qkv, c.heads, c.dropout)?
        };
        let y = linear(g, "c_proj", y, c.width, (residual_std, true))?;
        g.dropout(y, c.dropout)
    })?;
    let x = g.add(x, attn)?;
    let h = g.layer_norm("ln_2", x)?;
    let mlp = g.scope("mlp", |g| {
        let h = linear(g, "c_fc", h, 4 * c.width, (0.02, true))?;
        let h = g.gelu(h)?;
        let h = linear(g, "c_proj", h, c.width, (residual_std, true))?;
        g.dropout(h, c.dropout)
    })?;
    g.add(x, mlp)
}

/// One attention layer's training step alone: `[T, 3C]` packed q, k, v (made trainable, so
/// the backward runs to them) through causal self-attention, fused or composed, under a
/// mean-squared loss. What [`time_attention`] and the benchmark time.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn attention_graph((t, heads, d): (usize, usize, usize), fused: bool) -> Result<Graph> {
    let c = heads * d;
    let mut g = Graph::new();
    let x = g.input("qkv", &[t, 3 * c])?;
    let bias = g.param("bias", &[t, 3 * c], Init::Constant(0.0));
    let bias = g.value(bias)?;
    let qkv = g.add(x, bias)?;
    let y = if fused {
        g.causal_self_attention(qkv, heads)?
    } else {
        g.causal_self_attention_composed(qkv, heads, 0.0)?
    };
    g.set_output(y, Loss::Mse)?;
    Ok(g)
}

/// Median seconds of one attention layer's forward and backward at `config`'s shape and
/// `batch` sequences on `gpu`: `(fused, composed)`. Which is faster depends on the adapter
/// (on lavapipe the composed products win, their GEMM tiles being tuned for it); a model
/// can take the faster one, as `examples/gpt.rs` does.
#[cfg(not(target_arch = "wasm32"))]
pub fn time_attention(gpu: &Gpu, config: &GptConfig, batch: usize) -> Result<(f64, f64)> {
    let shape = (
        config.block,
        config.heads,
        config.width / config.heads.max(1),
    );
    let mut seconds = [0.0; 2];
    for (fused, time) in [true, false].into_iter().zip(&mut seconds) {
        let graph = attention_graph(shape, fused)?;
        let mut trainer = Trainer::for_graph(gpu, graph, TrainConfig::default())?;
        let plan = trainer.plan(batch, Mode::Train)?;
        *time = crate::gpu::time_pass(gpu, crate::gpu::Warmup::Passes(1), 5, &|pass| {
            plan.record(pass, 0)
        })?
        .0;
    }
    Ok((seconds[0], seconds[1]))
}
