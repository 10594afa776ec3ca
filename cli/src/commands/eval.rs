//! `deltaw eval`: a model on held-out `<input, output>` pairs: perplexity on the outputs,
//! exact match, BLEU-4 and ROUGE-1/2/L of generated answers. With `--adapter` the base and the
//! base + adapter are compared; with `--compare` a second model folder. Prints a table side by
//! side and the examples where the two differ most; `--out` writes report.json and report.md.
//! `sft --eval` runs the same evaluation on its validation split ([`after_sft`]).

use super::check_model_dir;
use super::generate::SamplingArgs;
use super::sft::{DataArgs, FormatArg};
use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use deltaw_lora::Lora;
use deltaw_tensor::Device;
use deltaw_train::evaluation::{evaluate_model, EvalOptions, EvalSet, ModelEval, NamedEval, Report, Segmentation};
use deltaw_train::HfCodec;
use deltaw_transformer::{load_causal_lm_with, CausalLm, ChatTemplate, GenerateOptions, GenerationConfig, WeightDtype};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

/// `--segmentation` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SegmentationArg {
    /// Chinese when a reference holds a Han character, else words.
    Auto,
    /// Words: sacrebleu's 13a tokenizer, rouge-score's tokenizer.
    Words,
    /// Characters: sacrebleu's zh tokenizer, each Han character a ROUGE token.
    Chinese,
}

#[derive(Args)]
pub struct EvalArgs {
    /// A causal LM folder (GPT-2 or the Llama family).
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// A PEFT LoRA adapter for --model: evaluates the base and base + adapter side by side.
    #[arg(long, value_name = "DIR", conflicts_with = "compare")]
    pub adapter: Option<PathBuf>,
    /// A second model folder, evaluated on the same data beside --model.
    #[arg(long, value_name = "DIR")]
    pub compare: Option<PathBuf>,
    /// Held-out data: a JSON array or JSONL of Alpaca, ShareGPT or OpenAI-messages records; the
    /// last assistant turn of each is the reference answer.
    #[arg(long, value_name = "FILE")]
    pub data: PathBuf,
    #[arg(long, value_enum, default_value_t = FormatArg::Auto)]
    pub format: FormatArg,
    /// As `sft --template`: a built-in chat template or a prompt-template JSON file. Default:
    /// the model folder's chat template, else the Alpaca prompt.
    #[arg(long, value_name = "NAME|FILE")]
    pub template: Option<PathBuf>,
    /// Skip unreadable records (and report how many) instead of stopping at the first.
    #[arg(long)]
    pub skip_bad_lines: bool,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// How BLEU and ROUGE cut text into units.
    #[arg(long, value_enum, default_value_t = SegmentationArg::Auto)]
    pub segmentation: SegmentationArg,
    /// Samples per forward pass for the loss.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// How many of the examples where the two models differ most to show.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub show: usize,
    /// Write report.json and report.md to this folder.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Replace report.json and report.md in --out.
    #[arg(long)]
    pub overwrite: bool,
}

/// One model folder ready to evaluate: weights, codec, its examples and its stop conditions.
struct Side {
    model: Box<dyn CausalLm>,
    codec: HfCodec,
    set: EvalSet,
    options: EvalOptions,
}

pub fn run(args: &EvalArgs, device: &Device, out: &mut impl Write) -> Result<()> {
    if args.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    check_report_files(args.out.as_deref(), args.overwrite)?;
    if let Some(adapter) = args.adapter.as_ref().filter(|a| !a.is_dir()) {
        bail!("adapter folder {} does not exist", adapter.display());
    }
    if let Some(other) = &args.compare {
        check_model_dir(other)?;
    }
    let mut first = load_side(&args.model, args, device, out)?;
    let mut evals = vec![named(&args.model, "base", None, evaluate(&first, "base")?)];
    if let Some(adapter) = &args.adapter {
        let _lora = Lora::load_peft(first.model.as_mut(), adapter, device)?;
        evals.push(named(&args.model, "tuned", Some(adapter), evaluate(&first, "tuned")?));
    } else if let Some(other) = &args.compare {
        let second = load_side(other, args, device, out)?;
        if second.set.references() != first.set.references() {
            bail!(
                "{} and {} read {} differently (another template?): their examples differ",
                args.model.display(),
                other.display(),
                args.data.display()
            );
        }
        evals[0].name = folder_name(&args.model, "model");
        evals.push(named(other, &folder_name(other, "compare"), None, evaluate(&second, "compare")?));
    }
    let report = make_report(&args.data, &first.set, &first.options, evals, args.show);
    write!(out, "{}", report.table())?;
    if let Some(dir) = &args.out {
        write_report(dir, &report)?;
        writeln!(out, "wrote {}", dir.join("report.md").display())?;
    }
    Ok(())
}

/// Refuses to write over reports already in `dir` without `overwrite`, before any work.
fn check_report_files(dir: Option<&Path>, overwrite: bool) -> Result<()> {
    let Some(dir) = dir else { return Ok(()) };
    for name in ["report.json", "report.md"] {
        if dir.join(name).exists() && !overwrite {
            bail!("{} already exists; pass --overwrite to replace it", dir.join(name).display());
        }
    }
    Ok(())
}

