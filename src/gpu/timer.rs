//! GPU timing: timestamp queries around each repetition's compute pass where the adapter has
//! them (lavapipe and the H100 both do), else wall clock around submit + wait. Medians, after
//! warm-up, so one slow repetition does not move the figure.

#[cfg(not(target_arch = "wasm32"))]
use {
    crate::error::Result,
    crate::gpu::Gpu,
    std::time::{Duration, Instant},
};

/// How a figure was timed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    /// GPU timestamp queries around the dispatches alone.
    Timestamps,
    /// Host wall clock around submit and wait (adapters without timestamps).
    Wall,
}

impl Clock {
    /// How reports name the clock.
    pub fn name(self) -> &'static str {
        match self {
            Clock::Timestamps => "timestamp",
            Clock::Wall => "wall",
        }
    }
}

/// Untimed passes before the timed ones.
#[cfg(not(target_arch = "wasm32"))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Warmup {
    /// This many passes: enough for caches and pipelines, and quick (the autotune's choice).
    Passes(usize),
    /// At least that many passes, and on GPUs repeated for at least [`CLOCK_WARMUP`]: a GPU
    /// lowers its clocks within a second of idling and a few passes do not raise them again
    /// (an H200 went from 1980 to 765 MHz while the host checked a benchmark's result, and the
    /// next memory-bound figure came out at half its bandwidth). The benchmarks' choice.
    Clocks(usize),
}

/// How long [`Warmup::Clocks`] keeps a GPU busy before timing.
#[cfg(not(target_arch = "wasm32"))]
pub const CLOCK_WARMUP: Duration = Duration::from_millis(300);

/// Median seconds of one compute pass filled by `record`, over `reps` repetitions after
/// the `warmup`.
#[cfg(not(target_arch = "wasm32"))]
pub fn time_pass(
    gpu: &Gpu,
    warmup: Warmup,
    reps: usize,
    record: &dyn Fn(&mut wgpu::ComputePass<'_>),
) -> Result<(f64, Clock)> {
    let run = |n: usize, query: Option<&wgpu::QuerySet>| {
        let mut encoder = gpu.device().create_command_encoder(&Default::default());
        for i in 0..n {
            let timestamp_writes = query.map(|q| wgpu::ComputePassTimestampWrites {
                query_set: q,
                beginning_of_pass_write_index: Some(2 * i as u32),
                end_of_pass_write_index: Some(2 * i as u32 + 1),
            });
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: None,
                timestamp_writes,
            });
            record(&mut pass);
        }
        encoder
    };
    let start = Instant::now();
    let (mut passes, until) = match warmup {
        Warmup::Passes(n) => (n, Duration::ZERO),
        Warmup::Clocks(n) if gpu.is_cpu() => (n, Duration::ZERO),
        Warmup::Clocks(n) => (n.max(1), CLOCK_WARMUP),
    };
    loop {
        gpu.queue().submit([run(passes, None).finish()]);
        gpu.wait()?;
        if start.elapsed() >= until {
            break;
        }
        // Doubling reaches the duration in a few submissions whatever one pass costs.
        passes = (passes * 2).min(4096);
    }
    let reps = reps.max(1);
    if !gpu.has_timestamps() {
        let mut times = Vec::with_capacity(reps);
        for _ in 0..reps {
            let start = Instant::now();
            gpu.queue().submit([run(1, None).finish()]);
            gpu.wait()?;
            times.push(start.elapsed().as_secs_f64());
        }
        return Ok((median(&mut times), Clock::Wall));
    }
    let query = gpu.device().create_query_set(&wgpu::QuerySetDescriptor {
        label: Some("wgtrain bench"),
        ty: wgpu::QueryType::Timestamp,
        count: 2 * reps as u32,
    });
    let resolved = gpu.device().create_buffer(&wgpu::BufferDescriptor {
        label: Some("wgtrain bench timestamps"),
        size: 16 * reps as u64,
        usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let mut encoder = run(reps, Some(&query));
    encoder.resolve_query_set(&query, 0..2 * reps as u32, &resolved, 0);
    gpu.queue().submit([encoder.finish()]);
    let bytes = gpu.start_read(&resolved, 0, 16 * reps as u64).wait(gpu)?;
    let ticks: Vec<u64> = bytemuck::pod_collect_to_vec(&bytes);
    let period = f64::from(gpu.queue().get_timestamp_period()) * 1e-9;
    let mut times: Vec<f64> = ticks
        .chunks(2)
        .map(|t| t[1].saturating_sub(t[0]) as f64 * period)
        .collect();
    Ok((median(&mut times), Clock::Timestamps))
}

/// The median of `times` (sorted in place); NaN-safe, so a bad sample cannot panic.
pub fn median(times: &mut [f64]) -> f64 {
    times.sort_by(f64::total_cmp);
    times.get(times.len() / 2).copied().unwrap_or(f64::NAN)
}
