//! Dynamic int8 quantization of linear layers (`precision="int8"`).
//!
//! Weights are quantized once at load, symmetrically per output channel
//! (`w ≈ w_scale[j] * q[j, k]`, q in -127..=127). Activations are quantized per row at
//! every call, asymmetrically (`x ≈ x_scale[i] * (q[i, k] - zero[i])`, q in 0..=255): one
//! scale per token keeps a token with large values from flattening the others, and the
//! asymmetric range does not waste half the codes on GELU outputs, which are almost all
//! positive. The product accumulates exactly in i32 and is dequantized in the epilogue:
//!
//! `y[i, j] = x_scale[i] * w_scale[j] * (acc[i, j] - zero[i] * sum_k q_w[j, k]) + bias[j]`
//!
//! The kernel uses AVX-512 VNNI (`vpdpbusd`: 64 u8 x i8 products per instruction, four
//! times the multiply-adds of an f32 FMA); no maintained Rust crate offers an int8 GEMM,
//! hence this file. CPUs without VNNI run a portable kernel with the same arithmetic.

use rayon::prelude::*;

/// Output columns per packed panel: four 16-lane vectors.
const NR: usize = 64;
/// Rows per micro-kernel call: 6 x 4 accumulators + 4 weight vectors + 1 broadcast fit in
/// the 32 vector registers.
const MR: usize = 6;

/// An (out, in) weight matrix in int8, packed for the kernel: for each panel of `NR`
/// output columns and each group of 4 input positions, `NR` x 4 consecutive bytes
/// (column-major over the group), which is the operand layout of `vpdpbusd`.
pub struct QuantizedMatrix {
    packed: Vec<i8>,
    /// Per output column, padded to a whole panel (zeros).
    scale: Vec<f32>,
    /// `sum_k q[j, k]`, for the zero-point correction.
    col_sum: Vec<f32>,
    /// `q` as (in, out) row-major: the weight column an outlier input meets.
    transposed: Vec<i8>,
    in_dim: usize,
    out_dim: usize,
    groups: usize,
}

impl QuantizedMatrix {
    /// `weight` in PyTorch's (out, in) row-major layout.
    pub fn quantize(weight: &[f32], out_dim: usize, in_dim: usize) -> Self {
        assert_eq!(weight.len(), out_dim * in_dim, "weight shape");
        let groups = in_dim.div_ceil(4);
        let panels = out_dim.div_ceil(NR);
        let mut packed = vec![0i8; panels * groups * NR * 4];
        let mut scale = vec![0f32; panels * NR];
        let mut col_sum = vec![0f32; panels * NR];
        let mut transposed = vec![0i8; in_dim * out_dim];
        for (j, row) in weight.chunks_exact(in_dim.max(1)).take(out_dim).enumerate() {
            // NaN weights give a NaN scale, so the NaN reaches the output as in f32.
            let max = row.iter().fold(0f32, |m, v| {
                if v.abs() > m || v.is_nan() {
                    v.abs()
                } else {
                    m
                }
            });
            let s = if max == 0.0 { 1.0 } else { max / 127.0 };
            scale[j] = s;
            let (panel, lane) = (j / NR, j % NR);
            let mut sum = 0i32;
            for (k, &v) in row.iter().enumerate() {
                let q = (v / s).round_ties_even().clamp(-127.0, 127.0) as i8;
                sum += q as i32;
                packed[((panel * groups + k / 4) * NR + lane) * 4 + k % 4] = q;
                transposed[k * out_dim + j] = q;
            }
            col_sum[j] = sum as f32;
        }
        Self {
            packed,
            scale,
            col_sum,
            transposed,
            in_dim,
            out_dim,
            groups,
        }
    }

    pub fn in_dim(&self) -> usize {
        self.in_dim
    }

    pub fn out_dim(&self) -> usize {
        self.out_dim
    }

    fn panel(&self, p: usize) -> &[i8] {
        let size = self.groups * NR * 4;
        &self.packed[p * size..(p + 1) * size]
    }
}

