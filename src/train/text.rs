//! Training a language model on a token stream: each step's batch is `batch_size` random
//! blocks drawn on the GPU from (seed, step), so the loop never waits for the host, and a run
//! resumed at step t draws exactly the blocks the uninterrupted run would have.

use rand::distr::weighted::WeightedIndex;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::*;
use crate::data::DeviceTokens;
use crate::graph::DType;
use crate::kernels::text::{EVAL_SALT, TRAIN_SALT, sample_blocks};

impl Trainer {
    /// `steps` training steps on random blocks of `tokens`, for a graph whose one input is
    /// `[block]` u32 token ids and whose output is `[block, vocab]` logits under
    /// cross-entropy. `on_step` sees each step's loss as it arrives; returns their mean.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn fit_token_steps(
        &mut self,
        tokens: &DeviceTokens,
        steps: usize,
        on_step: &mut dyn FnMut(&StepLog),
    ) -> Result<f64> {
        pollster::block_on(self.fit_token_steps_async(tokens, steps, on_step))
    }

    /// [`Trainer::fit_token_steps`] as a future.
    pub async fn fit_token_steps_async(
        &mut self,
        tokens: &DeviceTokens,
        steps: usize,
        on_step: &mut dyn FnMut(&StepLog),
    ) -> Result<f64> {
        if steps == 0 {
            return Err(Error::InvalidArgument(
                "fit_token_steps of 0 steps has no loss to return".into(),
            ));
        }
        let batch = self.config.batch_size;
        self.prepare_blocks(tokens, batch, Mode::Train)?;
        self.prepare_loss_copy(batch)?;
        let per_submit = self.config.steps_per_submit.max(1);
        let chunks: Vec<Vec<usize>> = submission_sizes(steps, per_submit)
            .into_iter()
            .map(|size| vec![batch; size])
            .collect();
        let mut submit = |trainer: &mut Self, i: usize| {
            let count = chunks[i].len();
            let encoder = trainer.record_chunk(tokens.id, &vec![(0, batch); count])?;
            trainer.submit_reading_losses(encoder, count)
        };
        let total = self.pipelined(0, &chunks, &mut submit, on_step).await?;
        Ok(total / (steps * batch) as f64)
    }

    /// The mean loss (per token, nats under cross-entropy) of `blocks` random blocks of
    /// `tokens` in eval mode. The blocks depend on `seed` alone: every call with the same
    /// seed scores the same text, so estimates taken during a run are comparable.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn evaluate_token_blocks(
        &mut self,
        tokens: &DeviceTokens,
        blocks: usize,
        seed: u64,
    ) -> Result<f64> {
        pollster::block_on(self.evaluate_token_blocks_async(tokens, blocks, seed))
    }

    /// [`Trainer::evaluate_token_blocks`] as a future.
    pub async fn evaluate_token_blocks_async(
        &mut self,
        tokens: &DeviceTokens,
        blocks: usize,
        seed: u64,
    ) -> Result<f64> {
        if blocks == 0 {
            return Err(Error::InvalidArgument(
                "a loss estimate needs at least one block".into(),
            ));
        }
        let bs = self.config.batch_size;
        let batches: Vec<usize> = (0..blocks)
            .step_by(bs)
            .map(|start| bs.min(blocks - start))
            .collect();
        let mut submit = |trainer: &mut Self, i: usize| {
            let batch = batches[i];
            trainer.prepare_blocks(tokens, batch, Mode::Eval)?;
            // The sampler keys on (row, step, seed): batch i is "step" i + 1 of `seed`. The
            // queued write lands after the batches before this one have run.
            let params = StepParams {
                step: i as u32 + 1,
                seed: seed as u32,
                ..Default::default()
            };
            trainer
                .gpu
                .queue()
                .write_buffer(&trainer.step_ring, 0, bytemuck::bytes_of(&params));
            let encoder = trainer.record_eval(tokens.id, (0, batch));
            let loss = trainer.plans[&(batch, Mode::Eval)].loss().byte_range();
            trainer.submit_reading(encoder, &[loss])
        };
        let mut total = 0.0;
        let mut land = |trainer: &mut Self, i: usize, bytes: Vec<u8>| {
            let loss = bytemuck::pod_read_unaligned::<f32>(&bytes[..4]);
            if !loss.is_finite() {
                return Err(Error::NonFinite {
                    what: "validation loss".into(),
                    step: trainer.step,
                });
            }
            total += f64::from(loss) * batches[i] as f64;
            Ok(())
        };
        self.in_flight(batches.len(), &mut submit, &mut land)
            .await?;
        Ok(total / blocks as f64)
    }

    /// Compiles the plan for `batch` blocks and the sampler that fills its input and target.
    fn prepare_blocks(&mut self, tokens: &DeviceTokens, batch: usize, mode: Mode) -> Result<()> {
        let key = (tokens.id, 0, batch, mode);
        if self.gathers.contains_key(&key) {
            return Ok(());
        }
        let (block, vocab) = self.language_model_sizes()?;
        if self.graph.loss() != Some(Loss::CrossEntropy) || vocab != tokens.vocab_size {
            return Err(Error::InvalidArgument(format!(
                "a token stream of a {}-token vocabulary needs [{block}, {}] logits under cross-entropy; this graph has [{block}, {vocab}] under {:?}",
                tokens.vocab_size,
                tokens.vocab_size,
                self.graph.loss()
            )));
        }
        if tokens.len() <= block {
            return Err(Error::InvalidArgument(format!(
                "a text of {} tokens is shorter than one block of {block} tokens and its next one",
                tokens.len()
            )));
        }
        self.plan(batch, mode)?;
        let plan = &self.plans[&(batch, mode)];
        let salt = match mode {
            Mode::Train => TRAIN_SALT,
            Mode::Eval => EVAL_SALT,
        };
        let landing = plan.input().clone();
        let target = plan.target().clone();
        let sampler = sample_blocks(
            &self.gpu,
            salt,
            &self.step_ring,
            &tokens.tokens,
            &landing,
            &target,
        )?;
        self.gathers.insert(
            key,
            Gathered {
                dispatches: vec![sampler],
                landing,
                target,
            },
        );
        Ok(())
    }
}

