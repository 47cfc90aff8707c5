//! Unit tests on tiny random BERT, XLM-R, ELECTRA and DistilBERT checkpoints written by
//! the test itself.
//! Python tests check parity with transformers; these check what must hold whatever the
//! weights: padding does not change scores, input order is restored, weight prefixes and
//! file errors are handled.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use serde_json::json;

use crate::error::Error;
use crate::model::checkpoint::Family;
use crate::model::precision::Precision;
use crate::score::bi_encoder::{BiEncoder, BiEncoderOptions};
use crate::score::cross_encoder::{Activation, CrossEncoder, CrossEncoderOptions, PredictOptions};
use crate::score::engine::Backend;

const WORDS: &[&str] = &[
    "the", "flow", "over", "a", "flat", "plate", "wing", "lift", "heat", "in", "slabs", "boundary",
    "layer",
];
const HIDDEN: usize = 16;
const INTER: usize = 32;
/// ELECTRA's embedding width: unlike the hidden size, so the projection runs.
const ELECTRA_EMBEDDING: usize = 8;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    Bert,
    XlmR,
    Electra,
    DistilBert,
}

const KINDS: [Kind; 4] = [Kind::Bert, Kind::XlmR, Kind::Electra, Kind::DistilBert];

impl Kind {
    fn family(self) -> Family {
        match self {
            Kind::Bert => Family::Bert,
            Kind::XlmR => Family::XlmRoberta,
            Kind::Electra => Family::Electra,
            Kind::DistilBert => Family::DistilBert,
        }
    }

    /// The prefix transformers saves the encoder under, in a model with a head.
    fn prefix(self) -> &'static str {
        match self {
            Kind::Bert => "bert",
            Kind::XlmR => "roberta",
            Kind::Electra => "electra",
            Kind::DistilBert => "distilbert",
        }
    }
}

pub(super) fn randn(shape: &[usize], seed: u64) -> Tensor {
    // A small deterministic generator: the test must not depend on a global RNG.
    let n: usize = shape.iter().product();
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let values: Vec<f32> = (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) as f32 / (1u64 << 31) as f32 - 0.5) * 0.6
        })
        .collect();
    Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
}

