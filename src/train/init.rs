//! A small seeded normal generator for initialising new weights (a classification head,
//! a missing pooler).
//!
//! Written out rather than taken from `rand`: the values for a given seed must stay the
//! same across dependency upgrades (rand's `StdRng` promises no such thing), and a head
//! needs only a few hundred thousand draws. PyTorch's generator cannot be reproduced
//! bit for bit anyway, so the head equals transformers' in distribution
//! (normal(0, initializer_range) weights, zero bias), not in value.

use candle_core::{Device, Tensor};

use crate::error::Result;

/// SplitMix64 for uniform bits, Box-Muller for normal values.
pub struct NormalRng {
    state: u64,
    spare: Option<f64>,
}

impl NormalRng {
    pub fn new(seed: u64) -> Self {
        Self {
            state: seed,
            spare: None,
        }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1]: never 0, so the logarithm below is finite.
    fn next_unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    /// A standard normal value.
    pub fn next_normal(&mut self) -> f64 {
        if let Some(v) = self.spare.take() {
            return v;
        }
        let (u1, u2) = (self.next_unit(), self.next_unit());
        let radius = (-2.0 * u1.ln()).sqrt();
        let angle = 2.0 * std::f64::consts::PI * u2;
        self.spare = Some(radius * angle.sin());
        radius * angle.cos()
    }

    /// An f32 tensor of normal(0, std) values.
    pub fn normal_tensor(&mut self, shape: &[usize], std: f64, device: &Device) -> Result<Tensor> {
        let n = shape.iter().product();
        let values: Vec<f32> = (0..n).map(|_| (self.next_normal() * std) as f32).collect();
        Ok(Tensor::from_vec(values, shape, device)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_values_and_standard_moments() {
        let draw = |seed| {
            let mut rng = NormalRng::new(seed);
            (0..20_000).map(|_| rng.next_normal()).collect::<Vec<_>>()
        };
        let (a, b, c) = (draw(7), draw(7), draw(8));
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mean = a.iter().sum::<f64>() / a.len() as f64;
        let var = a.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / a.len() as f64;
        assert!(mean.abs() < 0.03, "mean {mean}");
        assert!((var - 1.0).abs() < 0.03, "variance {var}");
    }
}
