//! Evaluation metrics: accuracy, per-class and macro precision/recall/F1 and the confusion
//! matrix for classifiers; MSE, MAE and R² for regression.

use crate::error::{Error, Result};

/// Metrics of a classifier, from predicted and true class indices.
///
/// ```
/// use wgtrain::train::ClassificationMetrics;
/// let m = ClassificationMetrics::new(&[0, 1, 1, 2], &[0, 1, 2, 2], 3)?;
/// assert_eq!(m.accuracy, 0.75);
/// assert_eq!(m.confusion[2], [0, 1, 1]); // true class 2: once taken for 1, once right
/// assert!(ClassificationMetrics::new(&[0, 1], &[0], 3).is_err());
/// # Ok::<(), wgtrain::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct ClassificationMetrics {
    /// `confusion[true][predicted]`
    pub confusion: Vec<Vec<u64>>,
    /// Fraction of rows whose predicted class is the true one.
    pub accuracy: f64,
    /// Per class: of the rows predicted as it, the fraction that are.
    pub precision: Vec<f64>,
    /// Per class: of the rows that are it, the fraction predicted as it.
    pub recall: Vec<f64>,
    /// Per class: the harmonic mean of precision and recall.
    pub f1: Vec<f64>,
    /// The unweighted mean of the per-class precisions.
    pub macro_precision: f64,
    /// The unweighted mean of the per-class recalls.
    pub macro_recall: f64,
    /// The unweighted mean of the per-class F1 scores.
    pub macro_f1: f64,
}

impl ClassificationMetrics {
    /// A class never predicted has precision 0, and one never present has recall 0 (scikit-
    /// learn's `zero_division=0`), so no metric is NaN. Refuses predictions and labels of
    /// different lengths, and any class index past `classes`: either would count wrongly.
    pub fn new(predicted: &[usize], actual: &[usize], classes: usize) -> Result<Self> {
        if predicted.len() != actual.len() {
            return Err(Error::ShapeMismatch {
                op: "classification metrics (predictions vs labels)".into(),
                left: vec![predicted.len()],
                right: vec![actual.len()],
            });
        }
        if let Some(bad) = predicted.iter().chain(actual).find(|&&c| c >= classes) {
            return Err(Error::InvalidArgument(format!(
                "classification metrics over {classes} classes got class {bad}"
            )));
        }
        let mut confusion = vec![vec![0u64; classes]; classes];
        for (&p, &a) in predicted.iter().zip(actual) {
            confusion[a][p] += 1;
        }
        let ratio = |num: u64, den: u64| {
            if den == 0 {
                0.0
            } else {
                num as f64 / den as f64
            }
        };
        let correct: u64 = (0..classes).map(|c| confusion[c][c]).sum();
        let precision: Vec<f64> = (0..classes)
            .map(|c| ratio(confusion[c][c], (0..classes).map(|a| confusion[a][c]).sum()))
            .collect();
        let recall: Vec<f64> = (0..classes)
            .map(|c| ratio(confusion[c][c], confusion[c].iter().sum()))
            .collect();
        let f1: Vec<f64> = precision
            .iter()
            .zip(&recall)
            .map(|(&p, &r)| {
                if p + r == 0.0 {
                    0.0
                } else {
                    2.0 * p * r / (p + r)
                }
            })
            .collect();
        let mean = |v: &[f64]| {
            if v.is_empty() {
                0.0
            } else {
                v.iter().sum::<f64>() / v.len() as f64
            }
        };
        Ok(Self {
            accuracy: ratio(correct, predicted.len() as u64),
            macro_precision: mean(&precision),
            macro_recall: mean(&recall),
            macro_f1: mean(&f1),
            confusion,
            precision,
            recall,
            f1,
        })
    }

    /// The metrics of `[rows, classes]` scores against class labels stored as f32 (a
    /// dataset's targets).
    pub fn from_outputs(outputs: &[f32], labels: &[f32], classes: usize) -> Result<Self> {
        if outputs.len() != labels.len() * classes {
            return Err(Error::ShapeMismatch {
                op: "classification metrics (scores [rows, classes] vs labels [rows])".into(),
                left: vec![outputs.len()],
                right: vec![labels.len(), classes],
            });
        }
        let actual: Vec<usize> = labels.iter().map(|&l| l as usize).collect();
        Self::new(&Self::argmax(outputs, classes), &actual, classes)
    }

    /// Class indices from `[rows, classes]` scores (first index on ties).
    pub fn argmax(outputs: &[f32], classes: usize) -> Vec<usize> {
        outputs
            .chunks(classes.max(1))
            .map(|row| {
                row.iter()
                    .enumerate()
                    .fold(0, |best, (i, &v)| if v > row[best] { i } else { best })
            })
            .collect()
    }
}

/// Metrics of a regressor over all target values.
#[derive(Clone, Debug, PartialEq)]
pub struct RegressionMetrics {
    /// Mean squared error.
    pub mse: f64,
    /// Mean absolute error.
    pub mae: f64,
    /// 1 − SS_res / SS_tot; 0 when the targets are constant.
    pub r2: f64,
}

impl RegressionMetrics {
    /// Refuses predictions and targets of different lengths, or none at all: a zip would
    /// score a prefix, and an empty mean is no score.
    pub fn new(predicted: &[f32], actual: &[f32]) -> Result<Self> {
        if predicted.len() != actual.len() || actual.is_empty() {
            return Err(Error::ShapeMismatch {
                op: "regression metrics (predictions vs targets)".into(),
                left: vec![predicted.len()],
                right: vec![actual.len()],
            });
        }
        let n = predicted.len() as f64;
        let mean = actual.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let (mut ss_res, mut abs, mut ss_tot) = (0.0, 0.0, 0.0);
        for (&p, &a) in predicted.iter().zip(actual) {
            let d = f64::from(p) - f64::from(a);
            ss_res += d * d;
            abs += d.abs();
            ss_tot += (f64::from(a) - mean).powi(2);
        }
        Ok(Self {
            mse: ss_res / n,
            mae: abs / n,
            r2: if ss_tot == 0.0 {
                0.0
            } else {
                1.0 - ss_res / ss_tot
            },
        })
    }
}

impl std::fmt::Display for ClassificationMetrics {
    /// Accuracy, macro scores, per-class scores and the confusion matrix (rows: true class).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "accuracy {:.2}%", 100.0 * self.accuracy)?;
        writeln!(
            f,
            "macro precision {:.4}  recall {:.4}  F1 {:.4}",
            self.macro_precision, self.macro_recall, self.macro_f1
        )?;
        writeln!(f, "class  precision  recall  F1")?;
        for c in 0..self.confusion.len() {
            writeln!(
                f,
                "{c:>5}  {:>9.4}  {:>6.4}  {:.4}",
                self.precision[c], self.recall[c], self.f1[c]
            )?;
        }
        writeln!(f, "confusion matrix (rows: true class, columns: predicted)")?;
        write!(f, "     ")?;
        for c in 0..self.confusion.len() {
            write!(f, "{c:>5}")?;
        }
        for (c, row) in self.confusion.iter().enumerate() {
            write!(f, "\n{c:>5}")?;
            for n in row {
                write!(f, "{n:>5}")?;
            }
        }
        Ok(())
    }
}
