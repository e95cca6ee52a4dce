//! Fusion as a pass over the graph, not a convention builders must follow: a Linear or Conv2d
//! whose only consumer is a ReLU-like activation (one whose derivative can be read off its
//! output) takes that activation into its GEMM epilogue, and the activation's backward moves
//! into its consumers' backward, which is only possible when every consumer is a Linear or a
//! Conv2d (their dX products apply it) or a max pool (its gradient pass does, reading the
//! activation's output for the window maxima anyway). The fused activation node is left
//! without consumers, so the planner drops it.

use crate::graph::{Graph, NodeId, Op, fusable};
use crate::kernels::Activation;
use crate::kernels::pool::{Pool2d, PoolKind};

/// A copy of `graph` with every valid (Linear or Conv2d) + activation pair fused.
pub(crate) fn fuse(graph: &Graph) -> Graph {
    let mut g = graph.clone();
    let output = g.output.map(|(o, _)| o);
    let consumers = consumers(&g);
    for a in 0..g.nodes.len() {
        let Op::Activation { activation } = g.nodes[a].op else {
            continue;
        };
        let producer = g.nodes[a].inputs[0];
        let feeds_only_masking_ops = !consumers[a].is_empty()
            && consumers[a].iter().all(|c| {
                matches!(
                    g.nodes[c.0].op,
                    Op::Linear { .. }
                        | Op::Conv2d { .. }
                        | Op::Pool2d(Pool2d {
                            kind: PoolKind::Max,
                            ..
                        })
                )
            });
        let unfused_product = matches!(
            g.nodes[producer.0].op,
            Op::Linear {
                activation: Activation::Identity,
                ..
            } | Op::Conv2d {
                activation: Activation::Identity,
                ..
            }
        );
        if !fusable(activation)
            || output == Some(NodeId(a))
            || output == Some(producer)
            || !unfused_product
            || consumers[producer.0] != [NodeId(a)]
            || !feeds_only_masking_ops
        {
            continue;
        }
        if let Op::Linear {
            activation: fused, ..
        }
        | Op::Conv2d {
            activation: fused, ..
        } = &mut g.nodes[producer.0].op
        {
            *fused = activation;
        }
        for c in &consumers[a] {
            g.nodes[c.0].inputs[0] = producer;
        }
    }
    g
}

/// Each node's consumers, one entry per use.
pub(crate) fn consumers(graph: &Graph) -> Vec<Vec<NodeId>> {
    let mut consumers = vec![vec![]; graph.nodes.len()];
    for (i, node) in graph.nodes.iter().enumerate() {
        for x in &node.inputs {
            consumers[x.0].push(NodeId(i));
        }
    }
    consumers
}