/// Writes config.json, tokenizer.json (with padding/truncation baked in, which must be
/// overridden) and model.safetensors for a 2-layer model.
fn write_model(dir: &Path, kind: Kind, prefix: &str, num_labels: usize) {
    let xlmr = kind == Kind::XlmR;
    let specials: &[&str] = if xlmr {
        &["<s>", "<pad>", "</s>", "<unk>"]
    } else {
        &["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    };
    let vocab: HashMap<String, u32> = specials
        .iter()
        .chain(WORDS)
        .enumerate()
        .map(|(i, w)| (w.to_string(), i as u32))
        .collect();
    let (pad, max_pos, type_vocab) = if xlmr { (1, 34, 1) } else { (0, 32, 2) };
    let post = if xlmr {
        json!({"type": "RobertaProcessing", "sep": ["</s>", 2], "cls": ["<s>", 0],
               "trim_offsets": true, "add_prefix_space": false})
    } else {
        json!({"type": "BertProcessing", "sep": ["[SEP]", 3], "cls": ["[CLS]", 2]})
    };
    let tokenizer = json!({
        "version": "1.0",
        "truncation": {"direction": "Right", "max_length": 5, "strategy": "LongestFirst", "stride": 0},
        "padding": {"strategy": {"Fixed": 20}, "direction": "Right", "pad_to_multiple_of": null,
                    "pad_id": pad, "pad_type_id": 0, "pad_token": specials[pad as usize]},
        "added_tokens": [], "normalizer": null, "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": post, "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": specials[if xlmr { 3 } else { 1 }]},
    });
    std::fs::write(dir.join("tokenizer.json"), tokenizer.to_string()).unwrap();
    let (arch, model_type) = match kind {
        Kind::Bert => ("BertForSequenceClassification", "bert"),
        Kind::XlmR => ("XLMRobertaForSequenceClassification", "xlm-roberta"),
        Kind::Electra => ("ElectraForSequenceClassification", "electra"),
        Kind::DistilBert => ("DistilBertForSequenceClassification", "distilbert"),
    };
    let id2label: HashMap<_, _> = (0..num_labels)
        .map(|i| (i.to_string(), format!("LABEL_{i}")))
        .collect();
    let mut config = if kind == Kind::DistilBert {
        // DistilBERT's own spelling of the sizes.
        json!({"dim": HIDDEN, "n_layers": 2, "n_heads": 4, "hidden_dim": INTER, "activation": "gelu"})
    } else {
        json!({"hidden_size": HIDDEN, "num_hidden_layers": 2, "num_attention_heads": 4,
               "intermediate_size": INTER, "hidden_act": "gelu", "type_vocab_size": type_vocab,
               "layer_norm_eps": 1e-12})
    };
    let fields = json!({"architectures": [arch], "model_type": model_type, "vocab_size": vocab.len(),
                        "max_position_embeddings": max_pos, "pad_token_id": pad, "id2label": id2label});
    config
        .as_object_mut()
        .unwrap()
        .extend(fields.as_object().unwrap().clone());
    let embedding = if kind == Kind::Electra {
        config["embedding_size"] = json!(ELECTRA_EMBEDDING);
        ELECTRA_EMBEDDING
    } else {
        HIDDEN
    };
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();

    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    let mut seed = 1u64;
    let mut add = |name: String, shape: &[usize]| {
        seed += 1;
        let mut t = randn(shape, seed);
        if name.ends_with("LayerNorm.weight") || name.ends_with("layer_norm.weight") {
            // Near 1 as in trained models; near 0 would flatten every hidden state.
            t = (t + 1.0).unwrap();
        }
        tensors.insert(name, t);
    };
    let p = |s: &str| {
        if prefix.is_empty() {
            s.to_string()
        } else {
            format!("{prefix}.{s}")
        }
    };
    add(
        p("embeddings.word_embeddings.weight"),
        &[vocab.len(), embedding],
    );
    add(
        p("embeddings.position_embeddings.weight"),
        &[max_pos, embedding],
    );
    if kind != Kind::DistilBert {
        add(
            p("embeddings.token_type_embeddings.weight"),
            &[type_vocab, embedding],
        );
    }
    add(p("embeddings.LayerNorm.weight"), &[embedding]);
    add(p("embeddings.LayerNorm.bias"), &[embedding]);
    if embedding != HIDDEN {
        add(p("embeddings_project.weight"), &[HIDDEN, embedding]);
        add(p("embeddings_project.bias"), &[HIDDEN]);
    }
    let names = kind.family().layout().unwrap();
    for l in 0..2 {
        let layer = |s: &str| p(&format!("{}.{s}", names.layer(l)));
        for name in [names.query, names.key, names.value, names.attention_output] {
            add(layer(&format!("{name}.weight")), &[HIDDEN, HIDDEN]);
            add(layer(&format!("{name}.bias")), &[HIDDEN]);
        }
        add(
            layer(&format!("{}.weight", names.intermediate)),
            &[INTER, HIDDEN],
        );
        add(layer(&format!("{}.bias", names.intermediate)), &[INTER]);
        add(layer(&format!("{}.weight", names.output)), &[HIDDEN, INTER]);
        add(layer(&format!("{}.bias", names.output)), &[HIDDEN]);
        for norm in [names.attention_norm, names.output_norm] {
            add(layer(&format!("{norm}.weight")), &[HIDDEN]);
            add(layer(&format!("{norm}.bias")), &[HIDDEN]);
        }
    }
    let (dense, out) = match kind {
        Kind::Bert => (p("pooler.dense"), "classifier"),
        Kind::XlmR | Kind::Electra => ("classifier.dense".into(), "classifier.out_proj"),
        Kind::DistilBert => ("pre_classifier".into(), "classifier"),
    };
    add(format!("{dense}.weight"), &[HIDDEN, HIDDEN]);
    add(format!("{dense}.bias"), &[HIDDEN]);
    add(format!("{out}.weight"), &[num_labels, HIDDEN]);
    add(format!("{out}.bias"), &[num_labels]);
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors")).unwrap();
}

fn pairs() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            "flow over a flat plate",
            "the boundary layer over a flat plate in the flow",
        ),
        ("lift", "wing lift"),
        ("heat in slabs", "heat"),
        ("", "the wing"),
        ("the boundary layer", ""),
        (
            "unknown words here",
            "the flow over the wing and the plate in heat slabs layer boundary",
        ),
    ]
}

