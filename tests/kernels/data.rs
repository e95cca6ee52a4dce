use wgtrain::kernels::data::{RowFormat, gather_rows};

use crate::common::*;

#[test]
fn gather_rows_follows_the_permutation() {
    let mut rng = rng("gather");
    let (src_rows, cols, batch, offset) = (37, 9, 5, 11);
    let src = rng.uniform(src_rows * cols, -1.0, 1.0);
    let perm: Vec<u32> = (0..src_rows as u32).rev().collect();
    let indices = gpu().tensor_u32(&perm, &[src_rows]).expect("upload");
    let out = poisoned(&[batch, cols]);
    run(&[&gather_rows(
        gpu(),
        RowFormat::F32,
        src_rows,
        &upload(&src, &[src_rows * cols]),
        &indices,
        offset,
        &out,
    )
    .expect("valid")]);
    let want: Vec<f64> = (0..batch * cols)
        .map(|i| f64::from(src[perm[offset + i / cols] as usize * cols + i % cols]))
        .collect();
    assert_close("gather f32", &read(&out), &want, 0.0, 0.0);
}

#[test]
fn gather_rows_u8_unpacks_and_scales_bytes() {
    let (src_rows, cols) = (6, 7); // 7-byte rows straddle word boundaries
    let bytes: Vec<u8> = (0..src_rows * cols).map(|i| (i * 37 % 256) as u8).collect();
    let mut padded = bytes.clone();
    padded.resize(bytes.len().div_ceil(4) * 4, 0);
    let words: Vec<u32> = padded
        .chunks(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let src = gpu().tensor_u32(&words, &[words.len()]).expect("upload");
    let perm = gpu().tensor_u32(&[5, 0, 3], &[3]).expect("upload");
    let out = poisoned(&[3, cols]);
    let scale = 1.0 / 255.0;
    run(&[&gather_rows(
        gpu(),
        RowFormat::U8 { scale },
        src_rows,
        &src,
        &perm,
        0,
        &out,
    )
    .expect("valid")]);
    let want: Vec<f64> = [5usize, 0, 3]
        .iter()
        .flat_map(|&r| (0..cols).map(move |c| r * cols + c))
        .map(|i| f64::from(f32::from(bytes[i]) * scale))
        .collect();
    assert_close("gather u8", &read(&out), &want, 0.0, 0.0);
}
