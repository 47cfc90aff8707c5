//! A tqdm progress bar driven from Rust while the GIL is released.

use pyo3::prelude::*;
use pyo3::types::PyDict;

pub struct Progress {
    bar: Option<Py<PyAny>>,
}

impl Progress {
    /// `show`: as sentence-transformers, `None` means off.
    pub fn new(
        py: Python<'_>,
        show: Option<bool>,
        total: usize,
        desc: &str,
        unit: &str,
    ) -> PyResult<Self> {
        if !show.unwrap_or(false) {
            return Ok(Self { bar: None });
        }
        let tqdm = py.import("tqdm.auto")?.getattr("tqdm")?;
        let kwargs = PyDict::new(py);
        kwargs.set_item("total", total)?;
        kwargs.set_item("desc", desc)?;
        kwargs.set_item("unit", unit)?;
        Ok(Self {
            bar: Some(tqdm.call((), Some(&kwargs))?.unbind()),
        })
    }

    /// Safe to call without the GIL: it takes the GIL only when a bar is shown.
    pub fn update(&self, n: usize) {
        if let Some(bar) = &self.bar {
            Python::attach(|py| {
                // A failing progress bar must not fail the scoring.
                let _ = bar.call_method1(py, "update", (n,));
            });
        }
    }

    pub fn close(&self, py: Python<'_>) {
        if let Some(bar) = &self.bar {
            let _ = bar.call_method0(py, "close");
        }
    }
}
