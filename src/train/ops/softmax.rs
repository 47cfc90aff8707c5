//! Attention probabilities: `softmax(scores * scale + mask)` over the keys, differentiable
//! in `scores`, as one op (transformers' eager attention does the three steps separately;
//! fused, the backward pass needs one pass over the (batch, heads, queries, keys) scores
//! instead of five).

use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor, D};
use rayon::prelude::*;

use super::{contiguous_f32, fast_path, last_dim};

/// `scores`: (batch, heads, queries, keys); `mask`: (batch, 1, 1, keys), added after
/// scaling (0 for tokens, a large negative number for padding). No gradient for the mask.
pub fn attention_softmax(
    scores: &Tensor,
    mask: &Tensor,
    scale: f64,
) -> candle_core::Result<Tensor> {
    let (b, _, _, keys) = scores.dims4()?;
    if mask.dims() != [b, 1, 1, keys] {
        candle_core::bail!(
            "attention mask {:?} does not fit scores {:?}",
            mask.shape(),
            scores.shape()
        );
    }
    if fast_path(&[scores, mask]) {
        scores.apply_op2(
            mask,
            ScaledMaskedSoftmax {
                scale: scale as f32,
            },
        )
    } else {
        candle_nn::ops::softmax(&(scores * scale)?.broadcast_add(mask)?, D::Minus1)
    }
}

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

    fn bwd(
        &self,
        _scores: &Tensor,
        _mask: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = res.apply_op2_no_bwd(
            &grad_res.contiguous()?,
            &SoftmaxBackward { scale: self.scale },
        )?;
        Ok((Some(grad), None))
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

    /// The fused op gives the composite's probabilities and gradients, with padded keys
    /// masked as the model masks them.
    #[test]
    fn matches_composite_forward_and_backward() {
        let dev = Device::Cpu;
        let (b, h, l) = (2, 3, 5);
        let x = Var::from_vec(values(b * h * l * l, 1, 3.0), (b, h, l, l), &dev).unwrap();
        let mut mask = vec![0f32; b * l];
        mask[l + 3] = f32::MIN; // sequence 1 has two padded keys
        mask[l + 4] = f32::MIN;
        let mask = Tensor::from_vec(mask, (b, 1, 1, l), &dev).unwrap();
        let probe = Tensor::from_vec(values(b * h * l * l, 2, 1.0), (b, h, l, l), &dev).unwrap();
        let scale = 0.125;

        let fast = attention_softmax(x.as_tensor(), &mask, scale).unwrap();
        let slow = candle_nn::ops::softmax(
            &(x.as_tensor() * scale)
                .unwrap()
                .broadcast_add(&mask)
                .unwrap(),
            D::Minus1,
        )
        .unwrap();
        assert!(rel(&fast, &slow) < 1e-6);
        // Padded keys get exactly zero probability.
        let row = fast.get(1).unwrap().get(2).unwrap().get(0).unwrap();
        assert_eq!(&row.to_vec1::<f32>().unwrap()[3..], &[0.0, 0.0]);

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
        assert!(rel(a, b) < 1e-5, "{}", rel(a, b));
    }
}
