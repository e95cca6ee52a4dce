//! The functional model API: one method per op, layers that create their own parameters under
//! the current [`Graph::scope`] with PyTorch's names, initialisations and layouts.
//!
//! ```
//! # use wgtrain::graph::Graph;
//! # use wgtrain::kernels::loss::Loss;
//! # fn main() -> wgtrain::Result<()> {
//! let mut g = Graph::new();
//! let x = g.input("x", &[16])?;
//! let h = g.linear("fc1", x, 16)?;
//! let h = g.relu(h)?;
//! let y = g.add(h, x)?; // a residual connection: x feeds two ops
//! let logits = g.linear("head", y, 4)?;
//! g.set_output(logits, Loss::CrossEntropy)?;
//! assert_eq!(g.params()[0].name, "fc1.weight");
//! # Ok(()) }
//! ```

use crate::error::Result;
use crate::graph::{BufferSpec, CustomOp, DType, Graph, Init, NodeId, Op, ParamId};
use crate::kernels::Activation;
use crate::kernels::conv::Conv2dConfig;
use crate::kernels::norm::BatchNormConfig;
use crate::kernels::pool::{Pool2d, PoolKind};

impl Graph {
    /// Runs a layer builder; if it fails, the parameters and buffers it created are removed,
    /// so a refused layer leaves the graph as it was.
    fn layer(&mut self, build: impl FnOnce(&mut Self) -> Result<NodeId>) -> Result<NodeId> {
        let (params, buffers) = (self.params.len(), self.buffers.len());
        let node = build(self);
        if node.is_err() {
            self.params.truncate(params);
            self.buffers.truncate(buffers);
        }
        node
    }

    /// A batched f32 input `[batch, dims...]`.
    pub fn input(&mut self, name: &str, dims: &[usize]) -> Result<NodeId> {
        self.push(
            Op::Input {
                name: name.to_string(),
                dims: dims.to_vec(),
                dtype: DType::F32,
            },
            &[],
        )
    }

    /// A batched u32 input (token ids for an Embedding).
    pub fn input_indices(&mut self, name: &str, dims: &[usize]) -> Result<NodeId> {
        self.push(
            Op::Input {
                name: name.to_string(),
                dims: dims.to_vec(),
                dtype: DType::U32,
            },
            &[],
        )
    }

    /// Parameter `param` as an unbatched value (a learned bias, position embeddings).
    pub fn value(&mut self, param: ParamId) -> Result<NodeId> {
        self.push(Op::Param { param }, &[])
    }

    /// `nn.Linear(in, out)` named `<name>`: `y = x · Wᵀ + b` over the last axis of any rank.
    pub fn linear(&mut self, name: &str, x: NodeId, out_features: usize) -> Result<NodeId> {
        self.layer(|g| g.linear_layer(name, x, out_features, true))
    }

    /// `nn.Linear(in, out, bias=False)`.
    pub fn linear_no_bias(&mut self, name: &str, x: NodeId, out_features: usize) -> Result<NodeId> {
        self.layer(|g| g.linear_layer(name, x, out_features, false))
    }

    fn linear_layer(
        &mut self,
        name: &str,
        x: NodeId,
        out_features: usize,
        bias: bool,
    ) -> Result<NodeId> {
        let in_features = *self.node(x)?.dims.last().unwrap_or(&0);
        if out_features == 0 || in_features == 0 {
            return Err(crate::Error::InvalidArgument(format!(
                "linear {name}: needs at least one input and one output feature"
            )));
        }
        // PyTorch: kaiming_uniform_(a=√5) for the weight, U(±1/√fan_in) for the bias; both
        // come to the bound 1/√in_features.
        let bound = 1.0 / (in_features as f32).sqrt();
        let init = Init::Uniform { bound };
        let weight = self.param(format!("{name}.weight"), &[out_features, in_features], init);
        let bias = bias.then(|| self.param(format!("{name}.bias"), &[out_features], init));
        self.linear_with(x, weight, bias)
    }

    /// `x · Wᵀ + b` with given parameters (`W` is `[out, in]`), e.g. a weight tied to another op.
    pub fn linear_with(
        &mut self,
        x: NodeId,
        weight: ParamId,
        bias: Option<ParamId>,
    ) -> Result<NodeId> {
        self.push(
            Op::Linear {
                weight,
                bias,
                activation: Activation::Identity,
            },
            &[x],
        )
    }

