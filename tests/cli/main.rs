//! The `wgtrain` program end to end: checkpoints PyTorch can read, `--init` from PyTorch's
//! layout, resume equal to an uninterrupted run, and clear errors for broken inputs.

#[path = "../common/mod.rs"]
mod common;

mod checkpoints;
mod cnn;
mod crash;
mod errors;
mod generate;
mod graphs;
mod hardening;
mod nonfinite;
mod resume;
mod training;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A fresh directory under the target dir for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating a scratch directory");
    dir
}

pub fn wgtrain(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wgtrain"))
        .args(args)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .output()
        .expect("running wgtrain")
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A small, learnable classification CSV: 3 features, label = which feature is largest.
pub fn write_classification_csv(path: &Path, rows: usize) {
    let mut text = String::from("a,b,c,label\n");
    for r in 0..rows {
        let v: Vec<f32> = (0..3)
            .map(|c| (((r * 7 + c * 13) % 17) as f32) / 17.0)
            .collect();
        let label = (0..3).fold(0, |best, c| if v[c] > v[best] { c } else { best });
        text += &format!("{},{},{},{label}\n", v[0], v[1], v[2]);
    }
    std::fs::write(path, text).expect("writing a CSV");
}

/// Every tensor's shape in a checkpoint, read with the safetensors crate alone.
pub fn tensor_shapes<'a>(
    file: &'a safetensors::SafeTensors<'_>,
) -> std::collections::HashMap<&'a str, Vec<usize>> {
    file.names()
        .into_iter()
        .map(|n| (n, file.tensor(n).expect("tensor").shape().to_vec()))
        .collect()
}

/// A checkpoint's f32 tensor `name` as f64, read with the safetensors crate alone.
pub fn tensor_f64(file: &safetensors::SafeTensors<'_>, name: &str) -> Vec<f64> {
    bytemuck::pod_collect_to_vec::<u8, f32>(file.tensor(name).expect("tensor").data())
        .iter()
        .map(|&v| f64::from(v))
        .collect()
}

/// `nn.Linear` in f64: `w · x + b` with `w` stored `[out, in]`.
pub fn linear_f64(x: &[f64], w: &[f64], b: &[f64]) -> Vec<f64> {
    (0..b.len())
        .map(|o| b[o] + (0..x.len()).map(|i| w[o * x.len() + i] * x[i]).sum::<f64>())
        .collect()
}

pub fn path_str(path: &Path) -> &str {
    path.to_str().expect("scratch paths are UTF-8")
}

/// `{"step": S, "loss": L}` of each line of a `--log-steps` file, by step.
pub fn step_losses(log: &Path) -> std::collections::BTreeMap<u64, f64> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| {
            (
                v["step"].as_u64().expect("step"),
                v["loss"].as_f64().expect("loss"),
            )
        })
        .collect()
}
