//! A character-level GPT on the bundled Shakespeare, trained by WGSL kernels, with
//! nanoGPT's "baby GPT" recipe as the defaults:
//!
//!     cargo run --release --example gpt                        # 2000 steps
//!     cargo run --release --example gpt -- --iters 200 --save target/gpt.safetensors
//!     wgtrain generate --model target/gpt.safetensors --prompt "ROMEO:" --tokens 500
//!     cargo run --release --example gpt -- --checkpoint target/run.safetensors  # resumable
//!
//! The model is `wgtrain::nn::models::gpt`: 4 layers of 4 heads, width 128, blocks of 64
//! characters, the head tied to the token embedding; AdamW (lr 1e-3, betas 0.9/0.99, weight
//! decay 0.1 on matrices only), 100 warm-up steps then a cosine to 10% of the rate, gradient
//! clipping at norm 1, batches of 12 random blocks drawn on the GPU. Every `--eval-interval`
//! steps it prints the train and validation loss (nats per character, each estimated from
//! the same `--eval-blocks` random blocks every time), and at the end a sample. `--save`
//! writes the model alone, which nanoGPT's `GPT` loads with `load_state_dict`;
//! `--checkpoint` writes everything a run needs to go on (optimizer state, step) at every
//! evaluation, and a run started again with the same file continues from it exactly.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use wgtrain::data::{DeviceTokens, TextCorpus};
use wgtrain::dist::{self, Communicator};
use wgtrain::kernels::attention::MAX_HEAD_DIM;
use wgtrain::nn::models::{GptConfig, gpt, time_attention};
use wgtrain::optim::{Optimizer, ParamGroup, ParamSelect, Schedule};
use wgtrain::train::say;
use wgtrain::train::{Sampling, TrainConfig, Trainer};
use wgtrain::{Gpu, Result};

#[derive(Clone, Copy, Debug, PartialEq, clap::ValueEnum)]
enum Attention {
    Auto,
    Fused,
    Composed,
}

