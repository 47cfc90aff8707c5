//! Trainer tests on a tiny random BERT written by the test itself (no fixtures needed):
//! bad input, head creation, determinism, the saved checkpoint read back by crossrank's
//! own `CrossEncoder`. Parity with PyTorch is `tests/train_parity.rs`.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use serde_json::json;

use crate::error::Error;
use crate::score::cross_encoder::{Activation, CrossEncoder, CrossEncoderOptions, PredictOptions};
use crate::train::init::NormalRng;
use crate::train::{Batch, Group, Loss, Trainer, TrainerConfig};

const WORDS: &[&str] = &[
    "the", "flow", "over", "a", "flat", "plate", "wing", "lift", "heat", "in", "slabs", "boundary",
    "layer", "what", "is", "of",
];
const H: usize = 16;
const INTER: usize = 32;
const LAYERS: usize = 2;

/// config.json, vocab.txt and model.safetensors of a 2-layer BERT; `head`: the number of
/// labels of a classification head under the `bert.` prefix, or a bare encoder.
fn write_model(dir: &Path, head: Option<usize>) {
    let vocab: Vec<&str> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
        .iter()
        .chain(WORDS)
        .copied()
        .collect();
    std::fs::write(dir.join("vocab.txt"), vocab.join("\n") + "\n").unwrap();
    let mut config = json!({
        "vocab_size": vocab.len(), "hidden_size": H, "num_hidden_layers": LAYERS,
        "num_attention_heads": 2, "intermediate_size": INTER, "hidden_act": "gelu",
        "max_position_embeddings": 32, "type_vocab_size": 2, "layer_norm_eps": 1e-12,
        "initializer_range": 0.02, "model_type": "bert", "architectures": ["BertModel"],
    });
    if let Some(n) = head {
        config["architectures"] = json!(["BertForSequenceClassification"]);
        config["id2label"] = (0..n)
            .map(|i| (i.to_string(), json!(format!("LABEL_{i}"))))
            .collect();
    }
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();

    let mut rng = NormalRng::new(1234);
    let dev = Device::Cpu;
    let mut t = HashMap::<String, Tensor>::new();
    let p = if head.is_some() { "bert." } else { "" };
    let mut add = |name: String, shape: &[usize], std: f64, mean: f32| {
        let v = (rng.normal_tensor(shape, std, &dev).unwrap() + mean as f64).unwrap();
        t.insert(name, v);
    };
    add(
        format!("{p}embeddings.word_embeddings.weight"),
        &[vocab.len(), H],
        0.5,
        0.0,
    );
    add(
        format!("{p}embeddings.position_embeddings.weight"),
        &[32, H],
        0.5,
        0.0,
    );
    add(
        format!("{p}embeddings.token_type_embeddings.weight"),
        &[2, H],
        0.5,
        0.0,
    );
    add(format!("{p}embeddings.LayerNorm.weight"), &[H], 0.1, 1.0);
    add(format!("{p}embeddings.LayerNorm.bias"), &[H], 0.1, 0.0);
    for i in 0..LAYERS {
        let l = format!("{p}encoder.layer.{i}");
        for (name, out, inp) in [
            ("attention.self.query", H, H),
            ("attention.self.key", H, H),
            ("attention.self.value", H, H),
            ("attention.output.dense", H, H),
            ("intermediate.dense", INTER, H),
            ("output.dense", H, INTER),
        ] {
            add(format!("{l}.{name}.weight"), &[out, inp], 0.3, 0.0);
            add(format!("{l}.{name}.bias"), &[out], 0.1, 0.0);
        }
        for name in ["attention.output.LayerNorm", "output.LayerNorm"] {
            add(format!("{l}.{name}.weight"), &[H], 0.1, 1.0);
            add(format!("{l}.{name}.bias"), &[H], 0.1, 0.0);
        }
    }
    add(format!("{p}pooler.dense.weight"), &[H, H], 0.3, 0.0);
    add(format!("{p}pooler.dense.bias"), &[H], 0.1, 0.0);
    if let Some(n) = head {
        add("classifier.weight".into(), &[n, H], 0.5, 0.0);
        add("classifier.bias".into(), &[n], 0.1, 0.0);
    }
    candle_core::safetensors::save(&t, dir.join("model.safetensors")).unwrap();
}