/// Activations quantized per row; kept in the forward pass's workspace and reused.
///
/// BERT-family models carry a few outlier channels (values 5-10x the rest of the row,
/// always in the same hidden dimensions) into their LayerNorm and GELU outputs. A
/// row's quantization step is set by its range, so one such value would coarsen every
/// other value of the row. Values beyond `CLIP` standard deviations from the row mean
/// are therefore clipped for the int8 product, and what clipping removed is added back
/// in f32 afterwards (`x - dequantized x`, times that weight column), as LLM.int8()
/// does with outlier columns, but decided per row so a row's result never depends on
/// the other rows of the batch.
#[derive(Default)]
pub struct QuantizedRows {
    data: Vec<u8>,
    scale: Vec<f32>,
    zero: Vec<f32>,
    rows: usize,
    stride: usize,
    /// Per block of `BLOCK` rows: (row within the block, column, x - dequantized x).
    outliers: Vec<Vec<(u32, u32, f32)>>,
}

/// Clip threshold, in standard deviations of the row.
const CLIP: f32 = 6.0;
/// At most one value in this many may be clipped; a row with more keeps its full range.
const MAX_OUTLIER_SHARE: usize = 32;
/// Rows per parallel task when quantizing and correcting.
const BLOCK: usize = 64;

impl QuantizedRows {
    /// Quantizes `rows` rows of `cols` values from `x`.
    pub fn quantize(&mut self, x: &[f32], rows: usize, cols: usize) {
        assert!(x.len() >= rows * cols, "activation shape");
        let stride = cols.div_ceil(4) * 4;
        self.rows = rows;
        self.stride = stride;
        // Padding bytes meet zero weights; their value does not matter.
        self.data.resize(rows * stride, 0);
        self.scale.resize(rows, 0.0);
        self.zero.resize(rows, 0.0);
        self.outliers.resize_with(rows.div_ceil(BLOCK), Vec::new);
        self.outliers.iter_mut().for_each(Vec::clear);
        if cols == 0 {
            return;
        }
        self.data
            .par_chunks_mut(stride * BLOCK)
            .zip(self.scale.par_chunks_mut(BLOCK))
            .zip(self.zero.par_chunks_mut(BLOCK))
            .zip(self.outliers.par_iter_mut())
            .zip(x[..rows * cols].par_chunks(cols * BLOCK))
            .for_each(|((((q, s), z), outliers), x)| {
                let mut block = Block {
                    x,
                    cols,
                    q,
                    stride,
                    scale: s,
                    zero: z,
                    outliers,
                };
                quantize_block(&mut block)
            });
    }
}

/// `BLOCK` rows (or fewer) of `QuantizedRows` and their input.
struct Block<'a> {
    x: &'a [f32],
    cols: usize,
    q: &'a mut [u8],
    stride: usize,
    scale: &'a mut [f32],
    zero: &'a mut [f32],
    outliers: &'a mut Vec<(u32, u32, f32)>,
}

/// Lane-wise accumulators, as in `kernels`, so the reductions vectorize.
const LANES: usize = 16;

fn quantize_block(b: &mut Block<'_>) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
    {
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
        unsafe fn avx512(b: &mut Block<'_>) {
            quantize_block_generic(b)
        }
        // SAFETY: the CPU has the features the copy was compiled for.
        return unsafe { avx512(b) };
    }
    quantize_block_generic(b)
}

