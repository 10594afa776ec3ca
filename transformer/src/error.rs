//! Errors for everything read from a model folder, each naming the file or tensor.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },

    #[error("{path}: invalid config: {message}")]
    Config { path: PathBuf, message: String },

    #[error("{path}: checkpoint does not fit the model: {problems}")]
    Checkpoint { path: PathBuf, problems: String },

    #[error(transparent)]
    Tensor(#[from] deltaw_tensor::Error),
}

pub type Result<T> = std::result::Result<T, Error>;
