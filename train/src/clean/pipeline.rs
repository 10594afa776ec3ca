//! The cleaning run over files: chunks of records processed in parallel, then decided in
//! input order, written to `train.jsonl` and `val.jsonl` through temporary files that are
//! renamed into place only when the whole run has succeeded.

use super::dedup::{Dedup, Verdict};
use super::filters::{check_filters, is_cjk, Rule};
use super::lsh::LshParams;
use super::minhash::{fnv1a, shingles_into, MinHasher, ShingleKind, FNV_PRIME};
use super::normalize::normalize;
use super::pii::{mask_pii, PiiCounts};
use super::reader::{InputKind, Inputs, RawItem};
use super::record::Record;
use super::report::{CleanReport, Example};
use super::spill::{io_error, Passed, ScratchDir};
use super::CleanOptions;
use crate::data::TextCodec;
use crate::error::{Error, Location, Result};
use deltaw_tensor::mix64;
use rayon::prelude::*;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// The files [`clean_files`] writes into its output folder.
pub const OUTPUT_FILES: [&str; 4] = ["train.jsonl", "val.jsonl", "report.json", "report.md"];

/// Records per parallel chunk: enough to keep every thread busy, few enough that a chunk's
/// records and results stay a few megabytes.
const CHUNK: usize = 4096;

/// Cleans `inputs` into `out_dir` (created if needed): `train.jsonl` and `val.jsonl` in the
/// records' own layouts (a text paragraph becomes `{"text": ...}`), `report.json` and
/// `report.md`. Lengths are in tokens of `codec` when given, in characters otherwise.
///
/// ```
/// use deltaw_train::clean::{clean_files, CleanOptions};
/// let dir = std::env::temp_dir().join(format!("deltaw-clean-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let input = dir.join("in.jsonl");
/// std::fs::write(&input, concat!(
///     r#"{"instruction": "Ｈｉ!", "output": "Mail me at a@b.com"}"#, "\n",
///     r#"{"instruction": "Hi!", "output": "Mail me at c@d.org"}"#, "\n",   // same after masking
///     r#"{"instruction": "Empty", "output": "  "}"#, "\n"))?;
/// let report = clean_files(&[input], &dir.join("out"), &CleanOptions::default(), None)?;
/// assert_eq!((report.records_read, report.kept), (3, 1));
/// assert_eq!((report.removed["exact_duplicate"], report.removed["empty_answer"]), (1, 1));
/// assert_eq!(report.pii_masked["email"], 1);
/// let kept = std::fs::read_to_string(dir.join("out/train.jsonl"))? + &std::fs::read_to_string(dir.join("out/val.jsonl"))?;
/// assert_eq!(kept, "{\"instruction\":\"Hi!\",\"output\":\"Mail me at <EMAIL>\"}\n");
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// Invalid options; an input that cannot be read, is binary or of an unknown format; a
/// malformed record (unless `skip_bad`, which counts it and goes on); an output that cannot
/// be written. On error nothing in `out_dir` is replaced.
pub fn clean_files(
    inputs: &[PathBuf],
    out_dir: &Path,
    options: &CleanOptions,
    codec: Option<&(dyn TextCodec + Sync)>,
) -> Result<CleanReport> {
    options.validate()?;
    std::fs::create_dir_all(out_dir).map_err(io_error(out_dir))?;
    let processor = Processor::new(options, codec);
    let names = inputs.iter().map(|p| p.display().to_string()).collect();
    let settings = serde_json::json!({ "options": options, "lsh": processor.params });
    let unit = if codec.is_some() { "tokens" } else { "chars" };
    let total: u64 = inputs.iter().filter_map(|p| p.metadata().ok()).map(|m| m.len()).sum();
    let scratch = ScratchDir::create(out_dir.join(format!(".clean-scratch.tmp{}", std::process::id())))?;
    let mut run =
        Run { report: CleanReport::new(names, unit, settings), dedup: Dedup::new(scratch, total)?, inputs, options };
    let bar = progress_bar(total, options.progress);
    let mut source = Inputs::new(inputs, CHUNK);
    // Three stages overlap: while the pool works on chunk k, one task takes chunk k - 1's
    // decisions in input order and another reads chunk k + 1. On 2 cores the in-order part
    // and the reading would otherwise leave a core idle for about a tenth of the run.
    let mut chunk = source.next_chunk()?;
    let mut pending: Option<(usize, Vec<Processed>)> = None;
    while chunk.is_some() || pending.is_some() {
        let (processed, (taken, next)) = rayon::join(
            || chunk.map(|(file, items)| (file, processor.process_chunk(&items))),
            || {
                rayon::join(
                    || pending.map_or(Ok(()), |(file, done)| run.take_chunk(file, done)),
                    || source.next_chunk(),
                )
            },
        );
        taken?;
        chunk = next?;
        pending = processed;
        bar.set_position(source.bytes_read());
    }
    bar.finish_and_clear();
    run.finish(out_dir)
}

