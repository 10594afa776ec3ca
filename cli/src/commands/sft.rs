//! `deltaw sft`: supervised fine-tuning of a GPT-2 folder on `<input, output>` data, with LoRA
//! (the default) or fully, then the adapter (PEFT format) or the model folder written out.

use super::{check_model_dir, outdir};
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use deltaw_lora::{Lora, LoraConfig, TargetModules};
use deltaw_tensor::{Device, Seed};
use deltaw_train::data::{DataFormat, LoadReport, PromptTemplate, SftDataset, SftOptions, TextCodec};
use deltaw_train::{HfCodec, Trainer, TrainerConfig};
use deltaw_transformer::Gpt2;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// `--format` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// Decide per record from its keys.
    Auto,
    /// `instruction`, `input`, `output`, optional `system`.
    Alpaca,
    /// `conversations` (`from`/`value`) or `messages` (`role`/`content`).
    Sharegpt,
}

/// How a data file becomes samples (shared with `inspect-data`).
#[derive(Args)]
pub struct DataArgs {
    /// Training data: a JSON array or JSONL file of Alpaca or ShareGPT records.
    #[arg(long)]
    pub data: PathBuf,
    #[arg(long, value_enum, default_value_t = FormatArg::Auto)]
    pub format: FormatArg,
    /// Keep the first N tokens of each sample.
    #[arg(long)]
    pub cutoff_len: Option<usize>,
    /// Train on the prompt tokens too.
    #[arg(long)]
    pub train_on_prompt: bool,
    /// In multi-turn samples, train only on the last assistant turn.
    #[arg(long)]
    pub mask_history: bool,
    /// Skip unreadable records (and report how many) instead of stopping at the first.
    #[arg(long)]
    pub skip_bad_lines: bool,
    /// A JSON file with the prompt template's fields (`system`, `user`, `assistant`,
    /// `alpaca_input`); unspecified ones keep the default Alpaca template.
    #[arg(long)]
    pub template: Option<PathBuf>,
}

impl DataArgs {
    fn options(&self) -> SftOptions {
        SftOptions {
            train_on_prompt: self.train_on_prompt,
            mask_history: self.mask_history,
            cutoff_len: self.cutoff_len,
            skip_bad_lines: self.skip_bad_lines,
        }
    }

    fn template(&self) -> Result<PromptTemplate> {
        let Some(path) = &self.template else { return Ok(PromptTemplate::default()) };
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{}: not a prompt template", path.display()))
    }

    /// Loads `path` with these options.
    pub fn load(&self, path: &Path, codec: &dyn TextCodec) -> Result<(SftDataset, LoadReport)> {
        let format = match self.format {
            FormatArg::Auto => DataFormat::Auto,
            FormatArg::Alpaca => DataFormat::Alpaca,
            FormatArg::Sharegpt => DataFormat::ShareGpt,
        };
        Ok(SftDataset::load(path, format, codec, &self.template()?, &self.options())?)
    }
}

#[derive(Args)]
pub struct SftArgs {
    /// A GPT-2 model folder (config.json, model.safetensors, tokenizer.json).
    #[arg(long)]
    pub model: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
    /// A validation file (same format as --data).
    #[arg(long, conflicts_with = "val_split")]
    pub val: Option<PathBuf>,
    /// Hold out this fraction of --data for validation (seeded).
    #[arg(long)]
    pub val_split: Option<f64>,
    /// Train every parameter instead of a LoRA adapter.
    #[arg(long, conflicts_with_all = ["lora_r", "lora_alpha", "lora_dropout", "target", "rslora"])]
    pub full: bool,
    /// LoRA rank r.
    #[arg(long, default_value_t = 8)]
    pub lora_r: usize,
    /// LoRA alpha (scaling = alpha / r).
    #[arg(long, default_value_t = 16.0)]
    pub lora_alpha: f32,
    #[arg(long, default_value_t = 0.05)]
    pub lora_dropout: f32,
    /// Target modules: names (`c_attn,c_proj`), `all-linear`, or `re:<regex>`. Default: PEFT's.
    #[arg(long)]
    pub target: Option<String>,
    /// Rank-stabilised scaling alpha / sqrt(r).
    #[arg(long)]
    pub rslora: bool,
    #[arg(long, default_value_t = 1)]
    pub epochs: usize,
    /// Optimizer steps for the whole run (overrides --epochs).
    #[arg(long)]
    pub max_steps: Option<usize>,
    #[arg(long, default_value_t = 2e-4)]
    pub lr: f32,
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 1)]
    pub grad_accum: usize,
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f32,
    #[arg(long, default_value_t = 0.03)]
    pub warmup_ratio: f32,
    /// Clip the gradient norm (0 turns clipping off).
    #[arg(long, default_value_t = 1.0)]
    pub max_grad_norm: f32,
    #[arg(long)]
    pub eval_every: Option<usize>,
    #[arg(long)]
    pub save_every: Option<usize>,
    /// Greedy exact-match accuracy on this many validation samples at each evaluation.
    #[arg(long, default_value_t = 0)]
    pub exact_match: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Output folder: metrics.jsonl, checkpoints/, then adapter/ (LoRA) or model/ (--full).
    #[arg(long)]
    pub out: PathBuf,
    /// Continue the run in --out from its last checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Replace deltaw's outputs in a non-empty --out.
    #[arg(long)]
    pub overwrite: bool,
}

