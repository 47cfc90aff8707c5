//! Parses the user's `device` string. Only the CPU is built in today; asking for an
//! accelerator is an explicit error rather than a silent fall-back to the CPU.

use crate::error::{Error, Result};
use candle_core::Device;

pub fn parse_device(name: &str) -> Result<Device> {
    match name.trim().to_ascii_lowercase().as_str() {
        "cpu" => Ok(Device::Cpu),
        other if other.starts_with("cuda") || other == "mps" || other.starts_with("metal") => {
            Err(Error::invalid(format!(
                "device {name:?} is not available: this build of crossrank supports only \"cpu\""
            )))
        }
        _ => Err(Error::invalid(format!(
            "unknown device {name:?}; expected \"cpu\""
        ))),
    }
}
