//! The learning rate schedule: linear warmup from 0, then linear decay to 0, as
//! transformers' `get_linear_schedule_with_warmup`.

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinearSchedule {
    pub base_lr: f64,
    pub warmup_steps: usize,
    pub total_steps: usize,
}

impl LinearSchedule {
    /// `warmup_ratio` of the steps warm up, rounded up, as transformers'
    /// `TrainingArguments.get_warmup_steps` (`ceil(total_steps * warmup_ratio)`).
    pub fn with_warmup_ratio(base_lr: f64, total_steps: usize, warmup_ratio: f64) -> Result<Self> {
        if !(0.0..=1.0).contains(&warmup_ratio) {
            return Err(Error::invalid(format!(
                "warmup_ratio must be in [0, 1], got {warmup_ratio}"
            )));
        }
        if !(base_lr.is_finite() && base_lr >= 0.0) {
            return Err(Error::invalid(format!(
                "learning_rate must be a non-negative number, got {base_lr}"
            )));
        }
        Ok(Self {
            base_lr,
            warmup_steps: (total_steps as f64 * warmup_ratio).ceil() as usize,
            total_steps,
        })
    }

    /// The rate for the optimizer step that follows `steps_done` steps. As in transformers'
    /// Trainer (`optimizer.step()` then `lr_scheduler.step()`), the first step (0) uses
    /// `lambda(0)`, which is 0 when there is a warmup: the first update only fills AdamW's
    /// moments. Past `total_steps` the rate stays 0.
    pub fn lr(&self, steps_done: usize) -> f64 {
        self.base_lr * self.factor(steps_done)
    }

    /// `_get_linear_schedule_with_warmup_lr_lambda`.
    fn factor(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            return step as f64 / self.warmup_steps.max(1) as f64;
        }
        let remaining = self.total_steps as f64 - step as f64;
        let span = self.total_steps.saturating_sub(self.warmup_steps).max(1) as f64;
        (remaining / span).max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_linear_decay() {
        // 10 steps, warmup ceil(10 * 0.25) = 3: 0, 1/3, 2/3, then (10 - s) / 7.
        let s = LinearSchedule::with_warmup_ratio(1e-3, 10, 0.25).unwrap();
        assert_eq!(s.warmup_steps, 3);
        let expected = [
            0.0,
            1.0 / 3.0,
            2.0 / 3.0,
            1.0,
            6.0 / 7.0,
            5.0 / 7.0,
            4.0 / 7.0,
            3.0 / 7.0,
            2.0 / 7.0,
            1.0 / 7.0,
            0.0,
            0.0,
        ];
        for (step, want) in expected.iter().enumerate() {
            assert!((s.lr(step) - 1e-3 * want).abs() < 1e-15, "step {step}");
        }
    }

    #[test]
    fn no_warmup_starts_at_base_rate() {
        let s = LinearSchedule::with_warmup_ratio(2e-5, 4, 0.0).unwrap();
        assert_eq!(s.warmup_steps, 0);
        assert_eq!(s.lr(0), 2e-5);
        assert!((s.lr(1) - 1.5e-5).abs() < 1e-20);
        assert_eq!(s.lr(4), 0.0);
    }

    #[test]
    fn warmup_rounds_up_as_transformers() {
        // 100 * 0.07 = 7.000000000000001 in floating point: Python's math.ceil gives 8 too.
        assert_eq!(
            LinearSchedule::with_warmup_ratio(1.0, 100, 0.07)
                .unwrap()
                .warmup_steps,
            8
        );
        assert_eq!(
            LinearSchedule::with_warmup_ratio(1.0, 7, 0.1)
                .unwrap()
                .warmup_steps,
            1
        );
        assert!(LinearSchedule::with_warmup_ratio(1.0, 7, 1.5).is_err());
        assert!(LinearSchedule::with_warmup_ratio(f64::NAN, 7, 0.1).is_err());
    }
}
