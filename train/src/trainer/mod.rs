//! The trainer: one loop for full fine-tuning, LoRA and pretraining from scratch. It trains
//! whichever parameters it is given (all of a model's, or only LoRA's A and B, the base being
//! frozen), so the same code serves every mode.
//!
//! One optimizer step:
//! 1. for each of `grad_accum` micro-batches: forward in train mode (dropout seeded by
//!    `(seed, micro-batch index)`), loss = mean cross-entropy over the micro-batch's trained
//!    tokens divided by `grad_accum`, backward accumulating into one gradient store;
//! 2. stop with an error if the loss or any gradient is NaN/Inf (nothing is updated, the last
//!    checkpoint stays the newest);
//! 3. clip by global norm, set the learning rate from warmup + cosine, AdamW step;
//! 4. log a metrics line; evaluate and checkpoint when due.
//!
//! Micro-batch `g` of the run is batch `g mod n` of epoch `g / n` in the `(seed, epoch)`
//! shuffle, so where the data stands is a function of the step alone and resuming needs no
//! data-loader state.
//!
//! ```no_run
//! use deltaw_lora::{Lora, LoraConfig};
//! use deltaw_tensor::{Device, Seed};
//! use deltaw_train::data::{DataFormat, HfCodec, PromptTemplate, SftDataset, SftOptions, TextCodec};
//! use deltaw_train::{Trainer, TrainerConfig};
//! use deltaw_transformer::Gpt2;
//!
//! let mut model = Gpt2::from_dir("path/to/gpt2", &Device::Cpu)?;
//! let codec = HfCodec::from_dir("path/to/gpt2")?;
//! let (template, options) = (PromptTemplate::default(), SftOptions::default());
//! let (data, _) = SftDataset::load("train.jsonl", DataFormat::Auto, &codec, &template, &options)?;
//! let (train, val) = data.split(0.05, 42);
//! let mut lora = Lora::inject(&mut model, LoraConfig::new("gpt2"), Seed(0))?; // freezes the base
//! println!("{}", lora.param_count(&model));
//! let config = TrainerConfig { epochs: 3, eval_every: Some(100), ..TrainerConfig::default() };
//! let ids = (codec.eos_id(), codec.eos_id()); // pad id, EOS id
//! let mut trainer = Trainer::new(&model, lora.parameters(), config, "runs/lora", ids)?;
//! let summary = trainer.fit(&train, Some(&val))?;
//! println!("{} steps, last loss {:?}", summary.steps, summary.losses.last());
//! lora.save_peft("runs/lora/adapter", "gpt2", "gpt2")?;
//! println!("{}", lora.merge(&mut model));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod checkpoint;
mod config;
mod eval;
mod metrics;
mod shards;

pub use config::TrainerConfig;
pub use eval::{exact_match, greedy_answer, prompt_and_answer};
pub(crate) use eval::{target_count, validation_loss};
pub use metrics::{read_metrics, EvalMetrics, MetricsLine, MetricsLog, StepMetrics};

use crate::data::{collate, SftDataset};
use crate::distributed::{all_reduce_grads, broadcast_params, Collective, DistConfig, Distributed};
use crate::error::{Error, Result};
use deltaw_autograd::{train_mode, AdamW, AdamWConfig, Grads, Optimizer, ParamGroup, Var};
use deltaw_tensor::Seed;
use deltaw_transformer::{causal_lm_loss, CausalLm};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// What a run did.
#[derive(Clone, Debug)]
pub struct TrainSummary {
    /// Steps taken by the whole run so far (including those before a resume).
    pub steps: usize,
    /// The loss of every step taken in this invocation.
    pub losses: Vec<f32>,
    pub last_eval: Option<EvalMetrics>,
    pub last_checkpoint: Option<PathBuf>,
    /// Tokens (prompt + answer) per second of training in this invocation.
    pub tokens_per_second: f64,
    pub seconds: f64,
    /// True when the run ended early (interrupt or `stop_after`) and can be resumed.
    pub interrupted: bool,
}