fn load_side(dir: &Path, args: &EvalArgs, device: &Device, out: &mut impl Write) -> Result<Side> {
    check_model_dir(dir)?;
    let model = load_causal_lm_with(dir, device, WeightDtype::Stored)?;
    let codec = HfCodec::from_dir(dir)?;
    codec.tokenizer.check_vocab(model.vocab_size())?;
    let data = DataArgs {
        data: args.data.clone(),
        format: args.format,
        cutoff_len: None,
        train_on_prompt: false,
        mask_history: false,
        skip_bad_lines: args.skip_bad_lines,
        template: args.template.clone(),
    };
    let (set, report, template) = data.load_eval(&args.data, &codec, dir)?;
    writeln!(out, "{}: {report}", args.data.display())?;
    let generate = stop_conditions(args.sampling.options()?, dir, &codec, template.as_ref())?;
    let segmentation = match args.segmentation {
        SegmentationArg::Auto => Segmentation::Auto,
        SegmentationArg::Words => Segmentation::Words,
        SegmentationArg::Chinese => Segmentation::Chinese,
    };
    Ok(Side { model, codec, set, options: EvalOptions { generate, segmentation, batch_size: args.batch_size } })
}

/// Adds the ends of an answer to `options`: the folder's EOS ids, the codec's EOS (the id
/// `sft` appends after each answer) and the chat template's end of turn (an id when it is
/// one token, else a stop string), as `deltaw chat` does.
fn stop_conditions(
    mut options: GenerateOptions,
    dir: &Path,
    codec: &HfCodec,
    template: Option<&ChatTemplate>,
) -> Result<GenerateOptions> {
    options.eos_token_ids = GenerationConfig::from_dir(dir)?.eos_token_ids;
    if !options.eos_token_ids.contains(&codec.eos_id) {
        options.eos_token_ids.push(codec.eos_id);
    }
    if let Some(end) = template.and_then(ChatTemplate::end_of_turn) {
        match codec.tokenizer.token_id(end) {
            Ok(id) if !options.eos_token_ids.contains(&id) => options.eos_token_ids.push(id),
            Ok(_) => {}
            Err(_) => options.stop_strings.push(end.to_string()),
        }
    }
    Ok(options)
}

/// Evaluates one side, with a progress line on stderr when it is a terminal.
fn evaluate(side: &Side, name: &str) -> Result<ModelEval> {
    let terminal = std::io::stderr().is_terminal();
    let mut progress = |done: usize, total: usize| {
        if terminal {
            eprint!("\r{name}: answered {done}/{total}");
        }
    };
    let result = evaluate_model(side.model.as_ref(), &side.codec.tokenizer, &side.set, &side.options, &mut progress);
    if terminal {
        eprintln!();
    }
    Ok(result?)
}

fn named(model: &Path, name: &str, adapter: Option<&Path>, metrics: ModelEval) -> NamedEval {
    NamedEval {
        name: name.to_string(),
        model: model.display().to_string(),
        adapter: adapter.map(|a| a.display().to_string()),
        metrics,
    }
}

/// A folder's last component, for a column heading.
fn folder_name(dir: &Path, fallback: &str) -> String {
    dir.file_name().map_or(fallback.to_string(), |n| n.to_string_lossy().into_owned())
}

fn make_report(data: &Path, set: &EvalSet, options: &EvalOptions, models: Vec<NamedEval>, show: usize) -> Report {
    let g = &options.generate;
    let decoding = serde_json::json!({
        "greedy": g.temperature == 0.0,
        "temperature": g.temperature,
        "top_k": g.top_k,
        "top_p": g.top_p,
        "repetition_penalty": g.repetition_penalty,
        "seed": g.seed,
        "max_new_tokens": g.max_new_tokens,
    });
    let segmentation = options.segmentation.resolve(&set.references());
    Report::new(data.display().to_string(), set, segmentation, decoding, models, show)
}

/// Writes `dir/report.json` and `dir/report.md`, each atomically.
fn write_report(dir: &Path, report: &Report) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
    let json = serde_json::to_string_pretty(report)? + "\n";
    deltaw_tensor::safetensors::write_atomic(&dir.join("report.json"), json.as_bytes())?;
    deltaw_tensor::safetensors::write_atomic(&dir.join("report.md"), report.markdown().as_bytes())?;
    Ok(())
}

/// `sft --eval`: the trained `model` (with `lora` injected, unless the run was full) and its
/// base, evaluated greedily on the validation examples `val`; the table on `out`, the report
/// in `run_dir/eval/`.
pub fn after_sft(
    model: Box<dyn CausalLm>,
    lora: Option<Lora>,
    (base_dir, run_dir): (&Path, &Path),
    (codec, val): (HfCodec, EvalSet),
    (template, max_new_tokens): (Option<&ChatTemplate>, usize),
    out: &mut impl Write,
) -> Result<()> {
    let generate = stop_conditions(GenerateOptions::greedy(max_new_tokens), base_dir, &codec, template)?;
    let options = EvalOptions { generate, segmentation: Segmentation::Auto, batch_size: 8 };
    let mut side = Side { model, codec, set: val, options };
    let tuned = evaluate(&side, "tuned")?;
    // The base: the same weights with the adapter taken out, or, after full fine-tuning, the
    // folder loaded again.
    match lora {
        Some(lora) => lora.remove(side.model.as_mut()),
        None => side.model = load_causal_lm_with(base_dir, &side.model.device(), WeightDtype::Stored)?,
    }
    let base = evaluate(&side, "base")?;
    let evals = vec![named(base_dir, "base", None, base), named(run_dir, "tuned", None, tuned)];
    let report = make_report(Path::new("validation split"), &side.set, &side.options, evals, 3);
    write!(out, "{}", report.table())?;
    write_report(&run_dir.join("eval"), &report)?;
    writeln!(out, "wrote {}", run_dir.join("eval/report.md").display())?;
    Ok(())
}
