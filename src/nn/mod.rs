//! Layers and models as a thin builder over the graph, with PyTorch's `nn.Sequential` indices
//! and parameter names, so a checkpoint's `0.weight` is the first Linear's `[out, in]` weight.

pub mod models;

use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::kernels::Activation;
use crate::kernels::loss::Loss;
use crate::kernels::norm::BatchNormConfig;

/// One layer of a [`Sequential`], as PyTorch's module of the same name.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Layer {
    /// `nn.Linear`; the activations between layers are their own [`Layer::Activation`].
    Linear {
        /// Output features.
        out_features: usize,
        /// Whether the layer adds a bias.
        bias: bool,
    },
    /// An elementwise nonlinearity (`nn.ReLU`, `nn.Tanh`...).
    Activation(Activation),
    /// `nn.Dropout(p)`: zeroes each value with probability `p` in training.
    Dropout(f32),
    /// `nn.BatchNorm1d` over the previous layer's features (ε 1e-5, momentum 0.1).
    BatchNorm1d,
}

/// `nn.Sequential` over `[batch, features]` inputs.
///
/// ```
/// use wgtrain::kernels::loss::Loss;
/// use wgtrain::nn::Sequential;
/// // nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 3))
/// let model = Sequential::new(4).linear(16).batch_norm().relu().dropout(0.1).linear(3);
/// let graph = model.build(Loss::CrossEntropy)?;
/// assert_eq!(graph.params()[0].name, "0.weight");
/// assert_eq!(graph.params()[0].shape, [16, 4]);
/// # Ok::<(), wgtrain::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Sequential {
    /// Features per sample of the input.
    pub in_features: usize,
    /// The modules in order; module `i`'s parameters are named `i.weight`, `i.bias`.
    pub layers: Vec<Layer>,
}

impl Sequential {
    /// An empty stack over inputs of `in_features` features.
    pub fn new(in_features: usize) -> Self {
        Self {
            in_features,
            layers: vec![],
        }
    }

    /// A multi-layer perceptron: `hidden` Linear + (BatchNorm) + activation + (Dropout)
    /// blocks, then a Linear to `outputs`. An empty `hidden` is linear/logistic regression.
    pub fn mlp(
        in_features: usize,
        hidden: &[usize],
        outputs: usize,
        activation: Activation,
        dropout: f32,
        batch_norm: bool,
    ) -> Self {
        let mut model = Self::new(in_features);
        for &width in hidden {
            model = model.linear(width);
            if batch_norm {
                model = model.batch_norm();
            }
            model = model.activation(activation);
            if dropout > 0.0 {
                model = model.dropout(dropout);
            }
        }
        model.linear(outputs)
    }

    /// Appends `nn.Linear(previous, out_features)` with a bias.
    pub fn linear(mut self, out_features: usize) -> Self {
        self.layers.push(Layer::Linear {
            out_features,
            bias: true,
        });
        self
    }

    /// Appends an activation module.
    pub fn activation(mut self, activation: Activation) -> Self {
        self.layers.push(Layer::Activation(activation));
        self
    }

    /// Appends `nn.ReLU()`.
    pub fn relu(self) -> Self {
        self.activation(Activation::Relu)
    }

    /// Appends `nn.Dropout(p)`.
    pub fn dropout(mut self, p: f32) -> Self {
        self.layers.push(Layer::Dropout(p));
        self
    }

    /// Appends `nn.BatchNorm1d(previous)`.
    pub fn batch_norm(mut self) -> Self {
        self.layers.push(Layer::BatchNorm1d);
        self
    }

    /// The graph of this model trained with `loss`, one node per layer; the planner's fusion
    /// pass folds each ReLU between two Linears into the first one's epilogue.
    pub fn build(&self, loss: Loss) -> Result<Graph> {
        let mut graph = Graph::new();
        let mut x = graph.input("x", &[self.in_features])?;
        for (index, layer) in self.layers.iter().enumerate() {
            let module = index.to_string();
            x = match *layer {
                Layer::Linear { out_features, bias } => {
                    if out_features == 0 {
                        return Err(Error::InvalidArgument(format!(
                            "layer {index}: a Linear needs at least one output"
                        )));
                    }
                    if bias {
                        graph.linear(&module, x, out_features)?
                    } else {
                        graph.linear_no_bias(&module, x, out_features)?
                    }
                }
                Layer::Activation(a) => graph.activation(x, a)?,
                Layer::Dropout(p) => graph.dropout(x, p)?,
                Layer::BatchNorm1d => graph.batch_norm(&module, x, BatchNormConfig::default())?,
            };
        }
        graph.set_output(x, loss)?;
        Ok(graph)
    }

    /// The output width.
    pub fn out_features(&self) -> usize {
        self.layers
            .iter()
            .rev()
            .find_map(|l| match l {
                Layer::Linear { out_features, .. } => Some(*out_features),
                _ => None,
            })
            .unwrap_or(self.in_features)
    }
}
