//! `deltaw sft`: supervised fine-tuning of a GPT-2 folder on `<input, output>` data, with LoRA
//! (the default) or fully, then the adapter (PEFT format) or the model folder written out.

use super::ranks::Ranks;
use super::run_args::{fit_and_report, interrupt_flag, Optim, OptimDefaults, RunArgs};
use super::{check_model_dir, outdir};
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use deltaw_lora::{Lora, LoraConfig, TargetModules};
use deltaw_tensor::{Device, QuantType, Seed};
use deltaw_train::data::{DataFormat, LoadReport, PromptTemplate, SftDataset, SftOptions, TextCodec};
use deltaw_train::evaluation::{Encoder, EvalSet};
use deltaw_train::{HfCodec, Trainer, TrainerConfig};
use deltaw_transformer::{load_causal_lm_with, CausalLm, ChatTemplate, Tokenizer, WeightDtype, BUILTIN_TEMPLATES};
use std::io::Write;
use std::path::{Path, PathBuf};

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
    /// The template: a built-in chat template (`llama3`, `chatml`, `mistral`, `alpaca`), or a
    /// JSON file with the prompt template's fields (`system`, `user`, `assistant`,
    /// `alpaca_input`). Default: the model folder's own chat template (tokenizer_config.json
    /// or chat_template.jinja), else the Alpaca prompt template.
    #[arg(long, value_name = "NAME|FILE")]
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

    /// The chat template the data goes through: `--template NAME` (a built-in), else the
    /// model folder's own; `None` when `--template` names a prompt-template file or the folder
    /// has no chat template.
    fn chat_template(&self, model: &Path, tokenizer: &Tokenizer) -> Result<Option<ChatTemplate>> {
        match self.template.as_ref().and_then(|t| t.to_str()) {
            Some(name) if BUILTIN_TEMPLATES.contains(&name) => {
                Ok(Some(ChatTemplate::builtin(name, tokenizer.config())?))
            }
            Some(_) => Ok(None),
            None => Ok(ChatTemplate::from_dir(model)?),
        }
    }

    /// Loads `path` with these options, through the chat template when there is one (the
    /// model's own or a built-in: loss on the assistant turns only), else the prompt template.
    pub fn load(&self, path: &Path, codec: &dyn TextCodec, model: &Path) -> Result<(SftDataset, LoadReport)> {
        let format = self.data_format();
        let tokenizer = Tokenizer::from_dir(model)?;
        if let Some(template) = self.chat_template(model, &tokenizer)? {
            return Ok(SftDataset::load_chat(path, format, &template, &tokenizer, &self.options())?);
        }
        Ok(SftDataset::load(path, format, codec, &self.template()?, &self.options())?)
    }

    /// [`load`](Self::load) as evaluation examples: the same samples, plus each record's prompt
    /// and reference answer; with the chat template they went through, if any.
    pub fn load_eval(
        &self,
        path: &Path,
        codec: &HfCodec,
        model: &Path,
    ) -> Result<(EvalSet, LoadReport, Option<ChatTemplate>)> {
        let (format, options) = (self.data_format(), self.options());
        if let Some(template) = self.chat_template(model, &codec.tokenizer)? {
            let encoder = Encoder::Chat { template: &template, tokenizer: &codec.tokenizer };
            let (set, report) = EvalSet::load(path, format, &encoder, &options)?;
            return Ok((set, report, Some(template)));
        }
        let template = self.template()?;
        let (set, report) = EvalSet::load(path, format, &Encoder::Prompt { template: &template, codec }, &options)?;
        Ok((set, report, None))
    }

    fn data_format(&self) -> DataFormat {
        match self.format {
            FormatArg::Auto => DataFormat::Auto,
            FormatArg::Alpaca => DataFormat::Alpaca,
            FormatArg::Sharegpt => DataFormat::ShareGpt,
        }
    }
}

