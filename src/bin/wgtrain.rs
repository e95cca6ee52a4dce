//! The `wgtrain` command-line program.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "wgtrain",
    version,
    about = "Train neural networks on any GPU through wgpu"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the GPU adapter wgtrain picks, its backend, driver, features and limits.
    Info,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info => info(),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn info() -> wgtrain::Result<()> {
    let gpu = wgtrain::Gpu::new()?;
    println!("{gpu}");
    Ok(())
}