fn progress_bar(total: u64, show: bool) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    let template = "{bar:30} {bytes}/{total_bytes} [{elapsed_precise}<{eta_precise}] {bytes_per_sec}";
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

/// What one record became, computed without looking at any other record.
struct Processed {
    location: Location,
    /// The length before cleaning, for records that parsed.
    before: Option<usize>,
    outcome: Outcome,
}

enum Outcome {
    Bad(String),
    Removed { rule: Rule, text: String },
    Candidate(Candidate),
}

/// A record that passed the filters, with its deduplication keys.
struct Candidate {
    passed: Passed,
    /// The exact-duplicate key, `hash_bytes(text)`, independent of the split's hash.
    exact: u64,
    bands: Vec<u64>,
}

/// One thread's reusable buffers: shingle hashes and a signature.
type Buffers = (Vec<u64>, Vec<u32>);

/// The per-record work, shared by all threads.
struct Processor<'a> {
    options: &'a CleanOptions,
    codec: Option<&'a (dyn TextCodec + Sync)>,
    hasher: MinHasher,
    params: LshParams,
}

impl<'a> Processor<'a> {
    fn new(options: &'a CleanOptions, codec: Option<&'a (dyn TextCodec + Sync)>) -> Processor<'a> {
        let hasher = MinHasher::new(options.dedup.num_perm, options.seed);
        let params = LshParams::optimal(options.dedup.threshold, options.dedup.num_perm);
        Processor { options, codec, hasher, params }
    }

    /// A chunk's records in parallel, each thread reusing its own shingle and signature buffers.
    fn process_chunk(&self, items: &[RawItem]) -> Vec<Processed> {
        let scratch = || (Vec::new(), vec![0u32; self.hasher.num_perm()]);
        items.par_iter().map_init(scratch, |buffers, item| self.process(item, buffers)).collect()
    }

    fn process(&self, item: &RawItem, buffers: &mut Buffers) -> Processed {
        let bad = |message: String| Processed { location: item.location, before: None, outcome: Outcome::Bad(message) };
        let raw = match &item.text {
            Ok(text) => text,
            Err(message) => return bad(message.clone()),
        };
        let mut record = match item.kind {
            InputKind::Text => Record::from_text(raw),
            InputKind::JsonLines | InputKind::JsonArray => match Record::from_json(raw) {
                Ok(record) => record,
                Err(message) => return bad(message),
            },
        };
        let before = match self.length(&record.text()) {
            Ok(length) => length,
            Err(message) => return bad(message),
        };
        let outcome = self.clean(&mut record, buffers).unwrap_or_else(Outcome::Bad);
        Processed { location: item.location, before: Some(before), outcome }
    }

    /// Normalises and masks `record` in place, filters it, and hashes what is left.
    fn clean(&self, record: &mut Record, buffers: &mut Buffers) -> std::result::Result<Outcome, String> {
        let mut pii = PiiCounts::default();
        let options = self.options;
        record.map_texts(|field| {
            let field = normalize(field, options.normalize);
            if !options.mask_pii {
                return field;
            }
            let (masked, counts) = mask_pii(&field);
            pii.iter_mut().zip(counts).for_each(|(total, c)| *total += c);
            masked
        });
        let text = record.text();
        let length = self.length(&text)?;
        if let Some(rule) = check_filters(&text, &record.answers(), length, &options.filters) {
            return Ok(Outcome::Removed { rule, text });
        }
        // One FNV pass serves both hashes: `hash_bytes(text)` finalises the state as it is,
        // `hash_bytes(text ++ [1])` after one more byte.
        let state = fnv1a(text.as_bytes());
        let (exact, split) = (mix64(state), mix64((state ^ 1).wrapping_mul(FNV_PRIME)));
        let (shingles, signature) = buffers;
        self.shingles(&text, shingles);
        self.hasher.signature_into(shingles, signature);
        let bands = self.params.band_keys(signature);
        let passed = Passed { line: record.to_line(), text, split, length, pii };
        Ok(Outcome::Candidate(Candidate { passed, exact, bands }))
    }

    /// Shingles of the lower-cased text, by characters for mostly-CJK text unless told.
    fn shingles(&self, text: &str, hashes: &mut Vec<u64>) {
        let text = text.to_lowercase();
        let kind = self.options.dedup.shingle.unwrap_or_else(|| {
            if text.is_ascii() {
                return ShingleKind::Word; // no CJK character
            }
            let (cjk, visible) = text
                .chars()
                .filter(|c| !c.is_whitespace())
                .fold((0, 0), |(k, n), c| (k + usize::from(is_cjk(c)), n + 1));
            if 3 * cjk > visible {
                ShingleKind::Char
            } else {
                ShingleKind::Word
            }
        });
        let size = self.options.dedup.shingle_size.unwrap_or(if kind == ShingleKind::Char { 5 } else { 3 });
        shingles_into(&text, kind, size, hashes);
    }

    fn length(&self, text: &str) -> std::result::Result<usize, String> {
        match self.codec {
            Some(codec) => codec.encode(text).map(|ids| ids.len()).map_err(|e| format!("cannot tokenize: {e}")),
            None => Ok(text.chars().count()),
        }
    }
}