fn load(dir: &Path) -> CrossEncoder {
    let options = CrossEncoderOptions {
        activation: Some(Activation::Identity),
        ..Default::default()
    };
    CrossEncoder::load(dir.to_str().unwrap(), &options).unwrap()
}

pub(super) fn predict(ce: &CrossEncoder, pairs: &[(&str, &str)], batch_size: usize) -> Vec<f32> {
    let options = PredictOptions {
        batch_size,
        ..Default::default()
    };
    ce.predict(pairs, &options, &mut |_| Ok(())).unwrap().values
}

pub(super) fn assert_close(a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= tol, "{x} vs {y}");
    }
}

#[test]
fn padding_and_batching_do_not_change_scores() {
    for kind in KINDS {
        let dir = tempfile::tempdir().unwrap();
        write_model(dir.path(), kind, kind.prefix(), 1);
        let ce = load(dir.path());
        let alone = predict(&ce, &pairs(), 1);
        let batched = predict(&ce, &pairs(), 4);
        assert_close(&alone, &batched, 1e-5);
        assert!(
            alone.iter().any(|v| (v - alone[0]).abs() > 1e-3),
            "scores should differ: {alone:?}"
        );
        // input order is restored
        let mut reversed = pairs();
        reversed.reverse();
        let mut back = predict(&ce, &reversed, 3);
        back.reverse();
        assert_close(&back, &batched, 1e-5);
    }
}

#[test]
fn baked_in_padding_and_truncation_are_overridden() {
    let dir = tempfile::tempdir().unwrap();
    write_model(dir.path(), Kind::Bert, "bert", 1);
    let ce = load(dir.path());
    assert_eq!(ce.max_length(), 32);
    let ids = ce.tokenize(&pairs()).unwrap();
    assert_eq!(ids[1], vec![2, 4 + 7, 3, 4 + 6, 4 + 7, 3]); // [CLS] lift [SEP] wing lift [SEP]
    assert_eq!(ids[5].len(), 3 + 3 + 13);
}

#[test]
fn weights_with_and_without_prefix_agree() {
    for kind in KINDS {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        write_model(a.path(), kind, kind.prefix(), 2);
        write_model(b.path(), kind, "", 2);
        let (x, y) = (
            predict(&load(a.path()), &pairs(), 8),
            predict(&load(b.path()), &pairs(), 8),
        );
        assert_eq!(x.len(), pairs().len() * 2);
        assert_close(&x, &y, 0.0);
    }
}

#[test]
fn xlm_roberta_positions_start_after_padding_index() {
    use crate::model::config::ModelConfig;
    use crate::score::candle::make_input;
    let dir = tempfile::tempdir().unwrap();
    write_model(dir.path(), Kind::XlmR, "roberta", 1);
    let source = crate::model::source::ModelSource::resolve(
        dir.path().to_str().unwrap(),
        &Default::default(),
    )
    .unwrap();
    let config = ModelConfig::load(&source).unwrap();
    let scheme = Family::XlmRoberta.input_scheme(&config.encoder);
    let tok = crate::model::tokenize::TextTokenizer::load(&source, Family::XlmRoberta, 32).unwrap();
    let enc = tok
        .encode_pairs(&[("lift", "wing"), ("lift", "wing lift heat")])
        .unwrap();
    let input = make_input(&[&enc[0], &enc[1]], scheme, 1, &Device::Cpu).unwrap();
    let positions = input.position_ids.to_vec2::<u32>().unwrap();
    // <s> lift </s> </s> wing </s> + 2 pads
    assert_eq!(positions[0], vec![2, 3, 4, 5, 6, 7, 1, 1]);
    assert_eq!(positions[1], (2..10).collect::<Vec<u32>>());
    assert_eq!(
        input.token_type_ids.to_vec2::<u32>().unwrap()[1],
        vec![0; 8]
    );
    assert_eq!(Family::XlmRoberta.max_tokens(&config.encoder), 32);
}

