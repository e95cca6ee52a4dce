//! CSV with a header row, numeric features and one named target column.

use std::path::Path;

use crate::data::{Dataset, Features};
use crate::error::{Error, Result};

/// What the target column holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    /// Class indices 0..classes.
    Classify,
    /// Real-valued targets.
    Regress,
}

/// Reads `path`; `target` names the target column (the last column when `None`).
pub fn load_csv(path: &Path, target: Option<&str>, task: Task) -> Result<Dataset> {
    parse_csv(path, &crate::files::read_regular(path)?, target, task)
}

/// The number of columns of a CSV file's header.
pub fn csv_columns(path: &Path) -> Result<usize> {
    let bytes = crate::files::read_regular(path)?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(&bytes[..]);
    let headers = reader
        .headers()
        .map_err(|e| Error::invalid_data(path, "line 1", format!("unreadable header: {e}")))?;
    Ok(headers.len())
}

/// Reads a CSV of features only (rows to predict): every column is a feature; the targets are
/// zeros, `target_cols` wide (0: one class index per row).
pub fn load_csv_features(path: &Path, target_cols: usize) -> Result<Dataset> {
    let mut bytes = crate::files::read_regular(path)?;
    // A zero label column appended to every line turns it into the labelled form.
    let text = String::from_utf8(std::mem::take(&mut bytes))
        .map_err(|_| Error::invalid_data(path, "file", "not UTF-8 text"))?;
    let mut labelled = String::with_capacity(text.len() + text.len() / 8);
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        labelled += line;
        labelled += if i == 0 {
            ",__wgtrain_target__\n"
        } else {
            ",0\n"
        };
    }
    let task = if target_cols == 0 {
        Task::Classify
    } else {
        Task::Regress
    };
    let data = parse_csv(path, labelled.as_bytes(), Some("__wgtrain_target__"), task)?;
    if target_cols <= 1 {
        return Ok(data);
    }
    Dataset::new(
        data.features,
        data.cols,
        vec![0.0; data.rows * target_cols],
        target_cols,
    )
}

/// Parses CSV bytes; `path` only names the source in errors.
pub fn parse_csv(path: &Path, bytes: &[u8], target: Option<&str>, task: Task) -> Result<Dataset> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let headers = reader
        .headers()
        .map_err(|e| Error::invalid_data(path, "line 1", format!("unreadable header: {e}")))?
        .clone();
    if headers.is_empty() || (headers.len() == 1 && headers[0].is_empty()) {
        return Err(Error::invalid_data(
            path,
            "line 1",
            "empty file: expected a header row",
        ));
    }
    if let Some(dup) = headers
        .iter()
        .enumerate()
        .find(|&(i, h)| headers.iter().take(i).any(|earlier| earlier == h))
    {
        return Err(Error::invalid_data(
            path,
            "line 1",
            format!(
                "column {:?} appears twice: one of them would silently become a feature",
                dup.1
            ),
        ));
    }
    if headers.len() < 2 {
        return Err(Error::invalid_data(
            path,
            "line 1",
            "need at least one feature column and a target column",
        ));
    }
    let target_index = match target {
        Some(name) => headers.iter().position(|h| h == name).ok_or_else(|| {
            Error::invalid_data(
                path,
                "line 1",
                format!(
                    "unknown target column {name:?}; columns are {:?}",
                    headers.iter().collect::<Vec<_>>()
                ),
            )
        })?,
        None => headers.len() - 1,
    };
    let mut features = vec![];
    let mut targets = vec![];
    for (row, record) in reader.records().enumerate() {
        let line = row + 2;
        let record = record.map_err(|e| match e.kind() {
            csv::ErrorKind::UnequalLengths {
                expected_len, len, ..
            } => Error::invalid_data(
                path,
                format!("line {line}"),
                format!("ragged row: {len} fields, the header has {expected_len}"),
            ),
            _ => Error::invalid_data(path, format!("line {line}"), e.to_string()),
        })?;
        for (col, cell) in record.iter().enumerate() {
            let value: f32 = cell.parse().map_err(|_| {
                Error::invalid_data(
                    path,
                    format!("line {line}, column {:?}", &headers[col]),
                    format!("{cell:?} is not a number"),
                )
            })?;
            if !value.is_finite() {
                return Err(Error::invalid_data(
                    path,
                    format!("line {line}, column {:?}", &headers[col]),
                    format!("{cell:?} is not finite"),
                ));
            }
            if col == target_index {
                if task == Task::Classify
                    && (value < 0.0 || value.fract() != 0.0 || value > 65_535.0)
                {
                    return Err(Error::invalid_data(
                        path,
                        format!("line {line}, column {:?}", &headers[col]),
                        format!("label {cell:?} is not a class index (0, 1, 2, ...)"),
                    ));
                }
                targets.push(value);
            } else {
                features.push(value);
            }
        }
    }
    if targets.is_empty() {
        return Err(Error::invalid_data(
            path,
            "line 2",
            "no data rows after the header",
        ));
    }
    let target_cols = match task {
        Task::Classify => 0,
        Task::Regress => 1,
    };
    Dataset::new(
        Features::F32(features),
        headers.len() - 1,
        targets,
        target_cols,
    )
}

