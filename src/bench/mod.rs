//! The portable benchmark suite of BENCH.md: matmul, elementwise, optimizer, dispatch cost
//! and the mlp-bench training step. Every kernel's output is checked against an f64 reference
//! before it is timed: a fast wrong kernel is refused, not scored.

mod image;
mod sequence;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::json;

use crate::data::{Dataset, DeviceDataset};
use crate::dist::Communicator;
use crate::error::{Error, Result};
use crate::gpu::{Clock, Dispatch, Gpu, Tensor, Warmup, median, time_pass};
use crate::graph::Weights;
use crate::kernels::coop_matmul::CoopMatmul;
use crate::kernels::loss::Loss;
use crate::kernels::matmul::{Matmul, matmul_naive};
use crate::kernels::optim::{UpdateBuffers, update};
use crate::kernels::{Activation, elementwise};
use crate::nn::Sequential;
use crate::optim::Optimizer;
use crate::train::{TrainConfig, Trainer};

/// `wgtrain bench` / `cargo run --release --example bench` flags.
#[derive(Clone, Debug, Default)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct BenchArgs {
    /// Also write one JSON object per measurement to this file.
    #[cfg_attr(feature = "cli", arg(long))]
    pub json: Option<PathBuf>,
    /// Small sizes: the whole suite in about a minute on lavapipe.
    #[cfg_attr(feature = "cli", arg(long))]
    pub quick: bool,
    /// Time the one-output-per-thread matmul at every size too, and print the ratio.
    #[cfg_attr(feature = "cli", arg(long))]
    pub compare_naive: bool,
    /// Time each dispatch of one training step on its own at this batch size: where the
    /// step's time goes.
    #[cfg_attr(feature = "cli", arg(long))]
    pub profile: Option<usize>,
    /// The model `--profile` steps: the mlp-bench MLP or the MNIST CNN.
    #[cfg_attr(feature = "cli", arg(long, value_enum, default_value_t = ProfiledModel::Mlp))]
    pub profile_model: ProfiledModel,
    /// Only the mlp-bench step (`run_steps` and `fit`, full length), at these batch sizes
    /// (comma-separated): what `bench/compare.sh` runs beside Burn's peer.
    #[cfg_attr(feature = "cli", arg(long, value_delimiter = ','))]
    pub mlp: Vec<usize>,
    /// Only the square matmuls at these sizes (comma-separated): the f32 kernel the autotune
    /// picks and, where the adapter has cooperative matrices, the f16 one.
    #[cfg_attr(feature = "cli", arg(long, value_delimiter = ','))]
    pub matmul: Vec<usize>,
}

/// The models `--profile` knows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum ProfiledModel {
    /// 784-1024-1024-10, ReLU, Adam (the mlp-bench step).
    #[default]
    Mlp,
    /// PyTorch's MNIST CNN (`nn::models::mnist_cnn`), Adam.
    Cnn,
    /// nanoGPT's baby GPT (`nn::models::gpt`, vocabulary 78, blocks of 64), Adam; the batch
    /// counts blocks.
    Gpt,
}

