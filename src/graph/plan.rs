//! Compilation of a graph into a plan: the ordered dispatches of one step (forward, loss and,
//! in training, backward) for a fixed batch size, with every pipeline and bind group created
//! here, once. Running a step only records these dispatches.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, Tensor};
use crate::graph::liveness;
use crate::graph::ops::{self, Ctx, Uses, Value};
use crate::graph::{Graph, NodeId, Op, Weights};

/// Training (batch statistics, dropout, gradients) or evaluation (running statistics,
/// no dropout, no backward).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    Train,
    Eval,
}

/// What a plan costs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlanStats {
    pub dispatches: usize,
    /// Bytes the values would take with one buffer each.
    pub value_bytes: u64,
    /// Bytes actually allocated after liveness sharing.
    pub allocated_bytes: u64,
}

/// One step of a graph at one batch size, ready to record.
pub struct Plan {
    pub batch: usize,
    pub mode: Mode,
    dispatches: Vec<Dispatch>,
    input: Tensor,
    target: Tensor,
    output: Tensor,
    loss: Tensor,
    stats: PlanStats,
}

impl Plan {
    pub fn compile(
        gpu: &Gpu,
        graph: &Graph,
        weights: &Weights,
        step_ring: &wgpu::Buffer,
        batch: usize,
        mode: Mode,
    ) -> Result<Plan> {
        let (output, loss) = graph.output.ok_or_else(|| {
            Error::InvalidArgument("the graph has no output: call set_output".into())
        })?;
        let input = graph
            .nodes
            .iter()
            .position(|n| n.op == Op::Input)
            .map(NodeId)
            .ok_or_else(|| Error::InvalidArgument("the graph has no input".into()))?;
        if batch == 0 {
            return Err(Error::InvalidArgument(
                "batch size must be at least 1".into(),
            ));
        }
        check_differentiable(graph, output)?;
        let training = mode == Mode::Train;
        if training
            && batch == 1
            && graph
                .nodes
                .iter()
                .any(|n| matches!(n.op, Op::BatchNorm { .. }))
        {
            return Err(Error::InvalidArgument(
                "BatchNorm1d needs more than one sample per batch in training (as in PyTorch)"
                    .into(),
            ));
        }

        // The schedule: forward in graph order, the loss, then backward in reverse.
        let order: Vec<NodeId> = (0..graph.nodes.len()).map(NodeId).collect();
        enum Task {
            Forward(NodeId),
            Loss,
            Backward(NodeId),
        }
        let mut tasks: Vec<(Task, Uses)> = order
            .iter()
            .map(|&n| (Task::Forward(n), ops::forward_uses(graph, n, training)))
            .collect();
        tasks.push((Task::Loss, ops::loss_uses(output)));
        if training {
            for &n in order.iter().rev() {
                tasks.push((Task::Backward(n), ops::backward_uses(graph, n)));
            }
        }

        let features = |n: NodeId| graph.nodes[n.0].features;
        let output_features = features(output);
        let len = |v: Value| match v {
            Value::Out(n) | Value::Grad(n) => batch * features(n),
            Value::Saved(n) => 2 * features(n),
            Value::Target => loss.target_shape(batch, output_features).iter().product(),
            Value::RowLoss => batch,
            Value::MeanLoss => 1,
        };
        let shape = |v: Value| match v {
            Value::Out(n) | Value::Grad(n) => vec![batch, features(n)],
            Value::Saved(n) => vec![2, features(n)],
            Value::Target => loss.target_shape(batch, output_features),
            Value::RowLoss => vec![batch],
            Value::MeanLoss => vec![1],
        };
        let pinned = [
            Value::Out(input),
            Value::Target,
            Value::Out(output),
            Value::MeanLoss,
        ];
        let uses: Vec<Uses> = tasks.iter().map(|(_, u)| u.clone()).collect();
        let assignment = liveness::assign(&uses, len, &pinned);
        let slots: Vec<Tensor> = assignment
            .slot_len
            .iter()
            .map(|&n| gpu.uninit(&[n]))
            .collect::<Result<_>>()?;
        let values: HashMap<Value, Tensor> = assignment
            .slot_of
            .iter()
            .map(|(&v, &slot)| Ok((v, slots[slot].reshape(&shape(v))?)))
            .collect::<Result<_>>()?;
        let value_bytes: u64 = assignment.slot_of.keys().map(|&v| 4 * len(v) as u64).sum();
        let allocated_bytes: u64 = slots.iter().map(Tensor::byte_len).sum();

        let ctx = Ctx {
            gpu,
            graph,
            values: &values,
            params: &weights.param_views,
            grads: &weights.grad_views,
            buffers: &weights.buffers,
            step_ring,
        };
        let mut dispatches = vec![];
        for (task, _) in &tasks {
            dispatches.extend(match *task {
                Task::Forward(n) => ops::forward(&ctx, n, training)?,
                Task::Loss => ops::loss(&ctx, output, loss)?,
                Task::Backward(n) => ops::backward(&ctx, n)?,
            });
        }
        let value = |v: Value| {
            values
                .get(&v)
                .cloned()
                .ok_or_else(|| Error::Gpu(format!("plan bug: pinned {v:?} has no buffer")))
        };
        Ok(Plan {
            batch,
            mode,
            stats: PlanStats {
                dispatches: dispatches.len(),
                value_bytes,
                allocated_bytes,
            },
            dispatches,
            input: value(Value::Out(input))?,
            target: value(Value::Target)?,
            output: value(Value::Out(output))?,
            loss: value(Value::MeanLoss)?,
        })
    }

