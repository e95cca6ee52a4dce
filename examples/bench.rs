//! The portable benchmark suite (BENCH.md), the same code as `wgtrain bench`.
//!
//!     cargo run --release --example bench -- --quick
//!     cargo run --release --example bench -- --json bench/results/<adapter>-<date>.jsonl

use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: wgtrain::bench::BenchArgs,
}

fn main() -> std::process::ExitCode {
    match wgtrain::bench::run(&Cli::parse().args) {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
