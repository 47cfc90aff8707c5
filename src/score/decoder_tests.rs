//! Unit tests of the decoder reranker on tiny random Qwen3 checkpoints written by the test
//! itself (a word-level tokenizer with the chat tokens, "yes" and "no", and a small chat
//! template): the CPU engine, with its shared-prefix cache, equals candle's Qwen3 (the
//! reference); truncation keeps the template's end; bad checkpoints give clear errors.
//! Python tests check parity with transformers and sentence-transformers.

use std::collections::HashMap;
use std::path::Path;

use candle_core::Device;
use serde_json::json;

use super::tests::{assert_close, predict, randn};
use crate::error::Error;
use crate::model::precision::Precision;
use crate::score::cross_encoder::{Activation, CrossEncoder, CrossEncoderOptions, PredictOptions};
use crate::score::engine::Backend;
use crate::score::long_document::LongDocument;

const SPECIAL: &[&str] = &["[UNK]", "<|im_start|>", "<|im_end|>"];
const WORDS: &[&str] = &[
    "yes",
    "no",
    "system",
    "query",
    "document",
    "assistant",
    "judge",
    "the",
    "flow",
    "over",
    "a",
    "flat",
    "plate",
    "wing",
    "lift",
    "heat",
    "in",
    "slabs",
    "boundary",
    "layer",
    // sentence-transformers' fillers for finding the template's end ("0", "1 2 3 4"):
    // were they both unknown, the unknown token would count as part of the end.
    "0",
    "1",
    "2",
    "3",
    "4",
];
const TEMPLATE: &str = "{% for m in messages %}<|im_start|> {{ m.role }} {{ m.content }} \
                        <|im_end|> {% endfor %}<|im_start|> assistant judge";
const HIDDEN: usize = 32;
const HEADS: usize = 4;
const KV_HEADS: usize = 2;
const HEAD_DIM: usize = 8;
const INTER: usize = 48;
const LAYERS: usize = 3;

/// Writes a 3-layer Qwen3ForCausalLM (grouped-query attention: 4 heads over 2 key/value
/// heads) with its tokenizer and chat template; `vocab` words beyond the special tokens.
fn write_qwen3(dir: &Path, tied: bool, words: &[&str]) {
    let vocab: HashMap<String, u32> = SPECIAL
        .iter()
        .chain(words)
        .enumerate()
        .map(|(i, w)| (w.to_string(), i as u32))
        .collect();
    let added: Vec<_> = SPECIAL[1..]
        .iter()
        .map(|t| {
            json!({"id": vocab[*t], "content": t, "single_word": false, "lstrip": false,
                   "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    let tokenizer = json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
        "normalizer": null, "pre_tokenizer": {"type": "WhitespaceSplit"},
        "post_processor": null, "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"},
    });
    std::fs::write(dir.join("tokenizer.json"), tokenizer.to_string()).unwrap();
    std::fs::write(dir.join("chat_template.jinja"), TEMPLATE).unwrap();
    let n = vocab.len();
    let config = json!({
        "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "vocab_size": n,
        "hidden_size": HIDDEN, "intermediate_size": INTER, "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS, "num_key_value_heads": KV_HEADS, "head_dim": HEAD_DIM,
        "max_position_embeddings": 128, "rms_norm_eps": 1e-6, "hidden_act": "silu",
        "tie_word_embeddings": tied, "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"},
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let mut tensors = HashMap::new();
    let mut seed = 0;
    let mut add = |name: String, shape: &[usize], norm: bool| {
        seed += 1;
        let t = randn(shape, seed);
        let t = if norm { (t + 1.0).unwrap() } else { t };
        tensors.insert(name, t);
    };
    add("model.embed_tokens.weight".into(), &[n, HIDDEN], false);
    for i in 0..LAYERS {
        let l = format!("model.layers.{i}");
        add(format!("{l}.input_layernorm.weight"), &[HIDDEN], true);
        add(
            format!("{l}.self_attn.q_proj.weight"),
            &[HEADS * HEAD_DIM, HIDDEN],
            false,
        );
        add(
            format!("{l}.self_attn.k_proj.weight"),
            &[KV_HEADS * HEAD_DIM, HIDDEN],
            false,
        );
        add(
            format!("{l}.self_attn.v_proj.weight"),
            &[KV_HEADS * HEAD_DIM, HIDDEN],
            false,
        );
        add(
            format!("{l}.self_attn.o_proj.weight"),
            &[HIDDEN, HEADS * HEAD_DIM],
            false,
        );
        add(format!("{l}.self_attn.q_norm.weight"), &[HEAD_DIM], true);
        add(format!("{l}.self_attn.k_norm.weight"), &[HEAD_DIM], true);
        add(
            format!("{l}.post_attention_layernorm.weight"),
            &[HIDDEN],
            true,
        );
        add(format!("{l}.mlp.gate_proj.weight"), &[INTER, HIDDEN], false);
        add(format!("{l}.mlp.up_proj.weight"), &[INTER, HIDDEN], false);
        add(format!("{l}.mlp.down_proj.weight"), &[HIDDEN, INTER], false);
    }
    add("model.norm.weight".into(), &[HIDDEN], true);
    if !tied {
        add("lm_head.weight".into(), &[n, HIDDEN], false);
    }
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors")).unwrap();
}

/// Three queries' candidates, interleaved, so that batches mix queries and a query's
/// candidates fall into several batches.
fn pairs() -> Vec<(&'static str, &'static str)> {
    let queries = [
        "flow over a flat plate",
        "lift",
        "heat in slabs boundary layer",
    ];
    let documents = [
        "the boundary layer over a flat plate in the flow",
        "wing lift",
        "heat",
        "",
        "the flow over the wing and the plate in heat slabs layer boundary the flow",
    ];
    documents
        .iter()
        .flat_map(|d| queries.iter().map(move |q| (*q, *d)))
        .collect()
}

fn options(max_length: Option<usize>) -> CrossEncoderOptions {
    CrossEncoderOptions {
        activation: Some(Activation::Identity),
        max_length,
        ..Default::default()
    }
}

#[test]
fn cpu_engine_equals_candle_reference_with_and_without_shared_prefixes() {
    for tied in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        write_qwen3(dir.path(), tied, WORDS);
        let path = dir.path().to_str().unwrap();
        // 24 tokens: the longest prompts are cut.
        for max_length in [None, Some(24)] {
            let reference =
                CrossEncoder::load_on(path, &options(max_length), Backend::Candle(Device::Cpu))
                    .unwrap();
            let want = predict(&reference, &pairs(), 4);
            assert!(
                want.iter().any(|w| (w - want[0]).abs() > 0.1),
                "the random model must separate pairs"
            );
            let cpu = CrossEncoder::load_on(path, &options(max_length), Backend::Cpu).unwrap();
            // Batches of one (nothing shared), mixed batches, one batch per call; and again
            // with the prefixes cached by the first calls.
            for batch_size in [1, 3, 15, 15, 1] {
                assert_close(&predict(&cpu, &pairs(), batch_size), &want, 1e-4);
            }
            // One query's candidates in one call, as `rank` scores them.
            let one_query: Vec<_> = pairs().into_iter().filter(|p| p.0 == "lift").collect();
            let want_one: Vec<f32> = pairs()
                .iter()
                .zip(&want)
                .filter(|(p, _)| p.0 == "lift")
                .map(|(_, w)| *w)
                .collect();
            assert_close(&predict(&cpu, &one_query, 5), &want_one, 1e-4);
        }
    }
}

#[test]
fn truncation_cuts_the_document_and_keeps_the_template_end() {
    let dir = tempfile::tempdir().unwrap();
    write_qwen3(dir.path(), true, WORDS);
    let ce = CrossEncoder::load(dir.path().to_str().unwrap(), &options(Some(24))).unwrap();
    let full = CrossEncoder::load(dir.path().to_str().unwrap(), &options(None)).unwrap();
    let long = (
        "lift",
        "the flow over the wing and the plate in heat slabs layer boundary the flow",
    );
    let cut = &ce.tokenize(&[long]).unwrap()[0];
    let whole = &full.tokenize(&[long]).unwrap()[0];
    assert_eq!(cut.len(), 24);
    assert!(whole.len() > 24);
    // "<|im_end|> <|im_start|> assistant judge" ends every prompt, truncated or not.
    let end = &whole[whole.len() - 4..];
    assert_eq!(&cut[20..], end);
    // Before it: the beginning of the whole prompt (the document's end is what was cut).
    assert_eq!(&cut[..20], &whole[..20]);
}

#[test]
fn what_does_not_apply_to_decoders_says_so() {
    let dir = tempfile::tempdir().unwrap();
    write_qwen3(dir.path(), true, WORDS);
    let path = dir.path().to_str().unwrap();
    let ce = CrossEncoder::load(path, &options(None)).unwrap();
    let windows = PredictOptions {
        long_document: LongDocument::Max,
        ..Default::default()
    };
    let err = ce
        .predict(&pairs(), &windows, &mut |_| Ok(()))
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .contains("not available for decoder rerankers"),
        "{err}"
    );
    let err = ce.compare("q", &[("a", "b")], &PredictOptions::default(), &mut |_| {
        Ok(())
    });
    assert!(err.unwrap_err().to_string().contains("decoder rerankers"));
}

