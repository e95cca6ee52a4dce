//! The architecture as data: a graph serialises to JSON (op kinds, attributes, inputs,
//! parameter names and shapes, a format version), the same JSON checkpoints keep in their
//! metadata and `wgtrain train --model FILE.json` reads. Loading replays every node through
//! the shape rules, so a hand-edited file is checked exactly as a built graph is.

use crate::error::{Error, Result};
use crate::graph::{BufferSpec, Graph, NodeId, Op, ParamSpec};
use crate::kernels::loss::Loss;

/// Version of the graph JSON this build writes and reads.
pub const GRAPH_FORMAT_VERSION: u32 = 1;
const FORMAT: &str = "wgtrain-graph";

#[derive(serde::Serialize, serde::Deserialize)]
struct GraphFile {
    format: String,
    version: u32,
    params: Vec<ParamSpec>,
    #[serde(default)]
    buffers: Vec<BufferSpec>,
    nodes: Vec<NodeFile>,
    output: NodeId,
    loss: Loss,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct NodeFile {
    #[serde(flatten)]
    op: Op,
    #[serde(default)]
    inputs: Vec<NodeId>,
}

impl Graph {
    /// The graph as pretty-printed JSON.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(&self.to_json_value()?)
            .map_err(|e| Error::InvalidArgument(format!("graph to JSON: {e}")))
    }

    /// A graph from its JSON, every node checked by its shape rule; `what` names the source
    /// in errors.
    pub fn from_json(json: &str, what: &std::path::Path) -> Result<Graph> {
        let value = serde_json::from_str(json)
            .map_err(|e| Error::invalid_data(what, "graph", format!("not JSON: {e}")))?;
        Self::from_json_value(value, what)
    }

    /// The graph as a JSON value (what checkpoint metadata embeds).
    pub fn to_json_value(&self) -> Result<serde_json::Value> {
        let (output, loss) = self.output.ok_or_else(|| {
            Error::InvalidArgument("the graph has no output: call set_output".into())
        })?;
        let file = GraphFile {
            format: FORMAT.into(),
            version: GRAPH_FORMAT_VERSION,
            params: self.params.clone(),
            buffers: self.buffers.clone(),
            nodes: self
                .nodes
                .iter()
                .map(|n| NodeFile {
                    op: n.op.clone(),
                    inputs: n.inputs.clone(),
                })
                .collect(),
            output,
            loss,
        };
        serde_json::to_value(&file)
            .map_err(|e| Error::InvalidArgument(format!("graph to JSON: {e}")))
    }

    /// [`Graph::from_json`] from a parsed value.
    pub fn from_json_value(value: serde_json::Value, what: &std::path::Path) -> Result<Graph> {
        let invalid = |reason: String| Error::invalid_data(what, "graph", reason);
        // The version first, so a file from another version says so instead of failing on
        // whatever field changed.
        let format = value.get("format").and_then(|v| v.as_str());
        let version = value.get("version").and_then(|v| v.as_u64());
        if format != Some(FORMAT) || version != Some(u64::from(GRAPH_FORMAT_VERSION)) {
            return Err(invalid(format!(
                "format {format:?} version {version:?} (this build reads {FORMAT:?} version {GRAPH_FORMAT_VERSION})"
            )));
        }
        let file: GraphFile =
            serde_json::from_value(value).map_err(|e| invalid(format!("not a graph: {e}")))?;
        let mut graph = Graph {
            params: file.params,
            buffers: file.buffers,
            ..Graph::default()
        };
        for (i, p) in graph.params.iter().enumerate() {
            if p.shape.is_empty()
                || p.shape.contains(&0)
                || super::shapes::check_size(&p.shape).is_err()
            {
                return Err(invalid(format!(
                    "parameter {i} ({}) has shape {:?}",
                    p.name, p.shape
                )));
            }
        }
        for (i, node) in file.nodes.into_iter().enumerate() {
            if let Op::BatchNorm { buffer, .. } = node.op
                && buffer >= graph.buffers.len()
            {
                return Err(invalid(format!(
                    "node {i}: BatchNorm buffer {buffer} is not listed"
                )));
            }
            graph
                .push(node.op, &node.inputs)
                .map_err(|e| invalid(format!("node {i}: {e}")))?;
        }
        graph
            .set_output(file.output, file.loss)
            .map_err(|e| invalid(format!("output: {e}")))?;
        Ok(graph)
    }
}
