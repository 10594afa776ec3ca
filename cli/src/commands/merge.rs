//! `deltaw merge`: folds a LoRA adapter into its base model (`W0 + scaling · B A`) and writes
//! a normal model folder that `deltaw generate` and transformers load, or a GGUF file for
//! llama.cpp, with a drift report.
//!
//! The reference is the adapter applied unmerged on the base it was trained on (for a QLoRA
//! adapter, `--base-quant`: the block-quantized base). The report compares the merged model's
//! logits with it on a probe batch: the largest and mean change, and the share of positions
//! whose greedy token changed. Merging a QLoRA adapter into f32 keeps `deq(Q) + s·BA` exactly;
//! writing a quantized file rounds the sum again, and the second line says what that cost.

use super::sft::parse_quant_type;
use super::{check_model_dir, outdir};
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use deltaw_autograd::no_grad;
use deltaw_lora::{Lora, OutputDrift};
use deltaw_tensor::{DType, Device, QuantType, Tensor};
use deltaw_transformer::gguf::{export_model, GgufModel, GgufQuant};
use deltaw_transformer::{load_causal_lm_with, load_model, Model, Tokenizer, WeightDtype};
use std::io::Write;
use std::path::{Path, PathBuf};

/// `--dtype` values: how the merged folder stores its weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum MergeDtype {
    F32,
    Bf16,
    F16,
}

#[derive(Args)]
pub struct MergeArgs {
    /// The base model folder the adapter was trained on.
    #[arg(long)]
    pub model: PathBuf,
    /// A PEFT adapter folder (adapter_config.json + adapter_model.safetensors).
    #[arg(long)]
    pub adapter: PathBuf,
    /// Where to write the merged model: a folder, or with --format gguf a file.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace deltaw's outputs in a non-empty --out.
    #[arg(long)]
    pub overwrite: bool,
    /// The adapter was trained on a quantized base (`deltaw sft --base-quant TYPE`): the
    /// reference it is checked against is that base with the adapter unmerged.
    #[arg(long, value_name = "TYPE", value_parser = parse_quant_type)]
    pub base_quant: Option<QuantType>,
    /// The merged weights' dtype in the folder.
    #[arg(long, value_enum, default_value_t = MergeDtype::F32)]
    pub dtype: MergeDtype,
    /// `folder` (safetensors, transformers' layout) or `gguf` (one file for llama.cpp).
    #[arg(long, default_value = "folder", value_parser = ["folder", "gguf"])]
    pub format: String,
    /// With --format gguf: how its matrices are stored (f16, q8_0, q4_0, q4_k_m).
    #[arg(long, default_value = "q8_0", value_name = "TYPE")]
    pub quant: String,
    /// A held-out text file for the drift report: its first tokens (up to 4 rows of 64) are
    /// the probe batch. Default: a fixed batch of ids spread over the vocabulary.
    #[arg(long, value_name = "FILE")]
    pub probe: Option<PathBuf>,
}

/// A fixed probe batch `(4, T)`: ids spread over the vocabulary. The config loaders refuse a
/// zero vocabulary or context already; checked again here because the ids are taken modulo
/// `vocab`, and a model type that skipped that check must not divide by zero.
fn probe_ids(vocab: usize, positions: usize, dev: &Device) -> Result<Tensor> {
    if vocab == 0 || positions == 0 {
        bail!("the model has vocab_size {vocab} and {positions} positions: nothing to probe the merge with");
    }
    let t = positions.min(32);
    let ids: Vec<i32> = (0..4 * t).map(|i| ((i * 7919 + 13) % vocab) as i32).collect();
    Ok(Tensor::from_vec(ids, (4, t), dev)?)
}

/// The probe batch from `--probe FILE`: its tokens cut into up to 4 rows of up to 64.
fn probe_from_file(path: &Path, model: &Path, positions: usize, dev: &Device) -> Result<Tensor> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading the probe file {}", path.display()))?;
    let ids = Tokenizer::from_dir(model)?.encode(&text)?;
    if ids.len() < 8 {
        bail!("probe file {}: {} tokens, at least 8 needed", path.display(), ids.len());
    }
    let t = positions.min(64).min(ids.len());
    let rows = (ids.len() / t).min(4);
    Ok(Tensor::from_vec(ids[..rows * t].to_vec(), (rows, t), dev)?)
}