#[derive(Args)]
pub struct SftArgs {
    /// A causal LM folder (GPT-2 or the Llama family: config.json, weights, tokenizer.json).
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
    /// QLoRA: hold the frozen base's linear weights block-quantized as they load (`q4_0`,
    /// `q4_k`, `q8_0`, or another of llama.cpp's block types), read directly by the products;
    /// the adapters train in f32 as without it.
    #[arg(long, value_name = "TYPE", value_parser = parse_quant_type, conflicts_with = "full")]
    pub base_quant: Option<QuantType>,
    #[command(flatten)]
    pub optim: Optim<FineTuning>,
    /// Greedy exact-match accuracy on this many validation samples at each evaluation.
    #[arg(long, default_value_t = 0)]
    pub exact_match: usize,
    /// At the end, evaluate the base and the tuned model on the validation data as `deltaw
    /// eval` does (perplexity, exact match, BLEU, ROUGE of greedy answers); report in --out/eval/.
    #[arg(long)]
    pub eval: bool,
    /// With --eval: the longest answer generated, in tokens.
    #[arg(long, default_value_t = 32, value_name = "N")]
    pub eval_max_new_tokens: usize,
    #[command(flatten)]
    pub run: RunArgs,
}

/// `sft`'s optimizer defaults: fine-tuning a pretrained model.
pub struct FineTuning;

impl OptimDefaults for FineTuning {
    const LR: &'static str = "0.0002";
    const BATCH_SIZE: &'static str = "8";
    const WEIGHT_DECAY: &'static str = "0";
    const WARMUP_RATIO: &'static str = "0.03";
}