#[test]
fn bi_encoder_mean_pooling_and_normalization() {
    let dir = tempfile::tempdir().unwrap();
    write_model(dir.path(), Kind::Bert, "bert", 1);
    let options = BiEncoderOptions {
        normalize_embeddings: true,
        ..Default::default()
    };
    let be = BiEncoder::load(dir.path().to_str().unwrap(), &options).unwrap();
    let texts = ["flow over a flat plate", "lift", "the wing in heat"];
    let emb = be.encode(&texts, 2, None, None, &mut |_| Ok(())).unwrap();
    assert_eq!(emb.dim, HIDDEN);
    for row in emb.values.chunks(HIDDEN) {
        let norm: f32 = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
    }
    let alone = be
        .encode(&texts[1..2], 1, None, None, &mut |_| Ok(()))
        .unwrap();
    assert_close(&alone.values, &emb.values[HIDDEN..2 * HIDDEN], 1e-5);
}

#[test]
fn bad_files_give_errors() {
    let dir = tempfile::tempdir().unwrap();
    write_model(dir.path(), Kind::Bert, "bert", 1);
    let path = dir.path().to_str().unwrap();
    let options = CrossEncoderOptions::default();

    let too_long = CrossEncoderOptions {
        max_length: Some(33),
        ..Default::default()
    };
    assert!(
        matches!(CrossEncoder::load(path, &too_long), Err(Error::InvalidArgument(m)) if m.contains("position table"))
    );

    let weights = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() / 3]).unwrap();
    assert!(matches!(
        CrossEncoder::load(path, &options),
        Err(Error::BadFile { .. })
    ));
    std::fs::remove_file(&weights).unwrap();
    assert!(
        matches!(CrossEncoder::load(path, &options), Err(Error::NotFound(m)) if m.contains("no weights"))
    );

    let config = dir.path().join("config.json");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace(
            "BertForSequenceClassification",
            "T5ForConditionalGeneration",
        ),
    )
    .unwrap();
    assert!(
        matches!(CrossEncoder::load(path, &options), Err(Error::UnsupportedArchitecture { found, .. }) if found == "T5ForConditionalGeneration")
    );
    std::fs::write(&config, "{not json").unwrap();
    assert!(
        matches!(CrossEncoder::load(path, &options), Err(Error::BadFile { message, .. }) if message.contains("not valid JSON"))
    );
}

#[test]
fn empty_input_gives_empty_scores() {
    let dir = tempfile::tempdir().unwrap();
    write_model(dir.path(), Kind::Bert, "bert", 1);
    let ce = load(dir.path());
    assert!(predict(&ce, &[], 4).is_empty());
}

#[test]
fn cpu_engine_equals_candle_reference() {
    use crate::model::checkpoint::Checkpoint;
    use crate::model::config::ModelConfig;
    use crate::model::source::ModelSource;
    use crate::model::tokenize::TextTokenizer;
    use crate::score::pooling::Pooling;

    let candle = Backend::Candle(Device::Cpu);
    for kind in KINDS {
        let family = kind.family();
        let dir = tempfile::tempdir().unwrap();
        write_model(dir.path(), kind, kind.prefix(), 3);
        let source =
            ModelSource::resolve(dir.path().to_str().unwrap(), &Default::default()).unwrap();
        let config = ModelConfig::load(&source).unwrap();
        let ckpt = Checkpoint::classifier(&source, &config, &Device::Cpu).unwrap();
        let f32 = Precision::Float32;
        let reference = candle.classifier(&ckpt, &config, 3, f32).unwrap();
        let cpu = Backend::Cpu.classifier(&ckpt, &config, 3, f32).unwrap();
        let tok = TextTokenizer::load(&source, family, 32).unwrap();
        let encodings = tok.encode_pairs(&pairs()).unwrap();
        let batch: Vec<_> = encodings.iter().collect();
        assert_close(
            &cpu.predict(&batch).unwrap(),
            &reference.predict(&batch).unwrap(),
            2e-5,
        );

        let encoder = Checkpoint::encoder(&source, &config, &Device::Cpu).unwrap();
        let reference = candle.embedder(&encoder, &config, f32).unwrap();
        let cpu = Backend::Cpu.embedder(&encoder, &config, f32).unwrap();
        let texts = ["flow over a flat plate", "lift", "the wing in heat slabs"];
        let encodings = tok.encode_texts(&texts).unwrap();
        let batch: Vec<_> = encodings.iter().collect();
        for pooling in [
            Pooling::Mean,
            Pooling::Cls,
            Pooling::Max,
            Pooling::MeanSqrtLen,
        ] {
            assert_close(
                &cpu.embed(&batch, pooling).unwrap(),
                &reference.embed(&batch, pooling).unwrap(),
                2e-5,
            );
        }
    }
}