    /// `activation(x)` elementwise.
    pub fn activation(&mut self, x: NodeId, activation: Activation) -> Result<NodeId> {
        self.push(Op::Activation { activation }, &[x])
    }

    /// `max(x, 0)`.
    pub fn relu(&mut self, x: NodeId) -> Result<NodeId> {
        self.activation(x, Activation::Relu)
    }

    /// `tanh(x)`.
    pub fn tanh(&mut self, x: NodeId) -> Result<NodeId> {
        self.activation(x, Activation::Tanh)
    }

    /// `1 / (1 + e^−x)`.
    pub fn sigmoid(&mut self, x: NodeId) -> Result<NodeId> {
        self.activation(x, Activation::Sigmoid)
    }

    /// GELU, tanh form (`nn.GELU(approximate='tanh')`).
    pub fn gelu(&mut self, x: NodeId) -> Result<NodeId> {
        self.activation(x, Activation::Gelu)
    }

    /// `nn.Dropout(p)`; with p = 0 it is the identity and adds no op (no dispatches).
    pub fn dropout(&mut self, x: NodeId, p: f32) -> Result<NodeId> {
        if p == 0.0 {
            self.node(x)?;
            return Ok(x);
        }
        self.push(Op::Dropout { p }, &[x])
    }

    /// `nn.BatchNorm1d(C)` over `[batch, C]` or `[batch, C, L]`, or `nn.BatchNorm2d(C)` over
    /// `[batch, C, H, W]`, named `<name>`: statistics per channel (axis 1).
    pub fn batch_norm(&mut self, name: &str, x: NodeId, config: BatchNormConfig) -> Result<NodeId> {
        self.layer(|g| {
            let features = *g.node(x)?.dims.first().unwrap_or(&0);
            let gamma = g.param(format!("{name}.weight"), &[features], Init::Constant(1.0));
            let beta = g.param(format!("{name}.bias"), &[features], Init::Constant(0.0));
            g.buffers.push(BufferSpec {
                module: g.scoped_name(name),
                features,
            });
            let buffer = g.buffers.len() - 1;
            g.push(
                Op::BatchNorm {
                    gamma,
                    beta,
                    buffer,
                    config,
                },
                &[x],
            )
        })
    }

    /// `nn.LayerNorm(C)` named `<name>` over the last axis (eps 1e-5, γ = 1, β = 0).
    pub fn layer_norm(&mut self, name: &str, x: NodeId) -> Result<NodeId> {
        self.layer(|g| {
            let c = *g.node(x)?.dims.last().unwrap_or(&0);
            let gamma = g.param(format!("{name}.weight"), &[c], Init::Constant(1.0));
            let beta = g.param(format!("{name}.bias"), &[c], Init::Constant(0.0));
            g.push(
                Op::LayerNorm {
                    gamma,
                    beta,
                    eps: 1e-5,
                },
                &[x],
            )
        })
    }

    /// `nn.Embedding(vocab, dim)` named `<name>` (weight N(0, 1)) over u32 `indices`.
    pub fn embedding(
        &mut self,
        name: &str,
        indices: NodeId,
        vocab: usize,
        dim: usize,
    ) -> Result<NodeId> {
        self.layer(|g| {
            let weight = g.param(
                format!("{name}.weight"),
                &[vocab, dim],
                Init::Normal { std: 1.0 },
            );
            g.embedding_with(indices, weight)
        })
    }

    /// Rows of a given `[vocab, dim]` table (e.g. tied to an output projection).
    pub fn embedding_with(&mut self, indices: NodeId, weight: ParamId) -> Result<NodeId> {
        self.push(Op::Embedding { weight }, &[indices])
    }

    /// `a + b`, with `b` the same shape or an unbatched suffix of `a`'s (broadcast).
    pub fn add(&mut self, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.push(Op::Add, &[a, b])
    }

    /// `a − b`, broadcasting `b` as [`Graph::add`] does.
    pub fn sub(&mut self, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.push(Op::Sub, &[a, b])
    }

    /// `a ⊙ b` elementwise, broadcasting `b` as [`Graph::add`] does.
    pub fn mul(&mut self, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.push(Op::Mul, &[a, b])
    }

    /// `alpha · x`.
    pub fn scale(&mut self, x: NodeId, alpha: f32) -> Result<NodeId> {
        self.push(Op::Scale { alpha }, &[x])
    }

