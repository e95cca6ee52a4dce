//! The page's run outside the browser, on this machine's adapter (lavapipe without a GPU):
//! the same model, data and settings, so its steps/s stands beside the page's.
//!
//!     cargo run --release --example native -- 3

use std::process::ExitCode;
use std::time::Instant;

use wgtrain_web::MnistRun;

fn main() -> ExitCode {
    let epochs = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(3);
    match pollster::block_on(run(epochs)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(epochs: usize) -> wgtrain::Result<()> {
    let gpu = wgtrain::Gpu::new_async().await?;
    let mut run = MnistRun::new(&gpu, 128, 1e-3, 64, None)?;
    println!("adapter: {}", run.adapter());
    for epoch in 1..=epochs {
        let start = Instant::now();
        let loss = run.fit_epoch(&mut |_| {}).await?;
        let seconds = start.elapsed().as_secs_f64();
        let accuracy = run.test_accuracy().await?;
        println!(
            "epoch {epoch}  loss {loss:.4}  test accuracy {:.2}%  {:.1} steps/s",
            100.0 * accuracy,
            run.steps_per_epoch() as f64 / seconds
        );
    }
    Ok(())
}
