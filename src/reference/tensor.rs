//! f64 references for the N-d kernels: transposes, sums over an axis, embeddings, softmax and
//! LayerNorm over the last axis, forward and backward.

/// `x` of `shape` with axes `a` and `b` swapped, row-major.
pub fn transpose(x: &[f64], shape: &[usize], (a, b): (usize, usize)) -> Vec<f64> {
    let strides = crate::kernels::tensor::contiguous_strides(shape);
    let mut to = shape.to_vec();
    to.swap(a, b);
    (0..x.len())
        .map(|flat| {
            // Coordinates in the output, swapped back to the input's.
            let mut rest = flat;
            let mut coords = vec![0; to.len()];
            for d in (0..to.len()).rev() {
                coords[d] = rest % to[d];
                rest /= to[d];
            }
            coords.swap(a, b);
            x[coords
                .iter()
                .zip(&strides)
                .map(|(c, s)| c * s)
                .sum::<usize>()]
        })
        .collect()
}

/// `out[o, j] = scale · Σ_a x[o, a, j]`.
pub fn axis_sum(x: &[f64], (outer, len, inner): (usize, usize, usize), scale: f64) -> Vec<f64> {
    (0..outer * inner)
        .map(|i| {
            let (o, j) = (i / inner, i % inner);
            scale * (0..len).map(|a| x[(o * len + a) * inner + j]).sum::<f64>()
        })
        .collect()
}

/// Rows `idx[r]` of the `[vocab, dim]` table.
pub fn embedding(table: &[f64], dim: usize, idx: &[usize]) -> Vec<f64> {
    idx.iter()
        .flat_map(|&row| table[row * dim..(row + 1) * dim].to_vec())
        .collect()
}

/// `dtable[v] = Σ_{r : idx[r] = v} dout[r]`.
pub fn embedding_backward(dout: &[f64], dim: usize, idx: &[usize], vocab: usize) -> Vec<f64> {
    let mut dtable = vec![0.0; vocab * dim];
    for (r, &v) in idx.iter().enumerate() {
        for c in 0..dim {
            dtable[v * dim + c] += dout[r * dim + c];
        }
    }
    dtable
}

/// Softmax of each row of `cols`; with `causal_t` = T > 0 row r sees keys ≤ r mod T only.
pub fn softmax(x: &[f64], cols: usize, causal_t: usize) -> Vec<f64> {
    x.chunks(cols)
        .enumerate()
        .flat_map(|(r, row)| {
            let visible = if causal_t > 0 { r % causal_t + 1 } else { cols };
            let m = row[..visible].iter().cloned().fold(f64::MIN, f64::max);
            let sum: f64 = row[..visible].iter().map(|v| (v - m).exp()).sum();
            (0..cols)
                .map(move |j| {
                    if j < visible {
                        (row[j] - m).exp() / sum
                    } else {
                        0.0
                    }
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// `dx = y ⊙ (dy − Σ y ⊙ dy)` per row, from the softmax output `y`.
pub fn softmax_backward(y: &[f64], dy: &[f64], cols: usize) -> Vec<f64> {
    y.chunks(cols)
        .zip(dy.chunks(cols))
        .flat_map(|(y, dy)| {
            let dot: f64 = y.iter().zip(dy).map(|(a, b)| a * b).sum();
            y.iter()
                .zip(dy)
                .map(move |(a, b)| a * (b - dot))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// LayerNorm of each row: `(x − μ)/√(σ² + ε) · γ + β` with the biased variance.
pub fn layer_norm(x: &[f64], cols: usize, gamma: &[f64], beta: &[f64], eps: f64) -> Vec<f64> {
    x.chunks(cols)
        .flat_map(|row| {
            let (mean, rstd) = moments(row, eps);
            row.iter()
                .enumerate()
                .map(move |(j, v)| (v - mean) * rstd * gamma[j] + beta[j])
                .collect::<Vec<_>>()
        })
        .collect()
}

/// LayerNorm's backward: `(dx, dγ, dβ)`.
pub fn layer_norm_backward(
    x: &[f64],
    dy: &[f64],
    cols: usize,
    gamma: &[f64],
    eps: f64,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (mut dgamma, mut dbeta) = (vec![0.0; cols], vec![0.0; cols]);
    let mut dx = Vec::with_capacity(x.len());
    for (row, drow) in x.chunks(cols).zip(dy.chunks(cols)) {
        let (mean, rstd) = moments(row, eps);
        let xhat: Vec<f64> = row.iter().map(|v| (v - mean) * rstd).collect();
        let g: Vec<f64> = drow.iter().zip(gamma).map(|(d, g)| d * g).collect();
        let g_mean = g.iter().sum::<f64>() / cols as f64;
        let gx_mean = g.iter().zip(&xhat).map(|(a, b)| a * b).sum::<f64>() / cols as f64;
        for j in 0..cols {
            dx.push(rstd * (g[j] - g_mean - xhat[j] * gx_mean));
            dgamma[j] += drow[j] * xhat[j];
            dbeta[j] += drow[j];
        }
    }
    (dx, dgamma, dbeta)
}

/// Mean and 1/√(var + ε) of one row.
fn moments(row: &[f64], eps: f64) -> (f64, f64) {
    let n = row.len() as f64;
    let mean = row.iter().sum::<f64>() / n;
    let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    (mean, 1.0 / (var + eps).sqrt())
}

/// Causal multi-head self-attention over packed `[.., T, 3C]` rows (q, k, v column blocks of
/// C = heads · D each) into `[.., T, C]`, straight from the definition: scores, mask,
/// softmax, weighted sum, per sequence and head.
pub fn causal_self_attention(qkv: &[f64], seq: usize, heads: usize, head_dim: usize) -> Vec<f64> {
    let c = heads * head_dim;
    let sequences = qkv.len() / (seq * 3 * c);
    let mut out = vec![0.0; sequences * seq * c];
    let scale = 1.0 / (head_dim as f64).sqrt();
    for b in 0..sequences {
        let at = |t: usize, part: usize, h: usize, d: usize| {
            qkv[(b * seq + t) * 3 * c + part * c + h * head_dim + d]
        };
        for h in 0..heads {
            for i in 0..seq {
                let scores: Vec<f64> = (0..=i)
                    .map(|j| {
                        scale
                            * (0..head_dim)
                                .map(|d| at(i, 0, h, d) * at(j, 1, h, d))
                                .sum::<f64>()
                    })
                    .collect();
                let weights = softmax(&scores, i + 1, 0);
                for d in 0..head_dim {
                    out[(b * seq + i) * c + h * head_dim + d] =
                        (0..=i).map(|j| weights[j] * at(j, 2, h, d)).sum();
                }
            }
        }
    }
    out
}