/// One figure of the suite.
#[derive(Clone, Debug)]
pub struct Measurement {
    /// The benchmark (`matmul`, `train-step`, ...).
    pub name: &'static str,
    /// Its shape and settings, as printed.
    pub params: String,
    /// The figure, in `unit`.
    pub figure: f64,
    /// `GFLOP/s`, `GB/s`, `ms`, `samples/s`...
    pub unit: &'static str,
    /// How it was timed.
    pub clock: Clock,
    /// A second figure of the same run (µs per update, samples/s, ratio to naive).
    pub extra: Option<(f64, &'static str)>,
}

/// What a run of the suite measured, on which adapter: every figure printed, as values.
#[derive(Clone, Debug)]
pub struct Report {
    /// The adapter that ran the suite.
    pub adapter: wgpu::AdapterInfo,
    /// Every figure, in the order printed.
    pub measurements: Vec<Measurement>,
}

/// Runs the suite (or `--profile`, which prints its table and measures nothing else),
/// printing each figure as it lands; returns them all.
pub fn run(args: &BenchArgs) -> Result<Report> {
    // An output that cannot be written is found before the suite runs, not after.
    if let Some(path) = &args.json {
        crate::files::output_target(path)?;
    }
    // Under `mpirun` the training steps run data-parallel over the ranks; rank 0 reports.
    let comm = crate::dist::from_env()?;
    crate::train::set_quiet(comm.rank() != 0);
    let gpu = Gpu::new()?;
    let info = gpu.adapter_info().clone();
    crate::train::say(format_args!(
        "adapter {} ({:?}, {} {}){}",
        info.name,
        info.backend,
        info.driver,
        info.driver_info,
        match comm.size() {
            1 => String::new(),
            ranks => format!(", {ranks} ranks"),
        }
    ));
    let mut results = vec![];
    let mut show = |m: Measurement| {
        let extra = m
            .extra
            .map(|(v, u)| match v.abs() {
                small if small > 0.0 && small < 0.01 => format!("  {v:>10.2e} {u}"),
                _ => format!("  {v:>10.2} {u}"),
            })
            .unwrap_or_default();
        crate::train::say(format_args!(
            "{:<12} {:<34} {:>12.2} {:<10} [{}]{extra}",
            m.name,
            m.params,
            m.figure,
            m.unit,
            m.clock.name()
        ));
        results.push(m);
    };
    check_sizes(&gpu, args)?;
    let mut rng = StdRng::seed_from_u64(1);
    if let Some(batch) = args.profile {
        profile_step(&gpu, args.profile_model, batch)?;
        return Ok(Report {
            adapter: info,
            measurements: vec![],
        });
    }

    for &batch in &args.mlp {
        mlp_bench(&gpu, &mut rng, (batch, &comm), Length::Full, &mut show)?;
    }
    for &n in &args.matmul {
        square_matmuls(&gpu, &mut rng, n, args.compare_naive, &mut show)?;
    }
    if args.mlp.is_empty() && args.matmul.is_empty() {
        suite(
            &gpu,
            &mut rng,
            &comm,
            (args.quick, args.compare_naive),
            &mut show,
        )?;
    }

    if let Some(path) = args.json.as_ref().filter(|_| comm.rank() == 0) {
        let lines: Vec<String> = results
            .iter()
            .map(|m| {
                json!({"name": m.name, "params": m.params, "figure": m.figure, "unit": m.unit, "clock": m.clock.name(),
                       "extra": m.extra.map(|(v, u)| json!({"figure": v, "unit": u})),
                       "adapter": info.name, "backend": format!("{:?}", info.backend), "driver": info.driver,
                       "driver_info": info.driver_info})
                .to_string()
            })
            .collect();
        crate::files::write_atomically(path, (lines.join("\n") + "\n").as_bytes())?;
    }
    Ok(Report {
        adapter: info,
        measurements: results,
    })
}

/// Refuses `--mlp` batches and `--matmul` sizes of 0, or whose widest tensor (an mlp-bench
/// activation of 1024 per sample, a matmul operand) no binding can hold: before any host
/// allocation, so a huge size is an error and not an abort.
fn check_sizes(gpu: &Gpu, args: &BenchArgs) -> Result<()> {
    let batches = args.mlp.iter().map(|&b| ("--mlp", b, b as u64 * 1024));
    let squares = args
        .matmul
        .iter()
        .map(|&n| ("--matmul", n, (n as u64).saturating_mul(n as u64)));
    for (flag, size, elements) in batches.chain(squares) {
        if size == 0 {
            return Err(Error::InvalidArgument(format!(
                "{flag} needs sizes of at least 1"
            )));
        }
        gpu.check_size(
            &format!("{flag} {size}'s largest tensor"),
            elements.saturating_mul(4),
        )?;
    }
    Ok(())
}

fn uniform(rng: &mut StdRng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()
}

/// γ_n = n·u/(1 − n·u), u = 2⁻²⁴: an f32 sum of n terms is within γ_n · Σ|terms| of the
/// exact sum, in any order (Higham, Accuracy and Stability, §3.1).
fn gamma(n: usize) -> f64 {
    let nu = n as f64 * 5.960_464_477_539_063e-8;
    nu / (1.0 - nu)
}

/// Refuses a matmul result that differs from f64 at any of `samples` random elements by more
/// than γ_{k+2}·Σ|a||b| (the f32 rounding bound of a k-term dot product, any order).
pub fn check_matmul(
    a: &[f32],
    b: &[f32],
    c: &[f32],
    mnk: (usize, usize, usize),
    transposes: (bool, bool),
    samples: usize,
) -> Result<()> {
    worst_relative_error(a, b, c, mnk, transposes, samples, gamma(mnk.2 + 2)).map(|_| ())
}

/// The largest |c − exact| / Σ|a||b| over `samples` random elements of `c = op(a)·op(b)` (the
/// last one always among them) against an f64 reference; an error past `bound` (or NaN) is
/// refused.
fn worst_relative_error(
    a: &[f32],
    b: &[f32],
    c: &[f32],
    (m, n, k): (usize, usize, usize),
    (trans_a, trans_b): (bool, bool),
    samples: usize,
    bound: f64,
) -> Result<f64> {
    let mut rng = StdRng::seed_from_u64(7);
    let mut worst = 0.0f64;
    for s in 0..samples {
        let (i, j) = if s == 0 {
            (m - 1, n - 1)
        } else {
            (rng.random_range(0..m), rng.random_range(0..n))
        };
        let (mut exact, mut magnitude) = (0.0f64, 0.0f64);
        for p in 0..k {
            let av = f64::from(if trans_a { a[p * m + i] } else { a[i * k + p] });
            let bv = f64::from(if trans_b { b[j * k + p] } else { b[p * n + j] });
            exact += av * bv;
            magnitude += (av * bv).abs();
        }
        let got = f64::from(c[i * n + j]);
        let error = (got - exact).abs();
        if error.is_nan() || error > bound * magnitude {
            return Err(Error::WrongResult(format!(
                "matmul {m}x{n}x{k}: c[{i}, {j}] = {got}, f64 reference {exact}: refused before timing"
            )));
        }
        worst = worst.max(error / magnitude.max(f64::MIN_POSITIVE));
    }
    Ok(worst)
}

/// The cooperative-matrix matmul (f16 operands, f32 accumulation) at `n`³, timed without
/// its casts, with the worst error against f64 over 64 elements relative to Σ|a||b|: at most
/// 2·2⁻¹⁰ + 2⁻²⁰ from rounding the operands to f16 either way, plus the f32 sum's γ at the
/// unit 2⁻²³ (tensor cores may truncate); the same bound as its tests.
fn bench_coop_matmul(gpu: &Gpu, rng: &mut StdRng, n: usize) -> Result<Measurement> {
    let (a, b) = (uniform(rng, n * n), uniform(rng, n * n));
    let (at, bt) = (gpu.tensor(&a, &[n, n])?, gpu.tensor(&b, &[n, n])?);
    let c = gpu.filled(&[n, n], f32::NAN)?;
    let product = CoopMatmul::default().dispatch(gpu, &at, &bt, &c)?;
    gpu.run(&product.dispatches())?;
    let bound = 2.0 * 2f64.powi(-10) + 2f64.powi(-20) + 2.0 * gamma(n + 2);
    let worst = std::cell::Cell::new(0.0);
    let (seconds, clock) = checked_timing(gpu, &[product.product()], &c, |out| {
        worst.set(worst_relative_error(
            &a,
            &b,
            out,
            (n, n, n),
            (false, false),
            64,
            bound,
        )?);
        Ok(())
    })?;
    Ok(Measurement {
        name: "matmul-coop-f16",
        params: format!("{n}x{n}x{n}"),
        figure: 2.0 * (n * n * n) as f64 / seconds / 1e9,
        unit: "GFLOP/s",
        clock,
        extra: Some((worst.get(), "max |err|/Σ|ab| vs f64")),
    })
}

fn bench_matmul(
    gpu: &Gpu,
    rng: &mut StdRng,
    (m, n, k): (usize, usize, usize),
    (ta, tb): (bool, bool),
    compare_naive: bool,
) -> Result<Measurement> {
    let (a, b) = (uniform(rng, m * k), uniform(rng, k * n));
    let at = gpu.tensor(&a, &if ta { [k, m] } else { [m, k] })?;
    let bt = gpu.tensor(&b, &if tb { [n, k] } else { [k, n] })?;
    let c = gpu.filled(&[m, n], f32::NAN)?;
    let tiled = Matmul {
        trans_a: ta,
        trans_b: tb,
        ..Default::default()
    }
    .dispatch(gpu, &at, &bt, &c)?;
    let flops = 2.0 * (m * n * k) as f64;
    let (seconds, clock) = checked_timing(gpu, &[&tiled], &c, |out| {
        check_matmul(&a, &b, out, (m, n, k), (ta, tb), 64)
    })?;
    let tile = gpu.matmul_tile((m, n, k), (ta, tb))?;
    let mut measurement = Measurement {
        name: "matmul",
        params: format!("{m}x{n}x{k} {tile:?}"),
        figure: flops / seconds / 1e9,
        unit: "GFLOP/s",
        clock,
        extra: None,
    };
    if compare_naive && !ta && !tb {
        let naive_c = gpu.filled(&[m, n], f32::NAN)?;
        let naive = matmul_naive(gpu, &at, &bt, &naive_c)?;
        let (naive_seconds, _) = checked_timing(gpu, &[&naive], &naive_c, |out| {
            check_matmul(&a, &b, out, (m, n, k), (false, false), 64)
        })?;
        measurement.extra = Some((naive_seconds / seconds, "× naive"));
    }
    Ok(measurement)
}

/// Runs `dispatch` once, checks its output, then times it (warm-up 2, 10 repetitions; fewer
/// for dispatches over a second, which lavapipe reaches at large sizes).
fn checked_timing(
    gpu: &Gpu,
    dispatches: &[&Dispatch],
    out: &Tensor,
    check: impl Fn(&[f32]) -> Result<()>,
) -> Result<(f64, Clock)> {
    let start = Instant::now();
    gpu.run(dispatches)?;
    check(&gpu.read(out)?)?;
    let once = start.elapsed().as_secs_f64();
    // A run of over a second has warmed everything already.
    let (warmup, reps) = if once > 1.0 {
        (Warmup::Passes(0), 3)
    } else {
        (Warmup::Clocks(2), 10)
    };
    time_pass(gpu, warmup, reps, &|pass| {
        for dispatch in dispatches {
            dispatch.record(pass, 0);
        }
    })
}

fn bench_relu(gpu: &Gpu, rng: &mut StdRng, n: usize) -> Result<Measurement> {
    let x = uniform(rng, n);
    let (xt, y) = (gpu.tensor(&x, &[n])?, gpu.filled(&[n], f32::NAN)?);
    let dispatch = elementwise::activation_forward(gpu, Activation::Relu, &xt, &y)?;
    let (seconds, clock) = checked_timing(gpu, &[&dispatch], &y, |out| {
        match out.iter().zip(&x).position(|(&o, &v)| o != v.max(0.0)) {
            Some(i) => Err(Error::WrongResult(format!(
                "relu: y[{i}] = {} for x = {}",
                out[i], x[i]
            ))),
            None => Ok(()),
        }
    })?;
    Ok(Measurement {
        name: "elementwise",
        params: format!("relu n=2^{}", n.trailing_zeros()),
        figure: 8.0 * n as f64 / seconds / 1e9,
        unit: "GB/s",
        clock,
        extra: None,
    })
}

fn bench_adam(gpu: &Gpu, rng: &mut StdRng, n: usize) -> Result<Measurement> {
    let optimizer = Optimizer::adam(1e-3);
    let (p0, g) = (uniform(rng, n), uniform(rng, n));
    let (param, grad) = (gpu.tensor(&p0, &[n])?, gpu.tensor(&g, &[n])?);
    let states = [gpu.zeros(&[n])?, gpu.zeros(&[n])?, gpu.zeros(&[4])?];
    let clip = gpu.tensor(&[0.0, 1.0], &[2])?;
    let ring = gpu.device().create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: crate::gpu::STEP_SLOT_BYTES,
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    gpu.queue().write_buffer(
        &ring,
        0,
        bytemuck::bytes_of(&optimizer.step_params(1, 1e-3, 0)),
    );
    let buffers = UpdateBuffers {
        step_ring: &ring,
        grad: &grad,
        clip: &clip,
        param: &param,
        states: [&states[0], &states[1], &states[2]],
    };
    let dispatch = update(gpu, &optimizer, 0.0, &buffers)?;
    let mut reference = crate::reference::OptimizerReference::new(optimizer, 0.0, 64);
    let mut want: Vec<f64> = p0[..64].iter().map(|&v| f64::from(v)).collect();
    reference.step(
        1e-3,
        &mut want,
        &g[..64].iter().map(|&v| f64::from(v)).collect::<Vec<_>>(),
    );
    let (seconds, clock) = checked_timing(gpu, &[&dispatch], &param, |out| {
        // The first Adam step moves each parameter by ≈ lr; 1e-6 is far below that.
        match (0..64).find(|&i| (f64::from(out[i]) - want[i]).abs() > 1e-6) {
            Some(i) => Err(Error::WrongResult(format!(
                "adam: p[{i}] = {} vs {}",
                out[i], want[i]
            ))),
            None => Ok(()),
        }
    })?;
    // Reads p, g, m, v and writes p, m, v: 7 floats per parameter.
    Ok(Measurement {
        name: "optimizer",
        params: format!("adam n=2^{}", n.trailing_zeros()),
        figure: 28.0 * n as f64 / seconds / 1e9,
        unit: "GB/s",
        clock,
        extra: Some((seconds * 1e6, "µs/update")),
    })
}

fn bench_dispatch(gpu: &Gpu) -> Result<Vec<Measurement>> {
    let x = gpu.tensor(&[1.0; 64], &[64])?;
    let y = gpu.zeros(&[64])?;
    let tiny = elementwise::scale(gpu, 2.0, &x, &y)?;
    let (seconds, clock) = time_pass(gpu, Warmup::Clocks(1), 5, &|pass| {
        for _ in 0..1000 {
            tiny.record(pass, 0);
        }
    })?;
    let mut submits = vec![];
    for _ in 0..50 {
        let start = Instant::now();
        gpu.run(&[&tiny])?;
        gpu.wait()?;
        submits.push(start.elapsed().as_secs_f64());
    }
    Ok(vec![
        Measurement {
            name: "dispatch",
            params: "1000 in one pass".into(),
            figure: seconds / 1000.0 * 1e6,
            unit: "µs each",
            clock,
            extra: None,
        },
        Measurement {
            name: "dispatch",
            params: "submit + wait".into(),
            figure: median(&mut submits) * 1e6,
            unit: "µs",
            clock: Clock::Wall,
            extra: None,
        },
    ])
}

/// The f32 matmul at `n`³ (beside the naive kernel if `compare_naive`), and from n = 1024 on
/// the cooperative-matrix one where the adapter has it.
fn square_matmuls(
    gpu: &Gpu,
    rng: &mut StdRng,
    n: usize,
    compare_naive: bool,
    show: &mut dyn FnMut(Measurement),
) -> Result<()> {
    show(bench_matmul(
        gpu,
        rng,
        (n, n, n),
        (false, false),
        compare_naive,
    )?);
    if gpu.cooperative_matrix_subgroup().is_some() && n >= 1024 {
        show(bench_coop_matmul(gpu, rng, n)?);
    }
    Ok(())
}

/// Everything but the profile: matmuls, memory-bound kernels, dispatch cost, attention, the
/// mlp-bench and CNN training steps.
fn suite(
    gpu: &Gpu,
    rng: &mut StdRng,
    comm: &Arc<dyn Communicator>,
    (quick, compare_naive): (bool, bool),
    show: &mut dyn FnMut(Measurement),
) -> Result<()> {
    let cpu = gpu.is_cpu();
    let squares: &[usize] = match (quick, cpu) {
        (true, _) => &[256, 512],
        (false, true) => &[256, 512, 1024],
        (false, false) => &[256, 1024, 4096, 8192],
    };
    for &n in squares {
        square_matmuls(gpu, rng, n, compare_naive || quick || n <= 1024, show)?;
    }
    let batches: &[usize] = if quick || cpu { &[256] } else { &[256, 16384] };
    for &b in batches {
        // The three products of the mlp-bench first layer: forward, dX, dW.
        for (label, mnk, transposes) in [
            ("fwd", (b, 1024, 784), (false, true)),
            ("dX", (b, 784, 1024), (false, false)),
            ("dW", (1024, 784, b), (true, false)),
        ] {
            let mut m = bench_matmul(gpu, rng, mnk, transposes, compare_naive)?;
            m.params = format!("{label} b{b} {}", m.params);
            show(m);
        }
    }
    // 2^26 floats is 256 MiB: past lavapipe's 128 MiB binding, where the largest power of two
    // that fits stands in.
    let fits = (gpu.max_binding_bytes() / 4).max(1);
    let largest = 1usize << (63 - fits.leading_zeros());
    let relu_n = if quick { 1 << 20 } else { largest.min(1 << 26) };
    show(bench_relu(gpu, rng, relu_n)?);
    show(bench_adam(gpu, rng, if quick { 1 << 20 } else { 1 << 24 })?);
    for m in bench_dispatch(gpu)? {
        show(m);
    }
    // Attention at a GPT-small head (T 256, D 64), 8 or 32 heads × batch.
    let heads = if quick || cpu { 8 } else { 32 };
    for m in sequence::bench_attention_products(gpu, rng, (heads, 256, 64))? {
        show(m);
    }
    show(sequence::bench_causal_softmax(
        gpu,
        rng,
        (heads * 256, 256),
    )?);
    show(sequence::bench_layer_norm(gpu, rng, (heads * 256, 768))?);
    // Attention's forward and backward, fused against composed: the baby GPT's shape, and a
    // GPT-2-small head at T 1024 (T 256 on a CPU adapter or --quick).
    let long = if quick || cpu {
        (2, 256, 4, 64)
    } else {
        (8, 1024, 12, 64)
    };
    for shape in [(12, 64, 4, 32), long] {
        for m in sequence::bench_attention_step(gpu, rng, shape)? {
            show(m);
        }
    }
    // On a CPU adapter a b16384 step takes tens of seconds: the suite stops at 1024 there.
    let (length, mlp_batches): (Length, &[usize]) = match (quick, cpu) {
        (true, _) => (Length::Quick, &[64, 256]),
        (false, true) => (Length::Short, &[64, 256, 1024]),
        (false, false) => (Length::Full, &[64, 256, 1024, 4096, 16384]),
    };
    for &b in mlp_batches {
        mlp_bench(gpu, rng, (b, comm), length, show)?;
    }
    // The CNN of examples/cnn.rs: its convolutions beside matmuls of the same FLOPs, and its
    // whole training step.
    let conv_batches: &[usize] = if quick { &[64] } else { &[64, 256] };
    for &b in conv_batches {
        for m in image::bench_conv(gpu, rng, b)? {
            show(m);
        }
    }
    for &b in conv_batches {
        let graph = crate::nn::models::mnist_cnn(false)?;
        for m in bench_training_step(
            gpu,
            rng,
            ["cnn-step", "cnn-step-fit"],
            graph,
            (b, comm),
            length,
        )? {
            show(m);
        }
    }

    Ok(())
}

/// How long a training-step benchmark runs.
#[derive(Clone, Copy)]
enum Length {
    /// `--quick` (CI): 2 warm-up steps, then about 3 s of steps (at least 3), and fit over
    /// 8-batch epochs, whose end-of-epoch waits then show in its rate.
    Quick,
    /// A CPU adapter: about 3 s of timed steps (at least 10).
    Short,
    /// About 20 s of timed steps (at least 10).
    Full,
}

/// The mlp-bench step at one batch size, through `run_steps` and `fit`.
fn mlp_bench(
    gpu: &Gpu,
    rng: &mut StdRng,
    ranks: (usize, &Arc<dyn Communicator>),
    length: Length,
    show: &mut dyn FnMut(Measurement),
) -> Result<()> {
    let mlp = Sequential::mlp(784, &[1024, 1024], 10, Activation::Relu, 0.0, false);
    let graph = mlp.build(Loss::CrossEntropy)?;
    for m in bench_training_step(
        gpu,
        rng,
        ["mlp-bench", "mlp-bench-fit"],
        graph,
        ranks,
        length,
    )? {
        show(m);
    }
    Ok(())
}

/// BENCH.md's mlp-bench: 784 → 1024 → ReLU → 1024 → ReLU → 10, cross-entropy, Adam, 64
/// resident batches (fewer when 64 would not fit one binding), 10 warm-up steps, then ≥ 200
/// timed steps (fewer when a step takes over 10 ms), wall clock from the first submit to the
/// last loss read back; shorter by `Length` on CPU adapters and in quick mode. Timed steps
/// that take over a second in all come in chunks of about a second, alternating with fit's,
/// and each rate sums its chunks' wall clock.
///
/// Training steps per second of `graph` (one f32 input of 784 features, 10 classes) with Adam
/// on device-resident random data, two ways: `run_steps` (the benchmark's loop, one loss
/// read at the end) and `fit_epoch` over shuffled epochs with every step's loss read back
/// (the loop users train with), as `names`. Data-parallel over `comm`'s ranks (`batch` rows
/// each) when there are several, with the share of the step spent averaging gradients.
fn bench_training_step(
    gpu: &Gpu,
    rng: &mut StdRng,
    names: [&'static str; 2],
    graph: crate::graph::Graph,
    (batch, comm): (usize, &Arc<dyn Communicator>),
    length: Length,
) -> Result<Vec<Measurement>> {
    // 64 resident batches (8 in quick mode) where one binding holds them: fit's epochs then
    // run 64 steps before the one wait at each epoch's end (a real dataset's epochs are longer
    // still; with 8-step epochs that wait cost 7-17% of fit's rate, on lavapipe and an H200).
    let (most, warm_steps, budget, fewest) = match length {
        Length::Quick => (8, 2, 3.0, 3),
        Length::Short => (64, 9, 3.0, 10),
        Length::Full => (64, 9, 20.0, 10),
    };
    let row_bytes = 784 * 4;
    let resident = (gpu.max_binding_bytes() as usize / (batch * row_bytes)).clamp(1, most);
    let rows = resident * batch;
    let x: Vec<f32> = (0..rows * 784)
        .map(|_| rng.random_range(0.0..1.0))
        .collect();
    let labels: Vec<u32> = (0..rows).map(|_| rng.random_range(0..10)).collect();
    let data = DeviceDataset::upload(gpu, &Dataset::classification(x, 784, labels)?)?;
    let weights = Weights::init(gpu, &graph, 0)?;
    let config = TrainConfig {
        optimizer: Optimizer::adam(1e-3),
        batch_size: batch,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(gpu, graph, weights, config)?;
    trainer.set_communicator(Arc::clone(comm))?;
    let ranks = comm.size();
    let start = Instant::now();
    trainer.run_steps(&data, batch, 1)?;
    let first_step = start.elapsed().as_secs_f64();
    let warm = Instant::now();
    trainer.run_steps(&data, batch, warm_steps)?;
    let per_step = warm.elapsed().as_secs_f64() / warm_steps as f64;
    let steps = if per_step > 0.01 {
        ((budget / per_step) as usize).clamp(fewest, 200)
    } else {
        200
    };
    // The same number of steps through fit, after one warm epoch. The two alternate in
    // chunks of about a second, so that an adapter whose speed drifts (a CPU shared with other
    // work: lavapipe's rate swings 2× minute to minute) times both under the same conditions;
    // fit walks shuffled epochs in order as a training loop does, reading every loss.
    trainer.fit_epoch(&data, 0, &mut |_| {})?;
    let per_epoch = trainer.epoch_batches(rows).len();
    let chunk = ((1.0 / per_step) as usize).clamp(1, steps);
    // Data-parallel ranks must take the same steps: rank 0's timing decides for all.
    let steps = comm.all_gather_u64(steps as u64)?[0] as usize;
    let chunk = comm.all_gather_u64(chunk as u64)?[0] as usize;
    let before = trainer.averaging_time();
    let (mut run_seconds, mut fit_seconds) = (0.0, 0.0);
    let (mut epoch, mut next) = (1, 0);
    let mut done = 0;
    while done < steps {
        let n = chunk.min(steps - done);
        let timed = Instant::now();
        trainer.run_steps(&data, batch, n)?;
        run_seconds += timed.elapsed().as_secs_f64();
        let timed = Instant::now();
        let mut left = n;
        while left > 0 {
            let take = left.min(per_epoch - next);
            trainer.fit_batches(&data, epoch, next..next + take, &mut |_| {})?;
            (left, next) = (left - take, next + take);
            if next == per_epoch {
                (epoch, next) = (epoch + 1, 0);
            }
        }
        fit_seconds += timed.elapsed().as_secs_f64();
        done += n;
    }
    let steps_per_second = steps as f64 / run_seconds;
    let fit_per_second = steps as f64 / fit_seconds;
    let after = trainer.averaging_time();
    let (copies, collectives) = (
        (after.copies - before.copies) / (2 * steps) as f64,
        (after.collectives - before.collectives) / (2 * steps) as f64,
    );
    let [run_name, fit_name] = names;
    let per_rank = match ranks {
        1 => String::new(),
        ranks => format!(" per rank × {ranks} ranks"),
    };
    let mut measurements = vec![
        Measurement {
            name: run_name,
            params: format!("b{batch}{per_rank} ({steps} steps, first {first_step:.2}s)"),
            figure: steps_per_second,
            unit: "steps/s",
            clock: Clock::Wall,
            extra: Some((steps_per_second * (batch * ranks) as f64, "samples/s")),
        },
        Measurement {
            name: fit_name,
            params: format!(
                "b{batch}{per_rank} ({steps} steps in shuffled epochs, every loss read)"
            ),
            figure: fit_per_second,
            unit: "steps/s",
            clock: Clock::Wall,
            extra: Some((fit_per_second / steps_per_second, "× run_steps")),
        },
    ];
    if ranks > 1 {
        let grads = trainer.weights().grads.len();
        measurements.push(bench_allreduce(comm, grads)?);
        let step_seconds = 1.0 / steps_per_second;
        for (name, what, seconds) in [
            ("gradient-allreduce", "all-to-all + all-gather", collectives),
            ("gradient-copies", "read back and written again", copies),
        ] {
            measurements.push(Measurement {
                name,
                params: format!("b{batch}{per_rank}: {grads} f32s, {what}"),
                figure: 100.0 * seconds / step_seconds,
                unit: "% of step",
                clock: Clock::Wall,
                extra: Some((1e3 * seconds, "ms per step")),
            });
        }
    }
    Ok(measurements)
}

/// [`Communicator::mean`] of `len` f32s alone, the ranks in step (an all-gather first): the
/// median of 10 after 2 warm-up runs, as bytes averaged per second. Inside a training step the
/// same collective also waits for the slowest rank's backward pass.
fn bench_allreduce(comm: &Arc<dyn Communicator>, len: usize) -> Result<Measurement> {
    let mut values = vec![1.0f32; len];
    let mut times = vec![];
    for run in 0..12 {
        comm.all_gather_u64(0)?;
        let start = Instant::now();
        comm.mean(&mut values)?;
        if run >= 2 {
            times.push(start.elapsed().as_secs_f64());
        }
    }
    let median = median(&mut times);
    Ok(Measurement {
        name: "allreduce",
        params: format!("{len} f32s over {} ranks, ranks in step", comm.size()),
        figure: (4 * len) as f64 / median / 1e9,
        unit: "GB/s",
        clock: Clock::Wall,
        extra: Some((1e3 * median, "ms")),
    })
}

/// Prints each dispatch of one training step of `model`, timed alone (timestamps where the
/// adapter has them), and their sum.
fn profile_step(gpu: &Gpu, model: ProfiledModel, batch: usize) -> Result<()> {
    if batch == 0 {
        return Err(Error::InvalidArgument(
            "--profile needs a batch of at least 1".into(),
        ));
    }
    // The widest activation must fit a binding: checked before any host allocation, so a
    // huge batch is an error, not an abort.
    let (graph, widest) = match model {
        ProfiledModel::Mlp => (
            Sequential::mlp(784, &[1024, 1024], 10, Activation::Relu, 0.0, false)
                .build(Loss::CrossEntropy)?,
            1024,
        ),
        ProfiledModel::Cnn => (crate::nn::models::mnist_cnn(false)?, 64 * 24 * 24),
        ProfiledModel::Gpt => {
            let config = crate::nn::models::GptConfig::baby(78);
            (crate::nn::models::gpt(config)?, 4 * 64 * 128)
        }
    };
    gpu.check_size(
        &format!("a batch of {batch} samples of the {model:?} step"),
        (batch as u64).saturating_mul(widest * 4),
    )?;
    let config = TrainConfig {
        optimizer: Optimizer::adam(1e-3),
        batch_size: batch,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::for_graph(gpu, graph, config)?;
    if model == ProfiledModel::Gpt {
        let tokens: Vec<u32> = (0..batch * 64).map(|i| (i * 7 % 78) as u32).collect();
        let next: Vec<f32> = tokens.iter().map(|&t| ((t + 1) % 78) as f32).collect();
        trainer.train_inputs(&[crate::graph::Feed::U32(&tokens)], &next)?;
    } else {
        let x: Vec<f32> = (0..batch * 784).map(|i| (i % 255) as f32 / 255.0).collect();
        let y: Vec<f32> = (0..batch).map(|i| (i % 10) as f32).collect();
        trainer.train_batch(&x, &y)?;
    }
    let mut rows: Vec<(String, f64)> = vec![];
    let (plan, optimizer) = trainer.step_dispatches(batch)?;
    for (i, dispatch) in plan.dispatches().iter().enumerate() {
        let (seconds, _) = time_pass(gpu, Warmup::Clocks(1), 5, &|pass| dispatch.record(pass, 0))?;
        rows.push((format!("{i:>2} {}", dispatch.label()), seconds));
    }
    let (seconds, _) = time_pass(gpu, Warmup::Clocks(1), 5, &|pass| optimizer.record(pass, 0))?;
    rows.push(("optimizer update".into(), seconds));
    let total: f64 = rows.iter().map(|r| r.1).sum();
    // The same dispatches back to back in one pass: what the sum leaves out (barriers, cold
    // caches between kernels) is the difference.
    let (together, _) = time_pass(gpu, Warmup::Clocks(1), 5, &|pass| {
        plan.record(pass, 0);
        optimizer.record(pass, 0);
    })?;
    crate::train::say(format_args!(
        "{model:?} training step at batch {batch}, each dispatch timed alone:"
    ));
    for (label, seconds) in &rows {
        crate::train::say(format_args!(
            "  {label:<28} {:>10.1} µs  {:>5.1}%",
            seconds * 1e6,
            100.0 * seconds / total
        ));
    }
    crate::train::say(format_args!(
        "  {:<28} {:>10.1} µs  ({:.1} steps/s if nothing else costs)",
        "sum",
        total * 1e6,
        1.0 / total
    ));
    crate::train::say(format_args!(
        "  {:<28} {:>10.1} µs  ({:.1} steps/s)",
        "all in one pass",
        together * 1e6,
        1.0 / together
    ));
    Ok(())
}
