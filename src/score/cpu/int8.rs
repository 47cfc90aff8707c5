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
//! No maintained Rust crate offers an int8 GEMM, hence this file. `isa::Int8Kernel`
//! picks one of five kernels, which all compute the same i32 sums (exactly: no
//! intermediate saturates), so scores are bit for bit the same on every x86 level and
//! on aarch64 with or without dotprod:
//!
//! - AVX-512 VNNI: `vpdpbusd`, 64 u8 x i8 products into 16 i32 per instruction.
//! - AVX-VNNI: the same instruction on 256-bit vectors (Alder Lake and later, Zen 5).
//! - AVX2: `vpmaddwd` on operands widened to i16: weights are packed as i16 at load,
//!   activations widened once per row chunk. 16 exact products per instruction, plus a
//!   `vpaddd` to accumulate. The usual AVX2 int8 idiom, `vpmaddubsw` (u8 x i8, 32
//!   products) then `vpmaddwd` by ones, saturates its i16 pair sums: 2 * 255 * 127
//!   exceeds 32767, so it is exact only if weights drop to -63..=63 or activations to
//!   0..=127, a coarser quantization on this path alone. Splitting one operand into two
//!   halves to stay exact costs two `vpmaddubsw`, two `vpmaddwd` and two adds per 32
//!   products, i.e. 6 instructions where the i16 route takes 4, so the i16 route is
//!   both exact and no slower by instruction count. Its broadcast operand is a plain
//!   32-bit load (two i16 activations), as in the VNNI kernels; widening in registers
//!   would put a shuffle on every row of every step.
//! - NEON dotprod (aarch64): `sdot`, 16 i8 x i8 products into 4 i32 per instruction.
//!   `sdot` is signed on both sides, so the activation codes are shifted to i8
//!   (`q - 128`, a flip of the top bit, once per row chunk) and the accumulators start
//!   at `128 * sum_k q_w[j, k]`, which puts the shift back exactly (in wrapping i32,
//!   like every kernel's sums). `udot` (u8 x u8) would need the weights shifted
//!   instead, and `usdot` (u8 x i8) needs i8mm, which many dotprod CPUs lack. The
//!   intrinsic `vdotq_s32` is unstable in Rust, hence a one-instruction `asm!`.
//! - Portable: scalar loops over the unpacked (in, out) weights, for CPUs without AVX2
//!   (or aarch64 without dotprod) and for testing. Many times slower than the f32
//!   path, so `precision="int8"` runs f32 instead on such CPUs (`enabled`) unless
//!   `CROSSRANK_ISA=scalar` forced it.

use std::sync::Once;

use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
use super::isa::F32Kernel;
use super::isa::{self, Int8Kernel};

/// Output columns per packed panel of the AVX-512 kernel: four 16-lane vectors.
const NR: usize = 64;
/// Output columns per packed panel of the 256-bit kernels (two 8-lane vectors) and
/// of the NEON kernel (four 4-lane vectors).
const NR_YMM: usize = 16;
/// Rows per micro-kernel call. AVX-512: 6 x 4 accumulators + 4 weight vectors + 1
/// broadcast fit in the 32 vector registers; 256-bit: 6 x 2 accumulators + 2 weight
/// vectors + 1 broadcast + 1 product fit in 16; NEON: 6 x 4 accumulators + 4 weight
/// vectors + 1 broadcast fit in 32.
const MR: usize = 6;

/// How a kernel wants the weights: panels of `nr` output columns; in a panel, per step
/// of `k_step` input positions, `nr` x `k_step` consecutive values (column-major over
/// the step), each an i8, or when `wide` a little-endian i16 (two bytes). A step is 4
/// bytes of every column, which is the operand layout of `vpdpbusd` and `sdot`
/// (4 x i8) and of `vpmaddwd` (2 x i16); the broadcast activation operand is 4 bytes
/// of a row likewise.
#[derive(Clone, Copy)]
struct Layout {
    nr: usize,
    k_step: usize,
    wide: bool,
}

fn layout(kernel: Int8Kernel) -> Layout {
    let (nr, k_step, wide) = match kernel {
        Int8Kernel::Avx512Vnni => (NR, 4, false),
        Int8Kernel::AvxVnni => (NR_YMM, 4, false),
        Int8Kernel::Avx2 => (NR_YMM, 2, true),
        Int8Kernel::NeonDot => (NR_YMM, 4, false),
        // Panels only split the work; nothing is packed.
        Int8Kernel::Portable => (NR, 4, false),
    };
    Layout { nr, k_step, wide }
}

