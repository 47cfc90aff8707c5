//! GELU (the erf form, transformers' `"gelu"`), differentiable in one pass each way.
//!
//! candle's `gelu_erf` has a backward, but built from ten ops over the (tokens,
//! intermediate) activations, the largest of the layer; this one is one pass.

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::{contiguous_f32, fast_path, with_values};

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

pub fn gelu_erf(x: &Tensor) -> candle_core::Result<Tensor> {
    if fast_path(&[x]) {
        x.apply_op1(GeluErf)
    } else {
        x.gelu_erf()
    }
}

struct GeluErf;

impl CustomOp1 for GeluErf {
    fn name(&self) -> &'static str {
        "crossrank-train-gelu-erf"
    }

    /// The CPU engine's vectorized kernel: erf by Abramowitz & Stegun 7.1.26 (|error| <=
    /// 1.5e-7), the same polynomial PyTorch's vectorized CPU GELU uses; libm's scalar erf
    /// was 8% of a training step.
    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let mut out = contiguous_f32(storage, layout, self.name())?.to_vec();
        crate::score::cpu::kernels::gelu_erf(&mut out);
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    /// `dx = dy * (cdf(x) + x * pdf(x))`, PyTorch's formula, with `cdf(x)` read off the
    /// forward's output (`gelu(x) / x`) instead of a second erf, the costly part.
    fn bwd(
        &self,
        arg: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        // 1 / sqrt(2 pi), as PyTorch's M_2_SQRTPI * M_SQRT1_2 * 0.5.
        const BETA: f32 = std::f32::consts::FRAC_2_SQRT_PI * std::f32::consts::FRAC_1_SQRT_2 * 0.5;
        let name = self.name();
        let dx = with_values(arg, name, |x| {
            with_values(res, name, |y| {
                with_values(grad_res, name, |dy| {
                    let mut dx = vec![0f32; x.len()];
                    dx.par_chunks_mut(CHUNK)
                        .zip(x.par_chunks(CHUNK).zip(y.par_chunks(CHUNK)))
                        .zip(dy.par_chunks(CHUNK))
                        .for_each(|((dx, (x, y)), dy)| {
                            for i in 0..dx.len() {
                                let v = x[i];
                                // y = v * cdf(v), exact to an ulp; at 0, cdf is 1/2.
                                let cdf = if v == 0.0 { 0.5 } else { y[i] / v };
                                let pdf = BETA * (v * v * -0.5).exp();
                                dx[i] = dy[i] * (cdf + v * pdf);
                            }
                        });
                    dx
                })
            })
        })???;
        Ok(Some(Tensor::from_vec(dx, arg.shape(), arg.device())?))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{probe_backward, rel, values};
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn matches_candle_forward_and_backward() {
        let dev = Device::Cpu;
        let x = Var::from_vec(values(3 * 40_000, 1, 2.0), (3, 40_000), &dev).unwrap();
        let probe = Tensor::from_vec(values(3 * 40_000, 2, 1.0), (3, 40_000), &dev).unwrap();
        let fast = gelu_erf(x.as_tensor()).unwrap();
        let slow = x.as_tensor().gelu_erf().unwrap();
        assert!(rel(&fast, &slow) < 1e-6, "{}", rel(&fast, &slow));
        let g_fast = probe_backward(&fast, &probe);
        let g_slow = probe_backward(&slow, &probe);
        let (a, b) = (g_fast.get(&x).unwrap(), g_slow.get(&x).unwrap());
        // candle's backward rounds 1/sqrt(2 pi) to 0.398942.
        assert!(rel(a, b) < 2e-6, "{}", rel(a, b));
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let gelu = |v: f64| v * 0.5 * (1.0 + erf64(v / std::f64::consts::SQRT_2));
        let xs = [-3.0f32, -1.2, -0.3, 0.0, 0.4, 1.7, 5.0];
        let x = Var::from_slice(&xs, xs.len(), &Device::Cpu).unwrap();
        let g = gelu_erf(x.as_tensor())
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let g = g.get(&x).unwrap().to_vec1::<f32>().unwrap();
        for (i, &v) in xs.iter().enumerate() {
            let h = 1e-4;
            let fd = (gelu(v as f64 + h) - gelu(v as f64 - h)) / (2.0 * h);
            assert!((fd - g[i] as f64).abs() < 1e-5, "{v}: {fd} vs {}", g[i]);
        }
    }

    fn erf64(x: f64) -> f64 {
        candle_core::cpu::erf::erf_f64(x)
    }
}
