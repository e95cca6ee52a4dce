//! A dataset on the device: resident (uploaded once; each epoch uploads only a permutation and
//! batches are gathered on the GPU) when it fits one binding, else streamed (each batch
//! gathered on the host and copied in through a staging ring).

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::error::{Error, Result};
use crate::gpu::{Gpu, Tensor};
use crate::kernels::data::RowFormat;

use super::{Dataset, Features};

/// A dataset the trainer can draw batches from without the host in the loop (resident) or
/// with one host gather and copy per batch (streamed).
#[derive(Debug)]
pub struct DeviceDataset {
    /// Unique per upload: compiled gathers are cached under it.
    pub(crate) id: usize,
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) target_cols: usize,
    /// Largest class label + 1 of a classification set (0 for regression targets): checked
    /// against a model's outputs before any batch reaches the GPU.
    pub(crate) classes: usize,
    pub(crate) image: Option<(usize, usize)>,
    pub(crate) storage: Storage,
    orders: Mutex<Orders>,
}

/// Which standard order is on the GPU, and one drawn ahead of its use.
#[derive(Debug, Default)]
struct Orders {
    /// The standard order last set, so an epoch split into several calls (checkpoints every
    /// few steps) shuffles and uploads its order once; `None` after a caller's own order.
    current: Option<(OrderKey, Shard)>,
    /// The next epoch's order, drawn while the GPU runs this epoch's last steps, so that the
    /// next epoch's first submission waits on an upload only, not on a shuffle.
    drawn: Option<((OrderKey, Shard), Vec<u32>)>,
}

/// Which of several data-parallel ranks reads the order: rank `rank` of `ranks` takes every
/// `ranks`-th row of it from row `rank` on, the order first wrapped round to a multiple of
/// `ranks` rows (PyTorch's `DistributedSampler`), so every rank has as many rows and global
/// batch k is the union of the ranks' batches k.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Shard {
    pub(crate) rank: usize,
    pub(crate) ranks: usize,
}

impl Shard {
    /// A single process: all of the order.
    pub(crate) const WHOLE: Shard = Shard { rank: 0, ranks: 1 };

    /// The rows each rank's part of an order of `rows` rows has.
    pub(crate) fn rows(self, rows: usize) -> usize {
        rows.div_ceil(self.ranks.max(1))
    }

    /// This rank's part of `order`.
    fn take(self, order: &[u32]) -> Vec<u32> {
        (0..self.rows(order.len()))
            .map(|i| order[(i * self.ranks + self.rank) % order.len()])
            .collect()
    }
}

/// The orders the trainer visits rows in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OrderKey {
    Identity,
    /// A permutation drawn from (seed, epoch) alone, so any batch of an epoch can be replayed.
    Shuffled {
        seed: u64,
        epoch: usize,
    },
}

#[derive(Debug)]
pub(crate) enum Storage {
    Resident {
        format: RowFormat,
        features: Tensor,
        /// Targets as a `[rows, max(1, target_cols)]` f32 matrix, gathered like the features.
        targets: Tensor,
        /// The order of this pass, `[rows]` u32.
        order: Tensor,
    },
    Streamed {
        data: Dataset,
        order: Mutex<Vec<u32>>,
    },
}