/// An (out, in) weight matrix in int8, packed for the kernel chosen at quantization
/// (see `Layout`).
pub struct QuantizedMatrix {
    /// Empty for the portable kernel, which reads `transposed`.
    packed: Vec<i8>,
    /// Per output column, padded to a whole panel (zeros).
    scale: Vec<f32>,
    /// `sum_k q[j, k]`, for the zero-point correction.
    col_sum: Vec<f32>,
    /// `128 * sum_k q[j, k]` (wrapping), padded as `scale`: where the NEON kernel's
    /// accumulators start, to undo its shift of the activations. Empty for the others.
    shift_sum: Vec<i32>,
    /// `q` as (in, out) row-major: the weight column an outlier input meets.
    transposed: Vec<i8>,
    in_dim: usize,
    out_dim: usize,
    /// Input positions / 4, rounded up: the padded depth is `groups * 4`.
    groups: usize,
    kernel: Int8Kernel,
}

impl QuantizedMatrix {
    /// `weight` in PyTorch's (out, in) row-major layout, for `Int8Kernel::detect()`.
    pub fn quantize(weight: &[f32], out_dim: usize, in_dim: usize) -> Self {
        Self::quantize_for(weight, out_dim, in_dim, Int8Kernel::detect())
    }

    /// As `quantize`, packed for `kernel`, which `matmul` will run.
    ///
    /// # Panics
    /// If the CPU cannot run `kernel`: calling it would be undefined behaviour.
    fn quantize_for(weight: &[f32], out_dim: usize, in_dim: usize, kernel: Int8Kernel) -> Self {
        assert_eq!(weight.len(), out_dim * in_dim, "weight shape");
        assert!(
            kernel.supported(),
            "{kernel:?} int8 kernel on a CPU without it"
        );
        let groups = in_dim.div_ceil(4);
        // Padded to a whole panel of the widest layout, which covers every layout.
        let panels = out_dim.div_ceil(NR);
        let mut scale = vec![0f32; panels * NR];
        let mut col_sum = vec![0f32; panels * NR];
        let mut int_sum = vec![0i32; panels * NR];
        let mut transposed = vec![0i8; in_dim * out_dim];
        for (j, row) in weight.chunks_exact(in_dim.max(1)).take(out_dim).enumerate() {
            let s = row_scale(row);
            scale[j] = s;
            let mut sum = 0i32;
            for (k, &v) in row.iter().enumerate() {
                let q = code(v, s);
                sum += q as i32;
                transposed[k * out_dim + j] = q;
            }
            col_sum[j] = sum as f32;
            int_sum[j] = sum;
        }
        let packed = match kernel {
            Int8Kernel::Portable => Vec::new(),
            _ => pack(&transposed, in_dim, out_dim, groups, layout(kernel)),
        };
        let shift_sum = if kernel == Int8Kernel::NeonDot {
            int_sum.iter().map(|&c| c.wrapping_mul(128)).collect()
        } else {
            Vec::new()
        };
        Self {
            packed,
            scale,
            col_sum,
            shift_sum,
            transposed,
            in_dim,
            out_dim,
            groups,
            kernel,
        }
    }

    /// Two int8 terms per weight, `w ≈ s1[j] * q1[j, k] + s2[j] * q2[j, k]`, with `q2` the
    /// rounding residual of `q1` quantized in turn: about 14 bits of weight precision,
    /// at twice the int8 work. Stacked as one (2 * out, in) matrix, `q1`'s rows first,
    /// so one `matmul` computes both; `sum_terms` adds the halves.
    pub fn quantize_two_term(weight: &[f32], out_dim: usize, in_dim: usize) -> Self {
        assert_eq!(weight.len(), out_dim * in_dim, "weight shape");
        let mut stacked = weight.to_vec();
        for row in weight.chunks_exact(in_dim.max(1)).take(out_dim) {
            let s = row_scale(row);
            stacked.extend(row.iter().map(|&v| v - s * code(v, s) as f32));
        }
        Self::quantize(&stacked, 2 * out_dim, in_dim)
    }

    /// The kernel the matrix is packed for.
    #[cfg(test)]
    fn kernel(&self) -> Int8Kernel {
        self.kernel
    }

    /// Panel `p` of the packed weights (empty for the portable kernel).
    fn panel(&self, p: usize) -> &[i8] {
        let lay = layout(self.kernel);
        let size = self.groups * 4 * lay.nr * if lay.wide { 2 } else { 1 };
        self.packed.get(p * size..(p + 1) * size).unwrap_or(&[])
    }
}

/// The per-output-channel scale of a weight row: its largest magnitude maps to 127.
/// NaN weights give a NaN scale, so the NaN reaches the output as in f32.
fn row_scale(row: &[f32]) -> f32 {
    let max = row.iter().fold(0f32, |m, v| {
        if v.abs() > m || v.is_nan() {
            v.abs()
        } else {
            m
        }
    });
    if max == 0.0 {
        1.0
    } else {
        max / 127.0
    }
}

/// The int8 code of weight `v` at scale `s`.
fn code(v: f32, s: f32) -> i8 {
    (v / s).round_ties_even().clamp(-127.0, 127.0) as i8
}

