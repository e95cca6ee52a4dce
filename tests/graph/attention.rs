//! Fused causal self-attention against the f64 definition and against the same function
//! composed from the graph's ops, forward and backward (finite differences of the loss), at
//! sequence lengths around the kernel's 32-row tiles and head sizes in both of its variants;
//! and causality through a whole GPT.

use wgtrain::graph::Graph;
use wgtrain::kernels::loss::Loss;
use wgtrain::nn::models::{GptConfig, gpt};
use wgtrain::train::{TrainConfig, Trainer};

use crate::common::*;
use crate::dag::{check, check_against, unary};

#[test]
fn fused_attention_matches_f64_finite_differences_and_the_composed_ops() {
    // (T, heads, D): one token; odd sizes; T at and across the 32-row tiles of D ≤ 32 (32,
    // 33, 40); D in the 64-wide variant (33, 34), whose tiles are 16 rows (6, 17); several
    // heads of one dimension.
    for (t, heads, d) in [
        (1, 1, 1),
        (5, 2, 3),
        (32, 1, 5),
        (33, 1, 4),
        (40, 2, 2),
        (6, 1, 33),
        (17, 1, 34),
        (3, 4, 1),
    ] {
        let dims = [t, 3 * heads * d];
        let fused = unary(&dims, Loss::Mse, |g, x| {
            g.causal_self_attention(x, heads).expect("attention")
        });
        let composed = unary(&dims, Loss::Mse, |g, x| {
            g.causal_self_attention_composed(x, heads, 0.0)
                .expect("composed")
        });
        let name = format!("attention T={t} heads={heads} D={d}");
        // The fused kernels against f64 of the definition, then against f64 of the composed
        // graph (the same function), then the composed graph's own kernels.
        let fused_grads = check(&format!("{name} fused"), &fused, 0);
        check_against(&format!("{name} fused vs composed"), &fused, &composed, 0);
        let composed_grads = check(&format!("{name} composed"), &composed, 0);
        assert_eq!(fused_grads.len(), composed_grads.len());
    }
}

#[test]
fn fused_attention_refuses_shapes_it_cannot_take() {
    let mut g = Graph::new();
    let x = g.input("x", &[4, 10]).expect("input");
    assert!(g.causal_self_attention(x, 2).is_err(), "10 is not 3·2·D");
    let wide = g.input("wide", &[4, 3 * 65]).expect("input");
    let err = g.causal_self_attention(wide, 1).expect_err("D = 65");
    assert!(err.to_string().contains("64"), "{err}");
}

#[test]
fn changing_token_t_leaves_the_logits_before_t_bit_identical() {
    let mut rng = rng("causality");
    for fused_attention in [true, false] {
        let config = GptConfig {
            vocab: 11,
            block: 37,
            width: 12,
            heads: 3,
            layers: 2,
            dropout: 0.0,
            tie_head: true,
            fused_attention,
        };
        let graph = gpt(config).expect("gpt");
        let mut trainer =
            Trainer::for_graph(gpu(), graph, TrainConfig::default()).expect("trainer");
        let tokens: Vec<u32> = rng.below(37, 11).iter().map(|&v| v as u32).collect();
        let before = trainer.logits(&tokens).expect("logits");
        for t in [0, 1, 31, 32, 36] {
            let mut changed = tokens.clone();
            changed[t] = (changed[t] + 1) % 11;
            let after = trainer.logits(&changed).expect("logits");
            let (same, rest) = (t * 11, 11);
            assert_eq!(
                before[..same]
                    .iter()
                    .map(|v| v.to_bits())
                    .collect::<Vec<_>>(),
                after[..same]
                    .iter()
                    .map(|v| v.to_bits())
                    .collect::<Vec<_>>(),
                "fused {fused_attention}: changing token {t} moved an earlier logit"
            );
            assert_ne!(
                before[same..same + rest],
                after[same..same + rest],
                "fused {fused_attention}: changing token {t} did not move its own logits"
            );
        }
    }
}
