//! Parses the user's `device` string. The CPU runs crossrank's own engine (`fast`);
//! "cuda" runs candle's models on the GPU and exists only in builds with the `cuda`
//! cargo feature. Asking for a device this build lacks is an explicit error, never a
//! silent fall-back to the CPU.

use crate::error::{Error, Result};
use candle_core::Device;

pub fn parse_device(name: &str) -> Result<Device> {
    let lower = name.trim().to_ascii_lowercase();
    match lower.as_str() {
        "cpu" => Ok(Device::Cpu),
        "cuda" => cuda(name, 0),
        other if other.starts_with("cuda:") => {
            let ordinal = other["cuda:".len()..].parse::<usize>().map_err(|_| {
                Error::invalid(format!(
                    "device {name:?}: expected \"cuda\" or \"cuda:<index>\""
                ))
            })?;
            cuda(name, ordinal)
        }
        "mps" | "metal" => Err(Error::invalid(format!(
            "device {name:?} is not available: crossrank supports \"cpu\" (and \"cuda\" when \
             built with the `cuda` feature)"
        ))),
        _ => Err(Error::invalid(format!(
            "unknown device {name:?}; expected \"cpu\" or \"cuda[:index]\""
        ))),
    }
}

fn cuda(name: &str, ordinal: usize) -> Result<Device> {
    if !cfg!(feature = "cuda") {
        return Err(Error::invalid(format!(
            "device {name:?} is not available: this build of crossrank has no CUDA support \
             (build from source with the `cuda` cargo feature, e.g. \
             `maturin build --release --features python,cuda`); use device=\"cpu\""
        )));
    }
    Device::new_cuda(ordinal)
        .map_err(|e| Error::invalid(format!("device {name:?} is not available: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(parse_device(" CPU ").unwrap().is_cpu());
        for bad in ["gpu", "cuda:x", "mps"] {
            assert!(
                matches!(parse_device(bad), Err(Error::InvalidArgument(_))),
                "{bad}"
            );
        }
        if !cfg!(feature = "cuda") {
            let err = parse_device("cuda:1").unwrap_err().to_string();
            assert!(err.contains("`cuda` cargo feature"), "{err}");
        }
    }
}