#[inline(always)]
fn quantize_block_generic(b: &mut Block<'_>) {
    let cols = b.cols;
    for (r, (row, q)) in
        b.x.chunks_exact(cols)
            .zip(b.q.chunks_exact_mut(b.stride))
            .enumerate()
    {
        let (mut lo, mut hi, mut sum, mut sq) = (
            [f32::INFINITY; LANES],
            [f32::NEG_INFINITY; LANES],
            [0f32; LANES],
            [0f32; LANES],
        );
        let chunks = row.chunks_exact(LANES);
        let tail = chunks.remainder();
        for c in chunks {
            for i in 0..LANES {
                lo[i] = if c[i] < lo[i] { c[i] } else { lo[i] };
                hi[i] = if c[i] > hi[i] { c[i] } else { hi[i] };
                sum[i] += c[i];
                sq[i] += c[i] * c[i];
            }
        }
        let fold = |init: f32, f: fn(f32, f32) -> f32, lanes: &[f32]| {
            tail.iter().chain(lanes).fold(init, |a, &v| f(a, v))
        };
        let (mut lo, mut hi) = (
            fold(f32::INFINITY, f32::min, &lo),
            fold(f32::NEG_INFINITY, f32::max, &hi),
        );
        let sum = fold(0.0, |a, v| a + v, &sum);
        let sq = sq.iter().sum::<f32>() + tail.iter().map(|v| v * v).sum::<f32>();
        // min/max skip NaN and inf passes them; the sum does not, and turns the row's
        // scale into NaN so the NaN reaches the output as it would in f32.
        if !sum.is_finite() {
            q.fill(0);
            b.scale[r] = f32::NAN;
            b.zero[r] = 0.0;
            continue;
        }
        let first = b.outliers.len();
        let cap = cols.div_ceil(MAX_OUTLIER_SHARE);
        let mut clip = None;
        // Outliers inflate the standard deviation they are measured against, so the
        // threshold is set twice: from the whole row, then from the values it kept.
        let (mut kept, mut kept_sum, mut kept_sq) = (cols as f32, sum, sq);
        for _ in 0..2 {
            let mean = kept_sum / kept;
            let spread = CLIP * (kept_sq / kept - mean * mean).max(0.0).sqrt();
            let (clip_lo, clip_hi) = (lo.max(mean - spread), hi.min(mean + spread));
            if clip_lo <= lo && clip_hi >= hi {
                break;
            }
            b.outliers.truncate(first);
            // The raw value for now; the residual once the scale is known. Chunks are
            // tested whole first (vectorized): outliers are rare.
            for (c, chunk) in row.chunks(LANES).enumerate() {
                let any = chunk
                    .iter()
                    .fold(false, |any, &v| any | (v < clip_lo) | (v > clip_hi));
                if any {
                    for (i, &v) in chunk.iter().enumerate() {
                        if v < clip_lo || v > clip_hi {
                            b.outliers.push((r as u32, (c * LANES + i) as u32, v));
                        }
                    }
                }
            }
            let found = &b.outliers[first..];
            if found.len() > cap {
                b.outliers.truncate(first);
                clip = None;
                break;
            }
            clip = Some((clip_lo, clip_hi));
            kept = (cols - found.len()) as f32;
            kept_sum = sum - found.iter().map(|o| o.2).sum::<f32>();
            kept_sq = sq - found.iter().map(|o| o.2 * o.2).sum::<f32>();
        }
        if let Some((clip_lo, clip_hi)) = clip {
            // The range of the values kept: the clip bounds may lie well beyond it.
            let (mut min, mut max) = ([f32::INFINITY; LANES], [f32::NEG_INFINITY; LANES]);
            let chunks = row.chunks_exact(LANES);
            let tail = chunks.remainder();
            for c in chunks {
                for i in 0..LANES {
                    let inside = c[i] >= clip_lo && c[i] <= clip_hi;
                    min[i] = if inside && c[i] < min[i] {
                        c[i]
                    } else {
                        min[i]
                    };
                    max[i] = if inside && c[i] > max[i] {
                        c[i]
                    } else {
                        max[i]
                    };
                }
            }
            let inside = tail.iter().filter(|&&v| v >= clip_lo && v <= clip_hi);
            lo = inside
                .clone()
                .chain(&min)
                .fold(f32::INFINITY, |a, &v| a.min(v));
            hi = inside.chain(&max).fold(f32::NEG_INFINITY, |a, &v| a.max(v));
        }
        let s = if hi > lo { (hi - lo) / 255.0 } else { 1.0 };
        // A real-valued zero point maps [lo, hi] onto exactly [0, 255].
        let z = -lo / s;
        let inv = 1.0 / s;
        for (d, &v) in q.iter_mut().zip(row) {
            let y = (v * inv + z).round_ties_even().clamp(0.0, 255.0);
            // SAFETY: y is finite (the row has no NaN or inf) and within 0..=255.
            *d = unsafe { y.to_int_unchecked::<i32>() } as u8;
        }
        if clip.is_some() {
            for (_, k, v) in &mut b.outliers[first..] {
                *v -= s * (q[*k as usize] as f32 - z);
            }
        }
        b.scale[r] = s;
        b.zero[r] = z;
    }
}

