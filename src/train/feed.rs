//! How batches reach a compiled plan: gathers from a resident dataset, host staging for a
//! streamed one, the augmentation shift, and the recording of a submission's steps.

use super::*;
use crate::data::input_fits;
use crate::graph::DType;
use crate::kernels::random::{Affine, random_affine};

/// How one batch reaches a plan's input and target.
#[derive(Debug)]
pub(super) struct Gathered {
    /// Gathers from a resident dataset, then the augmentation shift; empty for a streamed
    /// dataset without augmentation.
    pub(super) dispatches: Vec<Dispatch>,
    /// Where the batch's features land (the plan's input, or the shift's source).
    pub(super) landing: Tensor,
    /// The plan's target, as `[batch, target columns]`.
    pub(super) target: Tensor,
}

impl Trainer {
    /// Prepares what fills the plan's input and target for one batch: for a resident dataset
    /// the gathers, for a streamed one nothing on the GPU (the host copies the batch in); then
    /// the image shift when augmenting. Created once per (dataset, batch offset, size, mode).
    pub(super) fn gather_dispatches(
        &mut self,
        data: &DeviceDataset,
        offset: usize,
        batch: usize,
        mode: Mode,
    ) -> Result<()> {
        let key = (data.id, offset, batch, mode);
        if self.gathers.contains_key(&key) {
            return Ok(());
        }
        // A label past the model's classes would index past its logits: a NaN loss at best.
        if let Some(classes) = self.classes()
            && data.target_cols == 0
            && data.classes > classes
        {
            return Err(Error::InvalidArgument(format!(
                "the data's labels go up to {}, but the model has {classes} classes (labels 0..{})",
                data.classes - 1,
                classes - 1
            )));
        }
        // The data's width against the model's input, before any plan compiles.
        match self.graph.inputs()[..] {
            [(_, dims, DType::F32)] if input_fits(dims, data.cols, data.image) => {}
            ref inputs => {
                return Err(Error::InvalidArgument(format!(
                    "a dataset of {} columns{} feeds a graph with one f32 input of as many features (of that image size if it is [C, H, W]); this graph's inputs are {inputs:?} (use Trainer::train_inputs)",
                    data.cols,
                    data.image
                        .map_or(String::new(), |(h, w)| format!(" ({h}×{w} images)")),
                )));
            }
        }
        self.plan(batch, mode)?;
        let plan = &self.plans[&(batch, mode)];
        let gpu = &self.gpu;
        let target = plan.target().reshape(&[batch, data.target_cols.max(1)])?;
        let affine = Affine {
            degrees: self.config.augment_degrees,
            shift: self.config.augment_shift,
            scale: self.config.augment_scale,
        };
        let shift = match data.image {
            _ if mode != Mode::Train || affine == Affine::default() => None,
            Some(image) => Some((affine, image)),
            // Rows without an image size (a CSV of pixels) would train unaugmented, silently.
            None => {
                return Err(Error::InvalidArgument(format!(
                    "augmentation ({affine:?}) needs image rows: this dataset of {} columns has no image size (Dataset::image)",
                    data.cols
                )));
            }
        };
        // With a shift, batches land in a scratch tensor and the shift writes the input. Rows
        // are gathered flat, whatever shape the input has ([B, 784] or [B, 1, 28, 28]).
        let landing = match shift {
            Some(_) => match self.scratch.get(&batch) {
                Some(t) => t.clone(),
                None => {
                    let t = gpu.uninit(&[batch, data.cols])?;
                    self.scratch.insert(batch, t.clone());
                    t
                }
            },
            None => plan.input().reshape(&[batch, data.cols])?,
        };
        let mut dispatches = vec![];
        if let Storage::Resident {
            format,
            features,
            targets,
            order,
        } = &data.storage
        {
            dispatches.push(gather_rows(
                gpu, *format, data.rows, features, order, offset, &landing,
            )?);
            dispatches.push(gather_rows(
                gpu,
                RowFormat::F32,
                data.rows,
                targets,
                order,
                offset,
                &target,
            )?);
        }
        if let Some((affine, image)) = shift {
            let input = plan.input();
            dispatches.push(if affine.degrees == 0.0 && affine.scale == 0.0 {
                random_shift(
                    gpu,
                    image,
                    affine.shift,
                    0x5817,
                    &self.step_ring,
                    &landing,
                    input,
                )?
            } else {
                random_affine(gpu, image, affine, 0x5817, &self.step_ring, &landing, input)?
            });
        }
        self.gathers.insert(
            key,
            Gathered {
                dispatches,
                landing,
                target,
            },
        );
        Ok(())
    }