const PAIRS: &[(&str, &str)] = &[
    (
        "what is lift",
        "the lift of a flat plate wing in a boundary layer",
    ),
    ("what is lift", "heat in slabs"),
    ("heat of slabs", "the heat flow in slabs over a flat plate"),
    ("heat of slabs", "wing lift"),
];
const LABELS: &[f32] = &[1.0, 0.0, 0.8, 0.1];

fn config(dir: &Path) -> TrainerConfig {
    let mut c = TrainerConfig::new(dir.to_string_lossy());
    c.learning_rate = 1e-3;
    c.batch_size = 4;
    c.epochs = 10;
    c.max_length = Some(16);
    // These tests watch the loss of one batch fall; dropout's noise on four examples hides
    // that (dropout has its own tests in dropout.rs and tests/test_train.py).
    c.dropout = Some(0.0);
    c
}

fn pairs_batch() -> Batch<'static> {
    Batch::Pairs {
        pairs: PAIRS,
        labels: LABELS,
    }
}

#[test]
fn training_lowers_the_loss_and_is_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    write_model(tmp.path(), Some(1));
    let run = || {
        let mut trainer = Trainer::new(config(tmp.path()), 4).unwrap();
        assert_eq!(trainer.schedule().total_steps, 10);
        assert_eq!(trainer.schedule().warmup_steps, 1);
        let losses: Vec<f32> = (0..10)
            .map(|_| trainer.train_step(&pairs_batch()).unwrap().loss)
            .collect();
        let weights: Vec<Vec<f32>> = trainer
            .parameters()
            .map(|(_, t)| t.flatten_all().unwrap().to_vec1().unwrap())
            .collect();
        (losses, weights)
    };
    let (losses, weights) = run();
    assert!(
        losses[9] < losses[0] * 0.7,
        "the loss should fall on a batch it trains on: {losses:?}"
    );
    let (losses2, weights2) = run();
    assert_eq!(losses, losses2);
    assert_eq!(weights, weights2);
}

#[test]
fn first_step_with_warmup_only_fills_the_moments() {
    let tmp = tempfile::tempdir().unwrap();
    write_model(tmp.path(), Some(1));
    let mut trainer = Trainer::new(config(tmp.path()), 4).unwrap();
    let before: Vec<Vec<f32>> = trainer
        .parameters()
        .map(|(_, t)| t.flatten_all().unwrap().to_vec1().unwrap())
        .collect();
    let stats = trainer.train_step(&pairs_batch()).unwrap();
    assert_eq!(stats.learning_rate, 0.0);
    assert!(stats.grad_norm > 0.0);
    let after: Vec<Vec<f32>> = trainer
        .parameters()
        .map(|(_, t)| t.flatten_all().unwrap().to_vec1().unwrap())
        .collect();
    assert_eq!(before, after);
    let stats = trainer.train_step(&pairs_batch()).unwrap();
    assert!((stats.learning_rate - 1e-3).abs() < 1e-18);
}