/// `out = dequantize(a @ w^T) + bias`, (a.rows, w.out_dim) row-major.
pub fn matmul(
    out: &mut [f32],
    a: &QuantizedRows,
    w: &QuantizedMatrix,
    bias: &[f32],
    threads: usize,
) {
    let (m, n) = (a.rows, w.out_dim);
    assert_eq!(a.stride, w.groups * 4, "inner dimensions differ");
    assert!(out.len() >= m * n && bias.len() == n, "output / bias shape");
    if m == 0 || n == 0 {
        return;
    }
    let vnni = has_vnni();
    // Row chunks small enough to share out, large enough to reuse each weight panel
    // (24-96 KB, resident in L1/L2) over many micro-kernel calls.
    let chunk_rows = (m.div_ceil(threads.max(1) * 4)).div_ceil(MR).clamp(1, 16) * MR;
    let run = |(c, out): (usize, &mut [f32])| {
        let row0 = c * chunk_rows;
        let rows = out.len() / n;
        for p in 0..n.div_ceil(NR) {
            let panel = w.panel(p);
            let cols = (n - p * NR).min(NR);
            let mut r = 0;
            while r < rows {
                let block = (rows - r).min(MR);
                let tile = Tile {
                    a: &a.data[(row0 + r) * a.stride..],
                    stride: a.stride,
                    a_scale: &a.scale[row0 + r..row0 + r + block],
                    a_zero: &a.zero[row0 + r..row0 + r + block],
                    panel,
                    groups: w.groups,
                    w_scale: &w.scale[p * NR..(p + 1) * NR],
                    col_sum: &w.col_sum[p * NR..(p + 1) * NR],
                    bias: &bias[p * NR..p * NR + cols],
                    out: &mut out[r * n + p * NR..],
                    out_stride: n,
                    cols,
                };
                if vnni {
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: `has_vnni` checked the CPU; `Tile` bounds were sliced above.
                    unsafe {
                        vnni::tile(tile, block)
                    };
                } else {
                    portable_tile(tile, block);
                }
                r += block;
            }
        }
    };
    if threads > 1 {
        out[..m * n]
            .par_chunks_mut(chunk_rows * n)
            .enumerate()
            .for_each(run);
    } else {
        out[..m * n]
            .chunks_mut(chunk_rows * n)
            .enumerate()
            .for_each(run);
    }
    // Add back, in f32, what clipping took out of the outlier inputs.
    out[..m * n]
        .par_chunks_mut(BLOCK * n)
        .zip(a.outliers.par_iter())
        .for_each(|(out, outliers)| {
            // Recorded row by row, so each row's outliers are adjacent.
            for row_outliers in outliers.chunk_by(|a, b| a.0 == b.0) {
                let r = row_outliers[0].0 as usize;
                add_outliers(
                    &mut out[r * n..(r + 1) * n],
                    row_outliers,
                    &w.transposed,
                    &w.scale[..n],
                );
            }
        });
}

/// `row[j] += scale[j] * sum over outliers (k, residual) of residual * q[j, k]`, with
/// `transposed` = q as (in, out): one pass over the row for all of its outliers.
fn add_outliers(row: &mut [f32], outliers: &[(u32, u32, f32)], transposed: &[i8], scale: &[f32]) {
    #[inline(always)]
    fn generic(row: &mut [f32], outliers: &[(u32, u32, f32)], transposed: &[i8], scale: &[f32]) {
        let n = row.len();
        let full = n / LANES * LANES;
        for j0 in (0..full).step_by(LANES) {
            let mut acc = [0f32; LANES];
            for &(_, k, residual) in outliers {
                let column = &transposed[k as usize * n + j0..][..LANES];
                for l in 0..LANES {
                    acc[l] += residual * column[l] as f32;
                }
            }
            for l in 0..LANES {
                row[j0 + l] += acc[l] * scale[j0 + l];
            }
        }
        for j in full..n {
            let sum: f32 = outliers
                .iter()
                .map(|&(_, k, residual)| residual * transposed[k as usize * n + j] as f32)
                .sum();
            row[j] += sum * scale[j];
        }
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
        unsafe fn avx512(
            row: &mut [f32],
            outliers: &[(u32, u32, f32)],
            transposed: &[i8],
            scale: &[f32],
        ) {
            generic(row, outliers, transposed, scale)
        }
        // SAFETY: the CPU has the features the copy was compiled for.
        return unsafe { avx512(row, outliers, transposed, scale) };
    }
    generic(row, outliers, transposed, scale)
}

/// One micro-kernel call: up to `MR` rows by one panel of up to `NR` columns.
struct Tile<'a> {
    a: &'a [u8],
    stride: usize,
    a_scale: &'a [f32],
    a_zero: &'a [f32],
    panel: &'a [i8],
    groups: usize,
    w_scale: &'a [f32],
    col_sum: &'a [f32],
    bias: &'a [f32],
    out: &'a mut [f32],
    out_stride: usize,
    cols: usize,
}

