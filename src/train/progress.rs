//! A Keras-style progress bar per epoch (indicatif): steps, running loss, samples per second.
//! Draws only on a terminal; the summary line is printed either way.

use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

use crate::train::{StepLog, say};

/// A progress bar over one epoch's steps, fed by the `on_step` callback.
#[derive(Debug)]
pub struct EpochProgress {
    bar: ProgressBar,
    start: Instant,
    label: String,
    loss_sum: f64,
    steps: u64,
    /// Rows actually trained on (a last partial batch counts its own rows).
    rows: usize,
}

impl EpochProgress {
    /// A bar for epoch `epoch` (0-based) of `epochs`, `steps` steps long.
    pub fn new(epoch: usize, epochs: usize, steps: usize) -> Self {
        let bar = ProgressBar::new(steps as u64);
        bar.set_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        let label = format!("epoch {}/{epochs}", epoch + 1);
        bar.set_prefix(label.clone());
        Self {
            bar,
            start: Instant::now(),
            label,
            loss_sum: 0.0,
            steps: 0,
            rows: 0,
        }
    }

    /// Advances the bar by one step and shows the running mean loss and throughput.
    pub fn step(&mut self, log: &StepLog) {
        self.loss_sum += f64::from(log.loss);
        self.steps += 1;
        self.rows += log.rows;
        self.bar.inc(1);
        self.bar.set_message(format!(
            "loss {:.4}  {:.0} samples/s",
            self.loss_sum / self.steps as f64,
            self.samples_per_second()
        ));
    }

    fn samples_per_second(&self) -> f64 {
        self.rows as f64 / self.start.elapsed().as_secs_f64().max(1e-9)
    }

    /// Clears the bar and prints one line: the epoch, its mean loss, throughput and `extra`.
    pub fn finish(self, mean_loss: f64, extra: &str) {
        self.bar.finish_and_clear();
        say(format_args!(
            "{}  loss {mean_loss:.4}  {:.1}s  {:.0} samples/s{extra}",
            self.label,
            self.start.elapsed().as_secs_f64(),
            self.samples_per_second()
        ));
    }
}
