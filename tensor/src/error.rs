//! Errors for everything that comes from outside the program: files, user data, conversions.
//! API misuse (incompatible shapes, bad dims) panics instead, naming the op and the shapes.

use std::path::PathBuf;

/// What went wrong, naming the file, tensor or argument involved.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: expected {expected} elements for shape {shape}, got {got}")]
    LengthMismatch { what: String, shape: String, expected: usize, got: usize },

    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },

    #[error("{path}: not a valid safetensors file: {message}")]
    Safetensors { path: PathBuf, message: String },

    #[error("{path} (GGUF): {message}")]
    Gguf { path: PathBuf, message: String },

    #[error(
        "{path}: tensor '{tensor}' has dtype {dtype}, which deltaw cannot load (supported: F32, F16, BF16, I32, I64)"
    )]
    UnsupportedDType { path: PathBuf, tensor: String, dtype: String },

    #[error("tensor '{tensor}': {message}")]
    BadTensor { tensor: String, message: String },

    #[error("to_dtype({to}): element {index} = {value} cannot be represented exactly")]
    Conversion { to: String, index: usize, value: f64 },

    /// f32 data that cannot be quantized: not a whole number of blocks, a NaN or an infinity.
    #[error("quantize to {ty}: {message}")]
    Quantize { ty: String, message: String },

    /// The GPU backend failed: no adapter, an allocation over the device's limits, a lost device.
    #[cfg(feature = "gpu")]
    #[error(transparent)]
    Gpu(#[from] crate::gpu::GpuError),
}

pub type Result<T> = std::result::Result<T, Error>;
