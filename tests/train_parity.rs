//! The training step equals PyTorch's: for the tinybert-l2-h128 and MiniLM-L6 cross-encoder
//! fixtures, the same batches through crossrank's `Trainer` and through
//! `scripts/train_reference.py` (transformers' BertForSequenceClassification in eval mode,
//! torch.optim.AdamW with Trainer's parameter groups, get_linear_schedule_with_warmup,
//! clip_grad_norm_) give the same inputs, losses, gradients of every parameter, gradient
//! norms, learning rates and updated weights. A checkpoint saved by the trainer loads in
//! transformers' AutoModelForSequenceClassification with the same logits.
//!
//! Needs the fixtures (`python scripts/fixtures.py`; `CROSSRANK_MODELS`, default
//! `.cache/models`) and a Python with torch, transformers and safetensors
//! (`CROSSRANK_PYTHON`, default `python3`); without them the tests fail and say what is
//! missing (`make test` provides both).
//!
//! Errors are norm-relative per tensor: ||rust - torch|| / ||torch||, 1e-5 for losses,
//! gradients and weights. Exceptions, with their own checks:
//! * gradients that are exactly zero in exact arithmetic (every attention key bias; the
//!   classifier bias under the listwise loss; see `zero_by_invariance`): both frameworks
//!   produce rounding noise there (~1e-10 of the gradient norm) and AdamW, which normalises
//!   each element by its own magnitude, turns that noise into steps of up to the learning
//!   rate in unrelated directions. Checked: both gradients are noise-sized, and the weights
//!   differ by no more than the learning rates allow.
//! * the weights of tensors that start at zero (biases of the randomly initialised tinybert
//!   fixture) are their updates alone. Updates are checked element by element instead:
//!   each step of each weight equals PyTorch's within 1% of the learning rate
//!   (`STEP_TOL`). A norm-relative 1e-5 on updates would be wrong to ask: AdamW divides
//!   each element by its own gradient magnitude, so an element whose gradient is near or
//!   below eps (1e-8) turns an f32 rounding difference of ~1e-12 in it into a difference of
//!   ~1e-4 of a step (measured: norm-relative update errors up to ~2e-4 on tinybert).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::{DType, Device, Tensor};
use crossrank::train::{Batch, Gradients, Group, Loss, Trainer, TrainerConfig};
use serde_json::{json, Value};

const TOL: f64 = 1e-5;
/// On the same gradients, each weight within 2 ulp per step plus this fraction of the sum
/// of the learning rates.
const SHADOW_STEP_TOL: f64 = 1e-6;
/// Where float32 cannot reach TOL (PyTorch's own float32 gradient is that far from the
/// float64 one), Rust's distance to the float64 gradient may be this many times PyTorch's:
/// the same order of magnitude; which of two float32 roundings lands closer is chance.
const ILL_CONDITIONED_FACTOR: f64 = 10.0;