    /// The dispatch that copies a `batch`-row training step's loss into its ring slot.
    pub(super) fn prepare_loss_copy(&mut self, batch: usize) -> Result<()> {
        if !self.loss_copies.contains_key(&batch) {
            let loss = self.plans[&(batch, Mode::Train)].loss();
            let copy = copy_to_step_slot(&self.gpu, loss, &self.loss_ring, &self.step_ring)?;
            self.loss_copies.insert(batch, copy);
        }
        Ok(())
    }

    /// Steps per submission for `data`: streamed batches each need a staging slot, so their
    /// submissions are capped at 64 MiB of staged data.
    pub(super) fn steps_per_submit(&self, data: &DeviceDataset) -> usize {
        let per_submit = self.config.steps_per_submit.max(1);
        if !data.is_streamed() {
            return per_submit;
        }
        let slot_bytes = 4 * self.config.batch_size * (data.cols + data.target_cols.max(1));
        per_submit.min((64 << 20) / slot_bytes.max(1)).max(1)
    }

    /// Records one training step per `(offset, batch)` of `data`'s current order into an
    /// encoder for the caller to submit (with the losses' read, when it reads them), each
    /// step's loss copied into slot j of the loss ring. Data-parallel steps, which wait for
    /// the other ranks, are submitted at once and leave the encoder empty.
    ///
    /// A streamed dataset's batches come with their staging tensors, which the caller keeps
    /// until it has submitted: dropped before, the pool could lend their buffers to a queued
    /// write that would land ahead of the copies reading them.
    pub(super) fn record_steps(
        &mut self,
        data: &DeviceDataset,
        batches: &[(usize, usize)],
    ) -> Result<(wgpu::CommandEncoder, Option<Staged>)> {
        if self.comm.size() > 1 && data.is_streamed() {
            return Err(Error::InvalidArgument(
                "data-parallel training needs the dataset resident on the GPU; this one is \
                 streamed (larger than a GPU buffer)"
                    .into(),
            ));
        }
        for &(offset, batch) in batches {
            self.gather_dispatches(data, offset, batch, Mode::Train)?;
            self.prepare_loss_copy(batch)?;
        }
        if !data.is_streamed() {
            return Ok((self.record_chunk(data.id, batches)?, None));
        }
        // Streamed batches: gathered here, staged one slot per step, copied in per step, so
        // each step has a pass.
        self.write_chunk_params(batches.len());
        let staged = self.stage_batches(data, batches)?;
        let (x, y, slot) = &staged;
        let mut encoder = self
            .gpu
            .device()
            .create_command_encoder(&Default::default());
        for (j, &(offset, batch)) in batches.iter().enumerate() {
            let gathered = &self.gathers[&(data.id, offset, batch, Mode::Train)];
            // Slot j of a staging tensor (`width` floats per row) into `dst`.
            let mut copy_in = |src: &Tensor, width: usize, dst: &Tensor| {
                let at = (j * slot * width * 4) as u64;
                encoder.copy_buffer_to_buffer(
                    src.buffer(),
                    src.byte_offset() + at,
                    dst.buffer(),
                    dst.byte_offset(),
                    dst.byte_len(),
                );
            };
            copy_in(x, data.cols, &gathered.landing);
            copy_in(y, data.target_cols.max(1), &gathered.target);
            let mut pass = encoder.begin_compute_pass(&Default::default());
            self.record_step(&mut pass, data.id, j, (offset, batch));
        }
        self.step += batches.len() as u64;
        Ok((encoder, Some(staged)))
    }

    /// Records a chunk of steps whose batches `source`'s prepared gathers fill (a resident
    /// dataset's or a token stream's) into one compute pass of a new encoder, each step's
    /// parameters written into its slot first. Data-parallel steps, which wait for the other
    /// ranks, are submitted at once and leave the encoder empty.
    pub(super) fn record_chunk(
        &mut self,
        source: usize,
        batches: &[(usize, usize)],
    ) -> Result<wgpu::CommandEncoder> {
        self.write_chunk_params(batches.len());
        let mut encoder = self
            .gpu
            .device()
            .create_command_encoder(&Default::default());
        if self.comm.size() > 1 {
            for (j, &batch) in batches.iter().enumerate() {
                self.averaged_step(j, source, batch)?;
            }
            return Ok(encoder);
        }
        let mut pass = encoder.begin_compute_pass(&Default::default());
        for (j, &batch) in batches.iter().enumerate() {
            self.record_step(&mut pass, source, j, batch);
        }
        drop(pass);
        self.step += batches.len() as u64;
        Ok(encoder)
    }

    /// Writes the parameters of the next `steps` steps into slots 0.. of the step ring.
    fn write_chunk_params(&self, steps: usize) {
        let first = self.step + 1;
        for j in 0..steps {
            self.write_step_params(j, first + j as u64);
        }
    }

    /// Submits `encoder`, a chunk of `steps` training steps, with the read of their losses.
    pub(super) fn submit_reading_losses(
        &self,
        encoder: wgpu::CommandEncoder,
        steps: usize,
    ) -> Result<PendingRead> {
        self.submit_reading(encoder, &[(self.loss_ring.buffer(), 0, 4 * steps as u64)])
    }

