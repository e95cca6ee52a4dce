//! A dataset resident on the device, and the permutation each epoch gathers batches by.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::Result;
use crate::gpu::{Gpu, Tensor};
use crate::kernels::data::RowFormat;

use super::{Dataset, Features};

/// Features and targets uploaded once; each epoch uploads only a permutation.
pub struct DeviceDataset {
    /// Unique per upload: compiled gathers are cached under it.
    pub(crate) id: usize,
    pub rows: usize,
    pub cols: usize,
    pub target_cols: usize,
    pub image: Option<(usize, usize)>,
    pub(crate) format: RowFormat,
    pub(crate) features: Tensor,
    /// Targets as a `[rows, max(1, target_cols)]` f32 matrix, gathered like the features.
    pub(crate) targets: Tensor,
    /// The order of this epoch, `[rows]` u32.
    pub(crate) order: Tensor,
}

impl DeviceDataset {
    pub fn upload(gpu: &Gpu, data: &Dataset) -> Result<Self> {
        let (format, features) = match &data.features {
            Features::F32(v) => (RowFormat::F32, gpu.tensor(v, &[v.len()])?),
            Features::U8 { bytes, scale } => {
                let mut padded = bytes.clone();
                padded.resize(bytes.len().div_ceil(4) * 4, 0);
                let words: Vec<u32> = bytemuck::pod_collect_to_vec(&padded);
                (
                    RowFormat::U8 { scale: *scale },
                    gpu.tensor_u32(&words, &[words.len()])?,
                )
            }
        };
        let identity: Vec<u32> = (0..data.rows as u32).collect();
        static NEXT_ID: AtomicUsize = AtomicUsize::new(0);
        Ok(Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            rows: data.rows,
            cols: data.cols,
            target_cols: data.target_cols,
            image: data.image,
            format,
            features,
            targets: gpu.tensor(&data.targets, &[data.targets.len()])?,
            order: gpu.tensor_u32(&identity, &[data.rows])?,
        })
    }

    /// Sets the order the next pass visits rows in.
    pub fn set_order(&self, gpu: &Gpu, order: &[u32]) -> Result<()> {
        gpu.write_u32(&self.order, order)
    }
}
