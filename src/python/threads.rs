//! The thread pool the bindings run their work in, rebuilt after `fork()`.
//!
//! rayon's global pool does not survive `fork()`: a child process (Python's
//! `multiprocessing` and `ProcessPoolExecutor` fork by default on Linux up to 3.13) inherits
//! the pool's state but none of its threads, and the first parallel call waits forever.
//! So work from Python runs in a pool owned by the current process id; a forked child sees
//! another pid and builds its own.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use pyo3::{PyResult, Python};
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

/// The number of threads work from Python runs on.
pub fn num_threads() -> usize {
    pool().map_or_else(rayon::current_num_threads, |p| p.current_num_threads())
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

/// Raised by the calling thread when Python has a pending signal (Ctrl-C); the work
/// polls it between batches through [`Interrupt::check`].
#[derive(Clone, Default)]
pub struct Interrupt(Arc<AtomicBool>);

impl Interrupt {
    fn raise(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_raised(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// `Err(Error::Interrupted)` once the caller has been interrupted.
    pub fn check(&self) -> crate::error::Result<()> {
        if self.is_raised() {
            Err(crate::error::Error::Interrupted)
        } else {
            Ok(())
        }
    }
}

/// How often the calling thread looks for pending signals while the work runs.
const SIGNAL_POLL: Duration = Duration::from_millis(50);

/// [`detach`] for long calls that Ctrl-C must be able to stop.
///
/// Python runs signal handlers on the main thread, between bytecodes, so a call that
/// waits inside Rust would sit on a Ctrl-C until it finished. Here the work runs on
/// another thread while the calling thread waits in short slices (GIL released) and
/// checks for signals in between. A pending signal (`KeyboardInterrupt` from the default
/// handler) raises the [`Interrupt`] flag that the work polls between batches; the
/// call waits for the work to stop, so nothing outlives it, and returns the signal's
/// exception. The model is untouched and usable afterwards.
pub fn detach_interruptible<T, F>(py: Python<'_>, f: F) -> PyResult<T>
where
    F: FnOnce(&Interrupt) -> T + Send,
    T: Send,
{
    let interrupt = Interrupt::default();
    let slot = (Mutex::new(None::<T>), Condvar::new());
    std::thread::scope(|scope| {
        let worker = scope.spawn(|| {
            let result = match pool() {
                Some(pool) => pool.install(|| f(&interrupt)),
                None => f(&interrupt),
            };
            *lock(&slot.0) = Some(result);
            slot.1.notify_one();
        });
        // The result, if the worker stores it within `timeout`.
        let wait = |timeout: Duration| {
            let (mut guard, _) = slot
                .1
                .wait_timeout_while(lock(&slot.0), timeout, |v| v.is_none())
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            guard.take()
        };
        loop {
            if let Some(result) = py.detach(|| wait(SIGNAL_POLL)) {
                return Ok(result);
            }
            if worker.is_finished() {
                // The worker stores its result before it ends.
                if let Some(result) = wait(Duration::ZERO) {
                    return Ok(result);
                }
                // Finished without a result: it panicked; re-raise its panic here.
                return match worker.join() {
                    Err(panic) => std::panic::resume_unwind(panic),
                    Ok(()) => Err(pyo3::exceptions::PyRuntimeError::new_err(
                        "the worker thread ended without a result",
                    )),
                };
            }
            if let Err(signal) = py.check_signals() {
                interrupt.raise();
                // The work stops at its next check; its result is dropped.
                py.detach(|| {
                    let _ = worker.join();
                });
                return Err(signal);
            }
        }
    })
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