#[test]
fn bare_encoder_gets_a_seeded_head() {
    let tmp = tempfile::tempdir().unwrap();
    write_model(tmp.path(), None);
    let head = |seed: u64| {
        let mut c = config(tmp.path());
        c.seed = seed;
        let trainer = Trainer::new(c, 4).unwrap();
        assert_eq!(
            trainer.load_report().initialized,
            vec!["classifier.weight", "classifier.bias"]
        );
        assert_eq!(trainer.num_labels(), 1);
        let get = |name: &str| {
            trainer
                .parameters()
                .find(|(n, _)| *n == name)
                .unwrap()
                .1
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        assert_eq!(get("classifier.bias"), vec![0.0]);
        // Names are transformers' whatever the checkpoint's prefix.
        assert!(trainer
            .parameters()
            .any(|(n, _)| n == "bert.embeddings.word_embeddings.weight"));
        get("classifier.weight")
    };
    let (a, b, c) = (head(1), head(1), head(2));
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert!(a.iter().all(|v| v.abs() < 0.02 * 5.0), "std 0.02: {a:?}");

    // num_labels picks the head size of a new head.
    let mut three = config(tmp.path());
    three.num_labels = Some(3);
    assert_eq!(Trainer::new(three, 4).unwrap().num_labels(), 3);
}

#[test]
fn saved_checkpoint_scores_like_the_trainer_in_crossrank() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    std::fs::create_dir(&base).unwrap();
    write_model(&base, None);
    let mut trainer = Trainer::new(config(&base), 4).unwrap();
    for _ in 0..3 {
        trainer.train_step(&pairs_batch()).unwrap();
    }
    let out = tmp.path().join("trained");
    trainer.save(&out, false).unwrap();
    for f in ["model.safetensors", "config.json", "vocab.txt"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        config["architectures"],
        json!(["BertForSequenceClassification"])
    );
    assert_eq!(config["id2label"], json!({"0": "LABEL_0"}));

    let expected = trainer.logits(PAIRS).unwrap();
    let options = CrossEncoderOptions {
        max_length: Some(16),
        activation: Some(Activation::Identity),
        ..Default::default()
    };
    let model = CrossEncoder::load(&out.to_string_lossy(), &options).unwrap();
    let scores = model
        .predict(PAIRS, &PredictOptions::default(), &mut |_| Ok(()))
        .unwrap();
    for (a, b) in scores.values.iter().zip(&expected) {
        assert!((a - b).abs() < 1e-5, "{:?} vs {expected:?}", scores.values);
    }

    // Saving again needs overwrite.
    let err = trainer.save(&out, false).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)));
    assert!(err.to_string().contains("already exists"), "{err}");
    trainer.save(&out, true).unwrap();
}

#[test]
fn bad_input_is_refused_with_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    write_model(tmp.path(), Some(1));
    let mut trainer = Trainer::new(config(tmp.path()), 4).unwrap();
    fn msg<T>(r: crate::error::Result<T>) -> String {
        match r {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }
    let bad_labels = [1.0f32, 0.0, 1.5, 0.0];
    let err = msg(trainer.train_step(&Batch::Pairs {
        pairs: PAIRS,
        labels: &bad_labels,
    }));
    assert!(
        err.contains("label 1.5 at position 2 is outside [0, 1]"),
        "{err}"
    );
    let err = msg(trainer.train_step(&Batch::Pairs {
        pairs: &[],
        labels: &[],
    }));
    assert!(err.contains("empty batch"), "{err}");
    // Refused batches do not count as steps.
    assert_eq!(trainer.steps_done(), 0);

    let mut c = config(tmp.path());
    c.num_labels = Some(2);
    let err = msg(Trainer::new(c, 4));
    assert!(err.contains("head with 1 labels"), "{err}");
    let err = msg(Trainer::new(config(tmp.path()), 0));
    assert!(err.contains("no training examples"), "{err}");
    let mut c = config(tmp.path());
    c.max_length = Some(1000);
    assert!(msg(Trainer::new(c, 4)).contains("position table"));
    let mut c = config(tmp.path());
    c.max_grad_norm = Some(0.0);
    assert!(msg(Trainer::new(c, 4)).contains("max_grad_norm"));
    let missing = tmp.path().join("nope");
    assert!(matches!(
        Trainer::new(config(&missing), 4).err().unwrap(),
        Error::NotFound(_)
    ));
}

#[test]
fn listwise_steps_on_groups() {
    let tmp = tempfile::tempdir().unwrap();
    write_model(tmp.path(), Some(1));
    let mut c = config(tmp.path());
    c.loss = Loss::ListwiseSoftmax;
    c.warmup_ratio = 0.0;
    let mut trainer = Trainer::new(c, 2).unwrap();
    let docs_a = [
        "the lift of a flat plate wing",
        "heat in slabs",
        "boundary layer flow",
    ];
    let docs_b = ["heat flow in slabs", "wing lift"];
    let groups = [
        Group {
            query: "what is lift",
            documents: &docs_a,
        },
        Group {
            query: "heat of slabs",
            documents: &docs_b,
        },
    ];
    let first = trainer.train_step(&Batch::Groups(&groups)).unwrap().loss;
    for _ in 0..8 {
        trainer.train_step(&Batch::Groups(&groups)).unwrap();
    }
    let last = trainer
        .loss_and_gradients(&Batch::Groups(&groups))
        .unwrap()
        .loss;
    assert!(last < first, "{first} -> {last}");
    assert!(trainer
        .train_step(&pairs_batch())
        .unwrap_err()
        .to_string()
        .contains("groups"));
}
