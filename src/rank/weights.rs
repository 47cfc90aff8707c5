//! The rules every weighted combination shares (fused runs, hybrid signals, fitted
//! weights), in one place so they hold, and read, the same everywhere.

use crate::{Error, Result};

/// Each weight finite and >= 0, and at least one above 0. `weights` are
/// (label, weight); the label names the offending weight in the error.
pub fn check_weights(weights: impl IntoIterator<Item = (String, f64)>) -> Result<()> {
    let mut any = false;
    for (label, w) in weights {
        if !w.is_finite() || w < 0.0 {
            return Err(Error::invalid(format!(
                "weight of {label} is {w}; weights must be finite and >= 0"
            )));
        }
        any |= w > 0.0;
    }
    if !any {
        return Err(Error::invalid("all weights are 0: at least one must count"));
    }
    Ok(())
}

/// Reciprocal rank fusion's constant: finite and >= 0.
pub fn check_rrf_k(k: f64) -> Result<()> {
    if k.is_finite() && k >= 0.0 {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "k must be a finite number >= 0, got {k}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_weight() {
        let err = check_weights([("\"bm25\"".to_string(), -1.0)]).unwrap_err();
        assert!(
            err.to_string().contains("weight of \"bm25\" is -1"),
            "{err}"
        );
        let err = check_weights([("run 0".to_string(), 0.0)]).unwrap_err();
        assert!(err.to_string().contains("all weights are 0"), "{err}");
        assert!(check_weights([("a".to_string(), f64::NAN)]).is_err());
        assert!(check_weights([("a".to_string(), 0.0), ("b".to_string(), 2.0)]).is_ok());
        assert!(check_rrf_k(-1.0).is_err() && check_rrf_k(f64::INFINITY).is_err());
        assert!(check_rrf_k(0.0).is_ok());
    }
}
