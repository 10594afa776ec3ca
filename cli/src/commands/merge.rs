//! `deltaw merge`: folds a LoRA adapter into its base model (`W0 + scaling · B A`) and writes
//! a normal model folder that `deltaw generate` and transformers load, with a drift report.

use super::{check_model_dir, outdir};
use anyhow::{bail, Result};
use clap::Args;
use deltaw_lora::Lora;
use deltaw_tensor::{DType, Device, Tensor};
use deltaw_transformer::load_model;
use std::io::Write;
use std::path::PathBuf;

#[derive(Args)]
pub struct MergeArgs {
    /// The base model folder the adapter was trained on.
    #[arg(long)]
    pub model: PathBuf,
    /// A PEFT adapter folder (adapter_config.json + adapter_model.safetensors).
    #[arg(long)]
    pub adapter: PathBuf,
    /// Where to write the merged model folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace deltaw's outputs in a non-empty --out.
    #[arg(long)]
    pub overwrite: bool,
}

/// A fixed probe batch `(1, T)`: ids spread over the vocabulary. The config loaders refuse a
/// zero vocabulary or context already; checked again here because the ids are taken modulo
/// `vocab`, and a model type that skipped that check must not divide by zero.
fn probe_ids(vocab: usize, positions: usize, dev: &Device) -> Result<Tensor> {
    if vocab == 0 || positions == 0 {
        bail!("the model has vocab_size {vocab} and {positions} positions: nothing to probe the merge with");
    }
    let t = positions.min(16);
    let ids: Vec<i32> = (0..t).map(|i| ((i * 7919 + 13) % vocab) as i32).collect();
    Ok(Tensor::from_vec(ids, (1, t), dev)?)
}

pub fn run(args: &MergeArgs, device: &Device, out: &mut impl Write) -> Result<()> {
    check_model_dir(&args.model)?;
    if !args.adapter.is_dir() {
        bail!("adapter folder {} does not exist", args.adapter.display());
    }
    if args.out == args.model {
        bail!("--out must differ from --model: merging never writes over the base model");
    }
    // Only checked here: an existing merged model stays whole until the new one replaces it.
    outdir::check(&args.out, args.overwrite, false)?;
    let mut model = load_model(&args.model, device)?;
    let mut lora = Lora::load_peft(model.as_mut(), &args.adapter, device)?;
    let ids = probe_ids(model.vocab_size(), model.max_positions(), device)?;
    let report = lora.merge_checked(model.as_mut(), |m| m.output(&ids, None).value());
    outdir::write_folder(&args.out, |tmp| {
        model.save_dir(tmp)?;
        outdir::copy_tokenizer_files(&args.model, tmp)
    })?;
    writeln!(out, "{report}")?;
    if report.dtype != DType::F32 {
        writeln!(out, "(weights stored as {:?}: the error above is that dtype's rounding)", report.dtype)?;
    }
    writeln!(out, "wrote {}", args.out.display())?;
    Ok(())
}
