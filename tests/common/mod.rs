//! Shared test helpers: one GPU per test binary, seeded random inputs whose seed is printed,
//! NaN-poisoned outputs, and one comparison helper with an explained bound at each call.
#![allow(dead_code)]

use std::sync::OnceLock;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use wgtrain::gpu::Dispatch;
use wgtrain::{Gpu, Tensor};

/// f32's unit roundoff, 2⁻²⁴.
pub const U: f64 = 5.960_464_477_539_063e-8;

pub fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| match Gpu::new() {
        Ok(gpu) => gpu,
        Err(error) => panic!("these tests need a GPU adapter (lavapipe will do): {error}"),
    })
}

/// A seeded generator. The seed comes from `WGTRAIN_SEED` or the clock, and is printed so a
/// failure can be replayed.
pub struct Rand {
    rng: StdRng,
    pub seed: u64,
}

pub fn rng(test: &str) -> Rand {
    let seed = seed(test);
    Rand {
        rng: StdRng::seed_from_u64(seed),
        seed,
    }
}

/// The seed of a randomised test: `WGTRAIN_SEED` or the clock, printed so a failure can be
/// replayed.
pub fn seed(test: &str) -> u64 {
    let seed = std::env::var("WGTRAIN_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    eprintln!("{test}: seed {seed} (replay with WGTRAIN_SEED={seed})");
    seed
}

impl Rand {
    pub fn uniform(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.rng.random_range(lo..hi)).collect()
    }

    pub fn below(&mut self, n: usize, bound: u32) -> Vec<f32> {
        (0..n)
            .map(|_| self.rng.random_range(0..bound) as f32)
            .collect()
    }

    pub fn next_u32(&mut self) -> u32 {
        self.rng.random()
    }
}

pub fn f64s(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| f64::from(v)).collect()
}

/// A tensor filled with NaN, so an element a kernel forgets to write fails the comparison.
pub fn poisoned(shape: &[usize]) -> Tensor {
    gpu()
        .filled(shape, f32::NAN)
        .expect("allocating a test tensor")
}

pub fn upload(data: &[f32], shape: &[usize]) -> Tensor {
    gpu().tensor(data, shape).expect("uploading a test tensor")
}

pub fn run(dispatches: &[&Dispatch]) {
    gpu().run(dispatches).expect("submitting");
    gpu().wait().expect("waiting for the GPU");
}

pub fn read(t: &Tensor) -> Vec<f32> {
    gpu().read(t).expect("reading back")
}

/// Fails unless |got[i] − want[i]| ≤ bound[i] for every i (NaN never passes). Prints the
/// worst elements.
pub fn assert_within(what: &str, got: &[f32], want: &[f64], bound: impl Fn(usize) -> f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    let bad: Vec<String> = (0..got.len())
        .filter(|&i| {
            let error = (f64::from(got[i]) - want[i]).abs();
            error.is_nan() || error > bound(i)
        })
        .take(5)
        .map(|i| {
            format!(
                "[{i}] got {} want {} (bound {:.3e})",
                got[i],
                want[i],
                bound(i)
            )
        })
        .collect();
    assert!(
        bad.is_empty(),
        "{what}: {} mismatches, first: {bad:#?}",
        bad.len()
    );
}

/// Fails unless |got − want| ≤ abs + rel·|want| elementwise.
pub fn assert_close(what: &str, got: &[f32], want: &[f64], abs: f64, rel: f64) {
    assert_within(what, got, want, |i| abs + rel * want[i].abs());
}
