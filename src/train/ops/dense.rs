//! A dense layer `x @ weight^T + bias` over the last dimension, differentiable, as one op.
//!
//! Composed from candle ops (reshape, transpose, matmul, broadcast, add, reshape), its
//! backward pass makes six nodes, each adding into a fresh zero tensor the size of the
//! output; here the backward is the three products a dense layer needs and nothing else.

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::{column_sums, contiguous_f32, fast_path, last_dim, with_values};
use crate::score::cpu::gemm::{matmul, Mat, MatMut, B};

/// `x`: (..., in); `weight`: (out, in); `bias`: (out). Returns (..., out).
pub fn dense(x: &Tensor, weight: &Tensor, bias: &Tensor) -> candle_core::Result<Tensor> {
    let (out_dim, in_dim) = weight.dims2()?;
    if x.dims().last() != Some(&in_dim) || bias.dims() != [out_dim] {
        candle_core::bail!(
            "dense layer: input {:?}, weight {:?}, bias {:?}",
            x.shape(),
            weight.shape(),
            bias.shape()
        );
    }
    if fast_path(&[x, weight, bias]) {
        x.apply_op3(weight, bias, Dense)
    } else {
        let mut dims = x.dims().to_vec();
        let rows = x.elem_count() / in_dim.max(1);
        let y = x
            .reshape((rows, in_dim))?
            .matmul(&weight.t()?)?
            .broadcast_add(bias)?;
        *dims.last_mut().expect("checked above") = out_dim;
        y.reshape(dims)
    }
}

struct Dense;

impl CustomOp3 for Dense {
    fn name(&self) -> &'static str {
        "crossrank-train-dense"
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
        let in_dim = last_dim(l1, self.name())?;
        let out_dim = b.len();
        let rows = x.len() / in_dim;
        // Start from the bias and accumulate the product onto it: one pass fewer.
        let mut y = vec![0f32; rows * out_dim];
        y.par_chunks_mut(out_dim)
            .for_each(|row| row.copy_from_slice(b));
        matmul(
            MatMut::new(&mut y, rows, out_dim),
            Mat::new(x, rows, in_dim),
            Mat::new(w, out_dim, in_dim),
            B::Transposed,
            1.0,
            true,
            rayon::current_num_threads(),
        );
        let mut dims = l1.dims().to_vec();
        *dims.last_mut().expect("last_dim checked it") = out_dim;
        Ok((CpuStorage::F32(y), Shape::from(dims)))
    }

    /// `dx = dy @ weight`, `dweight = dy^T @ x`, `dbias = sum over rows of dy`.
    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _bias: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (out_dim, in_dim) = weight.dims2()?;
        let rows = x.elem_count() / in_dim;
        // Detached: these products need no graph of their own.
        let dy = grad_res.detach().contiguous()?.reshape((rows, out_dim))?;
        let x2 = x.detach().reshape((rows, in_dim))?;
        // candle's matmul reads the transposed operands in place (strided gemm).
        let dx = dy.matmul(&weight.detach())?.reshape(x.shape())?;
        let dw = dy.t()?.matmul(&x2)?;
        let db = with_values(&dy, self.name(), |dy| {
            column_sums(dy, out_dim, |_, row, acc| {
                acc.iter_mut().zip(row).for_each(|(a, &v)| *a += v as f64);
            })
        })?;
        let db: Vec<f32> = db.into_iter().map(|v| v as f32).collect();
        Ok((
            Some(dx),
            Some(dw),
            Some(Tensor::from_vec(db, out_dim, x.device())?),
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
        let (b, l, i, o) = (3, 70, 24, 40); // rows over one chunk of the bias sums
        let x = Var::from_vec(values(b * l * i, 1, 1.0), (b, l, i), &dev).unwrap();
        let w = Var::from_vec(values(o * i, 2, 0.3), (o, i), &dev).unwrap();
        let bias = Var::from_vec(values(o, 3, 0.5), o, &dev).unwrap();
        let probe = Tensor::from_vec(values(b * l * o, 4, 1.0), (b, l, o), &dev).unwrap();

        let fast = dense(x.as_tensor(), w.as_tensor(), bias.as_tensor()).unwrap();
        let slow = x
            .as_tensor()
            .reshape((b * l, i))
            .unwrap()
            .matmul(&w.as_tensor().t().unwrap())
            .unwrap()
            .broadcast_add(bias.as_tensor())
            .unwrap()
            .reshape((b, l, o))
            .unwrap();
        assert_eq!(fast.dims(), &[b, l, o]);
        assert!(rel(&fast, &slow) < 1e-6);

        let g_fast = probe_backward(&fast, &probe);
        let g_slow = probe_backward(&slow, &probe);
        for var in [&x, &w, &bias] {
            let (a, b) = (g_fast.get(var).unwrap(), g_slow.get(var).unwrap());
            assert_eq!(a.dims(), var.dims());
            assert!(rel(a, b) < 1e-5, "{}", rel(a, b));
        }
    }
}