impl SftArgs {
    fn trainer_config(&self) -> TrainerConfig {
        TrainerConfig {
            epochs: self.epochs,
            max_steps: self.max_steps,
            batch_size: self.batch_size,
            grad_accum: self.grad_accum,
            lr: self.lr,
            weight_decay: self.weight_decay,
            warmup_ratio: self.warmup_ratio,
            max_grad_norm: (self.max_grad_norm > 0.0).then_some(self.max_grad_norm),
            eval_every: self.eval_every,
            save_every: self.save_every,
            exact_match_samples: self.exact_match,
            seed: self.seed,
            ..TrainerConfig::default()
        }
    }

    fn lora_config(&self) -> LoraConfig {
        let target = self.target.as_deref().map_or_else(|| TargetModules::default_for("gpt2"), TargetModules::parse);
        LoraConfig {
            r: self.lora_r,
            lora_alpha: self.lora_alpha,
            lora_dropout: self.lora_dropout,
            target_modules: target,
            use_rslora: self.rslora,
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

pub fn run(args: &SftArgs, device: &Device, out: &mut impl Write) -> Result<()> {
    check_model_dir(&args.model)?;
    if let Some(f) = args.val_split.filter(|f| !(0.0..1.0).contains(f)) {
        bail!("--val-split {f} must be in [0, 1)");
    }
    outdir::prepare(&args.out, args.overwrite, args.resume)?;
    let mut model = Gpt2::from_dir(&args.model, device)?;
    let codec = HfCodec::from_dir(&args.model)?;
    let (data, report) = args.data.load(&args.data.data, &codec)?;
    writeln!(out, "{}: {report}", args.data.data.display())?;
    let (train, val) = match (&args.val, args.val_split) {
        (Some(path), _) => {
            let (val, report) = args.data.load(path, &codec)?;
            writeln!(out, "{}: {report}", path.display())?;
            (data, Some(val))
        }
        (None, Some(f)) if f > 0.0 => {
            let (train, val) = data.split(f, args.seed);
            (train, Some(val))
        }
        _ => (data, None),
    };

    let lora = if args.full {
        None
    } else {
        let lora = Lora::inject(&mut model, args.lora_config(), Seed(args.seed))?;
        writeln!(out, "{}", lora.param_count(&model))?;
        Some(lora)
    };
    let params = lora.as_ref().map_or_else(|| model.parameters(), Lora::parameters);
    let config = args.trainer_config();
    write_run_json(args, &config)?;
    let ids = (codec.eos_id(), codec.eos_id());
    let mut trainer = Trainer::new(&model, params, config, &args.out, ids)?.with_interrupt(interrupt_flag());
    if fit_and_report(&mut trainer, args.resume, &args.out, (&train, val.as_ref()), out)? {
        return Ok(());
    }
    let dest = match &lora {
        Some(lora) => {
            let dir = args.out.join("adapter");
            lora.save_peft(&dir, &args.model.display().to_string(), "gpt2")?;
            dir
        }
        None => {
            let dir = args.out.join("model");
            model.save_dir(&dir)?;
            outdir::copy_tokenizer_files(&args.model, &dir)?;
            dir
        }
    };
    writeln!(out, "wrote {}", dest.display())?;
    Ok(())
}

/// Resumes from `out_dir`'s last checkpoint when asked, trains, and prints the summary; true
/// when the run stopped early (Ctrl-C or `stop_after`) and said how to continue.
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

/// Records what the run was (`run.json`) next to its outputs.
fn write_run_json(args: &SftArgs, config: &TrainerConfig) -> Result<()> {
    let lora = (!args.full).then(|| {
        let c = args.lora_config();
        serde_json::json!({"r": c.r, "lora_alpha": c.lora_alpha, "lora_dropout": c.lora_dropout,
            "target_modules": c.target_modules, "use_rslora": c.use_rslora})
    });
    let run = serde_json::json!({
        "command": "sft",
        "model": args.model,
        "data": args.data.data,
        "val": args.val,
        "val_split": args.val_split,
        "mode": if args.full { "full" } else { "lora" },
        "lora": lora,
        "trainer": config,
    });
    let text = serde_json::to_string_pretty(&run)?;
    deltaw_tensor::safetensors::write_atomic(&args.out.join("run.json"), text.as_bytes())?;
    Ok(())
}
