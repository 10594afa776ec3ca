//! `GpuError`: everything that can go wrong on the GPU side, with messages that say what to do.

use deltaw_shaders::Kernel;

/// An error from the GPU backend.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    /// No adapter matched: lists what was tried and what exists.
    #[error("no GPU adapter found (backends tried: {backends}; adapters seen: {adapters}{filter})")]
    NoAdapter { backends: String, adapters: String, filter: String },
    /// The adapter refused the device (limits or features).
    #[error("could not open a device on adapter {adapter:?}: {message}")]
    RequestDevice { adapter: String, message: String },
    /// A buffer larger than the device allows.
    #[error("cannot allocate a GPU buffer of {bytes} bytes: the limit is {limit} bytes ({which})")]
    AllocationTooLarge { bytes: u64, limit: u64, which: &'static str },
    /// The device was lost (driver reset, `destroy`, out of memory...).
    #[error("the GPU device was lost: {0}")]
    DeviceLost(String),
    /// An f16 kernel on an adapter without SHADER_F16.
    #[error("kernel {kernel:?} needs the SHADER_F16 feature, which adapter {adapter:?} does not have")]
    NeedsF16 { kernel: Kernel, adapter: String },
    /// wgpu reported a validation or out-of-memory error (a bug here, or memory exhausted).
    #[error("wgpu reported an error: {0}")]
    Wgpu(String),
    /// Reading a buffer back failed.
    #[error("reading back a GPU buffer failed: {0}")]
    ReadBack(String),
}
