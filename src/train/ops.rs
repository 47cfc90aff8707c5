//! Differentiable softmax and layer norm for the training forward pass.
//!
//! candle-nn 0.11's fused `ops::softmax_last_dim` and `ops::layer_norm` (which its
//! `LayerNorm` module uses on contiguous inputs) are applied with `apply_op*_no_bwd`: their
//! outputs carry no op, so a backward pass silently gives no gradient to anything before
//! them. The inference model keeps those fused ops (they are its fast path); training uses
//! these instead:
//!
//! * on the CPU with f32 contiguous inputs, custom ops with a one-pass forward kernel and
//!   an explicit backward (`bwd`), as fast as the fused ops forward;
//! * elsewhere, candle-nn's composite `ops::softmax` / `ops::layer_norm_slow`, built from
//!   primitive ops that candle differentiates (slower, but correct on any device).

use candle_core::{
    backend::BackendStorage, CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Shape,
    Tensor, D,
};
use rayon::prelude::*;

/// Rows per parallel task in the layer-norm backward's parameter-gradient sums: the sums
/// are reduced in this fixed chunking so the result does not depend on the thread count.
const LN_ROWS_PER_CHUNK: usize = 64;

fn fast_path(xs: &[&Tensor]) -> bool {
    xs.iter()
        .all(|x| x.device().is_cpu() && x.dtype() == DType::F32 && x.is_contiguous())
}

/// Softmax over the last dimension, differentiable.
pub fn softmax_last_dim(x: &Tensor) -> candle_core::Result<Tensor> {
    if fast_path(&[x]) {
        x.apply_op1(SoftmaxLastDim)
    } else {
        candle_nn::ops::softmax(x, D::Minus1)
    }
}

/// Layer norm over the last dimension with weight and bias, differentiable. Mean and
/// variance are accumulated in f64 (PyTorch accumulates in f32 with a cascade; the
/// difference is far below the f32 rounding of the output).
pub fn layer_norm(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
) -> candle_core::Result<Tensor> {
    if fast_path(&[x, weight, bias]) {
        let hidden = x.dim(D::Minus1)?;
        if weight.dims() != [hidden] || bias.dims() != [hidden] {
            candle_core::bail!(
                "layer norm over {hidden} values got weight {:?} and bias {:?}",
                weight.shape(),
                bias.shape()
            );
        }
        x.apply_op3(weight, bias, LayerNorm { eps })
    } else {
        candle_nn::ops::layer_norm_slow(x, weight, bias, eps as f32)
    }
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

fn last_dim(layout: &Layout, op: &str) -> candle_core::Result<usize> {
    match layout.dims().last() {
        Some(&n) if n > 0 => Ok(n),
        _ => candle_core::bail!("{op}: needs a non-empty last dimension"),
    }
}

struct SoftmaxLastDim;

impl CustomOp1 for SoftmaxLastDim {
    fn name(&self) -> &'static str {
        "crossrank-train-softmax"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let src = contiguous_f32(storage, layout, self.name())?;
        let n = last_dim(layout, self.name())?;
        let mut out = vec![0f32; src.len()];
        out.par_chunks_mut(n)
            .zip(src.par_chunks(n))
            .for_each(|(out, row)| {
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut sum = 0f32;
                for (o, &v) in out.iter_mut().zip(row) {
                    *o = (v - max).exp();
                    sum += *o;
                }
                let inv = 1.0 / sum;
                out.iter_mut().for_each(|o| *o *= inv);
            });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        // The incoming gradient comes from a matmul's backward and is contiguous in
        // practice; `contiguous` is a no-op then and a copy otherwise.
        Ok(Some(res.apply_op2_no_bwd(
            &grad_res.contiguous()?,
            &SoftmaxBackward,
        )?))
    }
}

/// `dx = y * (dy - sum(dy * y))` per row, from the softmax output `y` and its gradient.
struct SoftmaxBackward;

