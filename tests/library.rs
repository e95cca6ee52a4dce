//! The library in one call each: predict on host rows, save a trainer and load it back to
//! continue exactly.

#[path = "common/mod.rs"]
mod common;

use wgtrain::data::{Dataset, DeviceDataset};
use wgtrain::graph::Feed;
use wgtrain::kernels::Activation;
use wgtrain::kernels::loss::Loss;
use wgtrain::nn::Sequential;
use wgtrain::optim::Optimizer;
use wgtrain::train::{TrainConfig, Trainer};

use common::*;

#[test]
fn a_saved_trainer_loads_to_the_same_predictions_and_the_same_next_steps() {
    let mut rng = rng("save and load");
    // Dropout and Adam: the dropout key (seed, step) and the moments must come back too.
    let model = Sequential::mlp(5, &[12], 3, Activation::Relu, 0.3, false);
    let config = TrainConfig {
        optimizer: Optimizer::adam(0.01),
        seed: 9,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::for_model(gpu(), &model, Loss::CrossEntropy, config).expect("new");
    let batches: Vec<(Vec<f32>, Vec<f32>)> = (0..5)
        .map(|_| (rng.uniform(16 * 5, -1.0, 1.0), rng.below(16, 3)))
        .collect();
    for (x, y) in &batches[..3] {
        trainer.train_batch(x, y).expect("step");
    }
    let path = std::env::temp_dir().join(format!("wgtrain-library-{}.safetensors", rng.seed));
    trainer.save(&path).expect("save");
    let mut loaded = Trainer::load(gpu(), &path).expect("load");
    let _ = std::fs::remove_file(&path);
    assert_eq!(loaded.step(), 3);

    let rows = rng.uniform(7 * 5, -1.0, 1.0);
    let before = trainer.predict(&rows).expect("predict");
    assert_eq!(before.len(), 7 * 3);
    assert_eq!(
        loaded.predict(&rows).expect("predict"),
        before,
        "bit-identical"
    );
    for (x, y) in &batches[3..] {
        let (a, b) = (
            trainer.train_batch(x, y).expect("step"),
            loaded.train_batch(x, y).expect("step"),
        );
        assert_eq!(a.to_bits(), b.to_bits(), "the same next step");
    }
    assert_eq!(
        trainer.weights().read_params(gpu()).expect("read"),
        loaded.weights().read_params(gpu()).expect("read")
    );
}

#[test]
fn checkpoint_bytes_are_the_saved_file_and_load_to_the_same_trainer() {
    let mut rng = rng("checkpoint bytes");
    let model = Sequential::mlp(3, &[8], 2, Activation::Relu, 0.0, true);
    let config = TrainConfig {
        optimizer: Optimizer::adam(0.01),
        ..TrainConfig::default()
    };
    let mut trainer =
        Trainer::for_model(gpu(), &model, Loss::CrossEntropy, config.clone()).expect("new");
    let (x, y) = (rng.uniform(12 * 3, -1.0, 1.0), rng.below(12, 2));
    trainer.train_batch(&x, &y).expect("step");
    let bytes = trainer.to_bytes().expect("bytes");
    let path = std::env::temp_dir().join(format!("wgtrain-bytes-{}.safetensors", rng.seed));
    trainer.save(&path).expect("save");
    let file = std::fs::read(&path).expect("read");
    let _ = std::fs::remove_file(&path);
    assert!(
        file == bytes,
        "save writes exactly the bytes to_bytes gives"
    );

    // Through the async API, as a browser drives it (a native executor stands in here).
    let mut loaded = Trainer::from_bytes(gpu(), &bytes).expect("from bytes");
    assert_eq!(loaded.step(), 1);
    let a = pollster::block_on(trainer.train_inputs_async(&[Feed::F32(&x)], &y)).expect("step");
    let b = pollster::block_on(loaded.train_inputs_async(&[Feed::F32(&x)], &y)).expect("step");
    assert_eq!(a.to_bits(), b.to_bits(), "the same next step");
    let rows = rng.uniform(4 * 3, -1.0, 1.0);
    assert_eq!(
        pollster::block_on(loaded.predict_async(&rows)).expect("predict"),
        trainer.predict(&rows).expect("predict")
    );

    let model_only = pollster::block_on(trainer.model_to_bytes_async()).expect("model bytes");
    let mut inference = Trainer::model_from_bytes(gpu(), &model_only).expect("model");
    assert_eq!(
        inference.predict(&rows).expect("predict"),
        trainer.predict(&rows).expect("p")
    );
    assert!(
        Trainer::from_bytes(gpu(), &model_only).is_err(),
        "a model alone does not resume"
    );
    let error = Trainer::from_bytes(gpu(), &bytes[..bytes.len() / 2]).expect_err("truncated");
    assert!(
        matches!(&error, wgtrain::Error::InvalidData { file, .. } if file.to_string_lossy() == "(checkpoint bytes)"),
        "{error}"
    );

    // Parsed, then edited as a damaged or hand-made file could be: a negative second moment
    // (one square root from NaN weights), and a state saved by no ranks.
    let parsed = || {
        wgtrain::train::checkpoint::parse(std::path::Path::new("edited"), &bytes).expect("parse")
    };
    let mut negative = parsed();
    negative
        .tensors
        .get_mut("optim.0.bias.exp_avg_sq")
        .expect("Adam's second moment")
        .1[1] = -0.5;
    let mut no_ranks = parsed();
    no_ranks.training.as_mut().expect("state").ranks = 0;
    for (edited, says) in [
        (
            negative,
            "optim.0.bias.exp_avg_sq, element 1: -0.5 is negative",
        ),
        (no_ranks, "saved by 0 ranks"),
    ] {
        let mut fresh =
            Trainer::for_model(gpu(), &model, Loss::CrossEntropy, config.clone()).expect("new");
        let error = edited
            .load_training_state(&mut fresh)
            .expect_err("an impossible state");
        assert!(error.to_string().contains(says), "{error}");
    }
    let mut fresh =
        Trainer::for_model(gpu(), &model, Loss::CrossEntropy, config.clone()).expect("new");
    parsed()
        .load_training_state(&mut fresh)
        .expect("the unedited state loads");
}

#[test]
fn predict_needs_no_labels_and_checks_its_rows() {
    let mut rng = rng("predict");
    let model = Sequential::mlp(4, &[6], 3, Activation::Tanh, 0.0, false);
    let mut trainer =
        Trainer::for_model(gpu(), &model, Loss::CrossEntropy, TrainConfig::default()).expect("new");
    let rows = rng.uniform(10 * 4, -1.0, 1.0);
    // The same outputs as evaluating a labelled set of those rows.
    let labelled = Dataset::classification(rows.clone(), 4, vec![1; 10]).expect("data");
    let device = DeviceDataset::upload(gpu(), &labelled).expect("upload");
    let want = trainer.evaluate(&device).expect("evaluate").outputs;
    assert_eq!(trainer.predict(&rows).expect("predict"), want);
    let classes = trainer.predict_classes(&rows).expect("classes");
    assert_eq!(classes.len(), 10);
    assert!(classes.iter().all(|&c| c < 3));

    assert!(trainer.predict(&rows[..7]).is_err(), "not a whole row");
    assert!(trainer.predict(&[]).is_err(), "no rows");
    let mut bad = rows.clone();
    bad[13] = f32::NAN;
    assert!(trainer.predict(&bad).is_err(), "a NaN feature");
}

/// A GPT small enough for a test: vocabulary 7, blocks of 5, two heads of 4.
fn tiny_gpt() -> wgtrain::graph::Graph {
    use wgtrain::nn::models::{GptConfig, gpt};
    gpt(GptConfig {
        block: 5,
        width: 8,
        heads: 2,
        layers: 1,
        ..GptConfig::baby(7)
    })
    .expect("gpt")
}

fn lm_config() -> TrainConfig {
    TrainConfig {
        optimizer: Optimizer::adamw(0.01),
        batch_size: 4,
        steps_per_submit: 2,
        seed: 11,
        ..TrainConfig::default()
    }
}

#[test]
fn token_steps_train_on_the_blocks_the_reference_draws() {
    use wgtrain::data::DeviceTokens;
    use wgtrain::graph::Feed;
    use wgtrain::kernels::text::TRAIN_SALT;
    let mut rng = rng("token steps");
    let stream: Vec<u32> = (0..200).map(|_| rng.next_u32() % 7).collect();
    let tokens = DeviceTokens::upload(gpu(), &stream, 7).expect("upload");
    // Three steps over two submissions, blocks drawn on the GPU...
    let mut sampled = Trainer::for_graph(gpu(), tiny_gpt(), lm_config()).expect("trainer");
    let mut losses = vec![];
    sampled
        .fit_token_steps(&tokens, 3, &mut |log| losses.push(log.loss))
        .expect("steps");
    // ...and the same three from host batches of the blocks the reference says were drawn.
    let mut hosted = Trainer::for_graph(gpu(), tiny_gpt(), lm_config()).expect("trainer");
    for (t, &loss) in (1..=3).zip(&losses) {
        let starts = wgtrain::reference::block_starts(200, 5, 4, (11, t, TRAIN_SALT));
        let input: Vec<u32> = starts
            .iter()
            .flat_map(|&s| stream[s..s + 5].to_vec())
            .collect();
        let next: Vec<f32> = starts
            .iter()
            .flat_map(|&s| stream[s + 1..s + 6].iter().map(|&v| v as f32))
            .collect();
        let want = hosted
            .train_inputs(&[Feed::U32(&input)], &next)
            .expect("step");
        assert_eq!(loss.to_bits(), want.to_bits(), "step {t}: the same batch");
    }
    assert_eq!(
        sampled.weights().read_params(gpu()).expect("read"),
        hosted.weights().read_params(gpu()).expect("read")
    );
}

#[test]
fn a_saved_language_model_keeps_its_vocabulary_and_resumes_on_the_same_blocks() {
    use wgtrain::data::{DeviceTokens, TextCorpus};
    let text = "to be, or not to be: that is the question. ".repeat(8);
    let corpus = TextCorpus::new(&text).expect("corpus");
    assert_eq!(corpus.vocabulary.chars(), " ,.:abehinoqrstu");
    assert_eq!(corpus.train.len() + corpus.val.len(), text.len());
    assert_eq!(corpus.train.len(), text.len() * 9 / 10);
    let vocab = corpus.vocabulary.len();
    let graph = {
        use wgtrain::nn::models::{GptConfig, gpt};
        gpt(GptConfig {
            block: 6,
            width: 8,
            heads: 2,
            layers: 1,
            ..GptConfig::baby(vocab)
        })
        .expect("gpt")
    };
    let tokens = DeviceTokens::upload(gpu(), &corpus.train, vocab).expect("upload");
    let mut trainer = Trainer::for_graph(gpu(), graph, lm_config()).expect("trainer");
    trainer
        .set_vocabulary(corpus.vocabulary.clone())
        .expect("vocabulary");
    trainer
        .fit_token_steps(&tokens, 3, &mut |_| {})
        .expect("steps");
    let path = std::env::temp_dir().join(format!("wgtrain-lm-{}.safetensors", seed("lm")));
    trainer.save(&path).expect("save");
    let mut loaded = Trainer::load(gpu(), &path).expect("load");
    let _ = std::fs::remove_file(&path);
    assert_eq!(loaded.vocabulary(), Some(&corpus.vocabulary));
    let (mut a, mut b) = (vec![], vec![]);
    trainer
        .fit_token_steps(&tokens, 3, &mut |l| a.push(l.loss))
        .expect("steps");
    loaded
        .fit_token_steps(&tokens, 3, &mut |l| b.push(l.loss))
        .expect("steps");
    assert_eq!(
        a, b,
        "steps 4-6 draw the same blocks and take the same updates"
    );
    let val = DeviceTokens::upload(gpu(), &corpus.val, vocab).expect("upload");
    // Six blocks in batches of 4 (one partial): the same blocks for the same seed.
    let first = trainer.evaluate_token_blocks(&val, 6, 1).expect("estimate");
    assert_eq!(
        first,
        trainer.evaluate_token_blocks(&val, 6, 1).expect("estimate")
    );
    assert_eq!(
        first,
        loaded.evaluate_token_blocks(&val, 6, 1).expect("estimate")
    );
    assert!(first.is_finite() && first > 0.0, "{first}");
}

#[test]
fn generation_is_seeded_greedy_at_temperature_zero_and_checks_its_input() {
    use wgtrain::train::Sampling;
    let mut trainer = Trainer::for_graph(gpu(), tiny_gpt(), lm_config()).expect("trainer");
    let sampling = |seed, temperature, top_k| Sampling {
        temperature,
        top_k,
        seed,
    };
    // Longer than a block: the context slides.
    let a = trainer
        .generate(&[1, 2], 12, sampling(5, 1.0, None))
        .expect("generate");
    assert_eq!(a.len(), 12);
    assert!(a.iter().all(|&t| t < 7));
    assert_eq!(
        a,
        trainer
            .generate(&[1, 2], 12, sampling(5, 1.0, None))
            .expect("again")
    );
    let greedy = trainer
        .generate(&[1, 2], 12, sampling(5, 0.0, None))
        .expect("greedy");
    assert_eq!(
        greedy,
        trainer
            .generate(&[1, 2], 12, sampling(6, 0.0, None))
            .expect("greedy")
    );
    assert_eq!(
        greedy,
        trainer
            .generate(&[1, 2], 12, sampling(7, 1.0, Some(1)))
            .expect("top 1")
    );
    for (prompt, s, what) in [
        (&[][..], sampling(0, 1.0, None), "an empty prompt"),
        (
            &[7][..],
            sampling(0, 1.0, None),
            "a token past the vocabulary",
        ),
        (&[1][..], sampling(0, -1.0, None), "a negative temperature"),
        (&[1][..], sampling(0, f32::NAN, None), "a NaN temperature"),
        (&[1][..], sampling(0, 1.0, Some(0)), "top-k of 0"),
    ] {
        assert!(trainer.generate(prompt, 3, s).is_err(), "{what} is refused");
    }
}

#[test]
fn text_input_errors_name_the_problem() {
    use wgtrain::data::{DeviceTokens, Vocabulary};
    let vocabulary = Vocabulary::of("abc");
    let err = vocabulary.encode("abd").expect_err("d is not in it");
    assert!(err.to_string().contains("'d' at position 2"), "{err}");
    assert!(vocabulary.decode(&[3]).is_err(), "token 3 of 3");
    assert!(Vocabulary::from_chars("ba").is_err(), "not sorted");
    assert!(
        DeviceTokens::upload(gpu(), &[0, 7], 7).is_err(),
        "token 7 of 7"
    );
    assert!(DeviceTokens::upload(gpu(), &[], 7).is_err(), "no tokens");

    let mut trainer = Trainer::for_graph(gpu(), tiny_gpt(), lm_config()).expect("trainer");
    let err = trainer
        .set_vocabulary(Vocabulary::of("abc"))
        .expect_err("3 characters for 7 logits");
    assert!(matches!(err, wgtrain::Error::ShapeMismatch { .. }), "{err}");
    assert!(trainer.vocabulary().is_none(), "nothing was set");
    let seven = Vocabulary::of("abcdefg");
    trainer.set_vocabulary(seven.clone()).expect("7 for 7");
    assert_eq!(trainer.vocabulary(), Some(&seven));
    let short = DeviceTokens::upload(gpu(), &[1, 2, 3, 4, 5], 7).expect("upload");
    let err = trainer
        .fit_token_steps(&short, 1, &mut |_| {})
        .expect_err("5 tokens");
    assert!(err.to_string().contains("shorter than one block"), "{err}");
    let tokens = DeviceTokens::upload(gpu(), &[1; 50], 7).expect("upload");
    assert!(
        trainer.evaluate_token_blocks(&tokens, 0, 1).is_err(),
        "no blocks to average"
    );
    let err = trainer
        .fit_token_steps(&tokens, 0, &mut |_| {})
        .expect_err("no steps, no mean loss");
    assert!(err.to_string().contains("0 steps"), "{err}");
    // Host batches of token ids are checked against the embedding they index: a token past
    // it would read another row's memory, and the update would train on that.
    let before = trainer.weights().read_params(gpu()).expect("read");
    let mut ids = vec![1u32; 4 * 5];
    ids[13] = 7;
    let err = trainer
        .train_inputs(&[wgtrain::graph::Feed::U32(&ids)], &[1.0; 4 * 5])
        .expect_err("token 7 of 7");
    assert!(
        err.to_string().contains("sample 2, element 3 is 7")
            && err.to_string().contains("7 rows of the embedding"),
        "{err}"
    );
    assert_eq!(trainer.step(), 0, "nothing was trained");
    assert_eq!(trainer.weights().read_params(gpu()).expect("read"), before);
    let wrong_vocab = DeviceTokens::upload(gpu(), &[1; 50], 9).expect("upload");
    assert!(
        trainer
            .fit_token_steps(&wrong_vocab, 1, &mut |_| {})
            .is_err(),
        "9 ≠ 7 logits"
    );
    let mlp = Sequential::mlp(4, &[6], 3, Activation::Tanh, 0.0, false);
    let mut classifier =
        Trainer::for_model(gpu(), &mlp, Loss::CrossEntropy, TrainConfig::default()).expect("mlp");
    let err = classifier
        .fit_token_steps(&tokens, 1, &mut |_| {})
        .expect_err("f32 input");
    assert!(err.to_string().contains("u32 input"), "{err}");
    assert!(
        classifier.generate(&[1], 1, Default::default()).is_err(),
        "not a language model"
    );
    assert!(
        classifier.set_vocabulary(Vocabulary::of("abc")).is_err(),
        "3 outputs, but not a language model"
    );
}

/// nanoGPT's `GPT(GPTConfig(n_layer, n_head, n_embd, block_size, vocab_size, bias=True))`
/// `state_dict()`, written out from its module tree: every key and shape in order.
fn nanogpt_state_dict(
    layers: usize,
    width: usize,
    block: usize,
    vocab: usize,
) -> Vec<(String, Vec<usize>)> {
    let c = width;
    let mut keys = vec![
        ("transformer.wte.weight".to_string(), vec![vocab, c]),
        ("transformer.wpe.weight".to_string(), vec![block, c]),
    ];
    for i in 0..layers {
        let h = |name: &str, shape: &[usize]| (format!("transformer.h.{i}.{name}"), shape.to_vec());
        keys.extend([
            h("ln_1.weight", &[c]),
            h("ln_1.bias", &[c]),
            h("attn.c_attn.weight", &[3 * c, c]),
            h("attn.c_attn.bias", &[3 * c]),
            h("attn.c_proj.weight", &[c, c]),
            h("attn.c_proj.bias", &[c]),
            h("ln_2.weight", &[c]),
            h("ln_2.bias", &[c]),
            h("mlp.c_fc.weight", &[4 * c, c]),
            h("mlp.c_fc.bias", &[4 * c]),
            h("mlp.c_proj.weight", &[c, 4 * c]),
            h("mlp.c_proj.bias", &[c]),
        ]);
    }
    keys.extend([
        ("transformer.ln_f.weight".to_string(), vec![c]),
        ("transformer.ln_f.bias".to_string(), vec![c]),
        ("lm_head.weight".to_string(), vec![vocab, c]),
    ]);
    keys
}

/// nanoGPT's forward in f64 from a state dict: embeddings, pre-LN blocks of causal attention
/// and a tanh-GELU MLP, the final LayerNorm, the head.
fn nanogpt_logits(
    sd: &dyn Fn(&str) -> Vec<f64>,
    tokens: &[u32],
    (layers, heads, width, vocab): (usize, usize, usize, usize),
) -> Vec<f64> {
    use wgtrain::reference::{causal_self_attention, layer_norm, matmul};
    let (t, c) = (tokens.len(), width);
    let (wte, wpe) = (sd("transformer.wte.weight"), sd("transformer.wpe.weight"));
    let mut x: Vec<f64> = (0..t * c)
        .map(|i| wte[tokens[i / c] as usize * c + i % c] + wpe[i])
        .collect();
    let linear = |x: &[f64], name: &str, out: usize| -> Vec<f64> {
        let (w, b) = (sd(&format!("{name}.weight")), sd(&format!("{name}.bias")));
        let inp = x.len() / t;
        let mut y = matmul(x, &w, (t, out, inp), false, true);
        for (i, v) in y.iter_mut().enumerate() {
            *v += b[i % out];
        }
        y
    };
    let ln = |x: &[f64], name: &str| {
        layer_norm(
            x,
            c,
            &sd(&format!("{name}.weight")),
            &sd(&format!("{name}.bias")),
            1e-5,
        )
    };
    for i in 0..layers {
        let p = format!("transformer.h.{i}");
        let qkv = linear(
            &ln(&x, &format!("{p}.ln_1")),
            &format!("{p}.attn.c_attn"),
            3 * c,
        );
        let y = causal_self_attention(&qkv, t, heads, c / heads);
        let y = linear(&y, &format!("{p}.attn.c_proj"), c);
        x.iter_mut().zip(&y).for_each(|(a, b)| *a += b);
        let h = linear(
            &ln(&x, &format!("{p}.ln_2")),
            &format!("{p}.mlp.c_fc"),
            4 * c,
        );
        let gelu: Vec<f64> = h
            .iter()
            .map(|&v| {
                0.5 * v
                    * (1.0
                        + ((2.0 / std::f64::consts::PI).sqrt() * (v + 0.044715 * v.powi(3))).tanh())
            })
            .collect();
        let y = linear(&gelu, &format!("{p}.mlp.c_proj"), c);
        x.iter_mut().zip(&y).for_each(|(a, b)| *a += b);
    }
    matmul(
        &ln(&x, "transformer.ln_f"),
        &sd("lm_head.weight"),
        (t, vocab, c),
        false,
        true,
    )
}

#[test]
fn a_baby_gpt_model_file_is_nanogpts_state_dict_and_its_f64_forward_gives_our_logits() {
    use wgtrain::data::DeviceTokens;
    use wgtrain::nn::models::{GptConfig, gpt};
    use wgtrain::train::checkpoint;
    let mut rng = rng("nanogpt");
    let (layers, heads, width, block, vocab) = (4, 4, 128, 64, 78);
    for tie_head in [true, false] {
        let graph = gpt(GptConfig {
            tie_head,
            ..GptConfig::baby(vocab)
        })
        .expect("gpt");
        let mut trainer = Trainer::for_graph(
            gpu(),
            graph,
            TrainConfig {
                batch_size: 2,
                ..lm_config()
            },
        )
        .expect("trainer");
        // Two steps move every weight off its initialisation.
        let stream: Vec<u32> = (0..500).map(|_| rng.next_u32() % vocab as u32).collect();
        let tokens = DeviceTokens::upload(gpu(), &stream, vocab).expect("upload");
        trainer
            .fit_token_steps(&tokens, 2, &mut |_| {})
            .expect("steps");
        let path = std::env::temp_dir().join(format!(
            "wgtrain-nanogpt-{}-{tie_head}.safetensors",
            rng.seed
        ));
        trainer.save_model(&path).expect("save");
        let file = checkpoint::load(&path).expect("load");
        let mut loaded = Trainer::load_model(gpu(), &path).expect("load model");
        let _ = std::fs::remove_file(&path);

        let want = nanogpt_state_dict(layers, width, block, vocab);
        let mut got: Vec<(String, Vec<usize>)> = file
            .tensors
            .iter()
            .map(|(k, (shape, _))| (k.clone(), shape.clone()))
            .collect();
        got.sort();
        let mut sorted = want.clone();
        sorted.sort();
        assert_eq!(
            got, sorted,
            "tied {tie_head}: exactly nanoGPT's keys and shapes, nothing else"
        );
        if tie_head {
            assert_eq!(
                file.tensors["lm_head.weight"],
                file.tensors["transformer.wte.weight"]
            );
        }

        let block_tokens = &stream[100..100 + block];
        let sd = |name: &str| -> Vec<f64> { f64s(&file.tensors[name].1) };
        let want = nanogpt_logits(&sd, block_tokens, (layers, heads, width, vocab));
        let got = loaded.logits(block_tokens).expect("logits");
        // Four blocks of f32 sums over ≤ 512 terms (γ₅₁₂ ≈ 3e-5 each), LayerNorms dividing
        // by row σ: the logits drift by ~1e-4 of their scale; 1e-3 of it is the bound, while
        // a wrong name, transpose or layout moves them by O(scale).
        let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        assert_close(
            &format!("tied {tie_head}: logits"),
            &got,
            &want,
            1e-3 * scale,
            0.0,
        );
    }
}

/// Opens the adapter in a child process of this test binary without XDG_RUNTIME_DIR, as on
/// a server without a desktop login: whatever Mesa prints, wgtrain's one-line note comes first.
#[test]
#[cfg(target_os = "linux")]
fn without_a_runtime_dir_a_note_comes_before_mesas_error_lines() {
    if std::env::var_os("WGTRAIN_OPEN_ADAPTER_ONLY").is_some() {
        wgtrain::Gpu::new().expect("adapter");
        return;
    }
    let exe = std::env::current_exe().expect("test binary");
    let output = std::process::Command::new(exe)
        .args([
            "--exact",
            "without_a_runtime_dir_a_note_comes_before_mesas_error_lines",
            "--nocapture",
        ])
        .env("WGTRAIN_OPEN_ADAPTER_ONLY", "1")
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .expect("child");
    assert!(output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let note = stderr.find("note: XDG_RUNTIME_DIR is not set");
    assert!(note.is_some(), "{stderr}");
    assert_eq!(
        stderr.matches("note: XDG_RUNTIME_DIR").count(),
        1,
        "{stderr}"
    );
    if let Some(mesa) = stderr.find("error: XDG_RUNTIME_DIR") {
        assert!(note < Some(mesa), "the note comes first: {stderr}");
    }
}
