//! `crossrank.runtime_info()`: which kernels the CPU engine runs here, and why.

use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::score::cpu::isa;

/// The CPU features seen, the kernels chosen for float32 and int8, the
/// ``CROSSRANK_ISA`` cap (if set) and the number of threads the engine uses.
#[pyfunction]
pub fn runtime_info(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let info = isa::runtime_info();
    let out = PyDict::new(py);
    out.set_item("version", env!("CARGO_PKG_VERSION"))?;
    out.set_item("arch", std::env::consts::ARCH)?;
    out.set_item("cpu_features", info.cpu_features)?;
    out.set_item("f32_kernel", info.f32_kernel)?;
    out.set_item("int8_kernel", info.int8_kernel)?;
    out.set_item(
        "int8_fast",
        crate::score::cpu::int8::fast_kernel_available(),
    )?;
    out.set_item("int8_ffn_output", info.int8_ffn_output)?;
    out.set_item("isa_cap", info.isa_cap)?;
    out.set_item("threads", super::threads::num_threads())?;
    Ok(out)
}