fn python() -> String {
    std::env::var("CROSSRANK_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

fn models_dir() -> PathBuf {
    std::env::var_os("CROSSRANK_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/models"))
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/train_reference.py")
}

/// The fixture's directory. Panics, saying why, when the test cannot run here: a skipped
/// parity test would pass while proving nothing.
fn fixture(name: &str) -> PathBuf {
    let dir = models_dir().join(name);
    let reason = if !dir.join("model.safetensors").is_file() {
        Some(format!("no fixture at {}", dir.display()))
    } else {
        let ok = Command::new(python())
            .args(["-c", "import torch, transformers, safetensors"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        (!ok).then(|| {
            format!(
                "{} cannot import torch, transformers, safetensors",
                python()
            )
        })
    };
    // `make test` provides both (`cargo test --lib` runs the unit tests without them).
    match reason {
        None => dir,
        Some(why) => panic!(
            "parity test cannot run: {why} (run `make fixtures` and set CROSSRANK_PYTHON to a \
             Python with torch, transformers and safetensors, e.g. .venv/bin/python)"
        ),
    }
}

fn run_python(args: &[&str]) {
    let out = Command::new(python())
        .arg(script())
        .args(args)
        .output()
        .expect("cannot start python");
    assert!(
        out.status.success(),
        "{} failed:\n{}",
        script().display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Cranfield queries and abstracts (shortened); two documents are longer than 64 tokens
/// with their query, so truncation and padding both occur.
const Q1: &str =
    "what similarity laws must be obeyed when constructing aeroelastic models of heated high speed aircraft .";
const Q2: &str = "what problems of heat conduction in composite slabs have been solved so far .";
const D1: &str =
    "similarity laws for stressing heated wings . it will be shown that the differential \
equations for a heated plate with large temperature gradient and for a similar plate at constant \
temperature can be made the same by a proper modification of the thickness and the loading for the \
isothermal plate .";
const D2: &str = "scale models for thermo-aeroelastic research . an investigation is made of the \
parameters to be satisfied for thermo-aeroelastic similarity .";
const D3: &str =
    "heat conduction in composite slabs . the transient temperature distribution in a \
composite slab of two layers is found for a sudden change of surface temperature .";
const D4: &str = "experimental investigation of the aerodynamics of a wing in a slipstream . an \
experimental study of a wing in a propeller slipstream was made in order to determine the spanwise \
distribution of the lift increase due to slipstream at different angles of attack of the wing .";

type Docs = Vec<&'static str>;

enum Step {
    Pairs(Vec<(&'static str, &'static str)>, Vec<f32>),
    Groups(Vec<(&'static str, Docs)>),
    /// Groups with a teacher's score per document (the distillation losses).
    Distill(Vec<(&'static str, Docs, Vec<f32>)>),
}

impl Step {
    fn spec(&self) -> Value {
        match self {
            Step::Pairs(pairs, labels) => json!({"pairs": pairs, "labels": labels}),
            Step::Groups(groups) => json!({"groups": groups
                .iter()
                .map(|(q, docs)| json!({"query": q, "documents": docs}))
                .collect::<Vec<_>>()}),
            Step::Distill(groups) => json!({"groups": groups
                .iter()
                .map(|(q, docs, t)| json!({"query": q, "documents": docs, "teacher": t}))
                .collect::<Vec<_>>()}),
        }
    }

    fn pairs(&self) -> Vec<(&'static str, &'static str)> {
        match self {
            Step::Pairs(pairs, _) => pairs.clone(),
            Step::Groups(groups) => groups
                .iter()
                .flat_map(|(q, docs)| docs.iter().map(move |d| (*q, *d)))
                .collect(),
            Step::Distill(groups) => groups
                .iter()
                .flat_map(|(q, docs, _)| docs.iter().map(move |d| (*q, *d)))
                .collect(),
        }
    }
}

fn bce_steps() -> Vec<Step> {
    let a = Step::Pairs(
        vec![(Q1, D1), (Q1, D4), (Q2, D3), (Q2, D2)],
        vec![1.0, 0.0, 0.9, 0.2],
    );
    let b = Step::Pairs(
        vec![(Q1, D2), (Q2, D1), (Q1, D3), (Q2, D4)],
        vec![0.7, 0.1, 0.0, 0.3],
    );
    let a2 = Step::Pairs(
        vec![(Q1, D1), (Q1, D4), (Q2, D3), (Q2, D2)],
        vec![1.0, 0.0, 0.9, 0.2],
    );
    // Step 0 runs at lr 0 (warmup), step 1 at lr/2 on other pairs, step 2 on the first
    // pairs again with the weights step 1 changed.
    vec![a, b, a2]
}

fn listwise_steps() -> Vec<Step> {
    vec![
        Step::Groups(vec![(Q1, vec![D1, D3, D4]), (Q2, vec![D3, D1, D2])]),
        Step::Groups(vec![(Q2, vec![D3, D4, D2]), (Q1, vec![D2, D3, D1])]),
        Step::Groups(vec![(Q1, vec![D1, D3, D4]), (Q2, vec![D3, D1, D2])]),
    ]
}

/// The listwise steps' groups with a teacher's scores (the relevant document not always
/// the teacher's best, so the two losses pull against the listwise one).
fn distill_steps() -> Vec<Step> {
    vec![
        Step::Distill(vec![
            (Q1, vec![D1, D3, D4], vec![2.5, -1.0, 0.5]),
            (Q2, vec![D3, D1, D2], vec![1.0, 1.5, -2.0]),
        ]),
        Step::Distill(vec![
            (Q2, vec![D3, D4, D2], vec![3.0, 0.0, 0.25]),
            (Q1, vec![D2, D3, D1], vec![0.5, -0.5, 1.0]),
        ]),
        Step::Distill(vec![
            (Q1, vec![D1, D3, D4], vec![2.5, -1.0, 0.5]),
            (Q2, vec![D3, D1, D2], vec![1.0, 1.5, -2.0]),
        ]),
    ]
}

fn sq(a: &[f32]) -> f64 {
    a.iter().map(|&v| v as f64 * v as f64).sum()
}

/// ||a - b|| / ||b||, 0 when both are zero.
fn rel(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let diff: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y as f64).powi(2))
        .sum();
    if diff == 0.0 {
        0.0
    } else {
        (diff / sq(b)).sqrt()
    }
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y as f64).abs())
        .fold(0.0, f64::max)
}

/// The spacing of f32 values at `x`.
fn ulp(x: f32) -> f64 {
    let a = x.abs();
    if a == 0.0 {
        return f32::from_bits(1) as f64;
    }
    (f32::from_bits(a.to_bits() + 1) as f64) - a as f64
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// Parameters whose gradient is exactly zero in exact arithmetic: every attention key bias
/// (it adds the same q.b to all scores of a query row, which softmax ignores), and under
/// the group losses (listwise, KL, margin) the classifier bias (it shifts all scores of a
/// group alike).
fn zero_by_invariance(name: &str, loss: Loss) -> bool {
    name.ends_with("attention.self.key.bias") || (loss.takes_groups() && name == "classifier.bias")
}

#[derive(Default)]
struct Worsts {
    /// ||g_rust - g_torch|| / ||g_torch|| per tensor.
    grad: Worst,
    /// ||g_rust - g_torch|| / (global gradient norm): robust to near-zero tensors.
    grad_of_norm: Worst,
    /// ||w_rust - w_torch|| / ||w_torch||, tensors that did not start at zero.
    weight: Worst,
    /// The same for this step's updates (reported).
    update: Worst,
    /// max |update_rust - update_torch| / learning rate.
    step_fraction: Worst,
    /// ||g - g_float64|| / ||g_float64|| for Rust and for PyTorch's float32.
    rust_exact: Worst,
    torch_exact: Worst,
    /// Tensors beyond TOL against PyTorch, and their Rust/PyTorch error ratio vs float64.
    ill_conditioned: usize,
    accuracy_ratio: Worst,
    noise_grad: f64,
    exact_zero: f64,
    noise_weight: f64,
}

/// The worst value seen and where.
#[derive(Default)]
struct Worst(f64, String);

impl Worst {
    fn see(&mut self, v: f64, what: impl FnOnce() -> String) {
        if v > self.0 || self.1.is_empty() {
            *self = Worst(v, what());
        }
    }
}

fn parity(name: &str, loss: Loss, steps: Vec<Step>, max_grad_norm: f64) {
    let dir = fixture(name);
    let mut config = TrainerConfig::new(dir.to_string_lossy());
    config.loss = loss;
    config.max_length = Some(64);
    config.learning_rate = 1e-4;
    config.batch_size = 4;
    config.epochs = 10;
    config.warmup_ratio = 0.2;
    config.max_grad_norm = Some(max_grad_norm);
    // PyTorch's dropout masks cannot be reproduced: both sides run the eval() forward.
    config.dropout = Some(0.0);
    let mut trainer = Trainer::new(config.clone(), 4).unwrap();
    // A second trainer fed PyTorch's clipped gradients (so it clips nothing itself): its
    // weights test AdamW and the schedule alone, free of the gradients' rounding
    // differences and of PyTorch's float32 gradient norm (off by up to ~5e-6 from the exact
    // norm of its own gradients, which crossrank sums in f64).
    let mut shadow_config = config.clone();
    shadow_config.max_grad_norm = None;
    let mut shadow = Trainer::new(shadow_config, 4).unwrap();
    let schedule = *trainer.schedule();
    assert_eq!((schedule.total_steps, schedule.warmup_steps), (10, 2));

    let tmp = tempfile::tempdir().unwrap();
    let spec = json!({
        "model": dir, "max_length": 64,
        "loss": loss.name(),
        "learning_rate": config.learning_rate, "betas": [config.adam_beta1, config.adam_beta2],
        "eps": config.adam_epsilon, "weight_decay": config.weight_decay,
        "max_grad_norm": max_grad_norm, "warmup_steps": schedule.warmup_steps,
        "total_steps": schedule.total_steps, "threads": 2,
        "steps": steps.iter().map(Step::spec).collect::<Vec<_>>(),
    });
    let spec_path = tmp.path().join("spec.json");
    std::fs::write(&spec_path, spec.to_string()).unwrap();
    run_python(&[
        "steps",
        spec_path.to_str().unwrap(),
        tmp.path().to_str().unwrap(),
    ]);
    let reference: Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("reference.json")).unwrap())
            .unwrap();
    let torch: HashMap<String, Tensor> =
        candle_core::safetensors::load(tmp.path().join("reference.safetensors"), &Device::Cpu)
            .unwrap();

    // Same parameters, same order, same weight-decay groups as Trainer's.
    let names: Vec<String> = trainer.parameters().map(|(n, _)| n.to_string()).collect();
    let torch_names: Vec<String> = serde_json::from_value(reference["parameters"].clone()).unwrap();
    assert_eq!(names, torch_names);
    let torch_decay: Vec<String> = serde_json::from_value(reference["decay"].clone()).unwrap();
    for (n, &d) in names.iter().zip(trainer.decay_mask()) {
        assert_eq!(d, torch_decay.contains(n), "weight-decay group of {n}");
    }

    println!("\n== {name}, {loss:?}, max_grad_norm {max_grad_norm} ==");
    let initial: Vec<Vec<f32>> = trainer.parameters().map(|(_, t)| values(t)).collect();
    let mut lr_sum = 0.0;
    for (k, step) in steps.iter().enumerate() {
        let pairs = step.pairs();
        let input = trainer.encode(&pairs).unwrap();
        let ids = input.input_ids.to_dtype(DType::I64).unwrap();
        let torch_ids = &torch[&format!("step{k}.input_ids")];
        assert_eq!(
            ids.to_vec2::<i64>().unwrap(),
            torch_ids.to_vec2::<i64>().unwrap(),
            "step {k}: token ids differ"
        );

        let before: Vec<Vec<f32>> = trainer.parameters().map(|(_, t)| values(t)).collect();
        let groups: Vec<Group>;
        let teacher: Vec<f32>;
        let batch = match step {
            Step::Pairs(pairs, labels) => Batch::Pairs { pairs, labels },
            Step::Groups(g) => {
                groups = g
                    .iter()
                    .map(|(q, docs)| Group {
                        query: q,
                        documents: docs,
                    })
                    .collect();
                Batch::Groups(&groups)
            }
            Step::Distill(g) => {
                groups = g
                    .iter()
                    .map(|(q, docs, _)| Group {
                        query: q,
                        documents: docs,
                    })
                    .collect();
                teacher = g.iter().flat_map(|(_, _, t)| t.iter().copied()).collect();
                Batch::Distill {
                    groups: &groups,
                    teacher: &teacher,
                }
            }
        };
        let grads = trainer.loss_and_gradients(&batch).unwrap();
        let rust_grads = grads.values.clone();
        let stats = trainer.apply_gradients(grads).unwrap();

        // clip_grad_norm_'s coefficient as PyTorch computes it, in float32.
        let torch_norm_f32 = reference["grad_norms"][k].as_f64().unwrap() as f32;
        let coef = (max_grad_norm as f32 / (torch_norm_f32 + 1e-6)).min(1.0);
        let torch_grads = Gradients {
            loss: 0.0,
            values: shadow
                .parameters()
                .map(|(n, _)| {
                    let g = values(&torch[&format!("step{k}.grad.{n}")]);
                    Some(g.into_iter().map(|v| v * coef).collect())
                })
                .collect(),
        };
        shadow.apply_gradients(torch_grads).unwrap();
        if let Some(dump) = std::env::var_os("CROSSRANK_PARITY_DUMP") {
            // For debugging a failure: the Rust side next to the reference, same names.
            let dump = Path::new(&dump).join(name);
            std::fs::create_dir_all(&dump).unwrap();
            let mut out: HashMap<String, Tensor> = HashMap::new();
            for (i, (n, t)) in trainer.parameters().enumerate() {
                let g = rust_grads[i].clone().unwrap();
                out.insert(
                    format!("step{k}.grad.{n}"),
                    Tensor::new(g, &Device::Cpu).unwrap(),
                );
                out.insert(format!("step{k}.param.{n}"), t.flatten_all().unwrap());
            }
            candle_core::safetensors::save(&out, dump.join(format!("rust{k}.safetensors")))
                .unwrap();
            if k == 0 {
                for f in ["reference.safetensors", "reference.json", "spec.json"] {
                    std::fs::copy(tmp.path().join(f), dump.join(f)).unwrap();
                }
            }
        }

        let torch_loss = reference["losses"][k].as_f64().unwrap();
        let loss_rel = (stats.loss as f64 - torch_loss).abs() / torch_loss.abs();
        let torch_norm = reference["grad_norms"][k].as_f64().unwrap();
        let norm_rel = (stats.grad_norm - torch_norm).abs() / torch_norm;
        let torch_lr = reference["lrs"][k].as_f64().unwrap();
        lr_sum += torch_lr;

        let mut w = Worsts::default();
        for (i, (n, now)) in trainer.parameters().enumerate() {
            let g_rust = rust_grads[i]
                .as_deref()
                .expect("every parameter has a gradient");
            let g_torch = values(&torch[&format!("step{k}.grad.{n}")]);
            let w_rust = values(now);
            let w_torch = values(&torch[&format!("step{k}.param.{n}")]);
            let g_exact = values(&torch[&format!("step{k}.grad64.{n}")]);
            let g_diff = rel(g_rust, &g_torch) * sq(&g_torch).sqrt() / torch_norm;
            w.grad_of_norm.see(g_diff, || n.to_string());
            if zero_by_invariance(n, loss) {
                // Zero in float64 too; noise on both float32 sides, small against the
                // whole gradient.
                w.exact_zero = w.exact_zero.max(sq(&g_exact).sqrt() / torch_norm);
                let noise = sq(g_rust).sqrt().max(sq(&g_torch).sqrt()) / torch_norm;
                w.noise_grad = w.noise_grad.max(noise);
                w.noise_weight = w.noise_weight.max(max_abs_diff(&w_rust, &w_torch));
                continue;
            }
            let vs_torch = rel(g_rust, &g_torch);
            let (rust_exact, torch_exact) = (rel(g_rust, &g_exact), rel(&g_torch, &g_exact));
            w.grad.see(vs_torch, || n.to_string());
            w.rust_exact.see(rust_exact, || n.to_string());
            w.torch_exact.see(torch_exact, || n.to_string());
            if vs_torch >= TOL {
                // Only where float32 cannot do better: PyTorch's own float32 gradient is
                // that far from the float64 one, and Rust's is about as close to it.
                w.ill_conditioned += 1;
                w.accuracy_ratio
                    .see(rust_exact / torch_exact, || n.to_string());
                assert!(
                    torch_exact >= TOL / 2.0 && rust_exact <= ILL_CONDITIONED_FACTOR * torch_exact,
                    "step {k}: gradient of {n}: rel {vs_torch:e} vs PyTorch, {rust_exact:e} vs \
                     float64 (PyTorch float32: {torch_exact:e})"
                );
            }
            if sq(&initial[i]) > 0.0 {
                w.weight.see(rel(&w_rust, &w_torch), || n.to_string());
            }
            // This step's update of each element, from the same starting weights.
            let d_rust: Vec<f32> = w_rust.iter().zip(&before[i]).map(|(a, b)| a - b).collect();
            let d_torch: Vec<f32> = w_torch.iter().zip(&before[i]).map(|(a, b)| a - b).collect();
            if sq(&d_torch) > 0.0 {
                w.update.see(rel(&d_rust, &d_torch), || n.to_string());
                w.step_fraction
                    .see(max_abs_diff(&d_rust, &d_torch) / torch_lr, || n.to_string());
            }
        }
        // Same gradients in, same weights out, to f32 rounding: each element within 2 units
        // in the last place of the weight per step so far (the decay and the step each round)
        // plus a millionth of the rates (PyTorch's kernels may fuse the multiply-adds of the
        // moments).
        let mut shadow_ratio = Worst::default();
        for (n, now) in shadow.parameters() {
            let w_shadow = values(now);
            let w_torch = values(&torch[&format!("step{k}.param.{n}")]);
            for (&a, &b) in w_shadow.iter().zip(&w_torch) {
                let diff = (a as f64 - b as f64).abs();
                let ulp = ulp(b);
                let steps = (k + 1) as f64;
                let tolerance = 2.0 * steps * ulp + SHADOW_STEP_TOL * lr_sum;
                shadow_ratio.see(diff / tolerance, || n.to_string());
            }
        }
        println!(
            "step {k}: lr {:.3e} loss {:.6} (torch {:.6}, rel {:.1e}) grad_norm {:.4} (rel {:.1e}, {})\n  \
             gradients: worst rel {:.1e} [{}], worst |diff| / global norm {:.1e} [{}]\n  \
             vs float64: Rust worst {:.1e} [{}], PyTorch float32 worst {:.1e} [{}]\n  \
             ill-conditioned in float32 (above 1e-5 vs PyTorch, PyTorch float32 >= 5e-6 from \
             float64): {} tensor(s), Rust's error vs float64 at most {:.2}x PyTorch's [{}]\n  \
             weights: worst rel {:.1e} [{}]\n  \
             updates: worst rel {:.1e} [{}], worst element {:.1e} of the learning rate [{}]\n  \
             zero-by-invariance gradients: {:.1e} of the gradient norm (float64: {:.1e}), \
             weights within {:.1e}\n  \
             on PyTorch's clipped gradients: weights at most {:.2} of the tolerance [{}]",
            stats.learning_rate,
            stats.loss,
            torch_loss,
            loss_rel,
            stats.grad_norm,
            norm_rel,
            if stats.grad_norm > max_grad_norm { "clipped" } else { "not clipped" },
            w.grad.0,
            w.grad.1,
            w.grad_of_norm.0,
            w.grad_of_norm.1,
            w.rust_exact.0,
            w.rust_exact.1,
            w.torch_exact.0,
            w.torch_exact.1,
            w.ill_conditioned,
            w.accuracy_ratio.0,
            w.accuracy_ratio.1,
            w.weight.0,
            w.weight.1,
            w.update.0,
            w.update.1,
            w.step_fraction.0,
            w.step_fraction.1,
            w.noise_grad,
            w.exact_zero,
            w.noise_weight,
            shadow_ratio.0,
            shadow_ratio.1,
        );
        assert!((stats.learning_rate - torch_lr).abs() <= 1e-12 * torch_lr.max(1e-30));
        assert!(loss_rel < TOL, "step {k}: loss rel {loss_rel:e}");
        assert!(norm_rel < TOL, "step {k}: grad norm rel {norm_rel:e}");
        assert!(
            w.weight.0 < TOL,
            "step {k}: weights of {} rel {:e}",
            w.weight.1,
            w.weight.0
        );
        assert!(
            shadow_ratio.0 <= 1.0,
            "step {k}: on PyTorch's gradients, weights of {} differ by {:.2} of the tolerance",
            shadow_ratio.1,
            shadow_ratio.0
        );
        assert!(
            w.exact_zero < 1e-9,
            "not zero in float64: {:e}",
            w.exact_zero
        );
        assert!(
            w.noise_grad < 1e-6,
            "zero-by-invariance gradients are not noise: {:e}",
            w.noise_grad
        );
        // AdamW moves an element by at most about the learning rate per step in its first
        // steps, so noise-driven updates stay within twice the sum of the rates.
        assert!(
            w.noise_weight <= 2.0 * lr_sum + 1e-7,
            "zero-by-invariance weights differ by {:e}",
            w.noise_weight
        );
    }
}

#[test]
fn tinybert_bce_step_equals_pytorch() {
    parity(
        "tinybert-l2-h128-ce-seed0",
        Loss::BinaryCrossEntropy,
        bce_steps(),
        1.0,
    );
}

/// On MiniLM: the random tinybert gives nearly the same score to every document, and the
/// listwise gradient (softmax - one-hot, which sums to zero over a group) then cancels
/// almost entirely below the head, leaving gradients made mostly of rounding (errors of
/// 1e-4..1e-3 relative to those small tensors, in PyTorch as much as here).
#[test]
fn minilm_listwise_step_equals_pytorch() {
    parity(
        "minilm-l6-ce-seed0",
        Loss::ListwiseSoftmax,
        listwise_steps(),
        1.0,
    );
}

/// The distillation losses (issue 19): KL to the teacher's softmax, and margin MSE.
#[test]
fn minilm_kl_step_equals_pytorch() {
    parity("minilm-l6-ce-seed0", Loss::ListwiseKl, distill_steps(), 1.0);
}

#[test]
fn minilm_margin_mse_step_equals_pytorch() {
    parity("minilm-l6-ce-seed0", Loss::MarginMse, distill_steps(), 1.0);
}

#[test]
fn minilm_bce_step_equals_pytorch() {
    parity(
        "minilm-l6-ce-seed0",
        Loss::BinaryCrossEntropy,
        bce_steps(),
        1.0,
    );
}

/// From the bare sentence-transformers encoder: the trainer creates the head, trains, saves;
/// transformers loads the directory as a BertForSequenceClassification with the trainer's
/// logits.
#[test]
fn saved_checkpoint_loads_in_transformers_with_same_logits() {
    let dir = fixture("all-MiniLM-L6-v2");
    let mut config = TrainerConfig::new(dir.to_string_lossy());
    config.max_length = Some(64);
    config.learning_rate = 1e-4;
    config.warmup_ratio = 0.0;
    config.seed = 7;
    let mut trainer = Trainer::new(config, 8).unwrap();
    assert_eq!(
        trainer.load_report().initialized,
        vec!["classifier.weight", "classifier.bias"]
    );
    for step in bce_steps().iter().take(2) {
        let Step::Pairs(pairs, labels) = step else {
            unreachable!()
        };
        trainer.train_step(&Batch::Pairs { pairs, labels }).unwrap();
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("trained");
    trainer.save(&out, false).unwrap();
    for f in [
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "vocab.txt",
        "tokenizer_config.json",
        "special_tokens_map.json",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }

    let pairs = vec![(Q1, D1), (Q1, D2), (Q2, D3), (Q2, D4), (Q1, D3)];
    let pairs_path = tmp.path().join("pairs.json");
    std::fs::write(&pairs_path, json!(pairs).to_string()).unwrap();
    let result_path = tmp.path().join("logits.json");
    run_python(&[
        "logits",
        out.to_str().unwrap(),
        pairs_path.to_str().unwrap(),
        result_path.to_str().unwrap(),
        "64",
    ]);
    let result: Value =
        serde_json::from_str(&std::fs::read_to_string(result_path).unwrap()).unwrap();
    assert_eq!(result["model_class"], "BertForSequenceClassification");
    assert_eq!(result["num_labels"], 1);
    let torch: Vec<f32> = serde_json::from_value(result["logits"].clone()).unwrap();
    let rust = trainer.logits(&pairs).unwrap();
    let worst = rust
        .iter()
        .zip(&torch)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    println!("saved checkpoint: rust {rust:?} torch {torch:?}, max |diff| {worst:e}");
    assert!(worst < 1e-4, "logits differ by {worst}");
}
