//! Length-sorted batching: sequences of similar length go together so that padding is
//! small, batches respect both a sequence count and a padded-token budget, and results
//! come back in input order.

use std::ops::Range;

use tokenizers::Encoding;

use crate::error::{Error, Result};

/// Groups sequence indices into batches, longest first. A batch holds at most
/// `batch_size` sequences and, when `max_batch_tokens` is set, at most that many
/// padded tokens (sequences x longest length); a single over-long sequence still
/// forms a batch of its own.
pub fn plan_batches(
    lengths: &[usize],
    batch_size: usize,
    max_batch_tokens: Option<usize>,
) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
    let budget = max_batch_tokens.unwrap_or(usize::MAX);
    let mut batches: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    for i in order {
        // Sorted longest first, so the batch's padded length is its first sequence's.
        let padded_len = current.first().map_or(lengths[i], |&f| lengths[f]).max(1);
        if !current.is_empty()
            && (current.len() >= batch_size || (current.len() + 1) * padded_len > budget)
        {
            batches.push(std::mem::take(&mut current));
        }
        current.push(i);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

/// Called after each batch with the number of inputs it finished; an `Err` (e.g.
/// [`Error::Interrupted`] when the caller pressed Ctrl-C) stops the work and is returned.
pub type OnBatch<'a> = dyn FnMut(usize) -> Result<()> + 'a;

/// Inputs are tokenized and run in chunks of this many sequences, so the memory that
/// tokens take stays bounded however many inputs a call has.
pub const CHUNK: usize = 1024;

/// Scores `n` inputs: each chunk of [`CHUNK`] inputs is tokenized (`tokenize` gets the
/// input range), sorted by length into batches, and run through `forward` (a batch ->
/// (batch, width) f32, row-major). Returns the rows in input order, flattened
/// (n * width). `on_batch` gets each batch's size and may stop the run.
pub fn run_batched(
    n: usize,
    tokenize: &dyn Fn(Range<usize>) -> Result<Vec<Encoding>>,
    batch_size: usize,
    max_batch_tokens: Option<usize>,
    width: usize,
    on_batch: &mut OnBatch<'_>,
    forward: &dyn Fn(&[&Encoding]) -> Result<Vec<f32>>,
) -> Result<Vec<f32>> {
    if batch_size == 0 {
        return Err(Error::invalid(
            "batch_size must be a positive integer, got 0",
        ));
    }
    let mut out = vec![0f32; n * width];
    for chunk_start in (0..n).step_by(CHUNK) {
        let encodings = tokenize(chunk_start..(chunk_start + CHUNK).min(n))?;
        let lengths: Vec<usize> = encodings.iter().map(Encoding::len).collect();
        for batch in plan_batches(&lengths, batch_size, max_batch_tokens) {
            let members: Vec<&Encoding> = batch.iter().map(|&i| &encodings[i]).collect();
            let rows = forward(&members)?;
            if rows.len() != batch.len() * width {
                return Err(Error::invalid(format!(
                    "model returned {} values for {} sequences, expected {width} each",
                    rows.len(),
                    batch.len()
                )));
            }
            for (&i, row) in batch.iter().zip(rows.chunks_exact(width)) {
                let at = (chunk_start + i) * width;
                out[at..at + width].copy_from_slice(row);
            }
            on_batch(batch.len())?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_sorted_and_bounded() {
        let lengths = [5, 50, 7, 49, 3, 100];
        let batches = plan_batches(&lengths, 2, None);
        assert_eq!(batches, vec![vec![5, 1], vec![3, 2], vec![0, 4]]);
        // 100 tokens alone exceeds a 150 budget for two, so it goes alone.
        let batches = plan_batches(&lengths, 8, Some(150));
        assert_eq!(batches[0], vec![5]);
        assert!(batches
            .iter()
            .all(|b| b.len() * lengths[b[0]] <= 150 || b.len() == 1));
        let mut all: Vec<usize> = batches.concat();
        all.sort();
        assert_eq!(all, (0..6).collect::<Vec<_>>());
    }

    #[test]
    fn empty_input_has_no_batches() {
        assert!(plan_batches(&[], 4, None).is_empty());
    }
}
