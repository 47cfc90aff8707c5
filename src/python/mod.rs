//! The pyo3 bindings: `crossrank._core`. Thin wrappers over the core types; argument
//! checking and conversion live here, the work in the core with the GIL released.

mod asyncio;
mod bi_encoder;
mod bm25;
mod cross_encoder;
mod dense_index;
mod errors;
mod fusion;
mod hybrid;
mod inputs;
mod metrics;
mod multistage;
mod pairwise;
mod progress;
mod reranking;
mod runtime;
mod scorers;
#[cfg(feature = "server")]
mod serve;
mod signals;
mod threads;
mod train;

use pyo3::prelude::*;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // The core's `log` records go to Python's `logging`, under the "crossrank" logger
    // (e.g. "crossrank.score.cpu.isa"), so applications filter and format them as theirs.
    pyo3_log::init();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<cross_encoder::PyCrossEncoder>()?;
    m.add_class::<bi_encoder::PyBiEncoder>()?;
    m.add_class::<bm25::PyBm25>()?;
    m.add_class::<dense_index::PyDenseIndex>()?;
    m.add_function(wrap_pyfunction!(metrics::evaluate, m)?)?;
    m.add_function(wrap_pyfunction!(fusion::reciprocal_rank_fusion, m)?)?;
    m.add_function(wrap_pyfunction!(fusion::weighted_sum_fusion, m)?)?;
    m.add_class::<reranking::PyCalibrator>()?;
    m.add_class::<train::PyTrainer>()?;
    m.add_class::<signals::PyModelSignals>()?;
    m.add_class::<hybrid::PyHybridReranker>()?;
    m.add_class::<multistage::PyMultiStage>()?;
    m.add_class::<pairwise::PyPairwiseReranker>()?;
    #[cfg(feature = "server")]
    m.add_class::<serve::PyServer>()?;
    m.add_function(wrap_pyfunction!(reranking::check_weights, m)?)?;
    m.add_function(wrap_pyfunction!(runtime::runtime_info, m)?)?;
    m.add_function(wrap_pyfunction!(pairwise::aggregate_preferences, m)?)?;
    m.add(
        "sort_by_preference",
        wrap_pyfunction!(pairwise::sort_by_preference_py, m)?,
    )?;
    m.add_function(wrap_pyfunction!(reranking::normalize_scores, m)?)?;
    m.add_function(wrap_pyfunction!(reranking::combine_signals, m)?)?;
    m.add_function(wrap_pyfunction!(reranking::fit_weights, m)?)?;
    m.add(
        "suggest_threshold",
        wrap_pyfunction!(reranking::suggest_threshold_py, m)?,
    )?;
    m.add(
        "expected_calibration_error",
        wrap_pyfunction!(reranking::expected_calibration_error_py, m)?,
    )?;
    Ok(())
}
