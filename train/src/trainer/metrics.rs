//! The metrics log: one JSON object per line (`metrics.jsonl`), a training line per step and
//! an evaluation line per evaluation, easy to read back with `jq` or pandas and to plot.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// One optimizer step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    /// 1-based: the number of optimizer steps taken.
    pub step: usize,
    /// Fractional epochs seen.
    pub epoch: f64,
    /// Mean token loss of the step's micro-batches.
    pub loss: f32,
    pub lr: f32,
    /// Global gradient norm before clipping.
    pub grad_norm: f32,
    /// Trained (label) tokens in the step.
    pub tokens: usize,
    /// All tokens (prompt and answer, no padding) processed in the step.
    pub tokens_processed: usize,
    pub seconds: f64,
    /// Of `seconds`, the time spent in collectives (a distributed run: summing the
    /// gradients, sharing ZeRO-1's parameters), waiting for slower ranks included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comm_seconds: Option<f64>,
}

/// One evaluation on the validation set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalMetrics {
    pub step: usize,
    pub val_loss: f32,
    /// `exp(val_loss)`.
    pub val_perplexity: f32,
    /// Fraction of greedy answers equal to the reference, when measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exact_match: Option<f32>,
}

/// A line of `metrics.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MetricsLine {
    Train(StepMetrics),
    Eval(EvalMetrics),
}

impl MetricsLine {
    pub fn step(&self) -> usize {
        match self {
            MetricsLine::Train(m) => m.step,
            MetricsLine::Eval(m) => m.step,
        }
    }
}

/// Appends lines to `metrics.jsonl`, flushing each so a crash loses nothing already logged.
pub struct MetricsLog {
    path: PathBuf,
    file: std::fs::File,
}

impl MetricsLog {
    /// Opens `path` for appending, first dropping lines past `resume_step` (a run resumed from
    /// step N repeats the steps after N, and their old lines would be duplicates). Kept lines
    /// keep their bytes: parsing and re-printing could change the last digit of an f64.
    pub fn open(path: &Path, resume_step: usize) -> Result<MetricsLog> {
        let io = |source| Error::Io { path: path.into(), source };
        if path.exists() {
            let text = std::fs::read_to_string(path).map_err(io)?;
            // A process killed while writing leaves a last line without its newline: dropped.
            let complete = text.rfind('\n').map_or("", |end| &text[..=end]);
            let mut kept = String::with_capacity(text.len());
            for (line, parsed) in parse_lines(complete, path) {
                if parsed?.step() <= resume_step {
                    kept.push_str(line);
                    kept.push('\n');
                }
            }
            if kept != text {
                deltaw_tensor::safetensors::write_atomic(path, kept.as_bytes())?;
            }
        }
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(io)?;
        Ok(MetricsLog { path: path.into(), file })
    }

    pub fn write(&mut self, line: &MetricsLine) -> Result<()> {
        let text = serde_json::to_string(line).expect("metrics serialise") + "\n";
        self.file
            .write_all(text.as_bytes())
            .and_then(|_| self.file.flush())
            .map_err(|source| Error::Io { path: self.path.clone(), source })
    }
}

/// Reads a `metrics.jsonl` (for plots and for resuming).
///
/// # Errors
/// An unreadable file or a line that is not a metrics object (named by line number).
pub fn read_metrics(path: &Path) -> Result<Vec<MetricsLine>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.into(), source })?;
    parse_lines(&text, path).map(|(_, parsed)| parsed).collect()
}

/// Each non-blank line of a metrics file's `text` with its parse; errors name `path` and the
/// line number.
fn parse_lines<'t>(text: &'t str, path: &'t Path) -> impl Iterator<Item = (&'t str, Result<MetricsLine>)> + 't {
    text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()).map(move |(i, l)| {
        let parsed = serde_json::from_str(l).map_err(|e| Error::Record {
            path: path.into(),
            location: crate::Location::Line(i + 1),
            message: e.to_string(),
        });
        (l, parsed)
    })
}