pub fn has_vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The same arithmetic as the VNNI kernel, one value at a time.
fn portable_tile(t: Tile<'_>, rows: usize) {
    for r in 0..rows {
        let a = &t.a[r * t.stride..][..t.groups * 4];
        for j in 0..t.cols {
            let mut acc = 0i32;
            for (g, a4) in a.chunks_exact(4).enumerate() {
                let w4 = &t.panel[(g * NR + j) * 4..][..4];
                for (&x, &w) in a4.iter().zip(w4) {
                    acc += x as i32 * w as i32;
                }
            }
            let centered = (-t.a_zero[r]).mul_add(t.col_sum[j], acc as f32);
            t.out[r * t.out_stride + j] = centered.mul_add(t.a_scale[r] * t.w_scale[j], t.bias[j]);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod vnni {
    use super::{Tile, MR, NR};
    use std::arch::x86_64::*;

    /// Dispatches on the row count so each kernel's accumulators stay in registers.
    ///
    /// # Safety
    /// The CPU must have AVX-512 F/BW/VNNI; `t`'s slices must cover `rows` rows.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn tile(t: Tile<'_>, rows: usize) {
        match rows {
            1 => kernel::<1>(t),
            2 => kernel::<2>(t),
            3 => kernel::<3>(t),
            4 => kernel::<4>(t),
            5 => kernel::<5>(t),
            _ => kernel::<MR>(t),
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn kernel<const R: usize>(t: Tile<'_>) {
        assert!(t.a.len() >= (R - 1) * t.stride + t.groups * 4);
        assert!(t.panel.len() >= t.groups * NR * 4);
        assert!(t.out.len() >= (R - 1) * t.out_stride + t.cols);
        let mut acc = [[_mm512_setzero_si512(); 4]; R];
        let a = t.a.as_ptr();
        let b = t.panel.as_ptr();
        for g in 0..t.groups {
            // SAFETY (all loads): in bounds by the asserts above.
            let bg = b.add(g * NR * 4);
            let w = [
                _mm512_loadu_si512(bg as *const _),
                _mm512_loadu_si512(bg.add(64) as *const _),
                _mm512_loadu_si512(bg.add(128) as *const _),
                _mm512_loadu_si512(bg.add(192) as *const _),
            ];
            for (r, acc) in acc.iter_mut().enumerate() {
                let x =
                    _mm512_set1_epi32((a.add(r * t.stride + g * 4) as *const i32).read_unaligned());
                for c in 0..4 {
                    acc[c] = _mm512_dpbusd_epi32(acc[c], x, w[c]);
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            let zero = _mm512_set1_ps(t.a_zero[r]);
            let a_scale = _mm512_set1_ps(t.a_scale[r]);
            let out = t.out.as_mut_ptr().add(r * t.out_stride);
            for (c, &acc) in acc.iter().enumerate() {
                let start = c * 16;
                if start >= t.cols {
                    break;
                }
                let col_sum = _mm512_loadu_ps(t.col_sum.as_ptr().add(start));
                let scale = _mm512_mul_ps(a_scale, _mm512_loadu_ps(t.w_scale.as_ptr().add(start)));
                let centered = _mm512_fnmadd_ps(zero, col_sum, _mm512_cvtepi32_ps(acc));
                let mask: __mmask16 = if t.cols - start >= 16 {
                    0xffff
                } else {
                    (1u16 << (t.cols - start)) - 1
                };
                let bias = _mm512_maskz_loadu_ps(mask, t.bias.as_ptr().add(start));
                _mm512_mask_storeu_ps(out.add(start), mask, _mm512_fmadd_ps(centered, scale, bias));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    fn reference(x: &[f32], w: &[f32], bias: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut out = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let dot: f64 = (0..k)
                    .map(|t| x[i * k + t] as f64 * w[j * k + t] as f64)
                    .sum();
                out[i * n + j] = dot as f32 + bias[j];
            }
        }
        out
    }

    fn run(
        m: usize,
        k: usize,
        n: usize,
        threads: usize,
        force_portable: bool,
    ) -> (Vec<f32>, Vec<f32>) {
        let mut seed = (m * 1000 + k * 10 + n) as u64;
        let x: Vec<f32> = (0..m * k).map(|_| lcg(&mut seed) * 3.0 + 0.5).collect();
        let w: Vec<f32> = (0..n * k).map(|_| lcg(&mut seed) * 0.1).collect();
        let bias: Vec<f32> = (0..n).map(|_| lcg(&mut seed)).collect();
        let qw = QuantizedMatrix::quantize(&w, n, k);
        let mut qx = QuantizedRows::default();
        qx.quantize(&x, m, k);
        let mut out = vec![f32::NAN; m * n];
        if force_portable {
            for r in 0..m {
                for p in 0..n.div_ceil(NR) {
                    let cols = (n - p * NR).min(NR);
                    portable_tile(
                        Tile {
                            a: &qx.data[r * qx.stride..],
                            stride: qx.stride,
                            a_scale: &qx.scale[r..r + 1],
                            a_zero: &qx.zero[r..r + 1],
                            panel: qw.panel(p),
                            groups: qw.groups,
                            w_scale: &qw.scale[p * NR..],
                            col_sum: &qw.col_sum[p * NR..],
                            bias: &bias[p * NR..p * NR + cols],
                            out: &mut out[r * n + p * NR..],
                            out_stride: n,
                            cols,
                        },
                        1,
                    );
                }
            }
        } else {
            matmul(&mut out, &qx, &qw, &bias, threads);
        }
        (out, reference(&x, &w, &bias, m, k, n))
    }

    #[test]
    fn close_to_f32_for_odd_shapes() {
        for &(m, k, n) in &[
            (1, 1, 1),
            (7, 5, 70),
            (13, 384, 64),
            (6, 36, 129),
            (100, 96, 200),
        ] {
            for threads in [1, 2] {
                let (got, want) = run(m, k, n, threads, false);
                assert!(
                    got.iter().all(|v| v.is_finite()),
                    "{m}x{k}x{n}: unwritten output"
                );
                // Error of rounding both operands: about sqrt(k) * (x step * |w| + w step * |x|).
                let tol = 0.02 * (k as f32).sqrt() + 1e-4;
                let worst = got
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                assert!(worst <= tol, "{m}x{k}x{n}: max error {worst} > {tol}");
            }
        }
    }

    #[test]
    fn vnni_kernel_equals_portable_kernel() {
        if !has_vnni() {
            eprintln!("no AVX-512 VNNI on this CPU: the portable kernel is the only one in use");
        }
        for &(m, k, n) in &[(7, 5, 70), (13, 384, 129)] {
            let (fast, _) = run(m, k, n, 2, false);
            let (portable, _) = run(m, k, n, 1, true);
            for (a, b) in fast.iter().zip(&portable) {
                assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn an_outlier_does_not_coarsen_its_row() {
        let (k, n) = (384, 64);
        let mut seed = 7u64;
        let w: Vec<f32> = (0..n * k).map(|_| lcg(&mut seed) * 0.1).collect();
        let plain: Vec<f32> = (0..k).map(|_| lcg(&mut seed)).collect();
        let mut spiked = plain.clone();
        spiked[99] = 60.0;
        let qw = QuantizedMatrix::quantize(&w, n, k);
        let error = |x: &[f32]| {
            let mut qx = QuantizedRows::default();
            qx.quantize(x, 1, k);
            let mut out = vec![0f32; n];
            matmul(&mut out, &qx, &qw, &vec![0.0; n], 1);
            let want = reference(x, &w, &vec![0.0; n], 1, k, n);
            out.iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max)
        };
        let (base, spike) = (error(&plain), error(&spiked));
        // Without the f32 correction the step would grow 30x, and the error with it.
        assert!(spike < 3.0 * base, "outlier row error {spike} vs {base}");
    }

    #[test]
    fn constant_rows_and_nan() {
        let w = vec![0.5f32; 8 * 4];
        let qw = QuantizedMatrix::quantize(&w, 4, 8);
        let mut qx = QuantizedRows::default();
        let x = [vec![2.0f32; 8], vec![f32::NAN; 1], vec![1.0f32; 7]].concat();
        qx.quantize(&x, 2, 8);
        let mut out = vec![0f32; 8];
        matmul(&mut out, &qx, &qw, &[0.0; 4], 1);
        assert!(out[..4].iter().all(|v| (v - 8.0).abs() < 1e-4), "{out:?}");
        assert!(out[4..].iter().all(|v| v.is_nan()), "{out:?}");
    }
}