impl SftArgs {
    fn trainer_config(&self) -> TrainerConfig {
        self.run.trainer_config(&self.optim, self.exact_match)
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

pub fn run(args: &SftArgs, device: &Device, out: &mut impl Write) -> Result<()> {
    Ranks::run(&args.run.dist, out, |out, ranks| run_on(args, device, out, ranks))
}

/// `run` on one rank of a `--distributed` run (or the only process), printing to `out` (a sink
/// on every rank but 0).
fn run_on(args: &SftArgs, device: &Device, mut out: &mut dyn Write, ranks: &Ranks) -> Result<()> {
    let out = &mut out;
    check_model_dir(&args.model)?;
    if let Some(f) = args.val_split.filter(|f| !(0.0..1.0).contains(f)) {
        bail!("--val-split {f} must be in [0, 1)");
    }
    ranks.prepare_out(&args.run)?;
    // LoRA freezes the base: a bf16/f16 base stays in its dtype (half the memory of f32), or
    // is quantized into blocks as it loads (QLoRA).
    let dtype = match (args.full, args.base_quant) {
        (true, _) => WeightDtype::F32,
        (false, Some(ty)) => WeightDtype::Quant(ty),
        (false, None) => WeightDtype::Stored,
    };
    let mut model = load_causal_lm_with(&args.model, device, dtype)?;
    model.set_gradient_checkpointing(args.run.gradient_checkpointing);
    let codec = HfCodec::from_dir(&args.model)?;
    codec.check_vocab(model.vocab_size())?;
    let (train, val, eval) = load_splits(args, &codec, out)?;

    let lora = if args.full {
        None
    } else {
        let lora = Lora::inject(model.as_mut(), args.lora_config(), Seed(args.run.seed))?;
        writeln!(out, "{}", lora.param_count(model.as_ref()))?;
        Some(lora)
    };
    let params = lora.as_ref().map_or_else(|| model.parameters(), Lora::parameters);
    let config = args.trainer_config();
    if ranks.is_root() {
        write_run_json(args, &config)?;
    }
    let ids = (codec.eos_id(), codec.eos_id());
    let trainer = Trainer::new(model.as_ref(), params, config, &args.run.out, ids)?.with_interrupt(interrupt_flag());
    let mut trainer = ranks.distribute(trainer, &args.run.dist)?;
    if fit_and_report(&mut trainer, args.run.resume, &args.run.out, (&train, val.as_ref()), out)? || !ranks.is_root() {
        return Ok(());
    }
    let dest = save_trained(args, model.as_ref(), lora.as_ref())?;
    writeln!(out, "wrote {}", dest.display())?;
    if let Some((val, template)) = eval {
        drop(trainer); // it borrows the model
        let dirs = (args.model.as_path(), args.run.out.as_path());
        super::eval::after_sft(model, lora, dirs, (codec, val), (template.as_ref(), args.eval_max_new_tokens), out)?;
    }
    Ok(())
}

/// Writes the trained adapter (LoRA) or model folder (`--full`) into `--out`; returns its path.
fn save_trained(args: &SftArgs, model: &dyn CausalLm, lora: Option<&Lora>) -> Result<PathBuf> {
    match lora {
        Some(lora) => {
            let dir = args.run.out.join("adapter");
            lora.save_peft(&dir, &args.model.display().to_string(), model.model_type())?;
            Ok(dir)
        }
        None => {
            let dir = args.run.out.join("model");
            outdir::write_folder(&dir, |tmp| {
                model.save_dir(tmp)?;
                outdir::copy_tokenizer_files(&args.model, tmp)
            })?;
            Ok(dir)
        }
    }
}

/// The training samples and the validation samples (from `--val` or `--val-split`); with
/// `--eval`, the validation examples too (prompts and references beside the samples, split
/// exactly as the samples are) and the chat template they went through.
#[allow(clippy::type_complexity)]
fn load_splits(
    args: &SftArgs,
    codec: &HfCodec,
    out: &mut impl Write,
) -> Result<(SftDataset, Option<SftDataset>, Option<(EvalSet, Option<ChatTemplate>)>)> {
    let data = &args.data;
    if !args.eval {
        let (all, report) = data.load(&data.data, codec, &args.model)?;
        writeln!(out, "{}: {report}", data.data.display())?;
        return Ok(match (&args.val, args.val_split) {
            (Some(path), _) => {
                let (val, report) = data.load(path, codec, &args.model)?;
                writeln!(out, "{}: {report}", path.display())?;
                (all, Some(val), None)
            }
            (None, Some(f)) if f > 0.0 => {
                let (train, val) = all.split(f, args.run.seed);
                (train, Some(val), None)
            }
            _ => (all, None, None),
        });
    }
    let (all, report, template) = data.load_eval(&data.data, codec, &args.model)?;
    writeln!(out, "{}: {report}", data.data.display())?;
    let (train, val) = match (&args.val, args.val_split) {
        (Some(path), _) => {
            let (val, report, _) = data.load_eval(path, codec, &args.model)?;
            writeln!(out, "{}: {report}", path.display())?;
            (all, val)
        }
        (None, Some(f)) if f > 0.0 => all.split(f, args.run.seed),
        _ => bail!("--eval evaluates on validation data: pass --val FILE or --val-split F"),
    };
    Ok((train.dataset(), Some(val.dataset()), Some((val, template))))
}

/// `--base-quant TYPE`: one of llama.cpp's block types by name, any case.
pub fn parse_quant_type(name: &str) -> std::result::Result<QuantType, String> {
    QuantType::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = QuantType::ALL.iter().map(|t| t.name()).collect();
        format!("unknown block type '{name}' (known: {})", names.join(", "))
    })
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
        "mode": match (args.full, args.base_quant) {
            (true, _) => "full",
            (false, Some(_)) => "qlora",
            (false, None) => "lora",
        },
        "base_quant": args.base_quant.map(|t| t.name()),
        "lora": lora,
        "trainer": config,
    });
    let text = serde_json::to_string_pretty(&run)?;
    deltaw_tensor::safetensors::write_atomic(&args.run.out.join("run.json"), text.as_bytes())?;
    Ok(())
}
