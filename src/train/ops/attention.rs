//! Multi-head self-attention, `softmax(q k^T * scale + mask) v` per head, differentiable
//! in q, k and v, as one op.
//!
//! As separate candle ops (head split, transpose, matmul, softmax, matmul, head merge)
//! the backward pass makes about a dozen nodes, each adding into a fresh zero tensor, three
//! of them the size of the (batch, heads, tokens, tokens) scores, and candle runs each
//! head's small product as its own multi-threaded GEMM. Here each (sequence, head) is one
//! task: single-threaded GEMMs read the head's columns of q, k and v in place, and the
//! tasks run in parallel. The forward keeps the probabilities for the backward (as
//! PyTorch's autograd saves them).

use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor, D};
use rayon::prelude::*;

use super::{contiguous_f32, fast_path, with_values};
use crate::score::cpu::gemm::{matmul, Mat, MatMut, B};

/// A mask value at or below this marks a padded key (the model adds f32::MIN).
const MASKED: f32 = f32::MIN / 2.0;

/// `q`, `k`, `v`: (batch, tokens, hidden) projections; `mask`: (batch, 1, 1, tokens), added
/// to the scaled scores (0 for tokens, a large negative number for padding; it gets no
/// gradient). Returns the context, (batch, tokens, hidden), heads concatenated.
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &Tensor,
    num_heads: usize,
    scale: f64,
) -> candle_core::Result<Tensor> {
    let (b, l, h) = q.dims3()?;
    if k.dims() != [b, l, h] || v.dims() != [b, l, h] || mask.dims() != [b, 1, 1, l] {
        candle_core::bail!(
            "attention: q {:?}, k {:?}, v {:?}, mask {:?}",
            q.shape(),
            k.shape(),
            v.shape(),
            mask.shape()
        );
    }
    if num_heads == 0 || h % num_heads != 0 {
        candle_core::bail!("attention: {h} values do not split into {num_heads} heads");
    }
    let shape = Heads {
        b,
        l,
        heads: num_heads,
        dim: h / num_heads,
    };
    if fast_path(&[q, k, v, mask]) {
        let mask = with_values(mask, "attention", |m| m.to_vec())?;
        q.apply_op3(
            k,
            v,
            Attention {
                shape,
                scale: scale as f32,
                mask,
                probs: Mutex::new(Vec::new()),
            },
        )
    } else {
        composite(q, k, v, mask, shape, scale)
    }
}

/// The same from candle's ops, which candle differentiates one by one (any device).
fn composite(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &Tensor,
    s: Heads,
    scale: f64,
) -> candle_core::Result<Tensor> {
    let split = |x: &Tensor| -> candle_core::Result<Tensor> {
        x.reshape((s.b, s.l, s.heads, s.dim))?
            .transpose(1, 2)?
            .contiguous()
    };
    let scores = (split(q)?.matmul(&split(k)?.t()?)? * scale)?;
    let probs = candle_nn::ops::softmax(&scores.broadcast_add(mask)?, D::Minus1)?;
    probs
        .matmul(&split(v)?)?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((s.b, s.l, s.heads * s.dim))
}

#[derive(Clone, Copy)]
struct Heads {
    b: usize,
    l: usize,
    heads: usize,
    dim: usize,
}

impl Heads {
    fn hidden(&self) -> usize {
        self.heads * self.dim
    }

    /// Head `head`'s (tokens, dim) columns of sequence `seq` in a (batch, tokens, hidden)
    /// matrix, read in place.
    fn view<'a>(&self, x: &'a [f32], seq: usize, head: usize) -> Mat<'a> {
        let h = self.hidden();
        Mat {
            data: &x[seq * self.l * h + head * self.dim..],
            rows: self.l,
            cols: self.dim,
            row_stride: h,
        }
    }

    /// (batch, heads, tokens, dim) -> (batch, tokens, heads * dim).
    fn merge(&self, per_head: &[f32]) -> Vec<f32> {
        let (l, d, h) = (self.l, self.dim, self.hidden());
        let mut out = vec![0f32; per_head.len()];
        out.par_chunks_mut(l * h)
            .zip(per_head.par_chunks(self.heads * l * d))
            .for_each(|(out, src)| {
                for head in 0..self.heads {
                    for t in 0..l {
                        let from = &src[(head * l + t) * d..][..d];
                        out[t * h + head * d..][..d].copy_from_slice(from);
                    }
                }
            });
        out
    }
}