/// How [`Trainer::generate`] picks each next token, as nanoGPT's `generate`: logits divided
/// by `temperature`, cut to the `top_k` largest, softmax, one draw from a generator seeded
/// with `seed`. A temperature of 0 takes the most likely token.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sampling {
    /// Divides the logits (0: always the most likely token).
    pub temperature: f32,
    /// Draws only among this many most likely tokens (`None`: all).
    pub top_k: Option<usize>,
    /// Seeds the draws, so a generation repeats exactly.
    pub seed: u64,
}

impl Default for Sampling {
    fn default() -> Self {
        Self {
            temperature: 1.0,
            top_k: None,
            seed: 0,
        }
    }
}

impl Trainer {
    /// The `[block]` u32 input and `[block, vocab]` output of a language model, or an error
    /// saying this graph is not one.
    pub(super) fn language_model_sizes(&self) -> Result<(usize, usize)> {
        let block = match self.graph.inputs()[..] {
            [(_, &[block], DType::U32)] => block,
            ref inputs => {
                return Err(Error::InvalidArgument(format!(
                    "a language model has one [block] u32 input; this graph's inputs are {inputs:?}"
                )));
            }
        };
        let vocab = match self.graph.output_dims() {
            Some(&[t, vocab]) if t == block => vocab,
            dims => {
                return Err(Error::InvalidArgument(format!(
                    "a language model has [{block}, vocab] logits; this graph's output is {dims:?}"
                )));
            }
        };
        if let [Some(rows)] = self.graph.index_limits()[..]
            && rows < vocab
        {
            return Err(Error::InvalidArgument(format!(
                "a language model's tokens index its embedding: this one has {rows} rows for a vocabulary of {vocab}"
            )));
        }
        Ok((block, vocab))
    }

