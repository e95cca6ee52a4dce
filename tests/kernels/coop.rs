use half::f16;
use wgtrain::kernels::coop_matmul::CoopMatmul;
use wgtrain::kernels::half::to_f16_padded;
use wgtrain::reference;

use crate::common::*;

/// The two f16 values on either side of `x` (the same value twice where `x` is one): WGSL
/// lets a driver round to either.
fn neighbours(x: f32) -> (f16, f16) {
    let nearest = f16::from_f32(x);
    if nearest.to_f32() == x {
        return (nearest, nearest);
    }
    // One step of the bit pattern towards x: up the magnitudes when x lies further from
    // zero than `nearest`, down them otherwise (a zero steps to the smallest subnormal).
    let (bits, sign) = (nearest.to_bits() & 0x7fff, nearest.to_bits() & 0x8000);
    let other = if bits == 0 {
        f16::from_bits(if x > 0.0 { 1 } else { 0x8001 })
    } else if x.abs() > nearest.to_f32().abs() {
        f16::from_bits(sign | (bits + 1))
    } else {
        f16::from_bits(sign | (bits - 1))
    };
    (nearest, other)
}

#[test]
fn to_f16_padded_rounds_each_element_to_a_neighbouring_half_and_zeroes_the_padding() {
    let mut rng = rng("to_f16_padded");
    for (rows, cols) in [(1usize, 1usize), (3, 5), (33, 17), (64, 32)] {
        for transposed in [false, true] {
            let (padded_rows, padded_cols) = (rows + 3, (cols + 5).next_multiple_of(2));
            let x = rng.uniform(rows * cols, -3.0, 3.0);
            let stored = if transposed {
                [cols, rows]
            } else {
                [rows, cols]
            };
            let packed = poisoned(&[padded_rows, padded_cols / 2]);
            run(&[&to_f16_padded(
                gpu(),
                &upload(&x, &stored),
                transposed,
                (padded_rows, padded_cols),
                &packed,
            )
            .expect("valid shapes")]);
            let halves: Vec<f16> = read(&packed)
                .iter()
                .flat_map(|v| {
                    let bits = v.to_bits();
                    [bits as u16, (bits >> 16) as u16].map(f16::from_bits)
                })
                .collect();
            for r in 0..padded_rows {
                for c in 0..padded_cols {
                    let got = halves[r * padded_cols + c];
                    let want = if r < rows && c < cols {
                        neighbours(if transposed {
                            x[c * rows + r]
                        } else {
                            x[r * cols + c]
                        })
                    } else {
                        (f16::ZERO, f16::ZERO)
                    };
                    assert!(
                        got == want.0 || got == want.1,
                        "{rows}x{cols} transposed={transposed} [{r}, {c}]: {got} is not {want:?}"
                    );
                }
            }
        }
    }
}

const SHAPES: &[(usize, usize, usize)] = &[
    (1, 1, 1),
    (3, 5, 7),
    (33, 65, 17),
    (130, 67, 129),
    (64, 128, 32),
    (128, 192, 48),
    (256, 128, 96),
];

/// Runs `c = op(a)·op(b)` on cooperative matrices at every shape and transpose, with
/// operands from `draw`, and checks it against f64 within `bound(k, Σ|a||b|)`. Adapters
/// without cooperative matrices skip it (CI's lavapipe among them): the device run checks it.
fn check_coop(
    test: &str,
    draw: impl Fn(&mut Rand, usize) -> Vec<f32>,
    bound: fn(usize, f64) -> f64,
) {
    if gpu().cooperative_matrix_subgroup().is_none() {
        eprintln!(
            "{test}: skipped, {} has no cooperative matrices",
            gpu().adapter_info().name
        );
        return;
    }
    let mut rng = rng(test);
    for &(m, n, k) in SHAPES {
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            let (a, b) = (draw(&mut rng, m * k), draw(&mut rng, k * n));
            let a_shape = if ta { [k, m] } else { [m, k] };
            let b_shape = if tb { [n, k] } else { [k, n] };
            let c = poisoned(&[m, n]);
            let product = CoopMatmul {
                trans_a: ta,
                trans_b: tb,
            }
            .dispatch(gpu(), &upload(&a, &a_shape), &upload(&b, &b_shape), &c)
            .expect("valid shapes");
            run(&product.dispatches());
            let (a, b) = (f64s(&a), f64s(&b));
            let want = reference::matmul(&a, &b, (m, n, k), ta, tb);
            let abs = |x: &[f64]| x.iter().map(|v| v.abs()).collect::<Vec<_>>();
            let mags = reference::matmul(&abs(&a), &abs(&b), (m, n, k), ta, tb);
            assert_within(
                &format!("{test} {m}x{n}x{k} ta={ta} tb={tb}"),
                &read(&c),
                &want,
                |i| bound(k, mags[i]),
            );
        }
    }
}

/// Multiples of 1/64 in [−1, 1] are f16s, their products multiples of 2⁻¹² below 1, and any
/// sum of up to 129 of them needs at most 20 bits: every partial sum is an f32, whatever
/// order or rounding the tensor cores use, so the product must be exact.
#[test]
fn coop_matmul_is_exact_where_every_partial_sum_is_an_f32() {
    check_coop(
        "coop_matmul exact",
        |rng, len| {
            rng.below(len, 129)
                .iter()
                .map(|v| (v - 64.0) / 64.0)
                .collect()
        },
        |_, _| 0.0,
    );
}

/// Uniform f32 operands: each is rounded to f16 (relative error below 2⁻¹⁰, either way), so
/// each product a·b is off by at most (2·2⁻¹⁰ + 2⁻²⁰)·|a·b|, and the f32 accumulation adds
/// γ_k with the unit 2⁻²³ (tensor cores may truncate, not round).
#[test]
fn coop_matmul_matches_f64_within_f16_operand_rounding() {
    check_coop(
        "coop_matmul uniform",
        |rng, len| rng.uniform(len, -1.0, 1.0),
        |k, magnitude| {
            let operands = 2.0 * 2f64.powi(-10) + 2f64.powi(-20);
            let ku = (k + 2) as f64 * 2.0 * U;
            (operands + ku / (1.0 - ku)) * magnitude + f64::MIN_POSITIVE
        },
    );
}
