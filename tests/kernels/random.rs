use wgtrain::kernels::optim::StepParams;
use wgtrain::kernels::random::{dropout, random_shift};
use wgtrain::reference;

use crate::common::*;

fn step_ring(seed: u32, step: u32) -> wgpu::Buffer {
    let ring = gpu().device().create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: wgtrain::gpu::STEP_SLOT_BYTES,
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let params = StepParams {
        step,
        seed,
        ..Default::default()
    };
    gpu()
        .queue()
        .write_buffer(&ring, 0, bytemuck::bytes_of(&params));
    ring
}

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
