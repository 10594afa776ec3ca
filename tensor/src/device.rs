//! Where a tensor's data lives and where its kernels run.

use std::fmt;

/// A compute device. Every tensor op runs on the device of its inputs; mixing devices in one
/// op is API misuse and panics naming both.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Device {
    /// Host memory; kernels run on all cores with rayon.
    Cpu,
}

impl Device {
    pub fn is_cpu(&self) -> bool {
        matches!(self, Device::Cpu)
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
        }
    }
}
