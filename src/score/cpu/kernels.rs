//! Element-wise and row-wise kernels of the CPU forward pass: bias, GELU, softmax,
//! LayerNorm. Written as plain loops over slices so the compiler vectorizes them; each
//! public kernel is compiled for AVX-512 and AVX2 as well and picked at run time (by
//! `isa`).
//!
//! `exp` and `erf` are polynomial approximations (Cephes `expf`, Abramowitz & Stegun
//! 7.1.26 `erf`, |error| <= 1.5e-7) because libm's scalar calls do not vectorize and
//! were 15-20% of the forward pass.

use rayon::prelude::*;

/// Compiles `$body` three times (AVX-512, AVX2+FMA, baseline) and runs the copy
/// `isa::F32Kernel::detect` picks (the CPU's best, unless `CROSSRANK_ISA` caps it).
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),*) $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn generic($($arg: $ty),*) $body

            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
                unsafe fn avx512($($arg: $ty),*) { generic($($arg),*) }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) { generic($($arg),*) }
                match crate::score::cpu::isa::F32Kernel::detect() {
                    // SAFETY: `detect` checked that the CPU supports the features this
                    // copy was compiled for.
                    crate::score::cpu::isa::F32Kernel::Avx512 => return unsafe { avx512($($arg),*) },
                    // SAFETY: as above.
                    crate::score::cpu::isa::F32Kernel::Avx2 => return unsafe { avx2($($arg),*) },
                    crate::score::cpu::isa::F32Kernel::Generic => {}
                }
            }
            generic($($arg),*)
        }
    };
}

#[inline(always)]
fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const C1: f32 = 0.693_359_4;
    const C2: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.0, 88.0);
    let n = (x * LOG2E + 0.5).floor();
    let r = x - n * C1 - n * C2;
    let z = r * r;
    let p = (((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2)
        * r
        + 1.666_666_5e-1)
        * r
        + 5e-1)
        * z
        + r
        + 1.0;
    // 2^n from n's bits: adding 2^23 puts the integer n + 127 (in 1..=255 after the
    // clamp) into the low mantissa bits. `n as i32` would be a saturating conversion,
    // which the compiler cannot vectorize.
    let biased = (n + 127.0 + 8_388_608.0)
        .to_bits()
        .wrapping_sub(0x4b00_0000);
    p * f32::from_bits(biased << 23)
}

#[inline(always)]
fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = ((((1.061_405_4 * t - 1.453_152_1) * t + 1.421_413_8) * t - 0.284_496_74) * t
        + 0.254_829_6)
        * t;
    let y = 1.0 - poly * exp(-a * a);
    y.copysign(x)
}

#[inline(always)]
fn tanh(x: f32) -> f32 {
    let e = exp(-2.0 * x.abs());
    ((1.0 - e) / (1.0 + e)).copysign(x)
}

multiversion! {
    /// `rows[i] += bias` for every row.
    pub fn add_bias(rows: &mut [f32], bias: &[f32]) {
        for row in rows.chunks_exact_mut(bias.len()) {
            for (v, b) in row.iter_mut().zip(bias) {
                *v += b;
            }
        }
    }
}

multiversion! {
    fn gelu_erf_serial(xs: &mut [f32]) {
        for v in xs.iter_mut() {
            let x = *v;
            *v = 0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2));
        }
    }
}

multiversion! {
    fn gelu_tanh_serial(xs: &mut [f32]) {
        for v in xs.iter_mut() {
            let x = *v;
            *v = 0.5 * x * (1.0 + tanh(0.797_884_6 * (x + 0.044_715 * x * x * x)));
        }
    }
}

const PAR_CHUNK: usize = 1 << 14;

/// GELU with the exact (erf) form, as `torch.nn.functional.gelu`.
pub fn gelu_erf(xs: &mut [f32]) {
    xs.par_chunks_mut(PAR_CHUNK).for_each(gelu_erf_serial);
}

/// GELU with the tanh approximation (`gelu_new`, `gelu_pytorch_tanh`).
pub fn gelu_tanh(xs: &mut [f32]) {
    xs.par_chunks_mut(PAR_CHUNK).for_each(gelu_tanh_serial);
}