    /// One data-parallel step in slot `j` of the step ring (its params written): forward and
    /// backward in one submission, the gradients averaged over the ranks on the host (wgpu
    /// cannot hand a buffer to MPI while the GPU works on), then the update and the loss copy
    /// in a second. Every `weight_check_steps`th step compares the ranks' weights.
    pub(super) fn averaged_step(
        &mut self,
        j: usize,
        source: usize,
        (offset, batch): (usize, usize),
    ) -> Result<()> {
        self.gpu
            .run_pass(|pass| self.record_gradients(pass, source, j, (offset, batch)))?;
        self.average_gradients()?;
        self.gpu
            .run_pass(|pass| self.record_update(pass, j, batch))?;
        self.step += 1;
        if self.step.is_multiple_of(self.weight_check_steps) {
            self.check_same_weights()?;
        }
        Ok(())
    }

    /// Replaces the gradients by their mean over the ranks (the time goes into
    /// `averaging`). Native only: a browser has one rank.
    pub(super) fn average_gradients(&mut self) -> Result<()> {
        #[cfg(target_arch = "wasm32")]
        return Err(Error::InvalidArgument(
            "data-parallel training runs natively only".into(),
        ));
        #[cfg(not(target_arch = "wasm32"))]
        {
            // Timed from the gradients' completion: the wait is the backward pass's time.
            self.gpu.wait()?;
            let started = std::time::Instant::now();
            let mut grads = self.gpu.read(&self.weights.grads)?;
            let read = started.elapsed();
            self.comm.mean(&mut grads)?;
            let averaged = started.elapsed();
            self.gpu.write(&self.weights.grads, &grads)?;
            self.averaging.copies += (read + started.elapsed() - averaged).as_secs_f64();
            self.averaging.collectives += (averaged - read).as_secs_f64();
            Ok(())
        }
    }

    /// Fails unless every rank holds the same weights, bit for bit.
    pub(super) fn check_same_weights(&self) -> Result<()> {
        #[cfg(target_arch = "wasm32")]
        return Ok(());
        #[cfg(not(target_arch = "wasm32"))]
        {
            let params = self.gpu.read(&self.weights.params)?;
            crate::dist::expect_same_weights(&*self.comm, crate::dist::checksum(&params), self.step)
        }
    }

    /// Records step `j` of a submission: its batch's gathers from source `source` (a dataset
    /// or token stream id), the plan, the update, and the copy of its loss into slot `j` of
    /// the loss ring.
    pub(super) fn record_step(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        source: usize,
        j: usize,
        (offset, batch): (usize, usize),
    ) {
        self.record_gradients(pass, source, j, (offset, batch));
        self.record_update(pass, j, batch);
    }

    /// The first half of [`Trainer::record_step`]: the gathers and the plan (forward and
    /// backward), which leave the step's gradients.
    fn record_gradients(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        source: usize,
        j: usize,
        (offset, batch): (usize, usize),
    ) {
        let slot = j as u32;
        for d in &self.gathers[&(source, offset, batch, Mode::Train)].dispatches {
            d.record(pass, slot);
        }
        self.plans[&(batch, Mode::Train)].record(pass, slot);
    }

    /// The second half of [`Trainer::record_step`]: the update and the loss copy.
    fn record_update(&self, pass: &mut wgpu::ComputePass<'_>, j: usize, batch: usize) {
        let slot = j as u32;
        self.optimizer.record(pass, slot);
        self.loss_copies[&batch].record(pass, slot);
    }

    /// Gathers `batches` of a streamed dataset on the host into staging tensors, one slot of
    /// the largest batch's size per step; returns them and that slot size in rows.
    fn stage_batches(
        &mut self,
        data: &DeviceDataset,
        batches: &[(usize, usize)],
    ) -> Result<Staged> {
        let (mut xs, mut ys) = (vec![], vec![]);
        let slot = batches.iter().map(|&(_, b)| b).max().unwrap_or(1);
        for &(offset, batch) in batches {
            let (x, y) = data.host_batch(offset, batch)?;
            // Pad each slot to the largest batch so slot j starts at j × slot size.
            xs.extend(&x);
            xs.resize(xs.len() + (slot - batch) * data.cols, 0.0);
            ys.extend(&y);
            ys.resize(ys.len() + (slot - batch) * data.target_cols.max(1), 0.0);
        }
        let x = self.gpu.tensor(&xs, &[xs.len()])?;
        let y = self.gpu.tensor(&ys, &[ys.len()])?;
        Ok((x, y, slot))
    }
}

/// A submission's streamed batches on the GPU: features and targets, one slot of this many
/// rows per step.
pub(super) type Staged = (Tensor, Tensor, usize);
