//! `wgtrain generate`: a saved language model continues a prompt, reproducibly per seed,
//! and refuses what it cannot encode or is not a language model.

use wgtrain::data::Vocabulary;
use wgtrain::nn::models::{GptConfig, gpt};
use wgtrain::train::{TrainConfig, Trainer};

use crate::common::gpu;
use crate::*;

#[test]
fn generate_continues_the_prompt_per_seed_and_names_what_it_refuses() {
    let dir = scratch("generate");
    let vocabulary = Vocabulary::of("abc de\n");
    let graph = gpt(GptConfig {
        block: 8,
        width: 8,
        heads: 2,
        layers: 1,
        ..GptConfig::baby(vocabulary.len())
    })
    .expect("gpt");
    let mut trainer = Trainer::for_graph(gpu(), graph, TrainConfig::default()).expect("trainer");
    trainer
        .set_vocabulary(vocabulary.clone())
        .expect("vocabulary");
    let model = dir.join("lm.safetensors");
    trainer.save_model(&model).expect("save");
    let run = |prompt: &str, seed: &str| {
        wgtrain(&[
            "generate",
            "--model",
            path_str(&model),
            "--prompt",
            prompt,
            "--tokens",
            "30",
            "--seed",
            seed,
            "--temperature",
            "1",
        ])
    };
    let first = run("ab", "1");
    assert!(first.status.success(), "{}", stderr(&first));
    let text = String::from_utf8(first.stdout.clone()).expect("utf-8");
    let body = text.strip_suffix('\n').expect("a final newline");
    assert!(body.starts_with("ab"), "{text:?}");
    assert_eq!(
        body.chars().count(),
        32,
        "the prompt and 30 characters: {text:?}"
    );
    assert!(
        vocabulary.encode(body).is_ok(),
        "only the model's characters: {text:?}"
    );
    assert_eq!(
        run("ab", "1").stdout,
        first.stdout,
        "the same seed, the same text"
    );
    assert_ne!(
        run("ab", "2").stdout,
        first.stdout,
        "another seed, another text"
    );

    let unknown = run("abz", "1");
    assert!(!unknown.status.success());
    assert!(
        stderr(&unknown).contains("'z' at position 2"),
        "{}",
        stderr(&unknown)
    );

    // A classifier's checkpoint has no vocabulary.
    let csv = dir.join("data.csv");
    write_classification_csv(&csv, 40);
    let classifier = dir.join("mlp.safetensors");
    let trained = wgtrain(&[
        "train",
        "--data",
        path_str(&csv),
        "--epochs",
        "1",
        "--save",
        path_str(&classifier),
    ]);
    assert!(trained.status.success(), "{}", stderr(&trained));
    let refused = wgtrain(&[
        "generate",
        "--model",
        path_str(&classifier),
        "--prompt",
        "a",
    ]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("not a language model"),
        "{}",
        stderr(&refused)
    );
}
