//! Compilation of a graph into a plan: the ordered dispatches of one step (forward, loss and,
//! in training, backward) for a fixed batch size, with every pipeline and bind group created
//! here, once. Running a step only records these dispatches.
//!
//! The schedule: the fusion pass, then forward in node order over the nodes the output
//! depends on, the loss, and backward in reverse node order over the nodes that both lead to
//! the output and depend on a parameter. Each gradient slot gets a sink (see `ops`): the first
//! contribution to a gradient writes it, later ones go to a partial added in right after.

use std::collections::{HashMap, HashSet};

use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, Tensor};
use crate::graph::ops::{self, Ctx, GradTarget, Uses, Value};
use crate::graph::{DType, Graph, NodeId, Op, Weights, fuse, liveness};
use crate::kernels::elementwise;

/// Training (batch statistics, dropout, gradients) or evaluation (running statistics,
/// no dropout, no backward).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Batch statistics, dropout on, gradients and the optimizer step recorded.
    Train,
    /// Running statistics, dropout off, forward and loss only.
    Eval,
}

/// What a plan costs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlanStats {
    /// Compute dispatches per step (forward, backward and update).
    pub dispatches: usize,
    /// Bytes the values would take with one buffer each.
    pub value_bytes: u64,
    /// Bytes actually allocated after liveness sharing.
    pub allocated_bytes: u64,
}