/// `out[i, j] = wide[i, j] + wide[i, n + j] + bias[j]` for `rows` rows: the two terms of a
/// `quantize_two_term` matrix's product (`wide`: rows x 2n, computed with zero bias).
pub fn sum_terms(out: &mut [f32], wide: &[f32], rows: usize, bias: &[f32]) {
    let n = bias.len();
    if n == 0 {
        return;
    }
    out[..rows * n]
        .par_chunks_mut(BLOCK * n)
        .zip(wide[..rows * 2 * n].par_chunks(BLOCK * 2 * n))
        .for_each(|(out, wide)| {
            for (out, wide) in out.chunks_exact_mut(n).zip(wide.chunks_exact(2 * n)) {
                let (first, second) = wide.split_at(n);
                for (((o, a), b), c) in out.iter_mut().zip(first).zip(second).zip(bias) {
                    *o = a + b + c;
                }
            }
        });
}

/// Packs `transposed` ((in, out) row-major) into `lay`; padding (columns past
/// `out_dim`, positions past `in_dim`) is zero.
fn pack(transposed: &[i8], in_dim: usize, out_dim: usize, groups: usize, lay: Layout) -> Vec<i8> {
    let width = if lay.wide { 2 } else { 1 };
    let steps = groups * 4 / lay.k_step;
    let mut packed = vec![0i8; out_dim.div_ceil(lay.nr) * lay.nr * groups * 4 * width];
    for (k, row) in transposed
        .chunks_exact(out_dim.max(1))
        .take(in_dim)
        .enumerate()
    {
        let (step, e) = (k / lay.k_step, k % lay.k_step);
        for (j, &q) in row.iter().enumerate() {
            let (panel, lane) = (j / lay.nr, j % lay.nr);
            let at = (((panel * steps + step) * lay.nr + lane) * lay.k_step + e) * width;
            if lay.wide {
                let [lo, hi] = (q as i16).to_le_bytes();
                packed[at] = lo as i8;
                packed[at + 1] = hi as i8;
            } else {
                packed[at] = q;
            }
        }
    }
    packed
}

/// Whether this CPU has an int8 kernel faster than the f32 path (`Int8Kernel::is_fast`).
pub fn fast_kernel_available() -> bool {
    Int8Kernel::detect().is_fast()
}

/// Whether `precision="int8"` should quantize the linear layers: yes with a fast kernel,
/// or when `CROSSRANK_ISA=scalar` asked for the portable one (to test it). Otherwise
/// the portable kernel would run, many times slower than the f32 path it is meant to
/// speed up, so this warns (once per process) and the caller runs float32.
pub fn enabled() -> bool {
    if fast_kernel_available() || isa::forced_scalar() {
        return true;
    }
    static WARNING: Once = Once::new();
    WARNING.call_once(|| {
        log::warn!(
            "precision=\"int8\" needs {}, which this CPU lacks (or {} excludes); running \
             float32 instead",
            if cfg!(target_arch = "aarch64") {
                "the dotprod extension (NEON sdot)"
            } else {
                "AVX2, AVX-VNNI or AVX-512 VNNI"
            },
            isa::ENV
        )
    });
    false
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
    /// The multiplied input of `quantize_scaled`.
    scaled: Vec<f32>,
    /// The product of a two-term matrix before its halves are added (`sum_terms`).
    pub wide: Vec<f32>,
}

/// Clip threshold, in standard deviations of the row.
const CLIP: f32 = 6.0;
/// At most one value in this many may be clipped; a row with more keeps its full range.
const MAX_OUTLIER_SHARE: usize = 32;
/// Rows per parallel task when quantizing and correcting.
const BLOCK: usize = 64;

