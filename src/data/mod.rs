//! Datasets: IDX and CSV readers, standardisation, and upload to the device so batches are
//! gathered on the GPU.

mod csv;
pub(crate) mod device;
mod idx;
mod text;

pub use self::csv::{Standardizer, Task, csv_columns, load_csv, load_csv_features, parse_csv};
pub use device::DeviceDataset;
pub use idx::{
    IdxArray, Split, decode_idx, load_idx_pair, load_mnist, mnist_files, parse_idx, parse_idx_pair,
    read_idx,
};
pub use text::{DeviceTokens, TextCorpus, Vocabulary};

use crate::error::{Error, Result};

/// Feature storage on the host.
#[derive(Clone, Debug, PartialEq)]
pub enum Features {
    /// Values as they are.
    F32(Vec<f32>),
    /// Bytes (images), multiplied by `scale` when gathered on the device.
    U8 {
        /// Row-major bytes.
        bytes: Vec<u8>,
        /// Factor applied to each byte (1/255 maps pixels to [0, 1]).
        scale: f32,
    },
}

/// Whether a model input of per-sample `dims` reads rows of `cols` features (images of
/// `image` size, if they are images): as many features, and a `[C, H, W]` input only over
/// images of that `H × W`.
pub(crate) fn input_fits(dims: &[usize], cols: usize, image: Option<(usize, usize)>) -> bool {
    let same_count = dims.iter().product::<usize>() == cols;
    match (dims, image) {
        (&[_, h, w], Some(image)) => same_count && (h, w) == image,
        _ => same_count,
    }
}

/// An in-memory dataset of `rows` samples with `cols` features each.
///
/// ```
/// use wgtrain::data::Dataset;
/// let xor = Dataset::classification(vec![0., 0., 0., 1., 1., 0., 1., 1.], 2, vec![0, 1, 1, 0])?;
/// assert_eq!((xor.rows, xor.cols, xor.classes()), (4, 2, 2));
/// // Checked where it enters: a NaN feature names its row and column.
/// let error = Dataset::classification(vec![0., f32::NAN], 2, vec![0]).unwrap_err();
/// assert!(error.to_string().contains("row 0, column 1"));
/// # Ok::<(), wgtrain::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// The rows' features, row-major.
    pub features: Features,
    /// Samples.
    pub rows: usize,
    /// Features per sample.
    pub cols: usize,
    /// Class indices (`target_cols == 0`) or `rows × target_cols` regression targets.
    pub targets: Vec<f32>,
    /// Targets per row of a regression set; 0 for classification.
    pub target_cols: usize,
    /// `(height, width)` when each row is an image, for shift augmentation.
    pub image: Option<(usize, usize)>,
}

impl Dataset {
    /// A classification dataset of f32 features.
    pub fn classification(features: Vec<f32>, cols: usize, labels: Vec<u32>) -> Result<Self> {
        Self::new(
            Features::F32(features),
            cols,
            labels.iter().map(|&l| l as f32).collect(),
            0,
        )
    }

    /// A regression dataset of f32 features and `target_cols` targets per row.
    pub fn regression(
        features: Vec<f32>,
        cols: usize,
        targets: Vec<f32>,
        target_cols: usize,
    ) -> Result<Self> {
        if target_cols == 0 {
            return Err(Error::InvalidArgument(
                "regression needs at least one target column".into(),
            ));
        }
        Self::new(Features::F32(features), cols, targets, target_cols)
    }

    /// A dataset of `features` in rows of `cols`, with class indices (`target_cols == 0`)
    /// or `target_cols` regression targets per row, checked as [`Dataset::check`] says.
    pub fn new(
        features: Features,
        cols: usize,
        targets: Vec<f32>,
        target_cols: usize,
    ) -> Result<Self> {
        let len = match &features {
            Features::F32(v) => v.len(),
            Features::U8 { bytes, .. } => bytes.len(),
        };
        let data = Self {
            features,
            rows: len / cols.max(1),
            cols,
            targets,
            target_cols,
            image: None,
        };
        data.check()?;
        Ok(data)
    }