/// Host data for one input of a plan.
#[derive(Clone, Copy, Debug)]
pub enum Feed<'a> {
    /// Features or regression targets.
    F32(&'a [f32]),
    /// Token ids or class indices.
    U32(&'a [u32]),
}

/// One plan input: its name, dtype and buffer.
#[derive(Clone, Debug)]
pub struct PlanInput {
    /// The input's name in the graph.
    pub name: String,
    /// Its element type.
    pub dtype: DType,
    /// The GPU buffer a step reads it from, `[batch, dims...]`.
    pub tensor: Tensor,
}

/// One step of a graph at one batch size, ready to record.
#[derive(Debug)]
pub struct Plan {
    /// Rows per step.
    pub batch: usize,
    /// Whether the plan trains or evaluates.
    pub mode: Mode,
    dispatches: Vec<Dispatch>,
    inputs: Vec<PlanInput>,
    target: Tensor,
    output: Tensor,
    loss: Tensor,
    stats: PlanStats,
}

enum Task {
    Forward(NodeId),
    Loss,
    Backward(NodeId, Vec<Option<Value>>, Vec<Option<GradTarget>>),
    /// Adds a partial into its gradient.
    Accumulate(Value, GradTarget),
}

impl Plan {
    pub(crate) fn compile(
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
        if graph.inputs().is_empty() {
            return Err(Error::InvalidArgument("the graph has no input".into()));
        }
        if batch == 0 {
            return Err(Error::InvalidArgument(
                "batch size must be at least 1".into(),
            ));
        }
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
        let graph = &fuse::fuse(graph);
        let tasks = schedule(gpu, graph, (output, batch), training);

        let node = |n: NodeId| &graph.nodes[n.0];
        let (rows, cols) = ops::loss_rows(graph, output, batch);
        let target_shape = |p: GradTarget| match p {
            GradTarget::Node(n) => node(n).shape(batch),
            GradTarget::Param(p) => graph.params[p.0].shape.clone(),
        };
        let partial_targets: HashMap<Value, GradTarget> = tasks
            .iter()
            .filter_map(|(t, _)| match t {
                Task::Accumulate(v, target) => Some((*v, *target)),
                _ => None,
            })
            .collect();
        let shape = |v: Value| match v {
            Value::Out(n) | Value::Grad(n) => node(n).shape(batch),
            Value::Saved(n) => ops::saved_shape(gpu, graph, n, batch, training)
                .expect("only nodes that save something read Saved"),
            Value::Partial(..) => target_shape(partial_targets[&v]),
            Value::Target => loss.target_shape(rows, cols),
            Value::RowLoss => vec![rows],
            Value::MeanLoss => vec![1],
        };
        let len = |v: Value| shape(v).iter().product::<usize>();
        let input_nodes: Vec<NodeId> = (0..graph.nodes.len())
            .map(NodeId)
            .filter(|&n| matches!(node(n).op, Op::Input { .. }))
            .collect();
        let mut pinned: Vec<Value> = input_nodes.iter().map(|&n| Value::Out(n)).collect();
        pinned.extend(ops::out_value(graph, output));
        pinned.extend([Value::Target, Value::MeanLoss]);
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
            batch,
            values: &values,
            params: &weights.param_views,
            buffers: &weights.buffers,
            step_ring,
        };
        let sink = |v: Option<Value>, target: Option<GradTarget>| -> Result<Option<Tensor>> {
            Ok(match (v, target) {
                (Some(v), _) => Some(ctx.values[&v].clone()),
                (None, Some(GradTarget::Param(p))) => Some(weights.grad_views[p.0].clone()),
                (None, _) => None,
            })
        };
        let grad_of = |target: GradTarget| match target {
            GradTarget::Node(n) => ctx.values[&Value::Grad(n)].clone(),
            GradTarget::Param(p) => weights.grad_views[p.0].clone(),
        };
        let mut dispatches = vec![];
        for (task, _) in &tasks {
            match task {
                Task::Forward(n) => dispatches.extend(ops::forward(&ctx, *n, training)?),
                Task::Loss => dispatches.extend(ops::loss(&ctx, output, loss)?),
                Task::Backward(n, sink_values, targets) => {
                    let sinks = sink_values
                        .iter()
                        .zip(targets)
                        .map(|(&v, &t)| sink(v, t))
                        .collect::<Result<Vec<_>>>()?;
                    dispatches.extend(ops::backward(&ctx, *n, &sinks)?);
                }
                // grad += partial
                Task::Accumulate(partial, target) => dispatches.push(elementwise::axpy(
                    gpu,
                    1.0,
                    &values[partial],
                    &grad_of(*target),
                )?),
            }
        }
        let value = |v: Value| {
            values
                .get(&v)
                .cloned()
                .ok_or_else(|| Error::Gpu(format!("plan bug: pinned {v:?} has no buffer")))
        };
        let inputs = input_nodes
            .iter()
            .map(|&n| match &node(n).op {
                Op::Input { name, dtype, .. } => Ok(PlanInput {
                    name: name.clone(),
                    dtype: *dtype,
                    tensor: value(Value::Out(n))?,
                }),
                _ => unreachable!("filtered to inputs above"),
            })
            .collect::<Result<_>>()?;
        Ok(Plan {
            batch,
            mode,
            stats: PlanStats {
                dispatches: dispatches.len(),
                value_bytes,
                allocated_bytes,
            },
            dispatches,
            inputs,
            target: value(Value::Target)?,
            output: ctx.out(output)?,
            loss: value(Value::MeanLoss)?,
        })
    }

    /// Records the step into `pass`, with `slot` selecting its step-uniform slot.
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>, slot: u32) {
        for dispatch in &self.dispatches {
            dispatch.record(pass, slot);
        }
    }

    /// The first input, `[batch, dims...]`: written by the host or a gather before the step.
    pub fn input(&self) -> &Tensor {
        &self.inputs[0].tensor
    }

    /// Every input in graph order.
    pub fn inputs(&self) -> &[PlanInput] {
        &self.inputs
    }

    /// Uploads one batch into every input, in graph order, checking each one's dtype and size.
    pub fn write_inputs(&self, gpu: &Gpu, feeds: &[Feed<'_>]) -> Result<()> {
        if feeds.len() != self.inputs.len() {
            return Err(Error::InvalidArgument(format!(
                "{} input batches given for a graph with {} inputs",
                feeds.len(),
                self.inputs.len()
            )));
        }
        for (input, feed) in self.inputs.iter().zip(feeds) {
            match (input.dtype, feed) {
                (DType::F32, Feed::F32(data)) => gpu.write(&input.tensor, data)?,
                (DType::U32, Feed::U32(data)) => gpu.write_u32(&input.tensor, data)?,
                (dtype, _) => {
                    return Err(Error::InvalidArgument(format!(
                        "input {} takes {dtype:?} values",
                        input.name
                    )));
                }
            }
        }
        Ok(())
    }

    /// Class indices `[rows]` (cross-entropy) or the output's shape.
    pub fn target(&self) -> &Tensor {
        &self.target
    }

    /// The model's output (logits for classifiers).
    pub fn output(&self) -> &Tensor {
        &self.output
    }

    /// The mean loss of the step, `[1]`.
    pub fn loss(&self) -> &Tensor {
        &self.loss
    }

    /// What the plan costs: dispatches and bytes.
    pub fn stats(&self) -> PlanStats {
        self.stats
    }

    /// The kernel of each dispatch in recording order: what a profile or a test reads.
    pub fn labels(&self) -> Vec<&str> {
        self.dispatches.iter().map(Dispatch::label).collect()
    }

    /// The step's dispatches in order, for per-kernel profiling.
    pub fn dispatches(&self) -> &[Dispatch] {
        &self.dispatches
    }
}