impl CustomOp2 for SoftmaxBackward {
    fn name(&self) -> &'static str {
        "crossrank-train-softmax-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let y = contiguous_f32(s1, l1, self.name())?;
        let dy = contiguous_f32(s2, l2, self.name())?;
        if l1.shape() != l2.shape() {
            candle_core::bail!("{}: shapes differ", self.name());
        }
        let n = last_dim(l1, self.name())?;
        let mut dx = vec![0f32; y.len()];
        dx.par_chunks_mut(n)
            .zip(y.par_chunks(n).zip(dy.par_chunks(n)))
            .for_each(|(dx, (y, dy))| {
                let dot: f32 = y.iter().zip(dy).map(|(a, b)| a * b).sum();
                for ((d, &yi), &gi) in dx.iter_mut().zip(y).zip(dy) {
                    *d = yi * (gi - dot);
                }
            });
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

struct LayerNorm {
    eps: f64,
}

/// Mean and 1/sqrt(variance + eps) of one row, in f64 (two passes, as PyTorch).
fn row_moments(row: &[f32], eps: f64) -> (f64, f64) {
    let n = row.len() as f64;
    let mean = row.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    (mean, 1.0 / (var + eps).sqrt())
}

impl CustomOp3 for LayerNorm {
    fn name(&self) -> &'static str {
        "crossrank-train-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s1, l1, self.name())?;
        let w = contiguous_f32(s2, l2, self.name())?;
        let b = contiguous_f32(s3, l3, self.name())?;
        let n = last_dim(l1, self.name())?;
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(n)
            .zip(x.par_chunks(n))
            .for_each(|(out, row)| {
                let (mean, rstd) = row_moments(row, self.eps);
                for (i, (o, &v)) in out.iter_mut().zip(row).enumerate() {
                    *o = ((v as f64 - mean) * rstd) as f32 * w[i] + b[i];
                }
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    /// With `xhat = (x - mean) * rstd` and `g = dy * weight`:
    /// `dx = rstd * (g - mean(g) - xhat * mean(g * xhat))`,
    /// `dweight = sum over rows of dy * xhat`, `dbias = sum over rows of dy`.
    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _bias: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let n = x.dim(D::Minus1)?;
        let xs = x.flatten_all()?.to_vec1::<f32>()?;
        let w = weight.to_vec1::<f32>()?;
        let dys = grad_res.flatten_all()?.to_vec1::<f32>()?;

        let mut dx = vec![0f32; xs.len()];
        dx.par_chunks_mut(n)
            .zip(xs.par_chunks(n).zip(dys.par_chunks(n)))
            .for_each(|(dx, (row, dy))| {
                let (mean, rstd) = row_moments(row, self.eps);
                let (mut sum_g, mut sum_g_xhat) = (0f64, 0f64);
                for i in 0..n {
                    let g = dy[i] as f64 * w[i] as f64;
                    sum_g += g;
                    sum_g_xhat += g * (row[i] as f64 - mean) * rstd;
                }
                let (mean_g, mean_g_xhat) = (sum_g / n as f64, sum_g_xhat / n as f64);
                for i in 0..n {
                    let xhat = (row[i] as f64 - mean) * rstd;
                    let g = dy[i] as f64 * w[i] as f64;
                    dx[i] = (rstd * (g - mean_g - xhat * mean_g_xhat)) as f32;
                }
            });

        // Parameter gradients: per-chunk partial sums in parallel, then summed in chunk
        // order, so the result is the same whatever the number of threads.
        let chunk = LN_ROWS_PER_CHUNK * n;
        let partials: Vec<(Vec<f64>, Vec<f64>)> = xs
            .par_chunks(chunk)
            .zip(dys.par_chunks(chunk))
            .map(|(rows, dys)| {
                let (mut dw, mut db) = (vec![0f64; n], vec![0f64; n]);
                for (row, dy) in rows.chunks(n).zip(dys.chunks(n)) {
                    let (mean, rstd) = row_moments(row, self.eps);
                    for i in 0..n {
                        dw[i] += dy[i] as f64 * (row[i] as f64 - mean) * rstd;
                        db[i] += dy[i] as f64;
                    }
                }
                (dw, db)
            })
            .collect();
        let (mut dw, mut db) = (vec![0f64; n], vec![0f64; n]);
        for (pw, pb) in &partials {
            for i in 0..n {
                dw[i] += pw[i];
                db[i] += pb[i];
            }
        }
        let to_f32 = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<f32>>();
        let device = x.device();
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), device)?),
            Some(Tensor::from_vec(to_f32(dw), n, device)?),
            Some(Tensor::from_vec(to_f32(db), n, device)?),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
        let mut rng = crate::train::init::NormalRng::new(seed);
        (0..n).map(|_| rng.next_normal() as f32 * scale).collect()
    }

    fn max_rel(a: &Tensor, b: &Tensor) -> f32 {
        let diff = (a - b).unwrap().sqr().unwrap().sum_all().unwrap();
        let norm = b.sqr().unwrap().sum_all().unwrap();
        (diff.to_scalar::<f32>().unwrap() / norm.to_scalar::<f32>().unwrap()).sqrt()
    }

    /// The custom ops give the composite ops' outputs and gradients (which candle
    /// differentiates op by op), including with a -inf-like mask as attention uses.
    #[test]
    fn softmax_matches_composite_forward_and_backward() {
        let dev = Device::Cpu;
        let mut v = values(3 * 4 * 7, 1, 3.0);
        v[5] = f32::MIN; // a masked key
        let x = Var::from_vec(v, (3, 4, 7), &dev).unwrap();
        let probe = Tensor::from_vec(values(3 * 4 * 7, 2, 1.0), (3, 4, 7), &dev).unwrap();

        let fast = softmax_last_dim(x.as_tensor()).unwrap();
        let slow = candle_nn::ops::softmax(x.as_tensor(), D::Minus1).unwrap();
        assert!(max_rel(&fast, &slow) < 1e-6);

        let g_fast = (&fast * &probe)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let g_slow = (&slow * &probe)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let (a, b) = (g_fast.get(&x).unwrap(), g_slow.get(&x).unwrap());
        assert!(max_rel(a, b) < 1e-5, "{}", max_rel(a, b));
    }

    #[test]
    fn layer_norm_matches_composite_forward_and_backward() {
        let dev = Device::Cpu;
        let (rows, n) = (150, 12); // more rows than one chunk of the parameter sums
        let x = Var::from_vec(values(rows * n, 3, 2.0), (rows / 3, 3, n), &dev).unwrap();
        let w = Var::from_vec(values(n, 4, 1.0), n, &dev).unwrap();
        let b = Var::from_vec(values(n, 5, 1.0), n, &dev).unwrap();
        let probe = Tensor::from_vec(values(rows * n, 6, 1.0), (rows / 3, 3, n), &dev).unwrap();
        let eps = 1e-12;

        let fast = layer_norm(x.as_tensor(), w.as_tensor(), b.as_tensor(), eps).unwrap();
        let slow = candle_nn::ops::layer_norm_slow(
            x.as_tensor(),
            w.as_tensor(),
            b.as_tensor(),
            eps as f32,
        )
        .unwrap();
        assert!(max_rel(&fast, &slow) < 1e-6);

        let g_fast = (&fast * &probe)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let g_slow = (&slow * &probe)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for var in [&x, &w, &b] {
            let (a, b) = (g_fast.get(var).unwrap(), g_slow.get(var).unwrap());
            assert!(max_rel(a, b) < 1e-5, "{}", max_rel(a, b));
        }
    }

    /// Central finite differences in f64 on a tiny input: the analytic layer-norm
    /// gradient is right, not merely equal to candle's.
    #[test]
    fn layer_norm_gradient_matches_finite_differences() {
        let dev = Device::Cpu;
        let n = 5;
        let xv = values(2 * n, 7, 1.0);
        let wv = values(n, 8, 1.0);
        let bv = values(n, 9, 1.0);
        let pv = values(2 * n, 10, 1.0);
        let objective = |x: &[f32], w: &[f32]| -> f64 {
            let mut total = 0f64;
            for r in 0..2 {
                let row: Vec<f64> = x[r * n..(r + 1) * n].iter().map(|&v| v as f64).collect();
                let mean = row.iter().sum::<f64>() / n as f64;
                let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
                for i in 0..n {
                    let y = (row[i] - mean) / (var + 1e-12).sqrt() * w[i] as f64 + bv[i] as f64;
                    total += y * pv[r * n + i] as f64;
                }
            }
            total
        };
        let x = Var::from_vec(xv.clone(), (2, n), &dev).unwrap();
        let w = Var::from_vec(wv.clone(), n, &dev).unwrap();
        let b = Var::from_vec(bv.clone(), n, &dev).unwrap();
        let probe = Tensor::from_vec(pv.clone(), (2, n), &dev).unwrap();
        let y = layer_norm(x.as_tensor(), w.as_tensor(), b.as_tensor(), 1e-12).unwrap();
        let grads = (y * probe).unwrap().sum_all().unwrap().backward().unwrap();
        let gx = grads
            .get(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let gw = grads.get(&w).unwrap().to_vec1::<f32>().unwrap();
        let h = 1e-3f32;
        for i in 0..2 * n {
            let (mut up, mut down) = (xv.clone(), xv.clone());
            up[i] += h;
            down[i] -= h;
            let fd = (objective(&up, &wv) - objective(&down, &wv)) / (2.0 * h as f64);
            assert!(
                (fd - gx[i] as f64).abs() < 1e-3,
                "dx[{i}] {fd} vs {}",
                gx[i]
            );
        }
        for i in 0..n {
            let (mut up, mut down) = (wv.clone(), wv.clone());
            up[i] += h;
            down[i] -= h;
            let fd = (objective(&xv, &up) - objective(&xv, &down)) / (2.0 * h as f64);
            assert!(
                (fd - gw[i] as f64).abs() < 1e-3,
                "dw[{i}] {fd} vs {}",
                gw[i]
            );
        }
    }

    /// What this module is for: candle-nn's fused ops give no gradient at all.
    #[test]
    fn candle_fused_ops_have_no_backward() {
        let dev = Device::Cpu;
        let x = Var::from_vec(values(8, 11, 1.0), (2, 4), &dev).unwrap();
        let y = candle_nn::ops::softmax_last_dim(x.as_tensor()).unwrap();
        let probe = Tensor::from_vec(values(8, 12, 1.0), (2, 4), &dev).unwrap();
        let grads = (y * probe).unwrap().sum_all().unwrap().backward().unwrap();
        assert!(grads.get(&x).is_none());
    }
}
