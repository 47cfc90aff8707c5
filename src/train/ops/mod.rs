//! Differentiable ops for the training forward pass, where candle 0.11 has none or a slow
//! one.
//!
//! * Layer norm and softmax: candle-nn's fused `ops::layer_norm` (which its `LayerNorm`
//!   module uses on contiguous inputs) and `ops::softmax_last_dim` are applied with
//!   `apply_op*_no_bwd`. Their outputs carry no op, so a backward pass silently gives no
//!   gradient to anything before them. The inference model keeps them (they are its fast
//!   path); training uses `layer_norm` and `attention` (whose softmax is part of it) from
//!   here.
//! * Dense layers, GELU and the rest of attention: candle differentiates
//!   `x.matmul(w.t()) + b`, `gelu_erf`, head reshapes and batched matmuls, but op by op.
//!   Its backward pass allocates a zero tensor and adds into it for every input of every
//!   op, so each small op costs several passes over activations; fused ops with a
//!   hand-written backward are one node each (together they more than halve the step).
//!
//! Each op runs a custom op with an explicit backward on the CPU for contiguous f32
//! inputs, and otherwise (another device or dtype) falls back to the composite of
//! primitive ops that candle differentiates itself, which the tests compare it with.

mod attention;
mod dense;
mod gelu;
mod layer_norm;

pub use attention::attention;
pub use dense::dense;
pub use gelu::gelu_erf;
pub use layer_norm::layer_norm;

use candle_core::{backend::BackendStorage, CpuStorage, DType, Layout, Storage, Tensor};

/// Rows per parallel task in sums over rows (bias and layer-norm weight gradients): partial
/// sums are combined in this fixed chunking, so the result does not depend on the number
/// of threads.
const ROWS_PER_CHUNK: usize = 64;

fn fast_path(xs: &[&Tensor]) -> bool {
    xs.iter()
        .all(|x| x.device().is_cpu() && x.dtype() == DType::F32 && x.is_contiguous())
}

/// The f32 slice a contiguous CPU storage holds for `layout`.
fn contiguous_f32<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    op: &str,
) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("{op}: expected f32, got {:?}", storage.dtype());
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{op}: expected a contiguous input");
    };
    Ok(&data[start..end])
}

/// Runs `f` on the values of a CPU f32 tensor, in place when it is contiguous (the
/// tensors a backward pass hands over usually are), else on a contiguous copy.
fn with_values<R>(t: &Tensor, op: &str, f: impl FnOnce(&[f32]) -> R) -> candle_core::Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        candle_core::bail!("{op}: expected a CPU tensor");
    };
    Ok(f(contiguous_f32(cpu, layout, op)?))
}

fn last_dim(layout: &Layout, op: &str) -> candle_core::Result<usize> {
    match layout.dims().last() {
        Some(&n) if n > 0 => Ok(n),
        _ => candle_core::bail!("{op}: needs a non-empty last dimension"),
    }
}

/// Sums of the columns of a row-major (rows, n) matrix, accumulated in f64 per chunk of
/// rows and combined in chunk order: deterministic, and more accurate than f32.
fn column_sums(
    values: &[f32],
    n: usize,
    row_term: impl Fn(usize, &[f32], &mut [f64]) + Sync,
) -> Vec<f64> {
    use rayon::prelude::*;
    let chunk = ROWS_PER_CHUNK * n;
    let partials: Vec<Vec<f64>> = values
        .par_chunks(chunk)
        .enumerate()
        .map(|(c, rows)| {
            let mut acc = vec![0f64; n];
            for (i, row) in rows.chunks(n).enumerate() {
                row_term(c * ROWS_PER_CHUNK + i, row, &mut acc);
            }
            acc
        })
        .collect();
    let mut total = vec![0f64; n];
    for p in &partials {
        total.iter_mut().zip(p).for_each(|(t, v)| *t += v);
    }
    total
}

#[cfg(test)]
pub(crate) mod test_util {
    use candle_core::backprop::GradStore;
    use candle_core::Tensor;

    /// Gradients of `sum(y * probe)`: a random weighting, so that every element of `y`'s
    /// gradient enters the comparison.
    pub fn probe_backward(y: &Tensor, probe: &Tensor) -> GradStore {
        (y * probe).unwrap().sum_all().unwrap().backward().unwrap()
    }

    pub fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
        let mut rng = crate::train::init::NormalRng::new(seed);
        (0..n).map(|_| rng.next_normal() as f32 * scale).collect()
    }

    /// ||a - b|| / ||b||.
    pub fn rel(a: &Tensor, b: &Tensor) -> f32 {
        let diff = (a - b).unwrap().sqr().unwrap().sum_all().unwrap();
        let norm = b.sqr().unwrap().sum_all().unwrap();
        (diff.to_scalar::<f32>().unwrap() / norm.to_scalar::<f32>().unwrap()).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::values;
    use candle_core::{Device, Tensor, Var};

    /// Why this module exists: candle-nn's fused ops give no gradient at all.
    #[test]
    fn candle_fused_ops_have_no_backward() {
        let dev = Device::Cpu;
        let x = Var::from_vec(values(8, 11, 1.0), (2, 4), &dev).unwrap();
        let w = Var::from_vec(values(4, 12, 1.0), 4, &dev).unwrap();
        let b = Var::from_vec(values(4, 13, 1.0), 4, &dev).unwrap();
        let probe = Tensor::from_vec(values(8, 14, 1.0), (2, 4), &dev).unwrap();
        let y = candle_nn::ops::softmax_last_dim(x.as_tensor()).unwrap();
        let grads = (y * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        assert!(grads.get(&x).is_none());
        let y =
            candle_nn::ops::layer_norm(x.as_tensor(), w.as_tensor(), b.as_tensor(), 1e-5).unwrap();
        let grads = (y * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        assert!(grads.get(&x).is_none() && grads.get(&w).is_none());
    }
}