/// Per-feature z-scores from the training set (mean and population standard deviation), to be
/// applied unchanged to test data.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Standardizer {
    /// Each feature's mean over the training rows.
    pub mean: Vec<f32>,
    /// Each feature's standard deviation (1 where a feature is constant).
    pub std: Vec<f32>,
}

impl Standardizer {
    /// The statistics of `data`'s features.
    pub fn fit(data: &Dataset) -> Self {
        let (rows, cols) = (data.rows.max(1), data.cols);
        let mut mean = vec![0.0f64; cols];
        let mut sq = vec![0.0f64; cols];
        for r in 0..data.rows {
            for (c, v) in data.row(r).into_iter().enumerate() {
                mean[c] += f64::from(v);
            }
        }
        mean.iter_mut().for_each(|m| *m /= rows as f64);
        for r in 0..data.rows {
            for (c, v) in data.row(r).into_iter().enumerate() {
                sq[c] += (f64::from(v) - mean[c]).powi(2);
            }
        }
        // A constant column keeps std 1, so it maps to 0 instead of NaN.
        let std = sq
            .iter()
            .map(|s| (s / rows as f64).sqrt())
            .map(|s| if s as f32 > 0.0 { s as f32 } else { 1.0 })
            .collect();
        Self {
            mean: mean.iter().map(|&m| m as f32).collect(),
            std,
        }
    }

    /// Rewrites `data`'s features as z-scores (bytes become f32), after checking that the
    /// statistics are as wide as its rows and could have come from [`Standardizer::fit`]
    /// (finite, each std positive): a checkpoint's may have been edited.
    pub fn apply(&self, data: &mut Dataset) -> Result<()> {
        if self.mean.len() != data.cols || self.std.len() != data.cols {
            return Err(Error::ShapeMismatch {
                op: "standardizer (mean, std) vs data columns".into(),
                left: vec![self.mean.len(), self.std.len()],
                right: vec![data.cols],
            });
        }
        let fitted = self.mean.iter().all(|m| m.is_finite())
            && self.std.iter().all(|s| *s > 0.0 && s.is_finite());
        if !fitted {
            return Err(Error::InvalidArgument(
                "a standardizer's means must be finite and its stds positive and finite".into(),
            ));
        }
        let values: Vec<f32> = (0..data.rows)
            .flat_map(|r| {
                data.row(r)
                    .into_iter()
                    .enumerate()
                    .map(|(c, v)| (v - self.mean[c]) / self.std[c])
                    .collect::<Vec<_>>()
            })
            .collect();
        data.features = Features::F32(values);
        Ok(())
    }
}