/// The in-order part of a run. The first pass counts and reports what the filters removed
/// and spills the rest with their keys; [`Run::finish`] then decides the duplicates and
/// writes the split, the outputs and the report.
struct Run<'a> {
    report: CleanReport,
    dedup: Dedup,
    inputs: &'a [PathBuf],
    options: &'a CleanOptions,
}

impl Run<'_> {
    /// Takes a chunk's records of input `file` in order.
    fn take_chunk(&mut self, file: usize, chunk: Vec<Processed>) -> Result<()> {
        chunk.into_iter().try_for_each(|p| self.take(file, p))
    }

    fn take(&mut self, file: usize, p: Processed) -> Result<()> {
        let path = &self.inputs[file];
        let at = |location: Location| format!("{}: {location}", path.display());
        self.report.records_read += 1;
        if let Some(before) = p.before {
            self.report.lengths_before.add(before);
        }
        match p.outcome {
            Outcome::Bad(message) if self.options.skip_bad => {
                self.report.bad_records += 1;
                if self.report.examples_bad.len() < super::report::EXAMPLES_PER_RULE {
                    self.report.examples_bad.push(Example::new("bad_record", at(p.location), &message));
                }
                Ok(())
            }
            Outcome::Bad(message) => Err(Error::Record { path: path.to_path_buf(), location: p.location, message }),
            Outcome::Removed { rule, text } => {
                self.report.remove(rule, || at(p.location), &text);
                Ok(())
            }
            Outcome::Candidate(c) => self.dedup.push(file as u32, p.location, &c.passed, c.exact, &c.bands),
        }
    }

    /// Decides the duplicates, writes the kept records to their side of the split, renames
    /// the data files into place and writes the reports.
    fn finish(self, out_dir: &Path) -> Result<CleanReport> {
        let Run { mut report, dedup, inputs, options } = self;
        let mut decisions = dedup.decide()?;
        let mut split = Split::create(out_dir, options.seed, options.val_fraction)?;
        while let Some(d) = decisions.next()? {
            let at = || format!("{}: {}", inputs[d.file as usize].display(), d.location);
            match d.verdict {
                Verdict::ExactDuplicate => report.remove(Rule::ExactDuplicate, at, &d.passed.text),
                Verdict::NearDuplicate { leader } => {
                    let mut of = String::new();
                    // The leader's place is a read of the scratch files: for the shown examples only.
                    if report.wants_example(Rule::NearDuplicate) {
                        let (file, place) = decisions.place(leader)?;
                        of = format!("{} (near duplicate of {}: {place})", at(), report.inputs[file as usize]);
                    }
                    report.remove(Rule::NearDuplicate, || of, &d.passed.text);
                }
                Verdict::Keep => split.keep(&mut report, d.passed, at)?,
            }
        }
        // The filters' examples came from the first pass and the duplicates' from this one:
        // shown by rule, each rule's in input order.
        report.examples_removed.sort_by_key(|e| Rule::ALL.iter().position(|r| r.name() == e.why));
        split.commit()?;
        let write =
            |name: &str, text: String| deltaw_tensor::safetensors::write_atomic(&out_dir.join(name), text.as_bytes());
        write("report.json", report.to_json())?;
        write("report.md", report.to_markdown())?;
        Ok(report)
    }
}

