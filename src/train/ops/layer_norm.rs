//! Layer norm over the last dimension, with weight and bias, differentiable.

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor, D};
use rayon::prelude::*;

use super::{column_sums, contiguous_f32, fast_path, last_dim, with_values};

/// Mean and variance are accumulated in f64 (PyTorch accumulates in f32 with a cascade;
/// the difference is far below the f32 rounding of the output).
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
        let name = self.name();
        let n = x.dim(D::Minus1)?;
        let w = weight.to_vec1::<f32>()?;
        let (dx, dw, db) = with_values(x, name, |xs| {
            with_values(grad_res, name, |dys| {
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
                let dw = column_sums(xs, n, |r, row, acc| {
                    let (mean, rstd) = row_moments(row, self.eps);
                    let dy = &dys[r * n..(r + 1) * n];
                    for i in 0..n {
                        acc[i] += dy[i] as f64 * (row[i] as f64 - mean) * rstd;
                    }
                });
                let db = column_sums(dys, n, |_, dy, acc| {
                    acc.iter_mut().zip(dy).for_each(|(a, &v)| *a += v as f64);
                });
                (dx, dw, db)
            })
        })??;
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
    use super::super::test_util::{probe_backward, rel, values};
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn matches_composite_forward_and_backward() {
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
        assert!(rel(&fast, &slow) < 1e-6);

        let g_fast = probe_backward(&fast, &probe);
        let g_slow = probe_backward(&slow, &probe);
        for var in [&x, &w, &b] {
            let (a, b) = (g_fast.get(var).unwrap(), g_slow.get(var).unwrap());
            assert!(rel(a, b) < 1e-5, "{}", rel(a, b));
        }
    }

    /// Central finite differences in f64 on a tiny input: the analytic gradient is right,
    /// not merely equal to candle's.
    #[test]
    fn gradient_matches_finite_differences() {
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
}