    /// `torch.cat(xs, dim=-1)`
    pub fn concat(&mut self, xs: &[NodeId]) -> Result<NodeId> {
        self.push(Op::Concat, xs)
    }

    /// `x[..., start:start + len]` along the last axis.
    pub fn slice(&mut self, x: NodeId, start: usize, len: usize) -> Result<NodeId> {
        self.push(Op::Slice { start, len }, &[x])
    }

    /// `x.split(size, dim=-1)` for equal `size`s: the last axis cut into consecutive pieces.
    pub fn split(&mut self, x: NodeId, size: usize) -> Result<Vec<NodeId>> {
        let width = *self.node(x)?.dims.last().unwrap_or(&0);
        if size == 0 || !width.is_multiple_of(size) {
            return Err(crate::Error::InvalidArgument(format!(
                "split of a last axis of {width} into pieces of {size}"
            )));
        }
        (0..width / size)
            .map(|i| self.slice(x, i * size, size))
            .collect()
    }

    /// The same elements as feature dims `dims` (the batch stays): a free view.
    pub fn reshape(&mut self, x: NodeId, dims: &[usize]) -> Result<NodeId> {
        self.push(
            Op::Reshape {
                dims: dims.to_vec(),
            },
            &[x],
        )
    }

    /// `[batch, d1, ..., dk] → [batch, d1·…·dk]` (`nn.Flatten`).
    pub fn flatten(&mut self, x: NodeId) -> Result<NodeId> {
        let n = self.node(x)?.dims.iter().product::<usize>();
        self.reshape(x, &[n])
    }

    /// Swaps axes `a` and `b` of the full shape (`x.transpose(a, b)`; axis 0 is the batch).
    pub fn transpose(&mut self, x: NodeId, a: usize, b: usize) -> Result<NodeId> {
        self.push(Op::Transpose { axes: [a, b] }, &[x])
    }

    /// `op(a) @ op(b)` over the last two axes, batched over the others.
    pub fn matmul(&mut self, a: NodeId, b: NodeId, trans_a: bool, trans_b: bool) -> Result<NodeId> {
        self.push(Op::MatMul { trans_a, trans_b }, &[a, b])
    }

    /// Softmax over the last axis.
    pub fn softmax(&mut self, x: NodeId) -> Result<NodeId> {
        self.push(Op::Softmax { causal: false }, &[x])
    }

    /// Causal self-attention of `heads` heads over packed `[.., T, 3C]` queries, keys and
    /// values (a `c_attn` Linear's output), fused: the same function as splitting, per-head
    /// transposes, `q·kᵀ/√D`, a causal softmax and `·v`, without the scores in memory.
    /// Heads of up to [`MAX_HEAD_DIM`](crate::kernels::attention::MAX_HEAD_DIM) dimensions.
    pub fn causal_self_attention(&mut self, qkv: NodeId, heads: usize) -> Result<NodeId> {
        self.push(Op::CausalSelfAttention { heads }, &[qkv])
    }

    /// [`Graph::causal_self_attention`] built from the graph's ops: `qkv` split along its
    /// last axis, each part `[T, C] → [H, T, D]`, `softmax(mask(q·kᵀ/√D))`, dropout with
    /// probability `dropout` on the attention weights, `·v`, and the heads back side by side.
    /// Any head size; the `T × T` scores are values of the graph.
    pub fn causal_self_attention_composed(
        &mut self,
        qkv: NodeId,
        heads: usize,
        dropout: f32,
    ) -> Result<NodeId> {
        let dims = self.node(qkv)?.dims.clone();
        let (t, packed) = match dims[..] {
            [t, packed] if heads > 0 && packed % (3 * heads) == 0 && packed > 0 => (t, packed),
            _ => {
                return Err(crate::Error::ShapeMismatch {
                    op: format!(
                        "composed causal self-attention of {heads} heads (expects [T, 3·heads·D])"
                    ),
                    left: dims,
                    right: vec![],
                });
            }
        };
        let (c, d) = (packed / 3, packed / 3 / heads);
        let mut parts = vec![];
        for part in self.split(qkv, c)? {
            let part = self.reshape(part, &[t, heads, d])?;
            parts.push(self.transpose(part, 1, 2)?);
        }
        let scores = self.matmul(parts[0], parts[1], false, true)?;
        let scores = self.scale(scores, 1.0 / (d as f32).sqrt())?;
        let att = self.causal_softmax(scores)?;
        let att = self.dropout(att, dropout)?;
        let y = self.matmul(att, parts[2], false, false)?;
        let y = self.transpose(y, 1, 2)?;
        self.reshape(y, &[t, c])
    }