/// The two data files and the seeded draw between them.
struct Split {
    train: TempFile,
    val: TempFile,
    seed: u64,
    val_fraction: f64,
}

impl Split {
    fn create(out_dir: &Path, seed: u64, val_fraction: f64) -> Result<Split> {
        let train = TempFile::create(&out_dir.join("train.jsonl"))?;
        Ok(Split { train, val: TempFile::create(&out_dir.join("val.jsonl"))?, seed, val_fraction })
    }

    /// Writes a kept record to its side of the split and counts it.
    fn keep(&mut self, report: &mut CleanReport, passed: Passed, at: impl FnOnce() -> String) -> Result<()> {
        report.kept += 1;
        report.lengths_after.add(passed.length);
        report.masked(&passed.pii, at, &passed.text);
        let draw = mix64(self.seed ^ passed.split) as f64 / 2f64.powi(64);
        if draw < self.val_fraction {
            report.val += 1;
            self.val.write_line(&passed.line)
        } else {
            report.train += 1;
            self.train.write_line(&passed.line)
        }
    }

    fn commit(self) -> Result<()> {
        self.train.commit()?;
        self.val.commit()
    }
}

/// A file written under a temporary name beside its final one and renamed over it by
/// [`TempFile::commit`]; dropped without a commit, the temporary file is removed.
struct TempFile {
    path: PathBuf,
    tmp: PathBuf,
    writer: Option<BufWriter<File>>,
}

impl TempFile {
    fn create(path: &Path) -> Result<TempFile> {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("out");
        let tmp = path.with_file_name(format!(".{name}.tmp{}", std::process::id()));
        let file = File::create(&tmp).map_err(|source| Error::Io { path: tmp.clone(), source })?;
        Ok(TempFile { path: path.to_path_buf(), tmp, writer: Some(BufWriter::with_capacity(1 << 20, file)) })
    }

    fn write_line(&mut self, line: &str) -> Result<()> {
        let writer = self.writer.as_mut().expect("written before commit");
        writeln!(writer, "{line}").map_err(|source| Error::Io { path: self.tmp.clone(), source })
    }

    fn commit(mut self) -> Result<()> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { path, source }
        };
        let writer = self.writer.take().expect("committed once");
        let file = writer.into_inner().map_err(|e| Error::Io { path: self.tmp.clone(), source: e.into_error() })?;
        file.sync_all().map_err(io(&self.tmp))?;
        std::fs::rename(&self.tmp, &self.path).map_err(io(&self.path))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.writer.is_some() || self.tmp.exists() {
            std::fs::remove_file(&self.tmp).ok();
        }
    }
}
