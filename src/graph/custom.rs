//! User-defined ops: a forward and per-input VJP kernels given as WGSL, plus a shape rule, so
//! custom activations, losses and kernels need no fork of wgtrain. The WGSL is checked by
//! naga when the op enters a graph (built or loaded from JSON).
//!
//! wgtrain prepends a header that declares, for an op with inputs `in0 .. in{k-1}`:
//!
//! ```text
//! struct CustomParams { n: u32, batch: u32, _pad0: u32, _pad1: u32 }
//! @binding(0)     params: uniform CustomParams   // n: elements this dispatch writes
//! @binding(1..=k) in0 .. in{k-1}: array<f32>     // the inputs, read
//! @binding(k+1)   out:  array<f32>, read_write   // the op's output (read in backward)
//! @binding(k+2)   dout: array<f32>              // ∂L/∂out (backward only)
//! @binding(k+3)   dinp: array<f32>, read_write   // ∂L/∂in_i (backward_i only)
//! fn thread_index(gid, num_workgroups) -> u32    // this thread's element
//! ```
//!
//! and the op defines `@compute @workgroup_size(64) fn forward(...)`, run with one thread per
//! output element, and `fn backward_<i>(...)` for each input i that may need a gradient, run
//! with one thread per element of input i, which must *write* (not add to) `dinp[t]`.

use crate::error::{Error, Result};

/// How a custom op's output is shaped.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum CustomShape {
    /// The shape (and batching) of input `k`.
    SameAsInput(usize),
    /// A batched output with these feature dims.
    Dims(Vec<usize>),
}

/// A user-defined op (see the module documentation for the WGSL it provides).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CustomOp {
    /// A name for messages.
    pub name: String,
    /// The WGSL source of the forward and VJP entry points.
    pub wgsl: String,
    /// The output's shape, from the input's.
    pub output: CustomShape,
}

/// Threads per workgroup every custom entry point must declare.
pub(crate) const WORKGROUP: u32 = 64;

impl CustomOp {
    /// The full module: wgtrain's header for `inputs` inputs, then the user's WGSL.
    pub(crate) fn source(&self, inputs: usize) -> String {
        let mut header = String::from(
            "struct CustomParams { n: u32, batch: u32, _pad0: u32, _pad1: u32 }\n\
             @group(0) @binding(0) var<uniform> params: CustomParams;\n",
        );
        for i in 0..inputs {
            header += &format!(
                "@group(0) @binding({}) var<storage, read> in{i}: array<f32>;\n",
                i + 1
            );
        }
        header += &format!(
            "@group(0) @binding({}) var<storage, read_write> out: array<f32>;\n\
             @group(0) @binding({}) var<storage, read> dout: array<f32>;\n\
             @group(0) @binding({}) var<storage, read_write> dinp: array<f32>;\n\
             fn thread_index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {{\n\
             \x20   return gid.y * groups.x * {WORKGROUP}u + gid.x;\n}}\n",
            inputs + 1,
            inputs + 2,
            inputs + 3
        );
        header + &self.wgsl
    }

    /// Parses and validates the module with naga; returns which `backward_<i>` entry points
    /// exist. `forward` must exist, and every entry point must use 64 × 1 × 1 threads.
    pub(crate) fn validate(&self, inputs: usize) -> Result<Vec<bool>> {
        let source = self.source(inputs);
        let invalid =
            |reason: String| Error::InvalidArgument(format!("custom op {:?}: {reason}", self.name));
        let module = naga::front::wgsl::parse_str(&source)
            .map_err(|e| invalid(e.emit_to_string(&source)))?;
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::empty(),
        )
        .validate(&module)
        .map_err(|e| invalid(e.emit_to_string(&source)))?;
        let entry = |name: &str| -> Result<bool> {
            match module.entry_points.iter().find(|e| e.name == name) {
                None => Ok(false),
                Some(e)
                    if e.stage == naga::ShaderStage::Compute
                        && e.workgroup_size == [WORKGROUP, 1, 1] =>
                {
                    Ok(true)
                }
                Some(_) => Err(invalid(format!(
                    "entry point {name} must be @compute @workgroup_size({WORKGROUP})"
                ))),
            }
        };
        if !entry("forward")? {
            return Err(invalid("no `forward` entry point".into()));
        }
        (0..inputs)
            .map(|i| entry(&format!("backward_{i}")))
            .collect()
    }
}
