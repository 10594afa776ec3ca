//! `deltaw data clean IN... --out DIR`: normalise, filter, mask personal data, deduplicate and
//! split a dataset (the work is `deltaw_train::clean`); this file reads the options, refuses
//! to overwrite earlier outputs unless told, prints the summary and draws `lengths.png`.

mod lengths_plot;

use super::check_model_dir;
use anyhow::{bail, Result};
use clap::{Args, Subcommand, ValueEnum};
use deltaw_train::clean::{clean_files, language_code, CleanOptions, CleanReport, DedupOptions, FilterOptions};
use deltaw_train::clean::{NormalizeOptions, ShingleKind, OUTPUT_FILES};
use deltaw_train::data::HfCodec;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

#[derive(Args)]
pub struct DataArgs {
    #[command(subcommand)]
    pub command: DataCommand,
}

#[derive(Subcommand)]
pub enum DataCommand {
    /// Clean Alpaca / ShareGPT / OpenAI-messages JSON(L) or text files into train.jsonl and val.jsonl.
    Clean(Box<CleanArgs>),
}

#[derive(Args)]
pub struct CleanArgs {
    /// Input files: .json / .jsonl records (Alpaca, ShareGPT, OpenAI messages) or .txt / .md text.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Output folder: train.jsonl, val.jsonl, report.json, report.md, lengths.png.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace the outputs of an earlier run in --out.
    #[arg(long)]
    pub overwrite: bool,
    /// Measure lengths in tokens of this model folder's tokenizer.json (characters without it).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Remove records shorter than this (tokens or characters).
    #[arg(long, default_value_t = 1)]
    pub min_len: usize,
    /// Remove records longer than this (tokens or characters).
    #[arg(long)]
    pub max_len: Option<usize>,
    /// Remove records whose letters and digits are less than this share of non-space characters.
    #[arg(long, default_value_t = 0.25)]
    pub min_alnum: f64,
    /// Remove records where more than this share of lines repeat an earlier line.
    #[arg(long, default_value_t = 0.3)]
    pub max_repeated_lines: f64,
    /// Remove records where more than this share of word n-grams repeat an earlier one.
    #[arg(long, default_value_t = 0.5)]
    pub max_repeated_ngrams: f64,
    /// n of the repeated n-gram filter (a CJK character counts as a word).
    #[arg(long, default_value_t = 3)]
    pub ngram: usize,
    /// Keep only these languages (ISO 639-1 or 639-3 codes, e.g. zh,en), detected with whatlang.
    #[arg(long, value_delimiter = ',')]
    pub lang: Vec<String>,
    /// Remove HTML tags and decode entities.
    #[arg(long)]
    pub strip_html: bool,
    /// Do not mask e-mails, phones, IP addresses, ID-card and bank-card numbers.
    #[arg(long)]
    pub no_pii: bool,
    /// Near-duplicate Jaccard threshold (MinHash + LSH).
    #[arg(long, default_value_t = 0.8)]
    pub threshold: f64,
    /// MinHash permutations.
    #[arg(long, default_value_t = 128)]
    pub num_perm: usize,
    /// Shingles: words or characters (default: characters for mostly-CJK records, words otherwise).
    #[arg(long, value_enum)]
    pub shingle: Option<ShingleArg>,
    /// Shingle size (default: 3 words or 5 characters).
    #[arg(long)]
    pub shingle_size: Option<usize>,
    /// Expected share of kept records that go to val.jsonl.
    #[arg(long, default_value_t = 0.05)]
    pub val: f64,
    /// Seed of the MinHash permutations and of the split.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Count malformed records and go on instead of stopping at the first.
    #[arg(long)]
    pub skip_bad: bool,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ShingleArg {
    Word,
    Char,
}

pub fn run(args: &DataArgs, out: &mut impl Write) -> Result<()> {
    match &args.command {
        DataCommand::Clean(args) => clean(args, out),
    }
}

fn clean(args: &CleanArgs, out: &mut impl Write) -> Result<()> {
    let options = args.options()?;
    check_outputs(args)?;
    let codec = match &args.model {
        Some(dir) => {
            check_model_dir(dir)?;
            Some(HfCodec::from_dir(dir)?)
        }
        None => None,
    };
    let report = clean_files(&args.inputs, &args.out, &options, codec.as_ref().map(|c| c as _))?;
    let png = args.out.join("lengths.png");
    if let Err(e) = lengths_plot::plot_lengths(&report, &png) {
        eprintln!("warning: no length plot: {e}");
    }
    write_summary(&report, args, out)
}

impl CleanArgs {
    fn options(&self) -> Result<CleanOptions> {
        let languages =
            self.lang.iter().map(|l| language_code(l).map_err(anyhow::Error::msg)).collect::<Result<_>>()?;
        let options = CleanOptions {
            normalize: NormalizeOptions { strip_html: self.strip_html },
            mask_pii: !self.no_pii,
            filters: FilterOptions {
                min_length: Some(self.min_len),
                max_length: self.max_len,
                min_alnum: self.min_alnum,
                max_repeated_lines: self.max_repeated_lines,
                max_repeated_ngrams: self.max_repeated_ngrams,
                ngram_size: self.ngram,
                languages,
            },
            dedup: DedupOptions {
                threshold: self.threshold,
                num_perm: self.num_perm,
                shingle: self.shingle.map(|s| match s {
                    ShingleArg::Word => ShingleKind::Word,
                    ShingleArg::Char => ShingleKind::Char,
                }),
                shingle_size: self.shingle_size,
            },
            val_fraction: self.val,
            seed: self.seed,
            skip_bad: self.skip_bad,
            progress: !self.quiet && std::io::stderr().is_terminal(),
        };
        options.validate()?;
        Ok(options)
    }
}

/// Refuses to replace an earlier run's outputs without `--overwrite` (the new ones are
/// renamed into place only at the end, so even with it nothing is lost on a failed run).
fn check_outputs(args: &CleanArgs) -> Result<()> {
    let existing: Vec<&str> =
        OUTPUT_FILES.iter().chain(&["lengths.png"]).copied().filter(|name| args.out.join(name).exists()).collect();
    if !existing.is_empty() && !args.overwrite {
        bail!(
            "{} already holds {}; pass --overwrite to replace them or choose another --out",
            args.out.display(),
            existing.join(", ")
        );
    }
    if let Some(input) = args.inputs.iter().find(|p| {
        p.parent() == Some(args.out.as_path()) && p.file_name().is_some_and(|n| OUTPUT_FILES.iter().any(|o| n == *o))
    }) {
        bail!("{} is an input; write the cleaned data to another --out", input.display());
    }
    Ok(())
}

fn write_summary(report: &CleanReport, args: &CleanArgs, out: &mut impl Write) -> Result<()> {
    let removed: usize = report.removed.values().sum();
    writeln!(
        out,
        "read {} records: kept {} (train {}, val {}), removed {removed}, bad {}",
        report.records_read, report.kept, report.train, report.val, report.bad_records
    )?;
    for (rule, count) in report.removed.iter().filter(|(_, &c)| c > 0) {
        writeln!(out, "  removed {rule}: {count}")?;
    }
    let masked: Vec<String> =
        report.pii_masked.iter().filter(|(_, &c)| c > 0).map(|(kind, count)| format!("{kind} {count}")).collect();
    if !masked.is_empty() {
        writeln!(out, "  masked in {} records: {}", report.records_with_pii, masked.join(", "))?;
    }
    writeln!(out, "wrote {} (train.jsonl, val.jsonl, report.json, report.md, lengths.png)", args.out.display())?;
    Ok(())
}
