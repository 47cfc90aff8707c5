//! Multi-head self-attention, `softmax(q k^T * scale + mask) v` per head, differentiable
//! in q, k and v, as one op.
//!
//! As separate candle ops (head split, transpose, matmul, softmax, matmul, head merge)
//! the backward pass makes about a dozen nodes, each adding into a fresh zero tensor, three
//! of them the size of the (batch, heads, tokens, tokens) scores. Here the forward runs the
//! same products on detached inputs and keeps the probabilities (as PyTorch's autograd
//! saves them), and the backward is the four products attention needs and the softmax
//! backward.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Shape, Tensor, D};
use rayon::prelude::*;

use super::{contiguous_f32, fast_path, last_dim, with_values};

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
    let split = Heads {
        b,
        l,
        heads: num_heads,
        dim: h / num_heads,
    };
    if !fast_path(&[q, k, v, mask]) {
        // The composite, which candle differentiates op by op.
        let scores = (split.split(q)?.matmul(&split.split(k)?.t()?)? * scale)?;
        let probs = candle_nn::ops::softmax(&scores.broadcast_add(mask)?, D::Minus1)?;
        return split.merge(&probs.matmul(&split.split(v)?)?);
    }
    let (qh, kh, vh) = (
        split.split(&q.detach())?,
        split.split(&k.detach())?,
        split.split(&v.detach())?,
    );
    let scores = qh.matmul(&kh.t()?)?;
    let probs = scores.apply_op2_no_bwd(
        mask,
        &ScaledMaskedSoftmax {
            scale: scale as f32,
        },
    )?;
    let context = split.merge(&probs.matmul(&vh)?)?;
    q.apply_op3(
        k,
        v,
        Attention {
            split,
            scale: scale as f32,
            probs,
            context,
        },
    )
}

/// The head layout: (batch, tokens, heads * dim) <-> (batch, heads, tokens, dim).
#[derive(Clone, Copy)]
struct Heads {
    b: usize,
    l: usize,
    heads: usize,
    dim: usize,
}

impl Heads {
    fn split(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.reshape((self.b, self.l, self.heads, self.dim))?
            .transpose(1, 2)?
            .contiguous()
    }

    fn merge(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.transpose(1, 2)?
            .contiguous()?
            .reshape((self.b, self.l, self.heads * self.dim))
    }
}

/// Holds what the backward needs: the probabilities (batch, heads, tokens, tokens).
struct Attention {
    split: Heads,
    scale: f32,
    probs: Tensor,
    /// Computed before the op is applied (by candle's batched matmuls); `cpu_fwd` hands
    /// it over.
    context: Tensor,
}

impl CustomOp3 for Attention {
    fn name(&self) -> &'static str {
        "crossrank-train-attention"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let values = with_values(&self.context, self.name(), |c| c.to_vec())?;
        Ok((CpuStorage::F32(values), self.context.shape().clone()))
    }

    /// With `dP = dC v^T`: `dv = P^T dC`, `dS = scale * softmax_backward(P, dP)`,
    /// `dq = dS k`, `dk = dS^T q`, per head.
    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let s = &self.split;
        let dc = s.split(&grad_res.detach())?;
        let (qh, kh, vh) = (
            s.split(&q.detach())?,
            s.split(&k.detach())?,
            s.split(&v.detach())?,
        );
        let dv = self.probs.t()?.matmul(&dc)?;
        let dp = dc.matmul(&vh.t()?)?;
        let ds = self
            .probs
            .apply_op2_no_bwd(&dp, &SoftmaxBackward { scale: self.scale })?;
        let dq = ds.matmul(&kh)?;
        let dk = ds.t()?.matmul(&qh)?;
        Ok((
            Some(s.merge(&dq)?),
            Some(s.merge(&dk)?),
            Some(s.merge(&dv)?),
        ))
    }
}

/// `softmax(scores * scale + mask)` over the last dimension; `mask` (batch, 1, 1, keys).
struct ScaledMaskedSoftmax {
    scale: f32,
}

impl CustomOp2 for ScaledMaskedSoftmax {
    fn name(&self) -> &'static str {
        "crossrank-train-attention-softmax"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let scores = contiguous_f32(s1, l1, self.name())?;
        let mask = contiguous_f32(s2, l2, self.name())?;
        let keys = last_dim(l1, self.name())?;
        // Rows (one per query of each head) of one sequence share its mask row.
        let rows_per_sequence = scores.len() / keys / l1.dims()[0].max(1);
        let mut out = vec![0f32; scores.len()];
        out.par_chunks_mut(keys)
            .zip(scores.par_chunks(keys))
            .enumerate()
            .for_each(|(r, (out, row))| {
                let m = &mask[(r / rows_per_sequence) * keys..][..keys];
                // As PyTorch: (scores * scale) + mask, rounded at each step.
                for ((o, &s), &mv) in out.iter_mut().zip(row).zip(m) {
                    *o = s * self.scale + mv;
                }
                let max = out.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut sum = 0f32;
                for o in out.iter_mut() {
                    *o = (*o - max).exp();
                    sum += *o;
                }
                out.iter_mut().for_each(|o| *o /= sum);
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// `dscores = scale * y * (dy - sum(dy * y))` per row, from the probabilities `y`.
struct SoftmaxBackward {
    scale: f32,
}

impl CustomOp2 for SoftmaxBackward {
    fn name(&self) -> &'static str {
        "crossrank-train-attention-softmax-backward"
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
                    *d = self.scale * (yi * (gi - dot));
                }
            });
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{rel, values};
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

        let fast = attention(
            q.as_tensor(),
            k.as_tensor(),
            v.as_tensor(),
            &mask,
            heads,
            scale,
        )
        .unwrap();
        // The same attention from candle's ops, which candle differentiates one by one.
        let slow = {
            let split = Heads { b, l, heads, dim };
            let scores = (split.split(q.as_tensor()).unwrap())
                .matmul(&split.split(k.as_tensor()).unwrap().t().unwrap())
                .unwrap();
            let probs = candle_nn::ops::softmax(
                &(scores * scale).unwrap().broadcast_add(&mask).unwrap(),
                D::Minus1,
            )
            .unwrap();
            split
                .merge(&probs.matmul(&split.split(v.as_tensor()).unwrap()).unwrap())
                .unwrap()
        };
        assert!(rel(&fast, &slow) < 1e-6, "{}", rel(&fast, &slow));

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