    /// Softmax over the last axis of `[.., T, T]` scores with keys after the query masked.
    pub fn causal_softmax(&mut self, x: NodeId) -> Result<NodeId> {
        self.push(Op::Softmax { causal: true }, &[x])
    }

    /// A user-defined op over `inputs` (see [`CustomOp`] for the WGSL it provides); its WGSL
    /// is validated now.
    pub fn custom(&mut self, op: CustomOp, inputs: &[NodeId]) -> Result<NodeId> {
        self.push(Op::Custom(op), inputs)
    }

    /// `x.sum(axis)` over a feature axis of the full shape.
    pub fn sum(&mut self, x: NodeId, axis: usize) -> Result<NodeId> {
        self.push(Op::Reduce { axis, mean: false }, &[x])
    }

    /// `x.mean(axis)` over a feature axis of the full shape.
    pub fn mean(&mut self, x: NodeId, axis: usize) -> Result<NodeId> {
        self.push(Op::Reduce { axis, mean: true }, &[x])
    }

    /// `nn.Conv2d(C, out_channels, kernel, stride, padding, dilation)` named `<name>` over
    /// `[batch, C, H, W]`, with PyTorch's initialisation.
    pub fn conv2d(
        &mut self,
        name: &str,
        x: NodeId,
        out_channels: usize,
        kernel: [usize; 2],
        config: Conv2dConfig,
    ) -> Result<NodeId> {
        self.layer(|g| {
            let channels = *g.node(x)?.dims.first().unwrap_or(&0);
            let fan_in = channels * kernel[0] * kernel[1];
            if out_channels == 0 || fan_in == 0 {
                return Err(crate::Error::InvalidArgument(format!(
                    "conv2d {name}: needs input channels, output channels and a kernel of at least 1×1"
                )));
            }
            // As Linear: kaiming_uniform_(a=√5) and the bias's U(±1/√fan_in) share one bound.
            let init = Init::Uniform {
                bound: 1.0 / (fan_in as f32).sqrt(),
            };
            let shape = [out_channels, channels, kernel[0], kernel[1]];
            let weight = g.param(format!("{name}.weight"), &shape, init);
            let bias = g.param(format!("{name}.bias"), &[out_channels], init);
            g.push(
                Op::Conv2d {
                    weight,
                    bias: Some(bias),
                    config,
                    activation: Activation::Identity,
                },
                &[x],
            )
        })
    }

    /// `nn.MaxPool2d` or `nn.AvgPool2d` (padding counted in the mean, PyTorch's default) over
    /// `[batch, C, H, W]`.
    pub fn pool2d(&mut self, x: NodeId, pool: Pool2d) -> Result<NodeId> {
        self.push(Op::Pool2d(pool), &[x])
    }

    /// `nn.MaxPool2d(kernel, stride, padding)`.
    pub fn max_pool2d(
        &mut self,
        x: NodeId,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> Result<NodeId> {
        let kind = PoolKind::Max;
        self.pool2d(
            x,
            Pool2d {
                kind,
                kernel,
                stride,
                padding,
            },
        )
    }

    /// `nn.AvgPool2d(kernel, stride, padding)`.
    pub fn avg_pool2d(
        &mut self,
        x: NodeId,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> Result<NodeId> {
        let kind = PoolKind::Avg;
        self.pool2d(
            x,
            Pool2d {
                kind,
                kernel,
                stride,
                padding,
            },
        )
    }

    /// Global average pooling, `[batch, C, H, W] → [batch, C]`: `nn.AdaptiveAvgPool2d(1)`
    /// followed by `nn.Flatten()`, as the mean of a free `[C, H·W]` view.
    pub fn global_avg_pool(&mut self, x: NodeId) -> Result<NodeId> {
        let &[c, h, w] = &self.node(x)?.dims[..] else {
            return Err(crate::graph::shape_error(
                "global_avg_pool (expects [B, C, H, W])",
                &self.node(x)?.dims,
                &[],
            ));
        };
        let planes = self.reshape(x, &[c, h * w])?;
        self.mean(planes, 2)
    }
}