/// Trains `params` of a causal language model on SFT samples.
pub struct Trainer<'m> {
    model: &'m dyn CausalLm,
    params: Vec<Var>,
    opt: AdamW,
    config: TrainerConfig,
    out_dir: PathBuf,
    step: usize,
    pad_id: i32,
    eos_id: i32,
    interrupt: Option<Arc<AtomicBool>>,
    last_checkpoint: Option<PathBuf>,
    /// The current epoch's sample order, keyed by (epoch, samples): built once an epoch rather
    /// than once a step (the order depends on nothing else).
    order: Option<((usize, usize), Vec<usize>)>,
    /// Data-parallel over several ranks ([`Trainer::distributed`]); `None` in one process.
    dist: Option<Distributed>,
}

impl<'m> Trainer<'m> {
    /// A trainer of `params` (named, requiring grad) writing to `out_dir` (`metrics.jsonl`,
    /// `checkpoints/`). Padding uses `pad_id`; exact match stops generation at `eos_id`.
    ///
    /// # Errors
    /// Invalid settings, or a parameter that is unnamed or frozen.
    pub fn new(
        model: &'m dyn CausalLm,
        params: Vec<Var>,
        config: TrainerConfig,
        out_dir: impl AsRef<Path>,
        (pad_id, eos_id): (i32, i32),
    ) -> Result<Trainer<'m>> {
        config.validate()?;
        if params.is_empty() {
            return Err(Error::Options("there is nothing to train: no parameters".into()));
        }
        if let Some(p) = params.iter().find(|p| p.name().is_none() || !p.requires_grad()) {
            return Err(Error::Options(format!("parameter {p:?} must be named and require grad")));
        }
        let opt = adamw(&params, &config);
        let out_dir = out_dir.as_ref().to_path_buf();
        Ok(Trainer {
            model,
            params,
            opt,
            config,
            out_dir,
            step: 0,
            pad_id,
            eos_id,
            interrupt: None,
            last_checkpoint: None,
            order: None,
            dist: None,
        })
    }

    /// Trains over the ranks of `comm` (see [`crate::distributed`]): this rank runs its share
    /// of each step's `grad_accum` micro-batches, gradients are summed over the ranks, and with
    /// ZeRO-1 this rank's optimizer keeps and steps only its shard of the parameters. Only rank
    /// 0 evaluates and writes metrics, progress and checkpoints (with every rank's optimizer
    /// shard).
    ///
    /// # Errors
    /// `grad_accum` not a multiple of the number of ranks, an empty bucket, or a trainable
    /// parameter that is not f32.
    pub fn distributed(mut self, comm: Box<dyn Collective>, config: DistConfig) -> Result<Self> {
        let dist = Distributed::new(comm, config, &self.params, self.config.grad_accum)?;
        if dist.config.zero1 {
            // The shard's optimizer takes over any state already restored (a resume before).
            let shard = &self.params[dist.shard.clone()];
            let mut opt = adamw(shard, &self.config);
            for p in shard {
                if let Some((step, m, v)) = self.opt.state_of(p) {
                    opt.set_state(p, step, m, v);
                }
            }
            self.opt = opt;
        }
        self.dist = Some(dist);
        Ok(self)
    }

    /// True in a single process and on rank 0 of a distributed run: the rank that reports.
    pub fn is_root(&self) -> bool {
        self.dist.as_ref().is_none_or(|d| d.rank() == 0)
    }

    /// Bytes of optimizer state this process holds (with ZeRO-1, this rank's shard).
    pub fn optimizer_bytes(&self) -> usize {
        self.opt.state_bytes()
    }

    /// Ends the run after the current step (with a checkpoint) once `flag` is set, e.g. by a
    /// Ctrl-C handler.
    pub fn with_interrupt(mut self, flag: Arc<AtomicBool>) -> Self {
        self.interrupt = Some(flag);
        self
    }

    /// Optimizer steps taken so far.
    pub fn step(&self) -> usize {
        self.step
    }

    fn checkpoint_root(&self) -> PathBuf {
        self.out_dir.join("checkpoints")
    }

    /// Continues from the newest checkpoint in `out_dir`, if there is one; returns its step.
    ///
    /// # Errors
    /// An incomplete or unreadable checkpoint, one for other parameters, or different
    /// settings (which would not reproduce the original run).
    pub fn resume(&mut self) -> Result<Option<usize>> {
        let Some(dir) = checkpoint::latest(&self.checkpoint_root())? else { return Ok(None) };
        let wanted = self.dist.as_ref().map_or(0..self.params.len(), |d| d.shard.clone());
        self.step = checkpoint::load(&dir, (&self.params, &mut self.opt), &self.config, wanted)?;
        self.last_checkpoint = Some(dir);
        Ok(Some(self.step))
    }

    /// Writes a checkpoint of the current step now (in a distributed run, every rank must call
    /// it at the same step).
    pub fn save_checkpoint(&mut self) -> Result<PathBuf> {
        let (root, state) = (self.checkpoint_root(), (self.params.as_slice(), &self.opt));
        let dir = match &self.dist {
            None => checkpoint::save(&root, self.step, state, &self.config, (&[], 1))?,
            Some(d) => shards::save(&root, self.step, state, &self.config, d)?,
        };
        self.last_checkpoint = Some(dir.clone());
        Ok(dir)
    }

    /// Validation loss, perplexity and exact match now.
    pub fn evaluate(&self, val: &SftDataset) -> Result<EvalMetrics> {
        let ids = (self.pad_id, self.eos_id);
        eval::evaluate(self.model, val, self.step, self.config.batch_size, ids, self.config.exact_match_samples)
    }

    /// Trains until the run's last step (or `stop_after`, or an interrupt), evaluating and
    /// checkpointing when due and at the end.
    ///
    /// # Errors
    /// An empty training set, a NaN/Inf loss or gradient (the message names the step and the
    /// last good checkpoint), or a file that cannot be written.
    pub fn fit(&mut self, train: &SftDataset, val: Option<&SftDataset>) -> Result<TrainSummary> {
        if train.is_empty() {
            return Err(Error::Options("the training set is empty".into()));
        }
        std::fs::create_dir_all(&self.out_dir).map_err(|source| Error::Io { path: self.out_dir.clone(), source })?;
        let root = self.is_root();
        let mut log = root.then(|| MetricsLog::open(&self.out_dir.join("metrics.jsonl"), self.step)).transpose()?;
        let n_batches = train.len().div_ceil(self.config.batch_size);
        let total = self.config.total_steps(n_batches);
        let end = self.config.stop_after.map_or(total, |s| s.min(total));
        let bar = progress_bar(self.config.progress && root, self.step, total);
        let (start, mut tokens, mut summary) = (Instant::now(), 0usize, TrainSummary::new());
        while self.step < end {
            let m = self.train_step(train, n_batches, total)?;
            tokens += m.tokens_processed;
            summary.losses.push(m.loss);
            bar.set_position(self.step as u64);
            bar.set_message(format!("loss {:.4} lr {:.2e}", m.loss, m.lr));
            log.as_mut().map(|log| log.write(&MetricsLine::Train(m))).transpose()?;
            let mut interrupted = self.interrupt.as_ref().is_some_and(|f| f.load(Ordering::Relaxed));
            if let Some(d) = &self.dist {
                interrupted = d.any(interrupted, self.step);
            }
            let last = self.step == end || interrupted;
            if let Some(val) = val.filter(|_| root && (due(self.config.eval_every, self.step) || last)) {
                let e = self.evaluate(val)?;
                bar.println(format!("step {}: val loss {:.4}, perplexity {:.2}", e.step, e.val_loss, e.val_perplexity));
                log.as_mut().map(|log| log.write(&MetricsLine::Eval(e.clone()))).transpose()?;
                summary.last_eval = Some(e);
            }
            if due(self.config.save_every, self.step) || last {
                self.save_checkpoint()?;
            }
            if interrupted {
                summary.interrupted = true;
                break;
            }
        }
        bar.finish_and_clear();
        summary.interrupted |= self.step < total;
        summary.steps = self.step;
        summary.seconds = start.elapsed().as_secs_f64();
        summary.tokens_per_second = tokens as f64 / summary.seconds.max(1e-9);
        summary.last_checkpoint = self.last_checkpoint.clone();
        Ok(summary)
    }

    /// One optimizer step over `grad_accum` micro-batches (this rank's share of them, their
    /// gradients then summed over the ranks, in a distributed run).
    fn train_step(&mut self, train: &SftDataset, n_batches: usize, total: usize) -> Result<StepMetrics> {
        let started = Instant::now();
        let accum = self.config.grad_accum;
        let mut grads = Grads::new();
        let mut local = LocalStep::default();
        let micro_batches = self.dist.as_ref().map_or(0..accum, |d| d.local_micro_batches(accum));
        for micro in micro_batches {
            let g = self.step * accum + micro; // the run's micro-batch index
            let value = self.micro_batch(train, n_batches, g, &mut grads, &mut local)?;
            if !value.is_finite() {
                // Alone, stop now; distributed, the other ranks must learn it in the sum below.
                local.bad_loss.get_or_insert(value);
                if self.dist.is_none() {
                    break;
                }
            }
            local.loss_sum += value / accum as f32;
        }
        let mut comm = self.dist.as_ref().map(|_| 0.0);
        if let Some(d) = &self.dist {
            let started = Instant::now();
            local.reduce(d, self.step + 1);
            all_reduce_grads(d.comm.as_ref(), &self.params, &mut grads, d.config.bucket_elems, self.step + 1)?;
            comm = Some(started.elapsed().as_secs_f64());
        }
        if let Some(value) = local.bad_loss.or((!local.loss_sum.is_finite()).then_some(local.loss_sum)) {
            return Err(self.non_finite(format!("the loss is {value}")));
        }
        let grad_norm = match self.config.max_grad_norm {
            Some(max) => grads.clip_global_norm(max), // no change when the norm is not finite
            None => grads.global_norm(),
        };
        // A finite norm means every gradient is finite; only a non-finite one needs the check
        // (it may be finite gradients whose squares overflow).
        if !grad_norm.is_finite() && !grads.all_finite() {
            return Err(self.non_finite("a gradient is NaN or infinite".into()));
        }
        let lr = self.config.schedule(total).lr_at(self.config.lr, self.step);
        self.opt.set_lr(lr);
        self.opt.step(&grads);
        if let Some(d) = self.dist.as_ref().filter(|d| d.config.zero1) {
            let started = Instant::now();
            broadcast_params(d.comm.as_ref(), &self.params, &d.shards, d.config.bucket_elems, self.step + 1)?;
            comm = comm.map(|c| c + started.elapsed().as_secs_f64());
        }
        self.step += 1;
        Ok(StepMetrics {
            step: self.step,
            epoch: (self.step * accum) as f64 / n_batches as f64,
            loss: local.loss_sum,
            lr,
            grad_norm,
            tokens: local.tokens,
            tokens_processed: local.processed,
            seconds: started.elapsed().as_secs_f64(),
            comm_seconds: comm,
        })
    }

    /// Forward and backward of the run's micro-batch `g`, its gradients (of the loss over
    /// `grad_accum`) added to `grads`; returns the unscaled loss.
    fn micro_batch(
        &mut self,
        train: &SftDataset,
        n_batches: usize,
        g: usize,
        grads: &mut Grads,
        local: &mut LocalStep,
    ) -> Result<f32> {
        let (epoch, index) = (g / n_batches, g % n_batches);
        let key = (epoch, train.len());
        if self.order.as_ref().is_none_or(|(k, _)| *k != key) {
            self.order = Some((key, train.epoch_order(Some(self.config.seed), epoch)));
        }
        let order = &self.order.as_ref().expect("the order was just built").1;
        let samples = train.batch_of(order, self.config.batch_size, index);
        local.tokens += eval::target_count(&samples);
        local.processed += samples.iter().map(|s| s.len()).sum::<usize>();
        let batch = collate(&samples, self.pad_id, &self.model.device())?;
        let dropout_seed = Seed(self.config.seed).derive(g as u64).0;
        let (model, scale) = (self.model, 1.0 / self.config.grad_accum as f32);
        // Forward and backward on a worker of the CPU pool, the others kept awake for a model
        // on the CPU (`cpu::on_pool_for`): their hundreds of parallel kernels then split their
        // work there instead of each handing it over from this thread and sleeping until it
        // is done, and idle workers wait in user space, not in the kernel's scheduler.
        deltaw_tensor::cpu::on_pool_for(&model.device(), || {
            let loss = train_mode(dropout_seed, || {
                let logits = model.output(&batch.input_ids, Some(&batch.attention_mask));
                causal_lm_loss(&logits, &batch.labels)
            });
            let value = loss.value().to_vec()[0];
            if value.is_finite() {
                loss.mul_scalar(scale).backward_accumulate(grads)?;
            }
            Ok(value)
        })
    }

    fn non_finite(&self, what: String) -> Error {
        let checkpoint = self.last_checkpoint.as_ref().map(|p| p.display().to_string());
        Error::NonFinite { step: self.step + 1, what, checkpoint }
    }
}

