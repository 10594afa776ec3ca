//! An SFT dataset in memory: loading a file into samples, the validation split, and
//! deterministic shuffled batches.

use super::chat::encode_with_template;
use super::codec::TextCodec;
use super::conversation::Conversation;
use super::formats::{split_records, to_conversation, DataFormat};
use super::shuffle::{mix64, permutation};
use super::template::{PromptTemplate, SftOptions, IGNORE_INDEX};
use crate::error::{Error, Result};
use deltaw_transformer::{ChatTemplate, Tokenizer};
use std::fmt;
use std::path::Path;

/// One training sequence. `labels[i]` is the target *at* position `i` (unshifted, as in
/// transformers): the loss compares the logits at `i` with `labels[i + 1]`. `IGNORE_INDEX`
/// (-100) marks positions that are not trained.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sample {
    pub input_ids: Vec<i32>,
    pub labels: Vec<i32>,
}

impl Sample {
    /// Appends `ids`, trained (labels = ids) or not (labels = -100).
    pub(crate) fn push(&mut self, ids: &[i32], trained: bool) {
        self.input_ids.extend_from_slice(ids);
        self.labels.extend(ids.iter().map(|&id| if trained { id } else { IGNORE_INDEX }));
    }

    /// Keeps the first `len` tokens; true when something was cut.
    pub fn truncate(&mut self, len: usize) -> bool {
        let cut = self.input_ids.len() > len;
        self.input_ids.truncate(len);
        self.labels.truncate(len);
        cut
    }

    pub fn len(&self) -> usize {
        self.input_ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.input_ids.is_empty()
    }

    /// Positions with a label, i.e. that the loss sees.
    pub fn trained_tokens(&self) -> usize {
        self.labels.iter().filter(|&&label| label != IGNORE_INDEX).count()
    }
}

/// What loading did, for the user to check before spending hours training on it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Records in the file (JSONL lines that are not blank, or array elements).
    pub records: usize,
    /// Samples kept.
    pub samples: usize,
    /// Unreadable records skipped under `skip_bad_lines`.
    pub skipped: usize,
    /// The first [`LoadReport::MAX_MESSAGES`] reasons for skipping, each with its location.
    pub skipped_messages: Vec<String>,
    /// Samples longer than `cutoff_len`, cut.
    pub truncated: usize,
    /// Samples left with no trained token after the cut, dropped.
    pub dropped: usize,
    /// Tokens, and trained tokens, in the kept samples.
    pub tokens: usize,
    pub trained_tokens: usize,
}

impl LoadReport {
    pub const MAX_MESSAGES: usize = 10;
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} records -> {} samples ({} skipped as unreadable, {} truncated, {} dropped with nothing to train); \
             {} tokens, {} trained",
            self.records, self.samples, self.skipped, self.truncated, self.dropped, self.tokens, self.trained_tokens
        )
    }
}

/// Tokenized, masked SFT samples.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SftDataset {
    pub samples: Vec<Sample>,
}