/// The tasks of one step with what each reads and writes.
fn schedule(
    gpu: &Gpu,
    graph: &Graph,
    (output, batch): (NodeId, usize),
    training: bool,
) -> Vec<(Task, Uses)> {
    let count = graph.nodes.len();
    // Nodes the output depends on.
    let mut live = vec![false; count];
    live[output.0] = true;
    for n in (0..count).rev() {
        if live[n] {
            for x in &graph.nodes[n].inputs {
                live[x.0] = true;
            }
        }
    }
    // Nodes that depend on a parameter (and so carry a gradient).
    let mut needs_grad = vec![false; count];
    for n in 0..count {
        let node = &graph.nodes[n];
        needs_grad[n] = node.dtype == crate::graph::DType::F32
            && (matches!(node.op, Op::Param { .. })
                || !ops::owned_params(&node.op).is_empty()
                || node.inputs.iter().any(|x| needs_grad[x.0]));
    }
    let target_of = |x: NodeId| match graph.nodes[x.0].op {
        Op::Param { param } => GradTarget::Param(param),
        _ => GradTarget::Node(x),
    };

    let mut tasks: Vec<(Task, Uses)> = (0..count)
        .map(NodeId)
        .filter(|n| live[n.0])
        .map(|n| {
            let uses = ops::forward_uses(gpu, graph, (n, batch), training);
            (Task::Forward(n), uses)
        })
        .collect();
    tasks.push((Task::Loss, ops::loss_uses(graph, output)));
    if !training {
        return tasks;
    }
    let mut written: HashSet<GradTarget> = HashSet::from([GradTarget::Node(output)]);
    for n in (0..count).rev().map(NodeId) {
        let node = &graph.nodes[n.0];
        if !live[n.0] || !needs_grad[n.0] || matches!(node.op, Op::Param { .. }) {
            continue;
        }
        let targets: Vec<Option<GradTarget>> = node
            .inputs
            .iter()
            .map(|&x| needs_grad[x.0].then(|| target_of(x)))
            .chain(
                ops::owned_params(&node.op)
                    .into_iter()
                    .map(|p| Some(GradTarget::Param(p))),
            )
            .collect();
        let mut sinks = vec![];
        let mut accumulates = vec![];
        let mut uses = Uses {
            reads: ops::backward_reads(gpu, graph, (n, batch)),
            writes: vec![],
        };
        for (k, target) in targets.iter().enumerate() {
            let sink = match target {
                None => None,
                Some(t) if written.insert(*t) => match t {
                    GradTarget::Node(x) => Some(Value::Grad(*x)),
                    GradTarget::Param(_) => None,
                },
                Some(t) => {
                    let partial = Value::Partial(n, k);
                    let mut acc = Uses {
                        reads: vec![partial],
                        writes: vec![],
                    };
                    if let GradTarget::Node(x) = t {
                        acc.reads.push(Value::Grad(*x));
                        acc.writes.push(Value::Grad(*x));
                    }
                    accumulates.push((Task::Accumulate(partial, *t), acc));
                    Some(partial)
                }
            };
            uses.writes.extend(sink);
            sinks.push(sink);
        }
        tasks.push((Task::Backward(n, sinks, targets), uses));
        tasks.extend(accumulates);
    }
    tasks
}
