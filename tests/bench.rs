//! The benchmark refuses a wrong kernel before timing it.

use wgtrain::bench::check_matmul;
use wgtrain::reference;

#[test]
fn a_wrong_matmul_is_refused_before_timing() {
    let (m, n, k) = (37, 29, 41);
    let a: Vec<f32> = (0..m * k)
        .map(|i| ((i * 7 % 13) as f32 - 6.0) / 6.0)
        .collect();
    let b: Vec<f32> = (0..k * n)
        .map(|i| ((i * 5 % 11) as f32 - 5.0) / 5.0)
        .collect();
    let exact = reference::matmul(
        &a.iter().map(|&v| f64::from(v)).collect::<Vec<_>>(),
        &b.iter().map(|&v| f64::from(v)).collect::<Vec<_>>(),
        (m, n, k),
        false,
        false,
    );
    let mut c: Vec<f32> = exact.iter().map(|&v| v as f32).collect();
    check_matmul(&a, &b, &c, (m, n, k), (false, false), 64).expect("the right product passes");
    // A kernel that skips the last row: the checker always samples the last element.
    for j in 0..n {
        c[(m - 1) * n + j] = 0.0;
    }
    let error = check_matmul(&a, &b, &c, (m, n, k), (false, false), 64)
        .expect_err("a wrong product is refused");
    assert!(matches!(error, wgtrain::Error::WrongResult(_)), "{error}");
    assert!(
        error.to_string().contains("refused before timing"),
        "{error}"
    );
}