/// `dst = src^T` for a square (n, n) matrix.
fn transpose_into(dst: &mut [f32], src: &[f32], n: usize) {
    for (i, row) in src.chunks(n).enumerate() {
        for (j, &v) in row.iter().enumerate() {
            dst[j * n + i] = v;
        }
    }
}

/// Row-wise `softmax(scores * scale + mask)`, exactly 0 on masked keys (as `exp` of
/// f32::MIN underflows in PyTorch). The exponentials are the CPU engine's vectorized
/// kernel (Cephes `expf`); libm's scalar `expf` was 4% of a step at 256 tokens.
fn masked_softmax(p: &mut [f32], mask: &[f32], scale: f32) {
    // As PyTorch: (scores * scale) + mask, rounded at each step.
    for row in p.chunks_mut(mask.len()) {
        for (x, &m) in row.iter_mut().zip(mask) {
            *x = *x * scale + m;
        }
    }
    crate::score::cpu::kernels::softmax_rows(p, mask.len());
    // The kernel's exp clamps its argument at -87, leaving ~1e-38 where PyTorch has 0.
    let masked: Vec<usize> = (0..mask.len()).filter(|&j| mask[j] <= MASKED).collect();
    if !masked.is_empty() {
        for row in p.chunks_mut(mask.len()) {
            masked.iter().for_each(|&j| row[j] = 0.0);
        }
    }
}

/// `sum(a * b)` with eight partial sums, so the compiler vectorizes it (a single f32
/// accumulator is a serial chain of adds).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

struct Attention {
    shape: Heads,
    scale: f32,
    /// (batch, tokens).
    mask: Vec<f32>,
    /// (batch, heads, tokens, tokens), written by the forward for the backward.
    probs: Mutex<Vec<f32>>,
}