#[derive(Parser)]
struct Args {
    /// A UTF-8 text file: its first 90% trains, the rest validates.
    #[arg(long, default_value = "data/shakespeare/input.txt")]
    data: PathBuf,
    /// Optimizer steps.
    #[arg(long, default_value_t = 2000)]
    iters: usize,
    #[arg(long, default_value_t = 12)]
    batch_size: usize,
    #[arg(long, default_value_t = 64)]
    block: usize,
    #[arg(long, default_value_t = 4)]
    layers: usize,
    #[arg(long, default_value_t = 4)]
    heads: usize,
    #[arg(long, default_value_t = 128)]
    width: usize,
    #[arg(long, default_value_t = 0.0)]
    dropout: f32,
    /// A separate lm_head instead of the token embedding's transpose.
    #[arg(long)]
    untied: bool,
    /// The fused attention kernel, attention composed of batched products and a causal
    /// softmax (the same function), or `auto`: whichever one layer's step runs faster on this
    /// adapter, timed before training.
    #[arg(long, value_enum, default_value_t = Attention::Auto)]
    attention: Attention,
    #[arg(long, default_value_t = 1e-3)]
    lr: f32,
    #[arg(long, default_value_t = 0.1)]
    weight_decay: f32,
    #[arg(long, default_value_t = 100)]
    warmup: u64,
    /// Print train and validation loss every this many steps (and at the end).
    #[arg(long, default_value_t = 250)]
    eval_interval: usize,
    /// Random blocks each loss estimate averages over.
    #[arg(long, default_value_t = 204)]
    eval_blocks: usize,
    /// Characters of the sample printed at the end (0: none).
    #[arg(long, default_value_t = 300)]
    sample: usize,
    #[arg(long, default_value = "ROMEO:")]
    prompt: String,
    /// Write the trained model here (safetensors, nanoGPT's `state_dict`).
    #[arg(long)]
    save: Option<PathBuf>,
    /// Keep the run's state here, written at every evaluation; an existing file resumes.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// Under `mpirun -np N` each process trains as one rank of a data-parallel job (`--batch-size`
/// per rank) and rank 0 alone prints and saves.
fn main() -> ExitCode {
    let args = Args::parse();
    dist::run_as_rank(|comm| run(args, comm))
}

fn run(args: Args, comm: &Arc<dyn Communicator>) -> Result<()> {
    let gpu = Gpu::new()?;
    let info = gpu.adapter_info();
    say(format_args!("adapter: {} ({:?})", info.name, info.backend));
    let corpus = TextCorpus::load(&args.data)?;
    let vocab = corpus.vocabulary.len();
    say(format_args!(
        "data: {} training and {} validation characters, vocabulary {vocab}, from {}",
        corpus.train.len(),
        corpus.val.len(),
        args.data.display()
    ));
    let mut config = GptConfig {
        block: args.block,
        width: args.width,
        heads: args.heads,
        layers: args.layers,
        dropout: args.dropout,
        tie_head: !args.untied,
        fused_attention: args.attention != Attention::Composed,
        ..GptConfig::baby(vocab)
    };
    // The fused kernel takes heads of up to MAX_HEAD_DIM and no attention dropout.
    let fusable = config.dropout == 0.0 && config.width / config.heads.max(1) <= MAX_HEAD_DIM;
    if args.attention == Attention::Auto && fusable {
        let (fused, composed) = time_attention(&gpu, &config, args.batch_size)?;
        config.fused_attention = fused <= composed;
        say(format_args!(
            "attention: one layer's step takes {:.2} ms fused, {:.2} ms composed",
            fused * 1e3,
            composed * 1e3
        ));
    }
    let attention = if config.fused_attention && fusable {
        "fused"
    } else {
        "composed"
    };
    let graph = gpt(config)?;
    let parameters: usize = graph.params().iter().map(|p| p.len()).sum();
    say(format_args!(
        "model: GPT, {} layers × {} heads, width {}, block {}, {:.2} M parameters, {} attention; \
         batch {}, AdamW {:.0e} (decay {} on matrices), {} warm-up steps, cosine to {:.0e}",
        args.layers,
        args.heads,
        args.width,
        args.block,
        parameters as f64 / 1e6,
        attention,
        args.batch_size,
        args.lr,
        args.weight_decay,
        args.warmup,
        args.lr / 10.0
    ));
    let train_config = TrainConfig {
        optimizer: Optimizer::adamw(args.lr)
            .with_betas(0.9, 0.99)
            .with_weight_decay(args.weight_decay),
        param_groups: vec![ParamGroup::new(ParamSelect::RankBelow(2)).with_weight_decay(0.0)],
        schedule: Schedule::Cosine {
            total_steps: args.iters as u64,
            min_lr: f64::from(args.lr) / 10.0,
        },
        warmup_steps: args.warmup,
        clip_norm: Some(1.0),
        batch_size: args.batch_size,
        seed: args.seed,
        ..TrainConfig::default()
    };
    let mut trainer = match &args.checkpoint {
        Some(path) if path.exists() => {
            // The saved graph is kept whole (its attention too); its parameters must be these.
            let trainer = Trainer::load(&gpu, path)?;
            if trainer.graph().params() != graph.params()
                || trainer.vocabulary() != Some(&corpus.vocabulary)
            {
                return Err(wgtrain::Error::InvalidArgument(format!(
                    "{} holds another model or vocabulary than these flags and data make",
                    path.display()
                )));
            }
            say(format_args!(
                "resumed from {} at step {}",
                path.display(),
                trainer.step()
            ));
            trainer
        }
        _ => {
            let mut trainer = Trainer::for_graph(&gpu, graph, train_config)?;
            trainer.set_vocabulary(corpus.vocabulary.clone())?;
            trainer
        }
    };
    // Data-parallel: each rank draws its own blocks, and they average their gradients.
    trainer.set_communicator(Arc::clone(comm))?;
    let writer = comm.rank() == 0;
    let train = DeviceTokens::upload(&gpu, &corpus.train, vocab)?;
    let val = DeviceTokens::upload(&gpu, &corpus.val, vocab)?;

    let report = |trainer: &mut Trainer, seconds: f64| -> Result<()> {
        let train_loss = trainer.evaluate_token_blocks(&train, args.eval_blocks, 1)?;
        let val_loss = trainer.evaluate_token_blocks(&val, args.eval_blocks, 2)?;
        say(format_args!(
            "step {:>5}  train loss {train_loss:.4}  val loss {val_loss:.4}  ({seconds:.0} s)",
            trainer.step()
        ));
        Ok(())
    };
    let started = Instant::now();
    report(&mut trainer, 0.0)?;
    let (mut training_seconds, mut trained_steps) = (0.0, 0);
    while trainer.step() < args.iters as u64 {
        let steps = args
            .eval_interval
            .max(1)
            .min(args.iters - trainer.step() as usize);
        let t = Instant::now();
        trainer.fit_token_steps(&train, steps, &mut |_| {})?;
        training_seconds += t.elapsed().as_secs_f64();
        trained_steps += steps;
        report(&mut trainer, started.elapsed().as_secs_f64())?;
        if let Some(path) = args.checkpoint.as_ref().filter(|_| writer) {
            trainer.save(path)?;
        }
    }
    if trained_steps > 0 {
        let tokens = (trained_steps * args.batch_size * args.block * comm.size()) as f64;
        say(format_args!(
            "training: {:.0} tokens/s ({:.1} ms per step)",
            tokens / training_seconds,
            1e3 * training_seconds / trained_steps as f64
        ));
    }
    if args.sample > 0 {
        let prompt = corpus.vocabulary.encode(&args.prompt)?;
        let sampling = Sampling {
            temperature: 0.8,
            top_k: Some(40),
            seed: args.seed,
        };
        let text = trainer.generate(&prompt, args.sample, sampling)?;
        say(format_args!(
            "\nsample (temperature 0.8, top-k 40):\n{}{}",
            args.prompt,
            corpus.vocabulary.decode(&text)?
        ));
    }
    if let Some(path) = args.save.as_ref().filter(|_| writer) {
        trainer.save_model(path)?;
        say(format_args!("saved {}", path.display()));
    }
    Ok(())
}