#[test]
fn inputs_spanning_several_chunks_keep_their_order() {
    let dir = tempfile::tempdir().unwrap();
    write_model(dir.path(), Kind::Bert, "bert", 1);
    let ce = load(dir.path());
    let unique = pairs();
    let want = predict(&ce, &unique, 1);
    let n = crate::score::batching::CHUNK * 2 + 37;
    let many: Vec<(&str, &str)> = (0..n).map(|i| unique[i % unique.len()]).collect();
    let got = predict(&ce, &many, 64);
    for (i, score) in got.iter().enumerate() {
        assert!((score - want[i % unique.len()]).abs() < 1e-5, "input {i}");
    }
}

#[test]
fn int8_scores_track_f32_scores() {
    let dir = tempfile::tempdir().unwrap();
    write_model(dir.path(), Kind::Bert, "bert", 1);
    let path = dir.path().to_str().unwrap();
    let exact = load(dir.path());
    let int8 = CrossEncoder::load(
        path,
        &CrossEncoderOptions {
            precision: Precision::Int8,
            activation: Some(Activation::Identity),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(int8.precision(), Precision::Int8);
    let (want, got) = (predict(&exact, &pairs(), 4), predict(&int8, &pairs(), 4));
    let spread = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let worst = want
        .iter()
        .zip(&got)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    if !crate::score::cpu::int8::enabled() {
        // No fast int8 kernel (e.g. aarch64 without dotprod): warned once, ran float32.
        assert_eq!(want, got, "int8 fallback differs from float32");
        return;
    }
    // Close, and not identical: the quantized path really ran.
    assert!(worst <= 0.05 * spread.max(1e-3), "{want:?} vs {got:?}");
    assert!(worst > 0.0, "int8 scores equal f32 bit for bit");
}

/// The engine non-CPU devices use (candle's model) gives the CPU engine's scores; run
/// here on the CPU, since CI has no GPU.
#[test]
fn candle_engine_equals_cpu_engine() {
    for kind in KINDS {
        let dir = tempfile::tempdir().unwrap();
        write_model(dir.path(), kind, "", 1);
        let path = dir.path().to_str().unwrap();
        let options = CrossEncoderOptions {
            activation: Some(Activation::Identity),
            ..Default::default()
        };
        let candle = CrossEncoder::load_on(path, &options, Backend::Candle(Device::Cpu)).unwrap();
        assert_close(
            &predict(&candle, &pairs(), 3),
            &predict(&load(dir.path()), &pairs(), 3),
            2e-5,
        );
        let texts = ["flow over a flat plate", "lift", ""];
        let bi_options = BiEncoderOptions {
            normalize_embeddings: true,
            ..Default::default()
        };
        let embed = |be: BiEncoder| {
            be.encode(&texts, 2, None, None, &mut |_| Ok(()))
                .unwrap()
                .values
        };
        assert_close(
            &embed(BiEncoder::load_on(path, &bi_options, Backend::Candle(Device::Cpu)).unwrap()),
            &embed(BiEncoder::load(path, &bi_options).unwrap()),
            2e-5,
        );
        let int8 = CrossEncoderOptions {
            precision: Precision::Int8,
            ..Default::default()
        };
        assert!(matches!(
            CrossEncoder::load_on(path, &int8, Backend::Candle(Device::Cpu)),
            Err(Error::InvalidArgument(m)) if m.contains("CPU only")
        ));
    }
}

/// A 3-layer ModernBERT classifier (global, sliding, sliding; a token sees 2 positions
/// either side with `local_attention` 4) with the BERT test tokenizer.
fn write_modernbert(dir: &Path, local_attention: usize) {
    write_model(dir, Kind::Bert, "", 1); // its tokenizer.json; config and weights replaced
    let vocab = 4 + WORDS.len();
    let config = json!({
        "architectures": ["ModernBertForSequenceClassification"], "model_type": "modernbert",
        "vocab_size": vocab, "hidden_size": HIDDEN, "intermediate_size": INTER, "num_hidden_layers": 3,
        "num_attention_heads": 4, "max_position_embeddings": 64, "local_attention": local_attention,
        "global_attn_every_n_layers": 3, "pad_token_id": 0, "classifier_pooling": "mean",
        "id2label": {"0": "LABEL_0"},
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    let mut seed = 100u64;
    let mut add = |name: String, shape: &[usize]| {
        seed += 1;
        let t = randn(shape, seed);
        let t = if name.contains("norm") {
            (t + 1.0).unwrap()
        } else {
            t
        };
        tensors.insert(name, t);
    };
    add(
        "model.embeddings.tok_embeddings.weight".into(),
        &[vocab, HIDDEN],
    );
    add("model.embeddings.norm.weight".into(), &[HIDDEN]);
    for l in 0..3 {
        let p = |s: &str| format!("model.layers.{l}.{s}");
        if l > 0 {
            add(p("attn_norm.weight"), &[HIDDEN]);
        }
        add(p("attn.Wqkv.weight"), &[3 * HIDDEN, HIDDEN]);
        add(p("attn.Wo.weight"), &[HIDDEN, HIDDEN]);
        add(p("mlp_norm.weight"), &[HIDDEN]);
        add(p("mlp.Wi.weight"), &[2 * INTER, HIDDEN]);
        add(p("mlp.Wo.weight"), &[HIDDEN, INTER]);
    }
    add("model.final_norm.weight".into(), &[HIDDEN]);
    add("head.dense.weight".into(), &[HIDDEN, HIDDEN]);
    add("head.norm.weight".into(), &[HIDDEN]);
    add("classifier.weight".into(), &[1, HIDDEN]);
    add("classifier.bias".into(), &[1]);
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors")).unwrap();
}

#[test]
fn modernbert_scores_ignore_padding_and_see_only_the_window() {
    let (local, global) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_modernbert(local.path(), 4);
    write_modernbert(global.path(), 64);
    let ce = load(local.path());
    let alone = predict(&ce, &pairs(), 1);
    assert_close(&alone, &predict(&ce, &pairs(), 6), 1e-5);
    assert!(alone.iter().all(|v| v.is_finite()));
    // Only pairs longer than the window (2 each side) see the difference.
    let wide = predict(&load(global.path()), &pairs(), 6);
    let lengths: Vec<usize> = ce
        .tokenize(&pairs())
        .unwrap()
        .iter()
        .map(Vec::len)
        .collect();
    for ((a, b), n) in alone.iter().zip(&wide).zip(lengths) {
        if n <= 3 {
            assert!((a - b).abs() < 1e-5, "{n} tokens: {a} vs {b}");
        } else {
            assert!((a - b).abs() > 1e-4, "{n} tokens: {a} vs {b}");
        }
    }
}

#[test]
fn modernbert_cpu_engine_equals_candle_reference() {
    // Windows narrower and wider than the pairs (2 and 32 positions either side).
    for local_attention in [4, 64] {
        let dir = tempfile::tempdir().unwrap();
        write_modernbert(dir.path(), local_attention);
        let path = dir.path().to_str().unwrap();
        let options = CrossEncoderOptions {
            activation: Some(Activation::Identity),
            ..Default::default()
        };
        let candle = CrossEncoder::load_on(path, &options, Backend::Candle(Device::Cpu)).unwrap();
        assert_close(
            &predict(&load(dir.path()), &pairs(), 4),
            &predict(&candle, &pairs(), 4),
            2e-5,
        );
        let texts = [
            "flow over a flat plate in the boundary layer over the wing",
            "lift",
            "",
        ];
        let embed = |be: BiEncoder| {
            be.encode(&texts, 2, None, None, &mut |_| Ok(()))
                .unwrap()
                .values
        };
        let bi = BiEncoderOptions::default();
        assert_close(
            &embed(BiEncoder::load(path, &bi).unwrap()),
            &embed(BiEncoder::load_on(path, &bi, Backend::Candle(Device::Cpu)).unwrap()),
            2e-5,
        );
    }
}
