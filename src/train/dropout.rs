//! Inverted dropout, as `torch.nn.Dropout` in training mode: each element is zeroed with
//! probability `p` and the others are scaled by `1 / (1 - p)`, so the expected value is
//! unchanged and evaluation needs no rescaling.
//!
//! The mask is a constant tensor multiplied into the graph, so the backward is candle's
//! own `mul` (the gradient passes where the mask kept the element, scaled the same way).
//! It is drawn from the seeded generator of `init.rs` rather than candle's CPU random
//! tensors, which cannot be seeded: the same seed must give the same training run.
//! PyTorch's masks cannot be reproduced, so the parity test trains with `p = 0`.

use candle_core::Tensor;

use crate::error::{Error, Result};
use crate::train::init::NormalRng;

pub struct Dropout {
    p: f64,
    rng: NormalRng,
}

impl Dropout {
    /// `p` in [0, 1); `0` passes every tensor through unchanged.
    pub fn new(p: f64, seed: u64) -> Result<Self> {
        if !(0.0..1.0).contains(&p) {
            return Err(Error::invalid(format!(
                "dropout must be in [0, 1), got {p}"
            )));
        }
        Ok(Self {
            p,
            rng: NormalRng::new(seed),
        })
    }

    /// No dropout: the model as in `eval()` mode.
    pub fn off() -> Self {
        Self {
            p: 0.0,
            rng: NormalRng::new(0),
        }
    }

    pub fn p(&self) -> f64 {
        self.p
    }

    pub fn apply(&mut self, x: &Tensor) -> Result<Tensor> {
        if self.p == 0.0 {
            return Ok(x.clone());
        }
        // Keep an element when 53 uniform bits fall at or above p * 2^53.
        let threshold = (self.p * (1u64 << 53) as f64) as u64;
        let scale = (1.0 / (1.0 - self.p)) as f32;
        let mask: Vec<f32> = (0..x.elem_count())
            .map(|_| {
                if self.rng.next_u64() >> 11 >= threshold {
                    scale
                } else {
                    0.0
                }
            })
            .collect();
        let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
        Ok(x.mul(&mask)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn zeroes_about_p_scales_the_rest_and_passes_the_gradient_through_the_mask() {
        let x = Var::ones((200, 500), candle_core::DType::F32, &Device::Cpu).unwrap();
        let mut dropout = Dropout::new(0.1, 3).unwrap();
        let y = dropout.apply(x.as_tensor()).unwrap();
        let values = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let zeros = values.iter().filter(|v| **v == 0.0).count() as f64 / values.len() as f64;
        assert!((zeros - 0.1).abs() < 0.005, "dropped fraction {zeros}");
        assert!(values
            .iter()
            .all(|v| *v == 0.0 || (*v - 1.0 / 0.9).abs() < 1e-6));
        let grad = y.sum_all().unwrap().backward().unwrap();
        let g = grad
            .get(x.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(g, values, "d(sum y)/dx is the mask itself");
    }

    #[test]
    fn seeded_and_off_is_the_identity() {
        let x = Tensor::ones((50, 50), candle_core::DType::F32, &Device::Cpu).unwrap();
        let draw = |seed| {
            Dropout::new(0.3, seed)
                .unwrap()
                .apply(&x)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        assert_eq!(draw(1), draw(1));
        assert_ne!(draw(1), draw(2));
        let same = Dropout::off().apply(&x).unwrap();
        assert_eq!(
            same.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            vec![1.0; 2500]
        );
        assert!(Dropout::new(1.0, 0).is_err());
        assert!(Dropout::new(-0.1, 0).is_err());
        assert!(Dropout::new(f64::NAN, 0).is_err());
    }
}