impl QuantizedRows {
    /// Quantizes `rows` rows of `cols` values from `x`, each column `k` multiplied by
    /// `multipliers[k]` first (the activation side of `encoder`'s smoothing).
    pub fn quantize_scaled(&mut self, x: &[f32], rows: usize, cols: usize, multipliers: &[f32]) {
        assert!(
            x.len() >= rows * cols && multipliers.len() == cols,
            "activation shape"
        );
        let mut scaled = std::mem::take(&mut self.scaled);
        scaled.resize(rows * cols, 0.0);
        if cols > 0 {
            scaled
                .par_chunks_mut(cols * BLOCK)
                .zip(x[..rows * cols].par_chunks(cols * BLOCK))
                .for_each(|(out, x)| {
                    for (out, x) in out.chunks_exact_mut(cols).zip(x.chunks_exact(cols)) {
                        for ((o, &v), &m) in out.iter_mut().zip(x).zip(multipliers) {
                            *o = v * m;
                        }
                    }
                });
        }
        self.quantize(&scaled, rows, cols);
        self.scaled = scaled;
    }

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
    match F32Kernel::detect() {
        F32Kernel::Avx512 => {
            #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
            unsafe fn avx512(b: &mut Block<'_>) {
                quantize_block_generic(b)
            }
            // SAFETY: `detect` checked that the CPU has the features of this copy.
            return unsafe { avx512(b) };
        }
        F32Kernel::Avx2 => {
            #[target_feature(enable = "avx2,fma")]
            unsafe fn avx2(b: &mut Block<'_>) {
                quantize_block_generic(b)
            }
            // SAFETY: as above.
            return unsafe { avx2(b) };
        }
        F32Kernel::Generic => {}
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
    let kernel = w.kernel;
    let nr = layout(kernel).nr;
    // Row chunks small enough to share out, large enough to reuse each weight panel
    // (24-96 KB, resident in L1/L2) over many micro-kernel calls.
    let chunk_rows = (m.div_ceil(threads.max(1) * 4)).div_ceil(MR).clamp(1, 16) * MR;
    let run = |(c, out): (usize, &mut [f32])| {
        let row0 = c * chunk_rows;
        let rows = out.len() / n;
        let codes = &a.data[row0 * a.stride..(row0 + rows) * a.stride];
        // The AVX2 kernel multiplies i16: the chunk's codes are widened once (to
        // little-endian i16, 0..=255), for every panel. A step is then 2 inputs.
        // The NEON kernel multiplies i8 x i8: the codes are shifted to `q - 128` (as
        // bytes: the top bit flipped) once per chunk likewise.
        let converted: Vec<u8>;
        let (data, stride, steps) = match kernel {
            Int8Kernel::Avx2 => {
                converted = codes.iter().flat_map(|&v| [v, 0]).collect();
                (&converted[..], 2 * a.stride, 2 * w.groups)
            }
            Int8Kernel::NeonDot => {
                converted = codes.iter().map(|&v| v ^ 0x80).collect();
                (&converted[..], a.stride, w.groups)
            }
            _ => (codes, a.stride, w.groups),
        };
        for p in 0..n.div_ceil(nr) {
            let panel = w.panel(p);
            let cols = (n - p * nr).min(nr);
            let mut r = 0;
            while r < rows {
                let block = (rows - r).min(MR);
                let tile = Tile {
                    a: &data[r * stride..],
                    stride,
                    a_scale: &a.scale[row0 + r..row0 + r + block],
                    a_zero: &a.zero[row0 + r..row0 + r + block],
                    panel,
                    steps,
                    w_scale: &w.scale[p * nr..(p + 1) * nr],
                    col_sum: &w.col_sum[p * nr..(p + 1) * nr],
                    shift_sum: w.shift_sum.get(p * nr..(p + 1) * nr).unwrap_or(&[]),
                    bias: &bias[p * nr..p * nr + cols],
                    out: &mut out[r * n + p * nr..],
                    out_stride: n,
                    cols,
                };
                // SAFETY (SIMD kernels): `quantize_for` checked that the CPU runs the
                // matrix's kernel; `Tile` bounds were sliced above, and the kernels
                // assert them before any unchecked load.
                match kernel {
                    #[cfg(target_arch = "x86_64")]
                    Int8Kernel::Avx512Vnni => unsafe { vnni::tile(tile, block) },
                    #[cfg(target_arch = "x86_64")]
                    Int8Kernel::AvxVnni => unsafe { ymm::avxvnni_tile(tile, block) },
                    #[cfg(target_arch = "x86_64")]
                    Int8Kernel::Avx2 => unsafe { ymm::avx2_tile(tile, block) },
                    #[cfg(target_arch = "aarch64")]
                    Int8Kernel::NeonDot => unsafe { neon::dotprod_tile(tile, block) },
                    _ => portable_tile(tile, block, w, p * nr),
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
    match F32Kernel::detect() {
        F32Kernel::Avx512 => {
            #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
            unsafe fn avx512(
                row: &mut [f32],
                outliers: &[(u32, u32, f32)],
                transposed: &[i8],
                scale: &[f32],
            ) {
                generic(row, outliers, transposed, scale)
            }
            // SAFETY: `detect` checked that the CPU has the features of this copy.
            return unsafe { avx512(row, outliers, transposed, scale) };
        }
        F32Kernel::Avx2 => {
            #[target_feature(enable = "avx2,fma")]
            unsafe fn avx2(
                row: &mut [f32],
                outliers: &[(u32, u32, f32)],
                transposed: &[i8],
                scale: &[f32],
            ) {
                generic(row, outliers, transposed, scale)
            }
            // SAFETY: as above.
            return unsafe { avx2(row, outliers, transposed, scale) };
        }
        F32Kernel::Generic => {}
    }
    generic(row, outliers, transposed, scale)
}

/// One micro-kernel call: up to `MR` rows by one panel of up to `nr` columns.
struct Tile<'a> {
    /// The first row's activation codes: u8, for the AVX2 kernel little-endian i16,
    /// for the NEON kernel i8 (`q - 128`).
    a: &'a [u8],
    /// Bytes from one row of `a` to the next.
    stride: usize,
    a_scale: &'a [f32],
    a_zero: &'a [f32],
    /// The panel's packed weights (empty for the portable kernel).
    panel: &'a [i8],
    /// Steps over the depth; each reads 4 bytes of every row of `a`.
    steps: usize,
    w_scale: &'a [f32],
    col_sum: &'a [f32],
    /// The NEON kernel's initial sums (`QuantizedMatrix::shift_sum`); empty otherwise.
    #[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]
    shift_sum: &'a [i32],
    bias: &'a [f32],
    out: &'a mut [f32],
    out_stride: usize,
    cols: usize,
}

/// The integer sums of the SIMD kernels, one product at a time, from `w.transposed`
/// (the panel starts at column `col0`); the same epilogue. `t.a` holds u8 codes.
fn portable_tile(mut t: Tile<'_>, rows: usize, w: &QuantizedMatrix, col0: usize) {
    let n = w.out_dim;
    for r in 0..rows {
        let a = &t.a[r * t.stride..][..w.in_dim];
        let mut acc = [0i32; NR];
        let acc = &mut acc[..t.cols];
        // Row-wise over the weights so the inner loop runs along contiguous columns.
        for (k, &x) in a.iter().enumerate() {
            let column = &w.transposed[k * n + col0..][..t.cols];
            for (acc, &q) in acc.iter_mut().zip(column) {
                // Wrapping, as the SIMD adds (reachable only past 66 000 inputs).
                *acc = acc.wrapping_add(x as i32 * q as i32);
            }
        }
        finish_row(&mut t, r, acc);
    }
}

/// Row `r` of the tile from its exact sums (`t.cols` of them): the zero-point
/// correction and dequantization, as fused operations. The x86 SIMD kernels do the
/// same operations lane-wise; the NEON kernel calls this.
#[inline(always)]
fn finish_row(t: &mut Tile<'_>, r: usize, sums: &[i32]) {
    for (j, &acc) in sums.iter().enumerate() {
        let centered = (-t.a_zero[r]).mul_add(t.col_sum[j], acc as f32);
        t.out[r * t.out_stride + j] = centered.mul_add(t.a_scale[r] * t.w_scale[j], t.bias[j]);
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
        assert!(t.a.len() >= (R - 1) * t.stride + t.steps * 4);
        assert!(t.panel.len() >= t.steps * NR * 4);
        assert!(t.out.len() >= (R - 1) * t.out_stride + t.cols);
        let mut acc = [[_mm512_setzero_si512(); 4]; R];
        let a = t.a.as_ptr();
        let b = t.panel.as_ptr();
        for g in 0..t.steps {
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

/// The 256-bit kernels: one body, two multiply-accumulate steps. Per step, every row
/// broadcasts 4 bytes (4 u8 codes for AVX-VNNI, 2 i16 for AVX2) against 64 bytes of the
/// panel (16 columns: two vectors of 8 i32 sums).
#[cfg(target_arch = "x86_64")]
mod ymm {
    use super::{Tile, MR, NR_YMM};
    use std::arch::x86_64::*;

    /// Panel bytes per step.
    const STEP_BYTES: usize = 64;

    /// `acc + x * w`, pairs of i16 products summed into i32: exact, as |2 * 255 * 127|
    /// is far inside i32 (the i16 operands themselves cannot overflow: 0..=255, ±127).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn madd_step(acc: __m256i, x: __m256i, w: __m256i) -> __m256i {
        _mm256_add_epi32(acc, _mm256_madd_epi16(x, w))
    }

    /// `acc + x * w`, quads of u8 (x) x i8 (w) products summed into i32, exactly.
    #[inline]
    #[target_feature(enable = "avx2,fma,avxvnni")]
    fn dpbusd_step(acc: __m256i, x: __m256i, w: __m256i) -> __m256i {
        _mm256_dpbusd_avx_epi32(acc, x, w)
    }

    macro_rules! ymm_kernel {
        ($tile:ident, $kernel:ident, #[$features:meta], $step:ident) => {
            /// Dispatches on the row count so each kernel's accumulators stay in
            /// registers.
            ///
            /// # Safety
            /// The CPU must have the features this is compiled for; `t`'s slices must
            /// cover `rows` rows.
            #[$features]
            pub unsafe fn $tile(t: Tile<'_>, rows: usize) {
                match rows {
                    1 => $kernel::<1>(t),
                    2 => $kernel::<2>(t),
                    3 => $kernel::<3>(t),
                    4 => $kernel::<4>(t),
                    5 => $kernel::<5>(t),
                    _ => $kernel::<MR>(t),
                }
            }

            #[inline]
            #[$features]
            unsafe fn $kernel<const R: usize>(t: Tile<'_>) {
                assert!(t.a.len() >= (R - 1) * t.stride + t.steps * 4);
                assert!(t.panel.len() >= t.steps * STEP_BYTES);
                assert!(t.cols <= NR_YMM && t.a_scale.len() >= R && t.a_zero.len() >= R);
                let mut acc = [[_mm256_setzero_si256(); 2]; R];
                let a = t.a.as_ptr();
                let b = t.panel.as_ptr();
                for s in 0..t.steps {
                    // SAFETY (all loads): in bounds by the asserts above.
                    let bs = b.add(s * STEP_BYTES);
                    let w = [
                        _mm256_loadu_si256(bs as *const __m256i),
                        _mm256_loadu_si256(bs.add(32) as *const __m256i),
                    ];
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let x = _mm256_set1_epi32(
                            (a.add(r * t.stride + s * 4) as *const i32).read_unaligned(),
                        );
                        acc[0] = $step(acc[0], x, w[0]);
                        acc[1] = $step(acc[1], x, w[1]);
                    }
                }
                // The epilogue of `portable_tile`, 8 columns at a time (same fused
                // operations, so the same rounding). Slices, not pointers: it runs once
                // per tile.
                for (r, acc) in acc.iter().enumerate() {
                    let zero = _mm256_set1_ps(t.a_zero[r]);
                    let a_scale = _mm256_set1_ps(t.a_scale[r]);
                    let out = &mut t.out[r * t.out_stride..];
                    for (c, &acc) in acc.iter().enumerate() {
                        let start = c * 8;
                        if start >= t.cols {
                            break;
                        }
                        let len = (t.cols - start).min(8);
                        let col_sum = _mm256_loadu_ps(t.col_sum[start..start + 8].as_ptr());
                        let w_scale = _mm256_loadu_ps(t.w_scale[start..start + 8].as_ptr());
                        let scale = _mm256_mul_ps(a_scale, w_scale);
                        let centered = _mm256_fnmadd_ps(zero, col_sum, _mm256_cvtepi32_ps(acc));
                        let mut bias = [0f32; 8];
                        bias[..len].copy_from_slice(&t.bias[start..start + len]);
                        let y = _mm256_fmadd_ps(centered, scale, _mm256_loadu_ps(bias.as_ptr()));
                        let mut y8 = [0f32; 8];
                        _mm256_storeu_ps(y8.as_mut_ptr(), y);
                        out[start..start + len].copy_from_slice(&y8[..len]);
                    }
                }
            }
        };
    }

    ymm_kernel!(avx2_tile, avx2_kernel, #[target_feature(enable = "avx2,fma")], madd_step);
    ymm_kernel!(
        avxvnni_tile,
        avxvnni_kernel,
        #[target_feature(enable = "avx2,fma,avxvnni")],
        dpbusd_step
    );
}

/// The aarch64 kernel. Per step, every row broadcasts 4 shifted codes (i8) against 64
/// bytes of the panel (16 columns: four vectors of 4 i32 sums), one `sdot` per vector.
#[cfg(target_arch = "aarch64")]
mod neon {
    use super::{finish_row, Tile, MR, NR_YMM};
    use std::arch::aarch64::*;
    use std::arch::asm;

    /// Panel bytes per step.
    const STEP_BYTES: usize = NR_YMM * 4;

    /// `acc + w . x` per 4-byte group: each i32 lane gains the sum of its 4 i8 x i8
    /// products, exactly (|4 * 128 * 127| is far inside i32). `vdotq_s32` would do,
    /// but is unstable (`stdarch_neon_dotprod`).
    #[inline]
    #[target_feature(enable = "neon,dotprod")]
    fn sdot(mut acc: int32x4_t, w: int8x16_t, x: int8x16_t) -> int32x4_t {
        // SAFETY: one register-only instruction, which this function's target
        // features guarantee the CPU has; no memory, stack or flags are touched.
        unsafe {
            asm!(
                "sdot {acc:v}.4s, {w:v}.16b, {x:v}.16b",
                acc = inout(vreg) acc,
                w = in(vreg) w,
                x = in(vreg) x,
                options(pure, nomem, nostack, preserves_flags),
            );
        }
        acc
    }

    /// Dispatches on the row count so each kernel's accumulators stay in registers.
    ///
    /// # Safety
    /// The CPU must have dotprod; `t`'s slices must cover `rows` rows, `t.a` holding
    /// the shifted codes (`q - 128` as i8) and `t.shift_sum` the panel's shift sums.
    #[target_feature(enable = "neon,dotprod")]
    pub unsafe fn dotprod_tile(t: Tile<'_>, rows: usize) {
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
    #[target_feature(enable = "neon,dotprod")]
    unsafe fn kernel<const R: usize>(mut t: Tile<'_>) {
        assert!(t.a.len() >= (R - 1) * t.stride + t.steps * 4);
        assert!(t.panel.len() >= t.steps * STEP_BYTES);
        assert!(t.cols <= NR_YMM && t.shift_sum.len() >= NR_YMM);
        assert!(t.a_scale.len() >= R && t.a_zero.len() >= R);
        // The sums start at 128 * column sum: sum (q - 128) * w + 128 * sum w is
        // sum q * w, the other kernels' sums (in wrapping i32, as theirs).
        let start: [int32x4_t; 4] =
            std::array::from_fn(|c| vld1q_s32(t.shift_sum[c * 4..c * 4 + 4].as_ptr()));
        let mut acc = [start; R];
        let a = t.a.as_ptr();
        let b = t.panel.as_ptr();
        for s in 0..t.steps {
            // SAFETY (all loads): in bounds by the asserts above; the activation load
            // is unaligned-safe (`read_unaligned`), NEON loads of i8 have no alignment.
            let bs = b.add(s * STEP_BYTES);
            let w = [
                vld1q_s8(bs),
                vld1q_s8(bs.add(16)),
                vld1q_s8(bs.add(32)),
                vld1q_s8(bs.add(48)),
            ];
            for (r, acc) in acc.iter_mut().enumerate() {
                let x4 = (a.add(r * t.stride + s * 4) as *const i32).read_unaligned();
                let x = vreinterpretq_s8_s32(vdupq_n_s32(x4));
                for c in 0..4 {
                    acc[c] = sdot(acc[c], w[c], x);
                }
            }
        }
        // The portable kernel's epilogue, on the same sums: the same rounding. It
        // runs once per tile, against `steps` x 4 x R `sdot`s above.
        for (r, acc) in acc.iter().enumerate() {
            let mut sums = [0i32; NR_YMM];
            for (c, &v) in acc.iter().enumerate() {
                vst1q_s32(sums[c * 4..c * 4 + 4].as_mut_ptr(), v);
            }
            let cols = t.cols;
            finish_row(&mut t, r, &sums[..cols]);
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

    /// The kernels this CPU runs, the detected one first.
    fn kernels() -> Vec<Int8Kernel> {
        let mut kernels: Vec<_> = Int8Kernel::ALL
            .into_iter()
            .filter(|k| k.supported())
            .collect();
        kernels.sort_by_key(|&k| k != Int8Kernel::detect());
        kernels
    }

    /// `matmul` with `kernel` on seeded inputs; returns it and the f64 reference.
    fn run(
        kernel: Int8Kernel,
        m: usize,
        k: usize,
        n: usize,
        threads: usize,
    ) -> (Vec<f32>, Vec<f32>) {
        let mut seed = (m * 1000 + k * 10 + n) as u64;
        let x: Vec<f32> = (0..m * k).map(|_| lcg(&mut seed) * 3.0 + 0.5).collect();
        let w: Vec<f32> = (0..n * k).map(|_| lcg(&mut seed) * 0.1).collect();
        let bias: Vec<f32> = (0..n).map(|_| lcg(&mut seed)).collect();
        let qw = QuantizedMatrix::quantize_for(&w, n, k, kernel);
        let mut qx = QuantizedRows::default();
        qx.quantize(&x, m, k);
        let mut out = vec![f32::NAN; m * n];
        matmul(&mut out, &qx, &qw, &bias, threads);
        (out, reference(&x, &w, &bias, m, k, n))
    }

    /// m, k, n off every tile size (MR, 4 or 2 inputs per step, 16 / 64 columns).
    const SHAPES: [(usize, usize, usize); 8] = [
        (1, 1, 1),
        (7, 5, 70),
        (13, 384, 64),
        (13, 384, 129),
        (6, 36, 129),
        (100, 96, 200),
        (3, 7, 17),
        (25, 301, 47),
    ];

    #[test]
    fn close_to_f32_for_odd_shapes() {
        for kernel in kernels() {
            for &(m, k, n) in &SHAPES {
                for threads in [1, 2] {
                    let (got, want) = run(kernel, m, k, n, threads);
                    assert!(
                        got.iter().all(|v| v.is_finite()),
                        "{kernel:?} {m}x{k}x{n}: unwritten output"
                    );
                    // Error of rounding both operands: about sqrt(k) * (x step * |w| + w step * |x|).
                    let tol = 0.02 * (k as f32).sqrt() + 1e-4;
                    let worst = got
                        .iter()
                        .zip(&want)
                        .map(|(a, b)| (a - b).abs())
                        .fold(0f32, f32::max);
                    assert!(
                        worst <= tol,
                        "{kernel:?} {m}x{k}x{n}: max error {worst} > {tol}"
                    );
                }
            }
        }
    }

    /// With activations that quantize exactly (integers 0..=255, each row spanning the
    /// range), all the error is the weights' rounding: the two-term matrix must cut it
    /// by about the 127x of its second code.
    #[test]
    fn two_term_weights_remove_the_rounding_error() {
        let (m, k, n) = (13, 384, 129);
        let mut seed = 7u64;
        let mut x: Vec<f32> = (0..m * k)
            .map(|_| ((lcg(&mut seed) + 1.0) * 127.5).round().clamp(0.0, 255.0))
            .collect();
        for row in x.chunks_exact_mut(k) {
            (row[0], row[1]) = (0.0, 255.0);
        }
        let w: Vec<f32> = (0..n * k).map(|_| lcg(&mut seed) * 0.1).collect();
        let bias: Vec<f32> = (0..n).map(|_| lcg(&mut seed)).collect();
        let want = reference(&x, &w, &bias, m, k, n);
        let mut qx = QuantizedRows::default();
        qx.quantize(&x, m, k);
        let max_error = |got: &[f32]| {
            got.iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max)
        };
        let mut one_term = vec![f32::NAN; m * n];
        matmul(
            &mut one_term,
            &qx,
            &QuantizedMatrix::quantize(&w, n, k),
            &bias,
            2,
        );
        let mut wide = vec![f32::NAN; m * 2 * n];
        let two = QuantizedMatrix::quantize_two_term(&w, n, k);
        matmul(&mut wide, &qx, &two, &vec![0.0; 2 * n], 2);
        let mut two_term = vec![f32::NAN; m * n];
        sum_terms(&mut two_term, &wide, m, &bias);
        let (one, two) = (max_error(&one_term), max_error(&two_term));
        eprintln!("max error: one term {one}, two terms {two}");
        assert!(
            one > 0.05,
            "the one-term error {one} is too small to compare"
        );
        assert!(two < one / 50.0, "two terms {two} vs one term {one}");
    }

    /// Every kernel computes the same exact i32 sums and the same fused epilogue, so
    /// the outputs are equal bit for bit.
    #[test]
    fn simd_kernels_equal_portable_kernel() {
        let fast: Vec<_> = kernels().into_iter().filter(|k| k.is_fast()).collect();
        eprintln!("int8 kernels compared with the portable one: {fast:?}");
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            assert!(fast.contains(&Int8Kernel::Avx2));
        }
        #[cfg(target_arch = "aarch64")]
        if std::arch::is_aarch64_feature_detected!("dotprod") {
            assert!(fast.contains(&Int8Kernel::NeonDot));
        }
        for &(m, k, n) in &SHAPES {
            let (portable, _) = run(Int8Kernel::Portable, m, k, n, 1);
            for &kernel in &fast {
                for threads in [1, 2] {
                    let (got, _) = run(kernel, m, k, n, threads);
                    for (i, (a, b)) in got.iter().zip(&portable).enumerate() {
                        assert!(
                            a.to_bits() == b.to_bits(),
                            "{kernel:?} {m}x{k}x{n} threads {threads}, output {i}: {a} vs {b}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn packing_only_for_simd_kernels() {
        let w: Vec<f32> = (0..3 * 10).map(|i| i as f32 - 15.0).collect();
        for kernel in kernels() {
            let q = QuantizedMatrix::quantize_for(&w, 3, 10, kernel);
            assert_eq!(q.kernel(), kernel);
            let lay = layout(kernel);
            let bytes = if kernel.is_fast() {
                lay.nr * 12 * if lay.wide { 2 } else { 1 }
            } else {
                0
            };
            assert_eq!(q.packed.len(), bytes, "{kernel:?}");
        }
        assert_eq!(
            QuantizedMatrix::quantize(&w, 3, 10).kernel(),
            Int8Kernel::detect()
        );
        assert_eq!(enabled(), fast_kernel_available() || isa::forced_scalar());
    }

    #[test]
    fn an_outlier_does_not_coarsen_its_row() {
        let (k, n) = (384, 64);
        let mut seed = 7u64;
        let w: Vec<f32> = (0..n * k).map(|_| lcg(&mut seed) * 0.1).collect();
        let plain: Vec<f32> = (0..k).map(|_| lcg(&mut seed)).collect();
        let mut spiked = plain.clone();
        spiked[99] = 60.0;
        for kernel in kernels() {
            let qw = QuantizedMatrix::quantize_for(&w, n, k, kernel);
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
            assert!(
                spike < 3.0 * base,
                "{kernel:?}: outlier row error {spike} vs {base}"
            );
        }
    }

    #[test]
    fn constant_rows_and_nan() {
        let w = vec![0.5f32; 8 * 4];
        for kernel in kernels() {
            let qw = QuantizedMatrix::quantize_for(&w, 4, 8, kernel);
            let mut qx = QuantizedRows::default();
            let x = [vec![2.0f32; 8], vec![f32::NAN; 1], vec![1.0f32; 7]].concat();
            qx.quantize(&x, 2, 8);
            let mut out = vec![0f32; 8];
            matmul(&mut out, &qx, &qw, &[0.0; 4], 1);
            assert!(
                out[..4].iter().all(|v| (v - 8.0).abs() < 1e-4),
                "{kernel:?} {out:?}"
            );
            assert!(out[4..].iter().all(|v| v.is_nan()), "{kernel:?} {out:?}");
        }
    }
}
