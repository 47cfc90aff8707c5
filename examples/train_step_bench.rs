//! Times `Trainer` steps on one batch: `scripts/bench_train_step.py` runs it next to the
//! same steps in PyTorch. Prints one JSON object.
//!
//!     cargo build --release --example train_step_bench
//!     RAYON_NUM_THREADS=2 target/release/examples/train_step_bench MODEL_DIR PAIRS.json MAX_LENGTH STEPS
//!
//! PAIRS.json: [[query, document, label], ...], one batch.

use std::time::Instant;

use crossrank::train::{Batch, Trainer, TrainerConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, model, pairs_path, max_length, steps] = args.as_slice() else {
        return Err("usage: train_step_bench MODEL_DIR PAIRS.json MAX_LENGTH STEPS".into());
    };
    let rows: Vec<(String, String, f32)> =
        serde_json::from_str(&std::fs::read_to_string(pairs_path)?)?;
    let pairs: Vec<(&str, &str)> = rows
        .iter()
        .map(|(q, d, _)| (q.as_str(), d.as_str()))
        .collect();
    let labels: Vec<f32> = rows.iter().map(|r| r.2).collect();
    let steps: usize = steps.parse()?;

    let mut config = TrainerConfig::new(model.as_str());
    config.max_length = Some(max_length.parse()?);
    config.batch_size = pairs.len();
    config.warmup_ratio = 0.0;
    // As the PyTorch side (model.eval()): no dropout.
    config.dropout = Some(0.0);
    let mut trainer = Trainer::new(config, pairs.len() * (steps + 1))?;
    let padded = trainer.encode(&pairs)?.input_ids.dim(1)?;
    let batch = Batch::Pairs {
        pairs: &pairs,
        labels: &labels,
    };

    let (mut forward_backward, mut optimizer, mut total, mut losses) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // One untimed step first: allocator and thread-pool warm-up, as on the PyTorch side.
    for step in 0..=steps {
        let t0 = Instant::now();
        let grads = trainer.loss_and_gradients(&batch)?;
        let t1 = Instant::now();
        let stats = trainer.apply_gradients(grads)?;
        let t2 = Instant::now();
        if step > 0 {
            forward_backward.push((t1 - t0).as_secs_f64());
            optimizer.push((t2 - t1).as_secs_f64());
            total.push((t2 - t0).as_secs_f64());
        }
        losses.push(stats.loss);
    }
    println!(
        "{}",
        serde_json::json!({
            "padded_length": padded,
            "batch": pairs.len(),
            "step_seconds": total,
            "forward_backward_seconds": forward_backward,
            "optimizer_seconds": optimizer,
            "losses": losses,
        })
    );
    Ok(())
}