    /// Records the step into `pass`, with `slot` selecting its step-uniform slot.
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>, slot: u32) {
        for dispatch in &self.dispatches {
            dispatch.record(pass, slot);
        }
    }

    /// `[batch, input features]`: written by the host or a gather before the step.
    pub fn input(&self) -> &Tensor {
        &self.input
    }

    /// Class indices `[batch]` (cross-entropy) or `[batch, outputs]`.
    pub fn target(&self) -> &Tensor {
        &self.target
    }

    /// The model's output `[batch, outputs]` (logits for classifiers).
    pub fn output(&self) -> &Tensor {
        &self.output
    }

    /// The mean loss of the step, `[1]`.
    pub fn loss(&self) -> &Tensor {
        &self.loss
    }

    pub fn stats(&self) -> PlanStats {
        self.stats
    }

    pub fn labels(&self) -> Vec<&'static str> {
        self.dispatches.iter().map(Dispatch::label).collect()
    }

    /// The step's dispatches in order, for per-kernel profiling.
    pub fn dispatches(&self) -> &[Dispatch] {
        &self.dispatches
    }
}

/// The rules assume each value has one consumer (no gradient accumulation yet) and that a
/// Linear's fused activation mask is applied by a Linear consumer.
fn check_differentiable(graph: &Graph, output: NodeId) -> Result<()> {
    let mut consumers = vec![0usize; graph.nodes.len()];
    for (i, node) in graph.nodes.iter().enumerate() {
        if let Some(x) = node.input {
            consumers[x.0] += 1;
            if ops::pending_mask(graph, x).is_some() && !matches!(node.op, Op::Linear { .. }) {
                return Err(Error::InvalidArgument(format!(
                    "node {i} consumes a Linear with a fused activation; only a Linear may (keep the activation as its own node)"
                )));
            }
        }
    }
    if let Some(i) = consumers.iter().position(|&c| c > 1) {
        return Err(Error::InvalidArgument(format!(
            "node {i} feeds {} ops; fan-out is not supported",
            consumers[i]
        )));
    }
    if ops::pending_mask(graph, output).is_some() {
        return Err(Error::InvalidArgument(
            "the output node must not fuse an activation".into(),
        ));
    }
    Ok(())
}
