//! Layers and models as a thin builder over the graph, with PyTorch's `nn.Sequential` indices
//! and parameter names, so a checkpoint's `0.weight` is the first Linear's `[out, in]` weight.

use crate::error::{Error, Result};
use crate::graph::{Graph, Init};
use crate::kernels::Activation;
use crate::kernels::loss::Loss;
use crate::kernels::norm::BatchNormConfig;

/// One layer of a [`Sequential`], as PyTorch's module of the same name.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Layer {
    Linear { out_features: usize, bias: bool },
    Activation(Activation),
    Dropout(f32),
    BatchNorm1d,
}

/// `nn.Sequential` over `[batch, features]` inputs.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Sequential {
    pub in_features: usize,
    pub layers: Vec<Layer>,
}

impl Sequential {
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

    pub fn linear(mut self, out_features: usize) -> Self {
        self.layers.push(Layer::Linear {
            out_features,
            bias: true,
        });
        self
    }

    pub fn activation(mut self, activation: Activation) -> Self {
        self.layers.push(Layer::Activation(activation));
        self
    }

    pub fn relu(self) -> Self {
        self.activation(Activation::Relu)
    }

    pub fn dropout(mut self, p: f32) -> Self {
        self.layers.push(Layer::Dropout(p));
        self
    }

    pub fn batch_norm(mut self) -> Self {
        self.layers.push(Layer::BatchNorm1d);
        self
    }

    /// The graph of this model trained with `loss`. A ReLU (or identity, or leaky ReLU)
    /// between two Linears is fused into the first one's epilogue, and its derivative into the
    /// second one's dX product; other activations stay nodes of their own.
    pub fn build(&self, loss: Loss) -> Result<Graph> {
        let mut graph = Graph::new();
        let mut x = graph.input(self.in_features)?;
        let mut features = self.in_features;
        let mut index = 0;
        while index < self.layers.len() {
            let module = index.to_string();
            match self.layers[index] {
                Layer::Linear { out_features, bias } => {
                    if out_features == 0 {
                        return Err(Error::InvalidArgument(format!(
                            "layer {index}: a Linear needs at least one output"
                        )));
                    }
                    // PyTorch: kaiming_uniform_(a=√5) for the weight, U(±1/√fan_in) for the bias;
                    // both come to the bound 1/√in_features.
                    let bound = 1.0 / (features as f32).sqrt();
                    let weight = graph.param(
                        format!("{module}.weight"),
                        &[out_features, features],
                        Init::Uniform { bound },
                    );
                    let bias = bias.then(|| {
                        graph.param(
                            format!("{module}.bias"),
                            &[out_features],
                            Init::Uniform { bound },
                        )
                    });
                    let fused = match (self.layers.get(index + 1), self.layers.get(index + 2)) {
                        (Some(Layer::Activation(a)), Some(Layer::Linear { .. }))
                            if crate::graph::fusable(*a) =>
                        {
                            Some(*a)
                        }
                        _ => None,
                    };
                    x = graph.linear(x, weight, bias, fused.unwrap_or(Activation::Identity))?;
                    features = out_features;
                    if fused.is_some() {
                        index += 1; // the activation keeps its PyTorch index but has no node
                    }
                }
                Layer::Activation(a) => x = graph.activation(x, a)?,
                Layer::Dropout(p) => x = graph.dropout(x, p)?,
                Layer::BatchNorm1d => {
                    x = graph.batch_norm(x, &module, BatchNormConfig::default())?
                }
            }
            index += 1;
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