impl SftDataset {
    /// Reads `path` (JSON array or JSONL, see [`super::formats`]) and encodes every record.
    ///
    /// # Errors
    /// A record that cannot be read, naming the file and the line (JSONL) or record index
    /// (array), unless `options.skip_bad_lines`; a dataset with no sample left, naming the
    /// file; invalid `options`; I/O and tokenizer errors.
    pub fn load(
        path: impl AsRef<Path>,
        format: DataFormat,
        codec: &dyn TextCodec,
        template: &PromptTemplate,
        options: &SftOptions,
    ) -> Result<(SftDataset, LoadReport)> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
        SftDataset::parse(&text, path, format, codec, template, options)
    }

    /// [`load`](Self::load) from text already in memory; `path` is only named in errors.
    pub fn parse(
        text: &str,
        path: &Path,
        format: DataFormat,
        codec: &dyn TextCodec,
        template: &PromptTemplate,
        options: &SftOptions,
    ) -> Result<(SftDataset, LoadReport)> {
        let encode = |c: &Conversation| template.encode_untruncated(c, codec, options);
        SftDataset::parse_with(text, path, format, &template.alpaca_input, options, &encode)
    }

    /// [`load`](Self::load) through a model's chat template ([`super::encode_with_template`]):
    /// the whole conversation rendered by `template`, trained on the assistant turns.
    ///
    /// # Errors
    /// As [`load`](Self::load), and a template that raises or is not prefix-stable.
    pub fn load_chat(
        path: impl AsRef<Path>,
        format: DataFormat,
        template: &ChatTemplate,
        tokenizer: &Tokenizer,
        options: &SftOptions,
    ) -> Result<(SftDataset, LoadReport)> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
        let untruncated = SftOptions { cutoff_len: None, ..options.clone() };
        let encode = |c: &Conversation| encode_with_template(template, tokenizer, c, &untruncated);
        let alpaca_input = PromptTemplate::default().alpaca_input;
        SftDataset::parse_with(&text, path, format, &alpaca_input, options, &encode)
    }

    /// The loop of [`parse`](Self::parse) with any way of encoding a conversation (untruncated).
    fn parse_with(
        text: &str,
        path: &Path,
        format: DataFormat,
        alpaca_input: &str,
        options: &SftOptions,
        encode: &dyn Fn(&Conversation) -> Result<Sample>,
    ) -> Result<(SftDataset, LoadReport)> {
        let encode = |c: &Conversation| Ok((encode(c)?, ()));
        let (kept, report) = parse_records(text, path, format, alpaca_input, options, &encode)?;
        Ok((SftDataset { samples: kept.into_iter().map(|(sample, ())| sample).collect() }, report))
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Splits off a random `val_fraction` of the samples for validation, a pure function of
    /// `seed`. Both parts keep the file's order. With `val_fraction > 0` and at least two
    /// samples, validation gets at least one sample and training keeps at least one.
    ///
    /// # Panics
    /// Unless `0 <= val_fraction < 1`.
    pub fn split(self, val_fraction: f64, seed: u64) -> (SftDataset, SftDataset) {
        assert!((0.0..1.0).contains(&val_fraction), "split: val_fraction {val_fraction} is not in [0, 1)");
        let is_val = validation_mask(self.samples.len(), val_fraction, seed);
        let (mut train, mut val) = (Vec::new(), Vec::new());
        for (sample, val_sample) in self.samples.into_iter().zip(is_val) {
            if val_sample {
                val.push(sample)
            } else {
                train.push(sample)
            }
        }
        (SftDataset { samples: train }, SftDataset { samples: val })
    }

    /// The samples in batches of `batch_size` (the last one may be smaller). In file order
    /// when `shuffle_seed` is `None`; otherwise shuffled, the order a pure function of
    /// `(seed, epoch)`, so a resumed run sees exactly the batches it would have seen.
    ///
    /// # Panics
    /// If `batch_size` is 0.
    pub fn batches(
        &self,
        batch_size: usize,
        shuffle_seed: Option<u64>,
        epoch: usize,
    ) -> impl Iterator<Item = Vec<&Sample>> + '_ {
        assert!(batch_size > 0, "batches: batch_size must be at least 1");
        let order = self.epoch_order(shuffle_seed, epoch);
        (0..self.samples.len().div_ceil(batch_size)).map(move |b| self.batch_of(&order, batch_size, b))
    }

    /// The sample indices of one epoch in the order [`SftDataset::batches`] visits them.
    pub fn epoch_order(&self, shuffle_seed: Option<u64>, epoch: usize) -> Vec<usize> {
        let n = self.samples.len();
        match shuffle_seed {
            Some(seed) => permutation(n, seed ^ mix64(epoch as u64)),
            None => (0..n).collect(),
        }
    }

    /// Batch `index` of an epoch whose [`SftDataset::epoch_order`] is `order`: what
    /// `batches(..).nth(index)` gives, without building the batches before it.
    ///
    /// # Panics
    /// If `batch_size` is 0 or the batch is past the end.
    pub fn batch_of(&self, order: &[usize], batch_size: usize, index: usize) -> Vec<&Sample> {
        assert!(batch_size > 0, "batch_of: batch_size must be at least 1");
        let start = index * batch_size;
        assert!(start < order.len(), "batch_of: batch {index} of {batch_size} starts past {} samples", order.len());
        order[start..(start + batch_size).min(order.len())].iter().map(|&i| &self.samples[i]).collect()
    }
}