    /// What every dataset must be before it reaches a GPU (the fields are public, so
    /// [`DeviceDataset::upload`] checks again): at least one row, features that fill whole
    /// rows, finite features and targets, one target per row per target column, class
    /// labels that are whole numbers, and an image size that matches the row width.
    pub fn check(&self) -> Result<()> {
        let len = match &self.features {
            Features::F32(v) => v.len(),
            Features::U8 { bytes, .. } => bytes.len(),
        };
        let cols = self.cols;
        if cols == 0 || len % cols != 0 || len / cols != self.rows {
            return Err(Error::InvalidArgument(format!(
                "{len} feature values do not make {} rows of {cols}",
                self.rows
            )));
        }
        if self.rows == 0 {
            return Err(Error::InvalidArgument(
                "a dataset needs at least one row".into(),
            ));
        }
        // Checked where data enters: a NaN feature would train "fine" into NaN weights.
        if let Features::F32(values) = &self.features
            && let Some(i) = values.iter().position(|v| !v.is_finite())
        {
            return Err(Error::InvalidArgument(format!(
                "feature row {}, column {} is {}: features must be finite",
                i / cols,
                i % cols,
                values[i]
            )));
        }
        let targets = &self.targets;
        if let Some(i) = targets.iter().position(|v| !v.is_finite()) {
            return Err(Error::InvalidArgument(format!(
                "target {i} is {}: targets must be finite",
                targets[i]
            )));
        }
        if targets.len() != self.rows * self.target_cols.max(1) {
            return Err(Error::InvalidArgument(format!(
                "{} targets for {} rows",
                targets.len(),
                self.rows
            )));
        }
        if self.target_cols == 0
            && let Some(i) = targets.iter().position(|&t| t < 0.0 || t.fract() != 0.0)
        {
            return Err(Error::InvalidArgument(format!(
                "label of row {i} is {}: class labels are whole numbers from 0",
                targets[i]
            )));
        }
        if let Some((h, w)) = self.image
            && h * w != cols
        {
            return Err(Error::ShapeMismatch {
                op: "dataset image size against its row width".into(),
                left: vec![h, w],
                right: vec![cols],
            });
        }
        Ok(())
    }

    /// One sample's shape: `[1, height, width]` for images (IDX files), so the whole set is
    /// `[N, 1, H, W]`, else `[cols]`. The rows are stored flat either way, so an MLP's
    /// `[784]` input and a CNN's `[1, 28, 28]` input read the same bytes.
    pub fn sample_dims(&self) -> Vec<usize> {
        match self.image {
            Some((h, w)) => vec![1, h, w],
            None => vec![self.cols],
        }
    }

    /// Whether a model input of per-sample `dims` can read these rows: the same number of
    /// features, and an image-shaped input (rank 3) only over images of that size.
    pub fn fits_input(&self, dims: &[usize]) -> bool {
        input_fits(dims, self.cols, self.image)
    }

    /// The number of classes (largest label + 1) of a classification dataset.
    pub fn classes(&self) -> usize {
        if self.target_cols > 0 {
            return 0;
        }
        self.targets.iter().fold(0.0f32, |m, &t| m.max(t)) as usize + 1
    }

    /// Reorders the rows by a permutation drawn from `seed` (before a validation split, so
    /// that a file sorted by label does not give a one-class split).
    pub fn shuffle_rows(&mut self, seed: u64) {
        use rand::SeedableRng;
        use rand::seq::SliceRandom;
        let mut order: Vec<usize> = (0..self.rows).collect();
        order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed ^ 0x7a11_5e1d));
        let (cols, tcols) = (self.cols, self.target_cols.max(1));
        fn gather<T: Copy>(v: &[T], order: &[usize], width: usize) -> Vec<T> {
            order
                .iter()
                .flat_map(|&r| v[r * width..(r + 1) * width].iter().copied())
                .collect()
        }
        self.features = match &self.features {
            Features::F32(v) => Features::F32(gather(v, &order, cols)),
            Features::U8 { bytes, scale } => Features::U8 {
                bytes: gather(bytes, &order, cols),
                scale: *scale,
            },
        };
        self.targets = gather(&self.targets, &order, tcols);
    }

    /// Moves the rows from `at` on into a new dataset (a validation split).
    pub fn split_off(&mut self, at: usize) -> Result<Dataset> {
        let at = at.min(self.rows);
        let tail_features = match &mut self.features {
            Features::F32(v) => Features::F32(v.split_off(at * self.cols)),
            Features::U8 { bytes, scale } => Features::U8 {
                bytes: bytes.split_off(at * self.cols),
                scale: *scale,
            },
        };
        let tail_targets = self.targets.split_off(at * self.target_cols.max(1));
        self.rows = at;
        let mut tail = Dataset::new(tail_features, self.cols, tail_targets, self.target_cols)?;
        tail.image = self.image;
        Ok(tail)
    }

    /// Class labels as indices (classification datasets).
    pub fn labels(&self) -> Vec<usize> {
        self.targets.iter().map(|&t| t as usize).collect()
    }

    /// Row `r`'s features as f32.
    pub fn row(&self, r: usize) -> Vec<f32> {
        match &self.features {
            Features::F32(v) => v[r * self.cols..(r + 1) * self.cols].to_vec(),
            Features::U8 { bytes, scale } => bytes[r * self.cols..(r + 1) * self.cols]
                .iter()
                .map(|&b| f32::from(b) * scale)
                .collect(),
        }
    }
}