/// The checks made before anything loads; the GGUF type for `--format gguf`.
fn check_args(args: &MergeArgs) -> Result<Option<GgufQuant>> {
    check_model_dir(&args.model)?;
    if !args.adapter.is_dir() {
        bail!("adapter folder {} does not exist", args.adapter.display());
    }
    if args.out == args.model {
        bail!("--out must differ from --model: merging never writes over the base model");
    }
    let gguf = match args.format.as_str() {
        "gguf" => Some(
            GgufQuant::from_name(&args.quant)
                .with_context(|| format!("--quant {}: expected one of {}", args.quant, GgufQuant::NAMES.join(", ")))?,
        ),
        _ => None,
    };
    // Only checked here: an existing merged model stays whole until the new one replaces it.
    match gguf {
        Some(_) if args.out.exists() && !args.overwrite => {
            bail!("{} exists; pass --overwrite to replace it", args.out.display())
        }
        Some(_) => {}
        None => drop(outdir::check(&args.out, args.overwrite, false)?),
    }
    Ok(gguf)
}

pub fn run(args: &MergeArgs, device: &Device, out: &mut impl Write) -> Result<()> {
    let gguf = check_args(args)?;
    let mut model: Box<dyn Model> = match args.base_quant {
        Some(ty) => load_causal_lm_with(&args.model, device, WeightDtype::Quant(ty))?,
        None => load_model(&args.model, device)?,
    };
    let mut lora = Lora::load_peft(model.as_mut(), &args.adapter, device)?;
    let ids = match &args.probe {
        Some(path) => probe_from_file(path, &args.model, model.max_positions(), device)?,
        None => probe_ids(model.vocab_size(), model.max_positions(), device)?,
    };
    let reference = no_grad(|| model.output(&ids, None).value());
    let to = match args.dtype {
        MergeDtype::F32 => DType::F32,
        MergeDtype::Bf16 => DType::BF16,
        MergeDtype::F16 => DType::F16,
    };
    let mut report = lora.merge_as(model.as_mut(), Some(to));
    // The rest of the folder in the same dtype (a bf16 or quantized base keeps its embeddings
    // and head as stored while loaded).
    for p in model.parameters() {
        let v = p.value();
        if v.dtype() != to && v.dtype() != DType::I32 {
            p.set_value(v.to_dtype(to)?);
        }
    }
    report.drift = Some(OutputDrift::between(&reference, &no_grad(|| model.output(&ids, None).value())));
    writeln!(out, "{report}")?;
    if let Some(q) = args.base_quant {
        writeln!(out, "(against the adapter on the {q} base it was trained on; the merged weights are deq(Q) + s·BA)")?;
    }
    match gguf {
        None => {
            outdir::write_folder(&args.out, |tmp| write_merged(model.as_ref(), &args.model, tmp))?;
            if report.dtype != DType::F32 {
                writeln!(
                    out,
                    "(weights stored as {:?}: the change above includes that dtype's rounding)",
                    report.dtype
                )?;
            }
        }
        Some(quant) => write_gguf(args, model.as_ref(), quant, (&ids, &reference), out)?,
    }
    writeln!(out, "wrote {}", args.out.display())?;
    Ok(())
}

/// The merged model's folder: weights, config and the base's tokenizer files.
fn write_merged(model: &dyn Model, base: &Path, dir: &Path) -> Result<()> {
    model.save_dir(dir)?;
    outdir::copy_tokenizer_files(base, dir)?;
    for name in ["generation_config.json", "chat_template.jinja"] {
        if base.join(name).exists() {
            std::fs::copy(base.join(name), dir.join(name)).with_context(|| format!("copying {name}"))?;
        }
    }
    Ok(())
}

/// Writes the merged model as a GGUF file of `quant` (the base's tokenizer with it) and
/// reports the drift of the file as llama.cpp would run it: loaded back with its blocks kept,
/// against the adapter's `reference` output on the probe `ids`.
fn write_gguf(
    args: &MergeArgs,
    model: &dyn Model,
    quant: GgufQuant,
    (ids, reference): (&Tensor, &Tensor),
    out: &mut impl Write,
) -> Result<()> {
    let name = args.out.file_stem().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let export = export_model(model, &args.model, &name, &args.out, quant)?;
    if !export.fallbacks.is_empty() {
        writeln!(out, "as f16 in the file: {} (rows not a whole number of blocks)", export.fallbacks.join(", "))?;
    }
    for note in &export.notes {
        writeln!(out, "note: {note}")?;
    }
    let file = GgufModel::load(&args.out, &model.device(), WeightDtype::Stored)?;
    let drift = OutputDrift::between(reference, &no_grad(|| file.model.output(ids, None).value()));
    writeln!(out, "GGUF {}: {drift}", args.quant)?;
    Ok(())
}