/// What one rank's micro-batches of a step added up to.
#[derive(Default)]
struct LocalStep {
    /// `Σ loss / grad_accum` over the micro-batches run here (the step's loss once summed
    /// over the ranks).
    loss_sum: f32,
    tokens: usize,
    processed: usize,
    /// The first non-finite loss seen.
    bad_loss: Option<f32>,
}

impl LocalStep {
    /// Sums the step's figures over the ranks. The loss is summed as f32, as one process adds
    /// its micro-batches' terms (the same bits with two ranks); a rank's non-finite loss makes
    /// the sum non-finite everywhere.
    fn reduce(&mut self, d: &Distributed, step: usize) {
        let mut loss = [0.0];
        d.comm.all_reduce_sum_f32(
            &[self.bad_loss.unwrap_or(self.loss_sum)],
            &mut loss,
            &format!("the loss of step {step}"),
        );
        let mut counts = [self.tokens as u64, self.processed as u64];
        d.comm.all_reduce_sum_u64(&mut counts, &format!("the token counts of step {step}"));
        (self.loss_sum, self.tokens, self.processed) = (loss[0], counts[0] as usize, counts[1] as usize);
        self.bad_loss = None; // now in the sum, on every rank
    }
}

/// AdamW over `params` with the run's learning rate and weight decay (none on biases and
/// norms).
fn adamw(params: &[Var], config: &TrainerConfig) -> AdamW {
    let adam = AdamWConfig { lr: config.lr, weight_decay: config.weight_decay, ..Default::default() };
    AdamW::with_groups(ParamGroup::decay_by_rank(params, config.weight_decay), adam)
}

impl TrainSummary {
    fn new() -> TrainSummary {
        TrainSummary {
            steps: 0,
            losses: Vec::new(),
            last_eval: None,
            last_checkpoint: None,
            tokens_per_second: 0.0,
            seconds: 0.0,
            interrupted: false,
        }
    }
}

fn due(every: Option<usize>, step: usize) -> bool {
    every.is_some_and(|n| step.is_multiple_of(n))
}

/// A progress bar on stderr when it is a terminal and `enabled`; hidden otherwise.
fn progress_bar(enabled: bool, position: usize, total: usize) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !enabled || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total as u64).with_position(position as u64);
    let style =
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} steps [{elapsed_precise}<{eta_precise}] {msg}")
            .expect("a valid template");
    bar.set_style(style);
    bar
}