impl CustomOp3 for Attention {
    fn name(&self) -> &'static str {
        "crossrank-train-attention"
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
        let s = self.shape;
        let q = contiguous_f32(s1, l1, self.name())?;
        let k = contiguous_f32(s2, l2, self.name())?;
        let v = contiguous_f32(s3, l3, self.name())?;
        let (l, d) = (s.l, s.dim);
        let mut probs = vec![0f32; s.b * s.heads * l * l];
        let mut context = vec![0f32; s.b * s.heads * l * d];
        probs
            .par_chunks_mut(l * l)
            .zip(context.par_chunks_mut(l * d))
            .enumerate()
            .for_each(|(task, (p, c))| {
                let (seq, head) = (task / s.heads, task % s.heads);
                let mask = &self.mask[seq * l..][..l];
                let scores = MatMut::new(p, l, l);
                matmul(
                    scores,
                    s.view(q, seq, head),
                    s.view(k, seq, head),
                    B::Transposed,
                    1.0,
                    false,
                    1,
                );
                masked_softmax(p, mask, self.scale);
                let out = MatMut::new(c, l, d);
                matmul(
                    out,
                    Mat::new(p, l, l),
                    s.view(v, seq, head),
                    B::AsIs,
                    1.0,
                    false,
                    1,
                );
            });
        *self
            .probs
            .lock()
            .map_err(|_| candle_core::Error::Msg("attention: poisoned lock".into()))? = probs;
        Ok((CpuStorage::F32(s.merge(&context)), l1.shape().clone()))
    }

    /// Per head, with `dP = dC v^T` and `dS = scale * P * (dP - rowsum(dP * P))`:
    /// `dq = dS k`, `dk = dS^T q`, `dv = P^T dC`.
    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let s = self.shape;
        let (l, d) = (s.l, s.dim);
        let probs = self
            .probs
            .lock()
            .map_err(|_| candle_core::Error::Msg("attention: poisoned lock".into()))?;
        if probs.len() != s.b * s.heads * l * l {
            candle_core::bail!("attention: backward before forward");
        }
        let name = self.name();
        let n = s.b * s.heads * l * d;
        let (mut dq, mut dk, mut dv) = (vec![0f32; n], vec![0f32; n], vec![0f32; n]);
        with_values(q, name, |q| {
            with_values(k, name, |k| {
                with_values(v, name, |v| {
                    with_values(grad_res, name, |dc| {
                        dq.par_chunks_mut(l * d)
                            .zip(dk.par_chunks_mut(l * d))
                            .zip(dv.par_chunks_mut(l * d))
                            .zip(probs.par_chunks(l * l))
                            .enumerate()
                            .for_each(|(task, (((dq, dk), dv), p))| {
                                let (seq, head) = (task / s.heads, task % s.heads);
                                let dc = s.view(dc, seq, head);
                                let mut ds = vec![0f32; l * l];
                                let mut t = vec![0f32; l * l];
                                // dP, then dS in place.
                                matmul(
                                    MatMut::new(&mut ds, l, l),
                                    dc,
                                    s.view(v, seq, head),
                                    B::Transposed,
                                    1.0,
                                    false,
                                    1,
                                );
                                for (ds, p) in ds.chunks_mut(l).zip(p.chunks(l)) {
                                    let dot = dot(ds, p);
                                    for (g, &y) in ds.iter_mut().zip(p) {
                                        *g = self.scale * (y * (*g - dot));
                                    }
                                }
                                matmul(
                                    MatMut::new(dq, l, d),
                                    Mat::new(&ds, l, l),
                                    s.view(k, seq, head),
                                    B::AsIs,
                                    1.0,
                                    false,
                                    1,
                                );
                                transpose_into(&mut t, &ds, l);
                                matmul(
                                    MatMut::new(dk, l, d),
                                    Mat::new(&t, l, l),
                                    s.view(q, seq, head),
                                    B::AsIs,
                                    1.0,
                                    false,
                                    1,
                                );
                                transpose_into(&mut t, p, l);
                                matmul(
                                    MatMut::new(dv, l, d),
                                    Mat::new(&t, l, l),
                                    dc,
                                    B::AsIs,
                                    1.0,
                                    false,
                                    1,
                                );
                            });
                    })
                })
            })
        })????;
        let device = q.device();
        let tensor = |x: Vec<f32>| Tensor::from_vec(s.merge(&x), q.shape(), device);
        Ok((Some(tensor(dq)?), Some(tensor(dk)?), Some(tensor(dv)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{probe_backward, rel, values};
    use super::*;
    use candle_core::{Device, Var};

    /// The fused op gives the composite's context and gradients, with padded keys masked
    /// as the model masks them.
    #[test]
    fn matches_composite_forward_and_backward() {
        let dev = Device::Cpu;
        let (b, l, heads, dim) = (2, 5, 3, 4);
        let h = heads * dim;
        let var = |seed| Var::from_vec(values(b * l * h, seed, 1.5), (b, l, h), &dev).unwrap();
        let (q, k, v) = (var(1), var(2), var(3));
        let mut mask = vec![0f32; b * l];
        mask[l + 3] = f32::MIN; // sequence 1 has two padded tokens
        mask[l + 4] = f32::MIN;
        let mask = Tensor::from_vec(mask, (b, 1, 1, l), &dev).unwrap();
        let probe = Tensor::from_vec(values(b * l * h, 4, 1.0), (b, l, h), &dev).unwrap();
        let scale = 0.5;
        let shape = Heads { b, l, heads, dim };

        let fast = attention(
            q.as_tensor(),
            k.as_tensor(),
            v.as_tensor(),
            &mask,
            heads,
            scale,
        )
        .unwrap();
        let slow = composite(
            q.as_tensor(),
            k.as_tensor(),
            v.as_tensor(),
            &mask,
            shape,
            scale,
        )
        .unwrap();
        assert!(rel(&fast, &slow) < 1e-6, "{}", rel(&fast, &slow));

        let g_fast = probe_backward(&fast, &probe);
        let g_slow = probe_backward(&slow, &probe);
        for var in [&q, &k, &v] {
            let (a, b) = (g_fast.get(var).unwrap(), g_slow.get(var).unwrap());
            assert_eq!(a.dims(), var.dims());
            assert!(rel(a, b) < 1e-5, "{}", rel(a, b));
        }
        // A padded key's value gets no gradient: nothing attends to it.
        let dv = g_fast.get(&v).unwrap().get(1).unwrap().get(3).unwrap();
        assert!(dv.to_vec1::<f32>().unwrap().iter().all(|&x| x == 0.0));
    }
}
