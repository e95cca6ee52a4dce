use wgtrain::kernels::random::{Affine, dropout, random_affine, random_shift};
use wgtrain::reference;

use crate::common::*;
use crate::step_ring;

#[test]
fn dropout_mask_matches_the_counter_based_reference() {
    let mut rng = rng("dropout");
    let (seed, step, salt) = (rng.next_u32(), 7, 3);
    let ring = step_ring(seed, step);
    for &(n, p) in &[(1usize, 0.5f32), (1000, 0.1), (70_001, 0.5)] {
        let x = rng.uniform(n, 0.5, 1.5);
        let out = poisoned(&[n]);
        run(&[&dropout(gpu(), p, salt, &ring, &upload(&x, &[n]), &out).expect("valid")]);
        let want: Vec<f64> = (0..n)
            .map(|i| {
                let keep = reference::dropout_keeps(p, seed, step, salt, i as u32);
                if keep {
                    f64::from(x[i]) * f64::from(1.0 / (1.0 - p))
                } else {
                    0.0
                }
            })
            .collect();
        // Kept elements are one f32 product: half an ulp.
        assert_close(&format!("dropout n={n} p={p}"), &read(&out), &want, 0.0, U);
        if n > 10_000 {
            let kept = want.iter().filter(|v| **v != 0.0).count() as f64 / n as f64;
            // Binomial: σ = √(p(1−p)/n) ≈ 0.0019 at n = 70001; 5σ.
            assert!(
                (kept - (1.0 - f64::from(p))).abs() < 0.01,
                "keep rate {kept}"
            );
        }
    }
}

#[test]
fn random_shift_moves_whole_images_within_the_limit() {
    let mut rng = rng("random shift");
    let ring = step_ring(rng.next_u32(), 1);
    let (images, h, w) = (50, 6, 5);
    // Each pixel holds a unique value so a shift can be read off the output.
    let x: Vec<f32> = (0..images * h * w).map(|i| (i + 1) as f32).collect();
    let out = poisoned(&[images, h * w]);
    run(&[&random_shift(
        gpu(),
        (h, w),
        2,
        1,
        &ring,
        &upload(&x, &[images, h * w]),
        &out,
    )
    .expect("valid")]);
    let got = read(&out);
    let mut shifts = std::collections::HashSet::new();
    for b in 0..images {
        let image = &got[b * h * w..(b + 1) * h * w];
        let found = (-2i32..=2)
            .flat_map(|dy| (-2i32..=2).map(move |dx| (dy, dx)))
            .find(|&(dy, dx)| {
                (0..h * w).all(|i| {
                    let (sy, sx) = ((i / w) as i32 - dy, (i % w) as i32 - dx);
                    let want = if (0..h as i32).contains(&sy) && (0..w as i32).contains(&sx) {
                        x[b * h * w + sy as usize * w + sx as usize]
                    } else {
                        0.0
                    };
                    image[i] == want
                })
            });
        shifts.insert(
            found.unwrap_or_else(|| panic!("image {b} is not a shift within ±2: {image:?}")),
        );
    }
    assert!(
        shifts.len() > 5,
        "50 images should see many different shifts, saw {shifts:?}"
    );
}

#[test]
fn random_affine_matches_f64_with_the_same_draws() {
    let mut rng = rng("random affine");
    let (seed, step, salt) = (rng.next_u32(), 5, 2);
    let ring = step_ring(seed, step);
    // Odd and unequal sides (the centre is a half-pixel), one image and many.
    for &(images, h, w) in &[(1usize, 7usize, 7usize), (40, 28, 28), (9, 5, 11)] {
        let x = rng.uniform(images * h * w, 0.0, 1.0);
        let affine = Affine {
            degrees: 15.0,
            shift: 2,
            scale: 0.1,
        };
        let out = poisoned(&[images, h * w]);
        let input = upload(&x, &[images, h * w]);
        run(&[&random_affine(gpu(), (h, w), affine, salt, &ring, &input, &out).expect("valid")]);
        let want = reference::random_affine(&f64s(&x), (h, w), affine, (seed, step, salt));
        // WGSL allows sin and cos an absolute error of 2⁻¹¹: at a radius r ≤ (h + w)/2 + 2
        // pixels from the centre (over 0.9 scale) the source point moves by ≤ 2·2⁻¹¹·r/0.9,
        // and bilinear sampling of [0, 1] pixels changes by at most that per axis. A wrong
        // centre, direction or draw is off by tenths.
        let radius = (h + w) as f64 / 2.0 + 2.0;
        let bound = 2.0 * 2.0 * radius / 0.9 / 2048.0 + 1e-5;
        assert_within(
            &format!("affine {images}×{h}×{w}"),
            &read(&out),
            &want,
            |_| bound,
        );
        // The identity map returns the input exactly (integer source coordinates).
        let out = poisoned(&[images, h * w]);
        let still = Affine::default();
        run(&[&random_affine(gpu(), (h, w), still, salt, &ring, &input, &out).expect("valid")]);
        assert_within("identity affine", &read(&out), &f64s(&x), |_| 0.0);
    }
    let bad = Affine {
        degrees: f32::NAN,
        ..Affine::default()
    };
    let x = upload(&[0.0; 4], &[1, 4]);
    assert!(random_affine(gpu(), (2, 2), bad, 0, &ring, &x, &poisoned(&[1, 4])).is_err());
}
