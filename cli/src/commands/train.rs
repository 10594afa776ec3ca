//! `deltaw train`: pretrain a GPT-2-style model from scratch on plain text files, with the
//! trainer `sft` uses (AdamW, warmup + cosine, clipping, evaluation, checkpoints, exact resume,
//! metrics and loss curves), then write a model folder.
//!
//! Tokens come from the built-in byte-level codec (ids 0–255 are UTF-8 bytes, 256 is EOS: no
//! file needed, any text) or from a `tokenizer.json` (`--tokenizer DIR`, e.g. GPT-2's folder).

use super::outdir;
use super::ranks::Ranks;
use super::run_args::{fit_and_report, interrupt_flag, Optim, OptimDefaults, RunArgs};
use anyhow::{bail, Context, Result};
use clap::Args;
use deltaw_tensor::{Device, Seed};
use deltaw_train::data::{ByteCodec, TextCodec, TextDataset};
use deltaw_train::{HfCodec, Trainer, TrainerConfig};
use deltaw_transformer::{CausalLm, Gpt2, Gpt2Config, Model};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct TrainArgs {
    /// Text to train on: files, or folders whose .txt / .md / .text files are read (sorted).
    #[arg(long, required = true, num_args = 1..)]
    pub data: Vec<PathBuf>,
    /// A folder with tokenizer.json (and config.json naming eos_token_id, or a tokenizer with
    /// <|endoftext|>); default: bytes as tokens, EOS = 256.
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Tokens per training sequence (also the model's context length, n_positions).
    #[arg(long, default_value_t = 128)]
    pub block_size: usize,
    #[arg(long, default_value_t = 4)]
    pub n_layer: usize,
    #[arg(long, default_value_t = 4)]
    pub n_head: usize,
    #[arg(long, default_value_t = 128)]
    pub n_embd: usize,
    /// Hold out this fraction of the blocks (the end of the text) for validation.
    #[arg(long, default_value_t = 0.1)]
    pub val_split: f64,
    #[command(flatten)]
    pub optim: Optim<FromScratch>,
    #[command(flatten)]
    pub run: RunArgs,
}

/// `train`'s optimizer defaults: pretraining from scratch.
pub struct FromScratch;

impl OptimDefaults for FromScratch {
    const LR: &'static str = "0.001";
    const BATCH_SIZE: &'static str = "16";
    const WEIGHT_DECAY: &'static str = "0.1";
    const WARMUP_RATIO: &'static str = "0.05";
}

impl TrainArgs {
    fn trainer_config(&self) -> TrainerConfig {
        self.run.trainer_config(&self.optim, 0)
    }

    fn codec(&self) -> Result<Box<dyn TextCodec>> {
        match &self.tokenizer {
            None => Ok(Box::new(ByteCodec)),
            Some(dir) => {
                super::check_model_dir(dir)?;
                Ok(Box::new(HfCodec::from_dir(dir).with_context(|| format!("--tokenizer {}", dir.display()))?))
            }
        }
    }
}

pub fn run(args: &TrainArgs, device: &Device, out: &mut impl Write) -> Result<()> {
    Ranks::run(&args.run.dist, out, |out, ranks| run_on(args, device, out, ranks))
}

/// `run` on one rank of a `--distributed` run (or the only process), printing to `out` (a sink
/// on every rank but 0).
fn run_on(args: &TrainArgs, device: &Device, mut out: &mut dyn Write, ranks: &Ranks) -> Result<()> {
    let out = &mut out;
    if !(0.0..1.0).contains(&args.val_split) {
        bail!("--val-split {} must be in [0, 1)", args.val_split);
    }
    let codec = args.codec()?;
    let config = Gpt2Config::new(codec.vocab_size(), args.block_size, args.n_embd, args.n_layer, args.n_head)?;
    let data = TextDataset::load(&args.data, codec.as_ref(), args.block_size)?;
    writeln!(out, "{}", data.report)?;
    let (train, val) = data.split(args.val_split)?;
    ranks.prepare_out(&args.run)?;
    let mut model = Gpt2::init(config, Seed(args.run.seed), device);
    model.set_gradient_checkpointing(args.run.gradient_checkpointing);
    let params = model.parameters();
    let count: usize = params.iter().map(|p| p.value().numel()).sum();
    writeln!(
        out,
        "GPT-2 from scratch: {} layers, n_embd {}, {} heads, context {}, vocabulary {}: {count} parameters",
        args.n_layer,
        args.n_embd,
        args.n_head,
        args.block_size,
        codec.vocab_size()
    )?;
    let ids = (codec.eos_id(), codec.eos_id());
    let trainer =
        Trainer::new(&model, params, args.trainer_config(), &args.run.out, ids)?.with_interrupt(interrupt_flag());
    let mut trainer = ranks.distribute(trainer, &args.run.dist)?;
    if fit_and_report(&mut trainer, args.run.resume, &args.run.out, (&train, val.as_ref()), out)? || !ranks.is_root() {
        return Ok(());
    }
    let dir = args.run.out.join("model");
    outdir::write_folder(&dir, |tmp| {
        model.save_dir(tmp)?;
        describe_tokens(args, tmp)
    })?;
    writeln!(out, "wrote {}", dir.display())?;
    Ok(())
}

/// Copies the tokenizer files next to the model, or for the byte codec writes its
/// `tokenizer.json` (a byte-level BPE with no merges) and a README saying how ids map to text.
fn describe_tokens(args: &TrainArgs, dir: &Path) -> Result<()> {
    if let Some(tokenizer) = &args.tokenizer {
        return outdir::copy_tokenizer_files(tokenizer, dir);
    }
    ByteCodec::save_files(dir)?;
    let readme = format!(
        "# A GPT-2 pretrained by `deltaw train`\n\nByte-level: token ids 0-255 are the UTF-8 bytes of the text and \
         id {} is end-of-sequence (EOS, also the padding id); every training file ended with EOS. tokenizer.json \
         spells this as a byte-level BPE with no merges, so `deltaw generate` and transformers read the same ids.\n",
        ByteCodec::EOS_ID
    );
    deltaw_tensor::safetensors::write_atomic(&dir.join("README.md"), readme.as_bytes())?;
    Ok(())
}
