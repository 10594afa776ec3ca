//! `deltaw inspect-data`: what a dataset turns into, token by token, with the trained tokens
//! marked, so a user can see the template and the label masking before spending a run on it.

use super::check_model_dir;
use super::sft::DataArgs;
use anyhow::Result;
use clap::Args;
use deltaw_train::data::HfCodec;
use deltaw_transformer::Tokenizer;
use std::io::Write;
use std::path::PathBuf;

#[derive(Args)]
pub struct InspectDataArgs {
    /// Model folder whose tokenizer.json (and EOS id) to use.
    #[arg(long)]
    pub model: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
    /// How many samples to show.
    #[arg(short = 'n', long, default_value_t = 3)]
    pub samples: usize,
    /// Print one JSON object per sample (the rendered text with its special tokens, the ids and
    /// the labels, -100 where the loss ignores a token) instead of the marked text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &InspectDataArgs, out: &mut impl Write) -> Result<()> {
    check_model_dir(&args.model)?;
    let codec = HfCodec::from_dir(&args.model)?;
    let (data, report) = args.data.load(&args.data.data, &codec, &args.model)?;
    if args.json {
        let tokenizer = Tokenizer::from_dir(&args.model)?;
        for sample in data.samples.iter().take(args.samples) {
            let text = tokenizer.decode_with_special(&sample.input_ids)?;
            let line = serde_json::json!({"text": text, "input_ids": sample.input_ids, "labels": sample.labels});
            writeln!(out, "{line}")?;
        }
        return Ok(());
    }
    writeln!(out, "{}: {report}", args.data.data.display())?;
    for (i, sample) in data.samples.iter().take(args.samples).enumerate() {
        writeln!(out, "\n--- sample {i} ---")?;
        writeln!(out, "{}", sample.render(&codec))?;
    }
    Ok(())
}
