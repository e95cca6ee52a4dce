//! Metrics against confusion matrices worked out by hand.

use wgtrain::train::{ClassificationMetrics, RegressionMetrics};

#[test]
fn classification_metrics_refuse_mismatched_lengths_and_classes_out_of_range() {
    // Before, the longer side was cut short and out-of-range classes dropped: a silently
    // wrong accuracy.
    assert!(ClassificationMetrics::new(&[0, 1, 1], &[0, 1], 2).is_err());
    assert!(ClassificationMetrics::new(&[0, 2], &[0, 1], 2).is_err());
    assert!(ClassificationMetrics::new(&[0, 1], &[0, 3], 2).is_err());
    // Scores are [rows, classes]: 5 scores are not 2 rows of 3.
    assert!(ClassificationMetrics::from_outputs(&[0.0; 5], &[0.0, 1.0], 3).is_err());
    let m =
        ClassificationMetrics::from_outputs(&[0.0, 1.0, 2.0, 1.0], &[1.0, 0.0], 2).expect("valid");
    assert_eq!(m.accuracy, 1.0);
}

#[test]
fn classification_metrics_match_a_hand_computed_confusion_matrix() {
    // true:      0 0 0 1 1 2 2 2
    // predicted: 0 0 1 1 0 0 1 1   (class 2 is never predicted)
    let actual = [0, 0, 0, 1, 1, 2, 2, 2];
    let predicted = [0, 0, 1, 1, 0, 0, 1, 1];
    let m = ClassificationMetrics::new(&predicted, &actual, 3).expect("valid");
    assert_eq!(
        m.confusion,
        vec![vec![2, 1, 0], vec![1, 1, 0], vec![1, 2, 0]]
    );
    assert_eq!(m.accuracy, 3.0 / 8.0);
    // precision: class 0 = 2/4, class 1 = 1/4, class 2 never predicted = 0 by convention.
    assert_eq!(m.precision, vec![0.5, 0.25, 0.0]);
    // recall: 2/3, 1/2, 0/3.
    assert_eq!(m.recall, vec![2.0 / 3.0, 0.5, 0.0]);
    let f1 = |p: f64, r: f64| 2.0 * p * r / (p + r);
    assert_eq!(m.f1, vec![f1(0.5, 2.0 / 3.0), f1(0.25, 0.5), 0.0]);
    assert_eq!(m.macro_precision, 0.75 / 3.0);
    assert!(
        m.precision
            .iter()
            .chain(&m.recall)
            .chain(&m.f1)
            .all(|v| v.is_finite())
    );
}

#[test]
fn regression_metrics_match_hand_computation() {
    let m = RegressionMetrics::new(&[1.0, 2.0, 4.0], &[1.0, 3.0, 5.0]).expect("metrics");
    assert_eq!(m.mse, 2.0 / 3.0);
    assert_eq!(m.mae, 2.0 / 3.0);
    // mean 3, SS_tot = 4 + 0 + 4 = 8, SS_res = 2.
    assert_eq!(m.r2, 1.0 - 2.0 / 8.0);
}

#[test]
fn regression_metrics_refuse_mismatched_or_empty_inputs() {
    for (predicted, actual) in [(&[1.0, 2.0][..], &[1.0, 2.0, 3.0][..]), (&[], &[])] {
        match RegressionMetrics::new(predicted, actual) {
            Err(wgtrain::Error::ShapeMismatch { left, right, .. }) => {
                assert_eq!((left, right), (vec![predicted.len()], vec![actual.len()]));
            }
            other => panic!("{predicted:?} vs {actual:?}: {other:?}"),
        }
    }
}
