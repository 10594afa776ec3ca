//! Errors of deltaw-train: everything read from outside (a data file, a model folder) names
//! its file and, for a bad record, the line or record it sits on.

use std::fmt;
use std::path::PathBuf;

/// Where a record sits in its data file, so a message points at what to fix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Location {
    /// A JSONL line, counted from 1 as editors do.
    Line(usize),
    /// An element of a top-level JSON array, counted from 0 as `jq '.[N]'` and Python do.
    Record(usize),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Line(n) => write!(f, "line {n}"),
            Location::Record(n) => write!(f, "record {n}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },

    /// One record is unusable: invalid JSON, a missing field, an unknown role, turns out of order.
    #[error("{path}: {location}: {message}")]
    Record { path: PathBuf, location: Location, message: String },

    /// A JSON array file that does not parse as a whole (serde's message has line and column).
    #[error("{path}: invalid JSON: {message}")]
    Json { path: PathBuf, message: String },

    #[error("{path}: the dataset is empty: {why}")]
    EmptyDataset { path: PathBuf, why: String },

    /// A model folder that does not say what we need (e.g. no end-of-sequence token).
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },

    #[error("invalid options: {0}")]
    Options(String),

    #[error("cannot decode token id {id}: the vocabulary has {vocab_size} ids")]
    TokenId { id: i32, vocab_size: usize },

    /// A checkpoint that cannot be resumed from: incomplete, for other parameters, or made
    /// with settings that would change the run.
    #[error("{path}: {message}")]
    Checkpoint { path: PathBuf, message: String },

    /// Training diverged: nothing was updated at this step, and the newest checkpoint is the
    /// last good state.
    #[error(
        "step {step}: {what}; training stopped. {}",
        checkpoint.as_ref().map_or("No checkpoint was written yet.".to_string(), |c| format!("The last good checkpoint is {c}; lower the learning rate and resume from it."))
    )]
    NonFinite { step: usize, what: String, checkpoint: Option<String> },

    #[error(transparent)]
    Autograd(#[from] deltaw_autograd::Error),

    #[error(transparent)]
    Transformer(#[from] deltaw_transformer::Error),

    #[error(transparent)]
    Tensor(#[from] deltaw_tensor::Error),
}

pub type Result<T> = std::result::Result<T, Error>;
