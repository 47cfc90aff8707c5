//! The thread pool the bindings run their work in, rebuilt after `fork()`.
//!
//! rayon's global pool does not survive `fork()`: a child process (Python's
//! `multiprocessing` and `ProcessPoolExecutor` fork by default on Linux up to 3.13) inherits
//! the pool's state but none of its threads, and the first parallel call waits forever.
//! So work from Python runs in a pool owned by the current process id; a forked child sees
//! another pid and builds its own.

use std::sync::{Arc, Mutex};

use pyo3::Python;
use rayon::{ThreadPool, ThreadPoolBuilder};

static POOL: Mutex<Option<(u32, Arc<ThreadPool>)>> = Mutex::new(None);

fn pool() -> Option<Arc<ThreadPool>> {
    let pid = std::process::id();
    let mut slot = POOL.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((owner, pool)) = slot.as_ref() {
        if *owner == pid {
            return Some(pool.clone());
        }
    }
    // The parent's pool: its threads do not exist here, so dropping it could wait on them.
    if let Some(inherited) = slot.take() {
        std::mem::forget(inherited);
    }
    // Same size as rayon's global pool would be (RAYON_NUM_THREADS, else the CPU count).
    let pool = Arc::new(ThreadPoolBuilder::new().build().ok()?);
    *slot = Some((pid, pool.clone()));
    Some(pool)
}

/// `py.detach(f)` with `f` running inside this process's pool (or rayon's global pool
/// if a pool cannot be built).
pub fn detach<T, F>(py: Python<'_>, f: F) -> T
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    py.detach(|| match pool() {
        Some(pool) => pool.install(f),
        None => f(),
    })
}