multiversion! {
    fn silu_serial(xs: &mut [f32]) {
        for v in xs.iter_mut() {
            *v /= 1.0 + exp(-*v);
        }
    }
}

/// SiLU (`x * sigmoid(x)`), the gate of the decoders' MLP.
pub fn silu(xs: &mut [f32]) {
    xs.par_chunks_mut(PAR_CHUNK).for_each(silu_serial);
}

pub fn relu(xs: &mut [f32]) {
    xs.iter_mut().for_each(|v| *v = v.max(0.0));
}

multiversion! {
    /// Tanh of every element.
    pub fn tanh_inplace(xs: &mut [f32]) {
        for v in xs.iter_mut() {
            *v = tanh(*v);
        }
    }
}

/// Lane-wise accumulators: a float reduction written as one running value is a serial
/// dependency chain the compiler may not reorder; 16 independent lanes vectorize.
const LANES: usize = 16;

#[inline(always)]
fn max_of(xs: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            acc[i] = if c[i] > acc[i] { c[i] } else { acc[i] };
        }
    }
    tail.iter()
        .chain(acc.iter())
        .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m })
}

#[inline(always)]
fn sum_of(xs: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            acc[i] += c[i];
        }
    }
    acc.iter().sum::<f32>() + tail.iter().sum::<f32>()
}

multiversion! {
    /// Softmax of each row of `width` values without the division: each row becomes
    /// `exp(x - max)` and its sum goes to `sums`. Attention divides its (rows, head dim)
    /// output instead of the (rows, sequence length) probabilities, which saves a pass.
    pub fn exp_rows(xs: &mut [f32], width: usize, sums: &mut [f32]) {
        for (row, sum) in xs.chunks_exact_mut(width).zip(sums.iter_mut()) {
            let max = max_of(row);
            let mut acc = [0f32; LANES];
            let mut chunks = row.chunks_exact_mut(LANES);
            for c in &mut chunks {
                for i in 0..LANES {
                    c[i] = exp(c[i] - max);
                    acc[i] += c[i];
                }
            }
            let mut tail = 0.0;
            for v in chunks.into_remainder() {
                *v = exp(*v - max);
                tail += *v;
            }
            *sum = acc.iter().sum::<f32>() + tail;
        }
    }
}

/// Softmax of each row of `width` values, in place.
pub fn softmax_rows(xs: &mut [f32], width: usize) {
    let mut sums = vec![0f32; xs.len() / width.max(1)];
    exp_rows(xs, width, &mut sums);
    for (row, sum) in xs.chunks_exact_mut(width).zip(&sums) {
        row.iter_mut().for_each(|v| *v /= sum);
    }
}

multiversion! {
    fn residual_layer_norm_serial(xs: &mut [f32], residual: &[f32], weight: &[f32], bias: &[f32], eps: f32) {
        let width = weight.len();
        for (i, row) in xs.chunks_exact_mut(width).enumerate() {
            if !residual.is_empty() {
                for (v, r) in row.iter_mut().zip(&residual[i * width..(i + 1) * width]) {
                    *v += r;
                }
            }
            let mean = sum_of(row) / width as f32;
            let mut sq = [0f32; LANES];
            let chunks = row.chunks_exact(LANES);
            let tail: f32 = chunks.remainder().iter().map(|v| (v - mean) * (v - mean)).sum();
            for c in chunks {
                for i in 0..LANES {
                    sq[i] += (c[i] - mean) * (c[i] - mean);
                }
            }
            let var = (sq.iter().sum::<f32>() + tail) / width as f32;
            let inv_std = 1.0 / (var + eps).sqrt();
            for ((v, w), b) in row.iter_mut().zip(weight).zip(bias) {
                *v = (*v - mean) * inv_std * w + b;
            }
        }
    }
}

