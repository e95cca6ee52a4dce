//! A checkpoint's metadata JSON (architecture: a graph, possibly with user WGSL; training
//! state) must load or give a typed error for any text, never panic: the text before the
//! first NUL is the architecture, the rest the training state, wrapped in a valid safetensors
//! file; the architecture text also goes to `Graph::from_json` (what `--model FILE` reads).
#![no_main]

use std::collections::HashMap;
use std::path::Path;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (architecture, training) = text.split_once('\0').unwrap_or((&text, "{}"));
    let _ = wgtrain::graph::Graph::from_json(architecture, Path::new("fuzz.json"));
    let metadata = HashMap::from([
        ("architecture".to_string(), architecture.to_string()),
        ("training".to_string(), training.to_string()),
    ]);
    let tensors: Vec<(String, safetensors::tensor::TensorView<'_>)> = vec![];
    if let Ok(bytes) = safetensors::serialize(tensors, Some(metadata)) {
        let _ = wgtrain::train::checkpoint::parse(Path::new("fuzz.safetensors"), &bytes);
    }
});
