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

    /// An input that does not fit the model: an empty prompt, a prompt longer than the
    /// context, a token id outside the vocabulary, a tokenizer larger than the model's
    /// vocabulary. The message names both numbers and the limit.
    #[error("{0}")]
    Input(String),

    /// A chat template that does not parse, or that refuses a conversation
    /// (`raise_exception`); `origin` names the file or the built-in template.
    #[error("chat template {origin}: {message}")]
    Template { origin: String, message: String },

    #[error(transparent)]
    Tensor(#[from] deltaw_tensor::Error),
}

pub type Result<T> = std::result::Result<T, Error>;