/// `xs = LayerNorm(xs + residual)` row by row (rows of `weight.len()` values).
pub fn residual_layer_norm(
    xs: &mut [f32],
    residual: &[f32],
    weight: &[f32],
    bias: &[f32],
    eps: f32,
) {
    assert_eq!(xs.len(), residual.len(), "residual shape");
    let rows_per_chunk = (PAR_CHUNK / weight.len()).max(1) * weight.len();
    xs.par_chunks_mut(rows_per_chunk)
        .zip(residual.par_chunks(rows_per_chunk))
        .for_each(|(x, r)| residual_layer_norm_serial(x, r, weight, bias, eps));
}

/// `xs = LayerNorm(xs)` row by row.
pub fn layer_norm(xs: &mut [f32], weight: &[f32], bias: &[f32], eps: f32) {
    let rows_per_chunk = (PAR_CHUNK / weight.len()).max(1) * weight.len();
    xs.par_chunks_mut(rows_per_chunk)
        .for_each(|x| residual_layer_norm_serial(x, &[], weight, bias, eps));
}

multiversion! {
    fn rms_norm_serial(xs: &mut [f32], weight: &[f32], eps: f32) {
        let width = weight.len();
        for row in xs.chunks_exact_mut(width) {
            let mut acc = [0f32; LANES];
            let chunks = row.chunks_exact(LANES);
            let tail: f32 = chunks.remainder().iter().map(|v| v * v).sum();
            for c in chunks {
                for i in 0..LANES {
                    acc[i] += c[i] * c[i];
                }
            }
            let mean_square = (acc.iter().sum::<f32>() + tail) / width as f32;
            let inv_rms = 1.0 / (mean_square + eps).sqrt();
            for (v, w) in row.iter_mut().zip(weight) {
                *v = *v * inv_rms * w;
            }
        }
    }
}

/// `xs = RMSNorm(xs)` row by row (rows of `weight.len()` values), as the decoders'
/// `x * rsqrt(mean(x^2) + eps) * weight`.
pub fn rms_norm(xs: &mut [f32], weight: &[f32], eps: f32) {
    let rows_per_chunk = (PAR_CHUNK / weight.len()).max(1) * weight.len();
    xs.par_chunks_mut(rows_per_chunk)
        .for_each(|x| rms_norm_serial(x, weight, eps));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_and_erf_are_accurate() {
        for i in -2000..=2000 {
            let x = i as f32 * 0.01;
            let e = (x as f64).exp();
            assert!(((exp(x) as f64 - e) / e).abs() < 3e-7, "exp({x})");
            let want = libm_erf(x as f64);
            assert!(
                (erf(x) as f64 - want).abs() < 3e-7,
                "erf({x}) = {} vs {want}",
                erf(x)
            );
            assert!(
                (tanh(x) as f64 - (x as f64).tanh()).abs() < 3e-7,
                "tanh({x})"
            );
        }
        assert_eq!(exp(-1e30), exp(-87.0));
    }

    // erf via its Taylor/continued expansions is overkill here; a high-precision
    // reference from f64 integration of exp(-t^2) is enough to check 1e-7.
    fn libm_erf(x: f64) -> f64 {
        let n = 20000;
        let h = x / n as f64;
        let f = |t: f64| (-t * t).exp();
        let mut s = f(0.0) + f(x);
        for i in 1..n {
            s += f(i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 };
        }
        s * h / 3.0 * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn softmax_and_layer_norm() {
        let mut xs = vec![1.0, 2.0, 3.0, 0.0, 0.0, 0.0];
        softmax_rows(&mut xs, 3);
        let e: Vec<f64> = [1.0f64, 2.0, 3.0].iter().map(|v| v.exp()).collect();
        let s: f64 = e.iter().sum();
        for i in 0..3 {
            assert!((xs[i] as f64 - e[i] / s).abs() < 1e-6);
            assert!((xs[3 + i] - 1.0 / 3.0).abs() < 1e-6);
        }
        let mut rows = vec![1.0, 2.0, 3.0, 4.0];
        residual_layer_norm(
            &mut rows,
            &[1.0, 1.0, 1.0, 1.0],
            &[1.0, 2.0],
            &[0.0, 1.0],
            0.0,
        );
        assert_eq!(rows, vec![-1.0, 3.0, -1.0, 3.0]);
    }
}