    /// A language model's logits (`[tokens.len(), vocab]`, eval mode) for up to one block of
    /// tokens. A shorter sequence sits at positions 0.. with the rest zero-filled, which a
    /// causal model's logits at those positions do not see.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn logits(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        pollster::block_on(self.logits_async(tokens))
    }

    /// [`Trainer::logits`] as a future.
    pub async fn logits_async(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        let (block, vocab) = self.language_model_sizes()?;
        if tokens.is_empty() || tokens.len() > block {
            return Err(Error::InvalidArgument(format!(
                "{} tokens for a model of blocks of {block}: give 1 to {block}",
                tokens.len()
            )));
        }
        if let Some(&t) = tokens.iter().find(|&&t| t as usize >= vocab) {
            return Err(Error::InvalidArgument(format!(
                "token {t} is past the model's vocabulary of {vocab}"
            )));
        }
        let mut input = tokens.to_vec();
        input.resize(block, 0);
        self.plan(1, Mode::Eval)?;
        let plan = &self.plans[&(1, Mode::Eval)];
        plan.write_inputs(&self.gpu, &[Feed::U32(&input)])?;
        self.gpu.run_pass(|pass| plan.record(pass, 0))?;
        let mut logits = self.gpu.read_async(plan.output()).await?;
        logits.truncate(tokens.len() * vocab);
        Ok(logits)
    }

    /// `count` tokens continuing `prompt` (at least one token), each drawn from the model's
    /// logits at the last position of the context: the prompt and what was drawn so far,
    /// cropped to the model's last `block` tokens, as nanoGPT's `generate` crops it.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn generate(
        &mut self,
        prompt: &[u32],
        count: usize,
        sampling: Sampling,
    ) -> Result<Vec<u32>> {
        pollster::block_on(self.generate_async(prompt, count, sampling))
    }

    /// [`Trainer::generate`] as a future.
    pub async fn generate_async(
        &mut self,
        prompt: &[u32],
        count: usize,
        sampling: Sampling,
    ) -> Result<Vec<u32>> {
        let (block, vocab) = self.language_model_sizes()?;
        if prompt.is_empty() {
            return Err(Error::InvalidArgument(
                "generation needs a prompt of at least one token".into(),
            ));
        }
        if let Some(&t) = prompt.iter().find(|&&t| t as usize >= vocab) {
            return Err(Error::InvalidArgument(format!(
                "prompt token {t} is past the model's vocabulary of {vocab}"
            )));
        }
        if !(sampling.temperature >= 0.0 && sampling.temperature.is_finite())
            || sampling.top_k == Some(0)
        {
            return Err(Error::InvalidArgument(format!(
                "sampling needs a finite temperature ≥ 0 and top_k ≥ 1: {sampling:?}"
            )));
        }
        let mut rng = StdRng::seed_from_u64(sampling.seed);
        let mut context = prompt.to_vec();
        for _ in 0..count {
            let window = &context[context.len().saturating_sub(block)..];
            let logits = self.logits_async(window).await?;
            let last = &logits[(window.len() - 1) * vocab..];
            context.push(sample(last, sampling, &mut rng)?);
        }
        Ok(context.split_off(prompt.len()))
    }
}

/// One draw from `logits` as [`Sampling`] says.
fn sample(logits: &[f32], sampling: Sampling, rng: &mut StdRng) -> Result<u32> {
    if let Some(i) = logits.iter().position(|l| !l.is_finite()) {
        return Err(Error::NonFinite {
            what: format!("logit {i} while generating"),
            step: 0,
        });
    }
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    if sampling.temperature == 0.0 {
        return Ok(order[0] as u32);
    }
    order.truncate(sampling.top_k.unwrap_or(logits.len()));
    let top = f64::from(logits[order[0]]);
    let weights = order
        .iter()
        .map(|&i| ((f64::from(logits[i]) - top) / f64::from(sampling.temperature)).exp());
    let pick = WeightedIndex::new(weights)
        .map_err(|e| Error::InvalidArgument(format!("sampling weights: {e}")))?;
    Ok(order[rng.sample(&pick)] as u32)
}