/// An id no other upload (dataset or token stream) has.
pub(crate) fn next_id() -> usize {
    static NEXT_ID: AtomicUsize = AtomicUsize::new(0);
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

impl DeviceDataset {
    /// Resident when features, targets and order each fit one binding; streamed otherwise.
    pub fn upload(gpu: &Gpu, data: &Dataset) -> Result<Self> {
        data.check()?;
        let feature_bytes = match &data.features {
            Features::F32(v) => 4 * v.len() as u64,
            Features::U8 { bytes, .. } => bytes.len().div_ceil(4) as u64 * 4,
        };
        if feature_bytes.max(4 * data.targets.len() as u64) > gpu.max_binding_bytes() {
            return Self::streamed(data);
        }
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
        let storage = Storage::Resident {
            format,
            features,
            targets: gpu.tensor(&data.targets, &[data.targets.len()])?,
            order: gpu.tensor_u32(&identity, &[data.rows])?,
        };
        Ok(Self::with_storage(data, storage))
    }

    /// Keeps the data on the host and streams batches (for data larger than the device
    /// allows, or to save device memory).
    pub fn streamed(data: &Dataset) -> Result<Self> {
        data.check()?;
        let storage = Storage::Streamed {
            data: data.clone(),
            order: Mutex::new((0..data.rows as u32).collect()),
        };
        Ok(Self::with_storage(data, storage))
    }

    fn with_storage(data: &Dataset, storage: Storage) -> Self {
        Self {
            id: next_id(),
            rows: data.rows,
            cols: data.cols,
            target_cols: data.target_cols,
            classes: data.classes(),
            image: data.image,
            storage,
            orders: Mutex::new(Orders {
                current: Some((OrderKey::Identity, Shard::WHOLE)),
                drawn: None,
            }),
        }
    }

    /// Samples in the set.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Features per sample.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Largest class label + 1 of a classification set; 0 for regression targets.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Whether batches are gathered on the host and copied per step (data larger than one
    /// binding) rather than gathered on the device.
    pub fn is_streamed(&self) -> bool {
        matches!(self.storage, Storage::Streamed { .. })
    }

    /// Sets the order the next pass visits rows in.
    pub fn set_order(&self, gpu: &Gpu, order: &[u32]) -> Result<()> {
        self.write_order(gpu, order)?;
        self.orders()?.current = None;
        Ok(())
    }

    /// Makes `key`'s order (`shard`'s part of it) current, drawing and uploading it only if
    /// it is not already (and drawing it only if [`DeviceDataset::draw_ahead`] has not).
    pub(crate) fn use_order(&self, gpu: &Gpu, key: OrderKey, shard: Shard) -> Result<()> {
        let mut orders = self.orders()?;
        if orders.current == Some((key, shard)) {
            return Ok(());
        }
        let order = match orders.drawn.take() {
            Some((drawn, order)) if drawn == (key, shard) => order,
            _ => draw_order(self.rows, key, shard),
        };
        self.write_order(gpu, &order)?;
        orders.current = Some((key, shard));
        Ok(())
    }

    /// Draws `key`'s order on the host for a later [`DeviceDataset::use_order`], without
    /// touching the GPU's copy: what runs now still reads the current order.
    pub(crate) fn draw_ahead(&self, key: OrderKey, shard: Shard) -> Result<()> {
        let mut orders = self.orders()?;
        let wanted = Some((key, shard));
        if orders.current != wanted && orders.drawn.as_ref().map(|(k, _)| *k) != wanted {
            orders.drawn = Some(((key, shard), draw_order(self.rows, key, shard)));
        }
        Ok(())
    }

    fn orders(&self) -> Result<std::sync::MutexGuard<'_, Orders>> {
        self.orders
            .lock()
            .map_err(|_| Error::InvalidArgument("dataset order poisoned".into()))
    }

    fn write_order(&self, gpu: &Gpu, order: &[u32]) -> Result<()> {
        match &self.storage {
            Storage::Resident { order: tensor, .. } => {
                gpu.write_u32(&tensor.view(0, &[order.len()])?, order)
            }
            Storage::Streamed { order: host, .. } => {
                let mut host = host
                    .lock()
                    .map_err(|_| Error::InvalidArgument("dataset order poisoned".into()))?;
                host.clear();
                host.extend_from_slice(order);
                Ok(())
            }
        }
    }

    /// Features and targets of rows `offset..offset + batch` of the current order, gathered on
    /// the host (streamed datasets only).
    pub(crate) fn host_batch(&self, offset: usize, batch: usize) -> Result<(Vec<f32>, Vec<f32>)> {
        let Storage::Streamed { data, order } = &self.storage else {
            return Err(Error::InvalidArgument(
                "host_batch on a resident dataset".into(),
            ));
        };
        let order = order
            .lock()
            .map_err(|_| Error::InvalidArgument("dataset order poisoned".into()))?;
        let tc = self.target_cols.max(1);
        let mut x = Vec::with_capacity(batch * self.cols);
        let mut y = Vec::with_capacity(batch * tc);
        for &r in &order[offset..offset + batch] {
            let r = r as usize;
            x.extend(data.row(r));
            y.extend_from_slice(&data.targets[r * tc..(r + 1) * tc]);
        }
        Ok((x, y))
    }
}

/// `shard`'s part of `key`'s order of `rows` rows.
fn draw_order(rows: usize, key: OrderKey, shard: Shard) -> Vec<u32> {
    let mut order: Vec<u32> = (0..rows as u32).collect();
    if let OrderKey::Shuffled { seed, epoch } = key {
        order.shuffle(&mut StdRng::seed_from_u64(
            seed ^ (epoch as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
        ));
    }
    if shard != Shard::WHOLE {
        order = shard.take(&order);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::Shard;

    /// Every rank has ceil(rows / ranks) rows; together they cover every row, the first
    /// rows of the order taken again to even them out; and global batch k (the ranks'
    /// batches k) is rows [k·B·ranks, (k + 1)·B·ranks) of the order, as one process with the
    /// ranks' whole batch would see them.
    #[test]
    fn shards_split_an_order_as_distributed_sampler_does() {
        for rows in [1usize, 2, 5, 40, 41] {
            let order: Vec<u32> = (0..rows as u32)
                .map(|i| (i * 7 + 3) % rows as u32)
                .collect();
            for ranks in 1..=4 {
                let shards: Vec<Vec<u32>> = (0..ranks)
                    .map(|rank| Shard { rank, ranks }.take(&order))
                    .collect();
                let per_rank = rows.div_ceil(ranks);
                assert!(shards.iter().all(|s| s.len() == per_rank));
                let batch = 2;
                for k in 0..per_rank.div_ceil(batch) {
                    let mut global: Vec<u32> = shards
                        .iter()
                        .flat_map(|s| s[k * batch..((k + 1) * batch).min(per_rank)].to_vec())
                        .collect();
                    global.sort_unstable();
                    let start = k * batch * ranks;
                    let end = ((k + 1) * batch).min(per_rank) * ranks;
                    let mut want: Vec<u32> = (start..end).map(|i| order[i % rows]).collect();
                    want.sort_unstable();
                    assert_eq!(global, want, "rows {rows}, ranks {ranks}, batch {k}");
                }
            }
        }
    }
}
