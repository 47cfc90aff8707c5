//! Gradient clipping by the global L2 norm, as `torch.nn.utils.clip_grad_norm_`.

use crate::error::{Error, Result};

/// Scales all gradients by `max_norm / (norm + 1e-6)` when that is below 1, where `norm`
/// is the L2 norm of all gradients together; returns `norm` (before clipping), which is
/// what transformers' Trainer logs as `grad_norm`. `None` entries (parameters without a
/// gradient) are skipped, as PyTorch skips parameters whose `.grad` is None.
///
/// The sum of squares is accumulated in f64; PyTorch takes f32 norms per tensor, then the
/// norm of those. The two differ by rounding only.
pub fn clip_grad_norm(grads: &mut [Option<Vec<f32>>], max_norm: f64) -> Result<f64> {
    if !(max_norm.is_finite() && max_norm > 0.0) {
        return Err(Error::invalid(format!(
            "max_grad_norm must be a positive number, got {max_norm}"
        )));
    }
    let norm = global_norm(grads);
    if !norm.is_finite() {
        // PyTorch would scale by NaN and ruin every weight; stopping is kinder.
        return Err(Error::invalid(format!(
            "the gradient norm is {norm}: the loss diverged (lower the learning rate?)"
        )));
    }
    // The 1e-6 is PyTorch's: it keeps the division finite for an all-zero gradient.
    let coef = max_norm / (norm + 1e-6);
    if coef < 1.0 {
        let coef = coef as f32;
        for g in grads.iter_mut().flatten() {
            g.iter_mut().for_each(|v| *v *= coef);
        }
    }
    Ok(norm)
}

/// The L2 norm of all gradients together.
pub fn global_norm(grads: &[Option<Vec<f32>>]) -> f64 {
    grads
        .iter()
        .flatten()
        .map(|g| g.iter().map(|&v| v as f64 * v as f64).sum::<f64>())
        .sum::<f64>()
        .sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clips_to_max_norm_by_the_global_norm() {
        // Norm of (3, 4) and (12) is 13.
        let mut grads = vec![Some(vec![3.0f32, 4.0]), None, Some(vec![12.0])];
        let norm = clip_grad_norm(&mut grads, 1.0).unwrap();
        assert_eq!(norm, 13.0);
        let coef = (1.0 / (13.0 + 1e-6)) as f32;
        assert_eq!(grads[0].as_deref(), Some(&[3.0 * coef, 4.0 * coef][..]));
        assert_eq!(grads[2].as_deref(), Some(&[12.0 * coef][..]));
        assert!((global_norm(&grads) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn small_gradients_are_left_alone() {
        let mut grads = vec![Some(vec![0.3f32, 0.4])];
        assert!((clip_grad_norm(&mut grads, 1.0).unwrap() - 0.5).abs() < 1e-7);
        assert_eq!(grads[0].as_deref(), Some(&[0.3f32, 0.4][..]));
        // An all-zero gradient stays zero (no division by zero).
        let mut zeros = vec![Some(vec![0.0f32; 3])];
        assert_eq!(clip_grad_norm(&mut zeros, 1.0).unwrap(), 0.0);
        assert_eq!(zeros[0].as_deref(), Some(&[0.0f32; 3][..]));
    }

    #[test]
    fn bad_max_norm_and_non_finite_gradients_are_errors() {
        let mut grads = vec![Some(vec![1.0f32])];
        assert!(clip_grad_norm(&mut grads, 0.0).is_err());
        assert!(clip_grad_norm(&mut grads, f64::NAN).is_err());
        let mut nan = vec![Some(vec![f32::NAN])];
        assert!(clip_grad_norm(&mut nan, 1.0)
            .unwrap_err()
            .to_string()
            .contains("diverged"));
    }
}
