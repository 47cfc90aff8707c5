//! The score cache of `CrossEncoder(cache_size=N)`: a thread-safe LRU of raw logits keyed by
//! what decides them, so re-scoring a pair already seen (pagination, retries, a MultiStage
//! that revisits candidates, an evaluation sweep) costs a lookup.
//!
//! One cache belongs to one loaded model, and its key holds that model's identity (source,
//! revision, max_length, precision, truncation) besides the scoring options that change the
//! logits (long-document mode and stride) and the pair itself, so nothing but this model
//! with these options can answer from it. Logits are cached before the activation, so a
//! call with another `activation_fn` reuses them.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use lru::LruCache;

use crate::error::Result;
use crate::score::long_document::LongDocument;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    mode: &'static str,
    stride: usize,
    query: String,
    document: String,
}

/// `cache_info()`: as `functools.lru_cache` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheInfo {
    pub hits: u64,
    pub misses: u64,
    pub max_size: usize,
    pub size: usize,
}

pub struct ScoreCache {
    /// The model's identity; every key is within it.
    identity: String,
    entries: Mutex<LruCache<Key, Box<[f32]>>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl ScoreCache {
    pub fn new(identity: String, capacity: NonZeroUsize) -> Self {
        Self {
            identity,
            entries: Mutex::new(LruCache::new(capacity)),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<Key, Box<[f32]>>> {
        // A panic while holding the lock leaves the LRU consistent (each call is one
        // get/put), so a poisoned lock is still usable.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Logits of `pairs` (`width` per pair, in order): cached ones looked up, the others
    /// computed by `compute` (given the missing pairs, returning their logits in order)
    /// and stored.
    pub fn logits(
        &self,
        pairs: &[(&str, &str)],
        mode: LongDocument,
        stride: usize,
        width: usize,
        compute: impl FnOnce(&[(&str, &str)]) -> Result<Vec<f32>>,
    ) -> Result<Vec<f32>> {
        let key = |&(query, document): &(&str, &str)| Key {
            mode: mode.name(),
            stride,
            query: query.to_string(),
            document: document.to_string(),
        };
        let found: Vec<Option<Box<[f32]>>> = {
            let mut entries = self.lock();
            pairs
                .iter()
                .map(|pair| entries.get(&key(pair)).cloned())
                .collect()
        };
        let missing: Vec<(&str, &str)> = pairs
            .iter()
            .zip(&found)
            .filter(|(_, hit)| hit.is_none())
            .map(|(pair, _)| *pair)
            .collect();
        self.hits
            .fetch_add((pairs.len() - missing.len()) as u64, Ordering::Relaxed);
        self.misses
            .fetch_add(missing.len() as u64, Ordering::Relaxed);
        let computed = if missing.is_empty() {
            Vec::new()
        } else {
            compute(&missing)?
        };
        {
            let mut entries = self.lock();
            for (pair, logits) in missing.iter().zip(computed.chunks(width)) {
                entries.put(key(pair), logits.into());
            }
        }
        let mut computed = computed.chunks(width);
        let mut out = Vec::with_capacity(pairs.len() * width);
        for hit in found {
            match hit {
                Some(logits) => out.extend_from_slice(&logits),
                None => out.extend_from_slice(computed.next().unwrap_or(&[])),
            }
        }
        Ok(out)
    }

    pub fn info(&self) -> CacheInfo {
        let entries = self.lock();
        CacheInfo {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            max_size: entries.cap().get(),
            size: entries.len(),
        }
    }

    pub fn clear(&self) {
        self.lock().clear();
        self.hits.store(0, Ordering::Relaxed);
        self.misses.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scored(pairs: &[(&str, &str)]) -> Result<Vec<f32>> {
        Ok(pairs
            .iter()
            .map(|(q, d)| (q.len() * 10 + d.len()) as f32)
            .collect())
    }

    #[test]
    fn hits_misses_and_eviction() {
        let cache = ScoreCache::new("m".into(), NonZeroUsize::new(2).unwrap());
        let mode = LongDocument::Truncate;
        let pairs = [("q", "a"), ("q", "bb")];
        assert_eq!(
            cache.logits(&pairs, mode, 0, 1, scored).unwrap(),
            [11.0, 12.0]
        );
        // Both cached: `compute` is not called.
        let again = cache.logits(&pairs, mode, 0, 1, |_| panic!("recomputed"));
        assert_eq!(again.unwrap(), [11.0, 12.0]);
        let info = cache.info();
        assert_eq!(
            (info.hits, info.misses, info.size, info.max_size),
            (2, 2, 2, 2)
        );
        // A third pair evicts the least recently used ("q", "a").
        cache.logits(&[("q", "ccc")], mode, 0, 1, scored).unwrap();
        let mut computed = Vec::new();
        cache
            .logits(&pairs, mode, 0, 1, |missing| {
                computed.extend(missing.iter().map(|p| p.1.to_string()));
                scored(missing)
            })
            .unwrap();
        assert_eq!(computed, ["a"]);
        // Another mode or stride is another key.
        cache
            .logits(&pairs[..1], LongDocument::Max, 0, 1, scored)
            .unwrap();
        assert_eq!(cache.info().misses, 5);
        cache.clear();
        assert_eq!(cache.info().size, 0);
    }
}
