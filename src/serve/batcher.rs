//! Dynamic batching across requests: one thread per model takes the first waiting request,
//! then every other request already waiting (up to [`MERGE_LIMIT`] items), runs them as one
//! call of the model, and answers each request with its own rows.
//!
//! The model call sorts the merged items by length into token-budget batches, so a request
//! of 3 documents that arrives while another of 100 waits shares their batches. A request
//! whose client has gone (its reply channel closed) is dropped before it runs, and a call
//! whose requests have all gone stops between batches.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;

use rayon::ThreadPool;
use tokio::sync::oneshot;

use super::metrics::{BatchStats, Metrics};
use crate::error::{Error, Result};
use crate::score::batching::OnBatch;

/// Items one merged call holds at most (a single larger request still runs alone): large
/// enough to fill the engine's batches from many small requests, small enough that a
/// request arriving meanwhile waits for one call, not for everything queued.
pub const MERGE_LIMIT: usize = 1024;

/// What a model does with a merged list of items: one output per item, in order. `on_batch`
/// is called between engine batches and stops the call when it returns an error.
pub type RunFn<I, O> = dyn Fn(&[I], &mut OnBatch<'_>) -> Result<Vec<O>> + Send + Sync;

/// Where a request's outputs (or its error) go.
type Reply<O> = oneshot::Sender<Result<Vec<O>>>;

struct Job<I, O> {
    items: Vec<I>,
    reply: Reply<O>,
}

pub struct Batcher<I, O> {
    queue: mpsc::Sender<Job<I, O>>,
    metrics: Arc<Metrics>,
    model: &'static str,
}

impl<I: Send + 'static, O: Send + 'static> Batcher<I, O> {
    /// Starts the model's thread; it ends when the batcher is dropped. `model` labels the
    /// metrics ("rerank" or "embed").
    /// The model calls run inside `pool`.
    pub fn start(
        model: &'static str,
        run: Box<RunFn<I, O>>,
        metrics: Arc<Metrics>,
        pool: Arc<ThreadPool>,
    ) -> Result<Self> {
        let (queue, jobs) = mpsc::channel();
        let worker_metrics = metrics.clone();
        std::thread::Builder::new()
            .name(format!("crossrank-{model}"))
            .spawn(move || work(model, jobs, &*run, &worker_metrics, &pool))?;
        Ok(Self {
            queue,
            metrics,
            model,
        })
    }

    /// Runs `items` in the next merged call and waits for their outputs. Dropping the
    /// future (a client that went away, a timeout) withdraws the request.
    pub async fn submit(&self, items: Vec<I>) -> Result<Vec<O>> {
        let (reply, answer) = oneshot::channel();
        self.metrics.queue_depth(self.model).inc();
        if self.queue.send(Job { items, reply }).is_err() {
            self.metrics.queue_depth(self.model).dec();
            return Err(Error::invalid("the model's worker has stopped"));
        }
        answer
            .await
            .unwrap_or_else(|_| Err(Error::invalid("the model's worker has stopped")))
    }
}

fn work<I: Send, O: Send>(
    model: &'static str,
    jobs: mpsc::Receiver<Job<I, O>>,
    run: &RunFn<I, O>,
    metrics: &Metrics,
    pool: &ThreadPool,
) {
    // `recv` fails once every sender is gone: the server has shut down.
    while let Ok(first) = jobs.recv() {
        let mut merged = vec![first];
        let mut size = merged[0].items.len();
        while size < MERGE_LIMIT {
            match jobs.try_recv() {
                Ok(job) => {
                    size += job.items.len();
                    merged.push(job);
                }
                Err(_) => break,
            }
        }
        metrics.queue_depth(model).dec_by(merged.len() as i64);
        merged.retain(|job| !job.reply.is_closed());
        if merged.is_empty() {
            continue;
        }
        pool.install(|| run_merged(model, merged, run, metrics));
    }
}

/// One call for all `jobs`; when it fails and holds more than one request, each runs alone,
/// so an error reaches only the request that caused it.
fn run_merged<I, O>(
    model: &'static str,
    jobs: Vec<Job<I, O>>,
    run: &RunFn<I, O>,
    metrics: &Metrics,
) {
    let (items, replies): (Vec<Vec<I>>, Vec<Reply<O>>) =
        jobs.into_iter().map(|j| (j.items, j.reply)).unzip();
    let sizes: Vec<usize> = items.iter().map(Vec::len).collect();
    let flat: Vec<I> = items.into_iter().flatten().collect();
    let abandoned = AtomicBool::new(false);
    let started = Instant::now();
    let outcome = run(&flat, &mut |_| {
        if replies.iter().all(oneshot::Sender::is_closed) {
            abandoned.store(true, Ordering::Relaxed);
            return Err(Error::Interrupted);
        }
        Ok(())
    });
    if abandoned.load(Ordering::Relaxed) {
        return;
    }
    match outcome {
        Ok(outputs) if outputs.len() == flat.len() => {
            metrics.record_batch(
                model,
                BatchStats {
                    requests: replies.len(),
                    items: flat.len(),
                    seconds: started.elapsed().as_secs_f64(),
                },
            );
            let mut outputs = outputs.into_iter();
            for (reply, size) in replies.into_iter().zip(sizes) {
                let own: Vec<O> = outputs.by_ref().take(size).collect();
                // Err: the client went away meanwhile; nobody to answer.
                let _ = reply.send(Ok(own));
            }
        }
        Ok(_) => {
            for reply in replies {
                let _ = reply.send(Err(Error::invalid(
                    "the model returned a different number of outputs than inputs",
                )));
            }
        }
        Err(error) if replies.len() == 1 => {
            let _ = replies.into_iter().next().map(|r| r.send(Err(error)));
        }
        Err(_) => {
            let mut flat = flat.into_iter();
            for (reply, size) in replies.into_iter().zip(sizes) {
                let own: Vec<I> = flat.by_ref().take(size).collect();
                if reply.is_closed() {
                    continue;
                }
                run_merged(model, vec![Job { items: own, reply }], run, metrics);
            }
        }
    }
}
