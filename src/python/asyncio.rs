//! `apredict` / `arank` / `aencode`: a method run on the event loop's default executor,
//! so an asyncio server keeps serving while the model works (the GIL is released during
//! scoring, so the loop's thread runs meanwhile).

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

/// An awaitable (an asyncio Future) for `obj.method(*args, **kwargs)` run in the running
/// loop's default executor. Raises `RuntimeError` outside a running event loop, as
/// `asyncio.get_running_loop()` does.
pub fn run_in_executor<'py>(
    obj: &Bound<'py, PyAny>,
    method: &str,
    args: &Bound<'py, PyTuple>,
    kwargs: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = obj.py();
    let event_loop = py.import("asyncio")?.call_method0("get_running_loop")?;
    let mut call = vec![obj.getattr(method)?];
    call.extend(args.iter());
    let partial = py
        .import("functools")?
        .getattr("partial")?
        .call(PyTuple::new(py, call)?, kwargs)?;
    event_loop.call_method1("run_in_executor", (py.None(), partial))
}
