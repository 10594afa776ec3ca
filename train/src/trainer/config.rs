//! The trainer's settings, with defaults suited to fine-tuning a small model.

use crate::error::{Error, Result};
use deltaw_autograd::LrSchedule;
use serde::{Deserialize, Serialize};

/// How to train. The learning-rate schedule is linear warmup then cosine decay to
/// `lr · min_lr_ratio` over the whole run (`epochs` or `max_steps`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainerConfig {
    /// Passes over the training set (ignored when `max_steps` is set).
    pub epochs: usize,
    /// Optimizer steps for the whole run; `None` means `epochs` worth.
    pub max_steps: Option<usize>,
    /// Samples per micro-batch (one forward/backward).
    pub batch_size: usize,
    /// Micro-batches per optimizer step: the effective batch is `batch_size · grad_accum`.
    pub grad_accum: usize,
    /// Peak learning rate of AdamW.
    pub lr: f32,
    /// Decoupled weight decay on matrices (none on biases, norms and 1-D parameters).
    pub weight_decay: f32,
    /// Linear warmup steps, as a fraction of the run's steps.
    pub warmup_ratio: f32,
    /// The cosine floor, as a fraction of `lr`.
    pub min_lr_ratio: f32,
    /// Clip the gradients' global L2 norm to this (PyTorch's `clip_grad_norm_`).
    pub max_grad_norm: Option<f32>,
    /// Evaluate on the validation set every this many steps (and at the end).
    pub eval_every: Option<usize>,
    /// Write a checkpoint every this many steps (and at the end).
    pub save_every: Option<usize>,
    /// Greedy-generate answers for up to this many validation samples at each evaluation and
    /// report the fraction that equals the reference exactly (0 turns it off).
    pub exact_match_samples: usize,
    /// Seeds the shuffling and dropout: the same seed, data and config give the same run.
    pub seed: u64,
    /// End this invocation after this many steps in total, while the schedule still spans
    /// the whole run; `--resume` continues from the last checkpoint (time-boxed runs).
    pub stop_after: Option<usize>,
    /// Draw a progress bar on a terminal.
    pub progress: bool,
}

impl Default for TrainerConfig {
    fn default() -> Self {
        TrainerConfig {
            epochs: 1,
            max_steps: None,
            batch_size: 8,
            grad_accum: 1,
            lr: 2e-4,
            weight_decay: 0.0,
            warmup_ratio: 0.03,
            min_lr_ratio: 0.0,
            max_grad_norm: Some(1.0),
            eval_every: None,
            save_every: None,
            exact_match_samples: 0,
            seed: 42,
            stop_after: None,
            progress: true,
        }
    }
}

impl TrainerConfig {
    /// Rejects settings that cannot run.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::Options(m.into()));
        if self.batch_size == 0 || self.grad_accum == 0 {
            return bad("batch_size and grad_accum must be at least 1");
        }
        if self.max_steps.is_none() && self.epochs == 0 {
            return bad("epochs must be at least 1 (or give max_steps)");
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad("lr must be a positive number");
        }
        if !(0.0..1.0).contains(&self.warmup_ratio) {
            return bad("warmup_ratio must be in [0, 1)");
        }
        if self.eval_every == Some(0) || self.save_every == Some(0) {
            return bad("eval_every and save_every must be at least 1");
        }
        Ok(())
    }

    /// Optimizer steps in the run, for `n_batches` micro-batches per epoch.
    pub fn total_steps(&self, n_batches: usize) -> usize {
        self.max_steps.unwrap_or_else(|| (self.epochs * n_batches).div_ceil(self.grad_accum)).max(1)
    }

    /// Warmup then cosine over `total` steps.
    pub fn schedule(&self, total: usize) -> LrSchedule {
        let warmup = (self.warmup_ratio * total as f32).ceil() as usize;
        LrSchedule::WarmupCosine { warmup, total, min_ratio: self.min_lr_ratio }
    }
}
