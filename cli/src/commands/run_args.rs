//! What the training commands (`train`, `sft`) share: the options of a run (its length,
//! evaluation, checkpoints, resuming, the output folder), the Ctrl-C flag, and the step that
//! trains and reports. Each command keeps its own optimizer defaults ([`Optim`]): pretraining
//! from scratch and fine-tuning want different learning rates, batches and weight decay.

use super::plot::plot_run;
use super::ranks::DistArgs;
use anyhow::Result;
use clap::Args;
use deltaw_train::data::SftDataset;
use deltaw_train::{Trainer, TrainerConfig};
use std::io::Write;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The options of a training run that mean the same in every command.
#[derive(Args)]
pub struct RunArgs {
    #[arg(long, default_value_t = 1)]
    pub epochs: usize,
    /// Optimizer steps for the whole run (overrides --epochs).
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// Micro-batches per optimizer step (their gradients are summed).
    #[arg(long, default_value_t = 1)]
    pub grad_accum: usize,
    /// Clip the gradient norm (0 turns clipping off).
    #[arg(long, default_value_t = 1.0)]
    pub max_grad_norm: f32,
    /// Evaluate on the validation set every N steps (and at the end).
    #[arg(long)]
    pub eval_every: Option<usize>,
    /// Write a checkpoint every N steps (and at the end; the two newest are kept).
    #[arg(long)]
    pub save_every: Option<usize>,
    /// Seeds the initial weights (of the model or the adapter), the split, the shuffling and dropout.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Stop this invocation after this many steps in total (the schedule still spans the whole
    /// run); continue later with --resume. For time-boxed sessions.
    #[arg(long)]
    pub stop_after: Option<usize>,
    /// Output folder: metrics.jsonl, loss.png, checkpoints/, then model/ or adapter/.
    #[arg(long)]
    pub out: PathBuf,
    /// Continue the run in --out from its last checkpoint.
    #[arg(long, conflicts_with = "overwrite")]
    pub resume: bool,
    /// Keep only each layer's input from the forward and run the layer again in backward:
    /// about a third more compute for the activation memory of one layer instead of all of
    /// them (QLoRA runs use it). Gradients are unchanged.
    #[arg(long)]
    pub gradient_checkpointing: bool,
    /// Replace deltaw's outputs in a non-empty --out.
    #[arg(long)]
    pub overwrite: bool,
    #[command(flatten)]
    pub dist: DistArgs,
}

/// A command's defaults for [`Optim`], written as `--help` shows them.
pub trait OptimDefaults {
    const LR: &'static str;
    const BATCH_SIZE: &'static str;
    const WEIGHT_DECAY: &'static str;
    const WARMUP_RATIO: &'static str;
}

/// The optimizer options whose defaults differ between commands (`D` names them): pretraining
/// from scratch and fine-tuning want different learning rates, batches and weight decay.
#[derive(Args)]
pub struct Optim<D: OptimDefaults> {
    #[arg(long, default_value = D::LR)]
    pub lr: f32,
    #[arg(long, default_value = D::BATCH_SIZE)]
    pub batch_size: usize,
    #[arg(long, default_value = D::WEIGHT_DECAY)]
    pub weight_decay: f32,
    #[arg(long, default_value = D::WARMUP_RATIO)]
    pub warmup_ratio: f32,
    #[arg(skip)]
    defaults: PhantomData<D>,
}

impl RunArgs {
    /// The trainer's configuration: these options, the command's `optim`, and the exact-match
    /// sample count (0 for none).
    pub fn trainer_config<D: OptimDefaults>(&self, optim: &Optim<D>, exact_match_samples: usize) -> TrainerConfig {
        TrainerConfig {
            epochs: self.epochs,
            max_steps: self.max_steps,
            batch_size: optim.batch_size,
            grad_accum: self.grad_accum,
            lr: optim.lr,
            weight_decay: optim.weight_decay,
            warmup_ratio: optim.warmup_ratio,
            max_grad_norm: (self.max_grad_norm > 0.0).then_some(self.max_grad_norm),
            eval_every: self.eval_every,
            save_every: self.save_every,
            exact_match_samples,
            seed: self.seed,
            stop_after: self.stop_after,
            ..TrainerConfig::default()
        }
    }
}

/// A flag set by Ctrl-C: the trainer finishes its step, writes a checkpoint and stops.
pub fn interrupt_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let handler = flag.clone();
    // A second handler cannot be installed (tests run several commands in one process):
    // then Ctrl-C keeps its default meaning.
    ctrlc::set_handler(move || {
        if handler.swap(true, Ordering::Relaxed) {
            std::process::exit(130); // a second Ctrl-C: stop now
        }
        eprintln!("\ninterrupted: finishing this step and writing a checkpoint (Ctrl-C again to quit now)");
    })
    .ok();
    flag
}

/// Resumes from `out_dir`'s last checkpoint when asked, trains, draws `out_dir/loss.png`, and
/// prints the summary; true when the run stopped early (Ctrl-C or `stop_after`) and said how
/// to continue.
pub fn fit_and_report(
    trainer: &mut Trainer<'_>,
    resume: bool,
    out_dir: &Path,
    (train, val): (&SftDataset, Option<&SftDataset>),
    out: &mut impl Write,
) -> Result<bool> {
    if resume {
        match trainer.resume()? {
            Some(step) => writeln!(out, "resuming from step {step}")?,
            None => writeln!(out, "no checkpoint in {} yet: starting from step 0", out_dir.display())?,
        }
    }
    let summary = trainer.fit(train, val)?;
    if trainer.is_root() {
        plot_run(out_dir);
    }
    writeln!(
        out,
        "{} steps, final loss {:.4}, {:.0} tokens/s, {:.1} s",
        summary.steps,
        summary.losses.last().copied().unwrap_or(f32::NAN),
        summary.tokens_per_second,
        summary.seconds
    )?;
    if let Some(e) = &summary.last_eval {
        let em = e.exact_match.map(|x| format!(", exact match {:.1}%", 100.0 * x)).unwrap_or_default();
        writeln!(out, "validation: loss {:.4}, perplexity {:.2}{em}", e.val_loss, e.val_perplexity)?;
    }
    if summary.interrupted {
        let at = summary.last_checkpoint.map(|p| p.display().to_string()).unwrap_or_default();
        writeln!(out, "stopped early; checkpoint {at}. Continue with the same command plus --resume")?;
    }
    Ok(summary.interrupted)
}