#[test]
fn int8_scores_track_float32_scores() {
    let dir = tempfile::tempdir().unwrap();
    write_qwen3(dir.path(), true, WORDS);
    let path = dir.path().to_str().unwrap();
    let f32_scores = predict(
        &CrossEncoder::load(path, &options(None)).unwrap(),
        &pairs(),
        4,
    );
    let int8 = CrossEncoderOptions {
        precision: Precision::Int8,
        ..options(None)
    };
    let int8_scores = predict(&CrossEncoder::load(path, &int8).unwrap(), &pairs(), 4);
    let spread = f32_scores.iter().fold(0f32, |m, v| m.max(v.abs()));
    let worst = f32_scores
        .iter()
        .zip(&int8_scores)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    // Where the CPU has a fast int8 kernel the scores move a little; elsewhere int8 runs
    // as float32 (and warns).
    assert!(
        worst <= 0.1 * spread,
        "int8 {int8_scores:?} vs f32 {f32_scores:?}"
    );
}

#[test]
fn bad_decoder_checkpoints_give_clear_errors() {
    // No "yes"/"no" tokens and no LogitScore config.
    let dir = tempfile::tempdir().unwrap();
    write_qwen3(dir.path(), true, &WORDS[2..]);
    let err = CrossEncoder::load(dir.path().to_str().unwrap(), &options(None))
        .err()
        .unwrap();
    assert!(
        matches!(&err, Error::InvalidArgument(m) if m.contains("\"yes\" and \"no\"")),
        "{err}"
    );
    // A template longer than max_length with an empty query and document.
    let dir = tempfile::tempdir().unwrap();
    write_qwen3(dir.path(), true, WORDS);
    let err = CrossEncoder::load(dir.path().to_str().unwrap(), &options(Some(8)))
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("empty query and document"),
        "{err}"
    );
    // An instruction is taken by a decoder.
    let options = CrossEncoderOptions {
        instruction: Some("judge".into()),
        ..options(None)
    };
    assert!(CrossEncoder::load(dir.path().to_str().unwrap(), &options).is_ok());
}