/// Reads every record of `text` into a conversation and encodes it with `encode` (untruncated;
/// `T` is whatever else the caller keeps per record), then cuts each sample to
/// `options.cutoff_len` and drops samples with nothing to train. The loop of
/// [`SftDataset::parse`] and of the evaluation sets.
pub(crate) fn parse_records<T>(
    text: &str,
    path: &Path,
    format: DataFormat,
    alpaca_input: &str,
    options: &SftOptions,
    encode: &dyn Fn(&Conversation) -> Result<(Sample, T)>,
) -> Result<(Vec<(Sample, T)>, LoadReport)> {
    options.validate()?;
    let records = split_records(text, path)?;
    let mut report = LoadReport { records: records.len(), ..Default::default() };
    let mut samples = Vec::with_capacity(records.len());
    for record in records {
        let conversation = record.json.and_then(|json| to_conversation(&json, format, alpaca_input));
        let conversation = match conversation {
            Ok(conversation) => conversation,
            Err(message) => {
                let error = Error::Record { path: path.to_path_buf(), location: record.location, message };
                if !options.skip_bad_lines {
                    return Err(error);
                }
                report.skipped += 1;
                if report.skipped_messages.len() < LoadReport::MAX_MESSAGES {
                    report.skipped_messages.push(error.to_string());
                }
                continue;
            }
        };
        let (mut sample, extra) = encode(&conversation)?;
        if options.cutoff_len.is_some_and(|len| sample.truncate(len)) {
            report.truncated += 1;
        }
        if sample.trained_tokens() == 0 {
            report.dropped += 1;
            continue;
        }
        report.tokens += sample.len();
        report.trained_tokens += sample.trained_tokens();
        samples.push((sample, extra));
    }
    report.samples = samples.len();
    if samples.is_empty() {
        let why = match (report.records, report.skipped) {
            (0, _) => "no records".to_string(),
            (n, skipped) if skipped == n => format!("all {n} records were unreadable and skipped"),
            _ => format!("{} samples had nothing to train on after cutoff_len", report.dropped),
        };
        return Err(Error::EmptyDataset { path: path.to_path_buf(), why });
    }
    Ok((samples, report))
}

/// Which of `n` samples go to validation in [`SftDataset::split`]: a seeded `val_fraction`
/// of them, at least one when `val_fraction > 0` and `n >= 2`, never all.
pub(crate) fn validation_mask(n: usize, val_fraction: f64, seed: u64) -> Vec<bool> {
    let n_val =
        if val_fraction == 0.0 || n < 2 { 0 } else { ((val_fraction * n as f64).round() as usize).clamp(1, n - 1) };
    let mut is_val = vec![false; n];
    for &i in &permutation(n, seed)[..n_val] {
        is_val[i] = true;
    }
    is_val
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbered(n: usize) -> SftDataset {
        SftDataset { samples: (0..n as i32).map(|i| Sample { input_ids: vec![i], labels: vec![i] }).collect() }
    }

    fn ids(batch: &[&Sample]) -> Vec<i32> {
        batch.iter().map(|s| s.input_ids[0]).collect()
    }

    #[test]
    fn split_is_seeded_ordered_and_never_empty() {
        let (train, val) = numbered(10).split(0.2, 3);
        assert_eq!((train.len(), val.len()), (8, 2));
        assert_eq!(numbered(10).split(0.2, 3), (train.clone(), val.clone()));
        assert!(val.samples.windows(2).all(|w| w[0].input_ids < w[1].input_ids));
        assert_eq!(numbered(2).split(0.01, 0).1.len(), 1);
        assert_eq!(numbered(2).split(0.99, 0).0.len(), 1);
        assert_eq!(numbered(1).split(0.5, 0).1.len(), 0);
        assert_eq!(numbered(5).split(0.0, 0).1.len(), 0);
    }

    #[test]
    fn batches_cover_every_sample_once_and_reshuffle_per_epoch() {
        let data = numbered(7);
        let plain: Vec<Vec<i32>> = data.batches(3, None, 0).map(|b| ids(&b)).collect();
        assert_eq!(plain, vec![vec![0, 1, 2], vec![3, 4, 5], vec![6]]);
        let epoch0: Vec<i32> = data.batches(3, Some(1), 0).flat_map(|b| ids(&b)).collect();
        let again: Vec<i32> = data.batches(3, Some(1), 0).flat_map(|b| ids(&b)).collect();
        let epoch1: Vec<i32> = data.batches(3, Some(1), 1).flat_map(|b| ids(&b)).collect();
        assert_eq!(epoch0, again);
        assert_ne!(epoch0, epoch1);
        let mut sorted = epoch1.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..7).collect::<Vec<_>>());
    }

    #[test]
    fn batch_of_is_the_nth_batch() {
        let data = numbered(7);
        let order = data.epoch_order(Some(5), 2);
        for (i, batch) in data.batches(3, Some(5), 2).enumerate() {
            assert_eq!(ids(&data.batch_of(&order, 3, i)), ids(&batch));
        }
    }
}
