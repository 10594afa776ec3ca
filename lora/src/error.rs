//! Errors from adapter configuration and files, each naming the file, key or module.

use std::path::PathBuf;

/// What can go wrong injecting, loading or saving an adapter.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
    /// `target_modules` matched no linear layer of the model.
    #[error("target modules {targets} match no linear layer; the model has: {available}")]
    NoTarget { targets: String, available: String },
    /// An invalid setting (rank 0, dropout outside [0, 1), a bad pattern...).
    #[error("invalid LoRA config: {0}")]
    Invalid(String),
    /// An adapter file that does not fit the model it is loaded into.
    #[error("{path}: adapter does not fit the model: {message}")]
    Mismatch { path: PathBuf, message: String },
    #[error(transparent)]
    Tensor(#[from] deltaw_tensor::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
