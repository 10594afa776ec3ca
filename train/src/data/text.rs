//! Pretraining data: plain text files → one token stream → fixed-length blocks.
//!
//! ```text
//! a.txt, b.md ─TextCodec─► ids(a) EOS ids(b) EOS ─cut every `block` ids─► Sample, Sample, ...
//! ```
//!
//! Every file ends with the EOS id, so the model learns where a document stops. Blocks do not
//! overlap; each is trained on every position (`labels == input_ids`: the loss shifts them, so
//! a block of `L` ids gives `L - 1` predictions), and the last, shorter block is kept when it has
//! at least two ids. [`TextDataset::split`] holds out the *last* blocks for validation, text the
//! model never saw, rather than blocks drawn at random whose neighbours it trained on.
//!
//! ```
//! use deltaw_train::data::{ByteCodec, TextDataset};
//! let data = TextDataset::from_texts([("notes.txt", "abcdefg")], &ByteCodec, 3)?;
//! // ids: a b c d e f g EOS → blocks [a b c] [d e f] [g EOS]
//! assert_eq!(data.samples.len(), 3);
//! assert_eq!(data.samples[2].input_ids, [103, 256]);
//! assert_eq!(data.report.tokens, 8);
//! # Ok::<(), deltaw_train::Error>(())
//! ```

use super::codec::TextCodec;
use super::dataset::{Sample, SftDataset};
use crate::error::{Error, Result};
use std::fmt;
use std::path::{Path, PathBuf};

/// The file types read from a folder.
const EXTENSIONS: [&str; 3] = ["txt", "md", "text"];

/// What was read, for the user to check before training on it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TextReport {
    pub files: usize,
    /// Characters of text (not bytes).
    pub chars: usize,
    /// Ids, EOS markers included.
    pub tokens: usize,
    pub blocks: usize,
}

impl fmt::Display for TextReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} files, {} characters, {} tokens, {} blocks", self.files, self.chars, self.tokens, self.blocks)
    }
}

/// Token blocks for pretraining, as samples the trainer takes.
#[derive(Clone, Debug)]
pub struct TextDataset {
    pub samples: Vec<Sample>,
    pub report: TextReport,
}

impl TextDataset {
    /// Reads `paths`: files as they are, folders for their `.txt`, `.md` and `.text` files
    /// (recursively, in sorted order, so the stream is the same on every machine).
    ///
    /// # Errors
    /// No path given, a path that does not exist or cannot be read (naming it), a file that is
    /// not UTF-8, a folder with no text file, no text at all, or `block < 2`.
    pub fn load(paths: &[PathBuf], codec: &dyn TextCodec, block: usize) -> Result<TextDataset> {
        let files = text_files(paths)?;
        let mut texts = Vec::with_capacity(files.len());
        for file in &files {
            let text = std::fs::read_to_string(file).map_err(|source| Error::Io { path: file.clone(), source })?;
            texts.push((file.as_path(), text));
        }
        TextDataset::from_texts(texts.iter().map(|(p, t)| (*p, t.as_str())), codec, block)
    }

    /// [`load`](Self::load) from `(name, text)` pairs already in memory.
    ///
    /// # Errors
    /// `block < 2`, or no text at all (naming the first source).
    pub fn from_texts<'a, P: AsRef<Path> + 'a>(
        texts: impl IntoIterator<Item = (P, &'a str)>,
        codec: &dyn TextCodec,
        block: usize,
    ) -> Result<TextDataset> {
        if block < 2 {
            return Err(Error::Options(format!("block size {block}: a block needs at least 2 tokens")));
        }
        let mut report = TextReport::default();
        let mut ids = Vec::new();
        let mut first: Option<PathBuf> = None;
        for (path, text) in texts {
            first.get_or_insert_with(|| path.as_ref().to_path_buf());
            report.files += 1;
            report.chars += text.chars().count();
            ids.extend(codec.encode(text)?);
            ids.push(codec.eos_id());
        }
        if report.chars == 0 {
            let path = first.unwrap_or_default();
            return Err(Error::EmptyDataset { path, why: "there is no text to train on".into() });
        }
        report.tokens = ids.len();
        let samples: Vec<Sample> = ids
            .chunks(block)
            .filter(|chunk| chunk.len() >= 2)
            .map(|chunk| Sample { input_ids: chunk.to_vec(), labels: chunk.to_vec() })
            .collect();
        report.blocks = samples.len();
        Ok(TextDataset { samples, report })
    }

    /// `(train, validation)`: the last `⌈fraction · blocks⌉` blocks are held out (at least one
    /// block stays for training). `fraction` 0 gives no validation set.
    ///
    /// # Errors
    /// `fraction` outside `[0, 1)`.
    pub fn split(self, fraction: f64) -> Result<(SftDataset, Option<SftDataset>)> {
        if !(0.0..1.0).contains(&fraction) {
            return Err(Error::Options(format!("validation fraction {fraction} must be in [0, 1)")));
        }
        let mut samples = self.samples;
        let held = ((samples.len() as f64 * fraction).ceil() as usize).min(samples.len().saturating_sub(1));
        if held == 0 {
            return Ok((SftDataset { samples }, None));
        }
        let val = samples.split_off(samples.len() - held);
        Ok((SftDataset { samples }, Some(SftDataset { samples: val })))
    }
}

/// The files named, with each folder replaced by its text files (sorted, recursive).
fn text_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    if paths.is_empty() {
        return Err(Error::Options("no text files given".into()));
    }
    let mut files = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|source| Error::Io { path: path.clone(), source })?;
        if meta.is_dir() {
            let before = files.len();
            walk(path, &mut files)?;
            if files.len() == before {
                let why = format!("no .{} file in this folder", EXTENSIONS.join(", ."));
                return Err(Error::EmptyDataset { path: path.clone(), why });
            }
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    let io = |source| Error::Io { path: dir.to_path_buf(), source };
    let mut entries: Vec<PathBuf> =
        std::fs::read_dir(dir).map_err(io)?.map(|e| e.map(|e| e.path())).collect::<std::io::Result<_>>().map_err(io)?;
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk(&path, files)?;
        } else if path.extension().and_then(|e| e.to_str()).is_some_and(|e| EXTENSIONS.contains(&e)) {
            files.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::ByteCodec;

    #[test]
    fn every_file_ends_with_eos_and_blocks_cover_the_stream() {
        let data = TextDataset::from_texts([("a", "hi"), ("b", "yo!")], &ByteCodec, 4).unwrap();
        let stream: Vec<i32> = data.samples.iter().flat_map(|s| s.input_ids.clone()).collect();
        assert_eq!(stream, [104, 105, 256, 121, 111, 33, 256]);
        assert!(data.samples.iter().all(|s| s.labels == s.input_ids));
        assert_eq!(data.report, TextReport { files: 2, chars: 5, tokens: 7, blocks: 2 });
    }

    #[test]
    fn a_last_block_of_one_token_is_dropped() {
        let data = TextDataset::from_texts([("a", "abc")], &ByteCodec, 2).unwrap(); // a b | c EOS
        assert_eq!(data.samples.len(), 2);
        let data = TextDataset::from_texts([("a", "ab")], &ByteCodec, 2).unwrap(); // a b | EOS
        assert_eq!(data.samples.len(), 1);
    }

    #[test]
    fn validation_is_the_tail_and_training_keeps_a_block() {
        let data = TextDataset::from_texts([("a", "abcdefghij")], &ByteCodec, 2).unwrap(); // 11 ids, 5 blocks
        let (train, val) = data.clone().split(0.2).unwrap();
        assert_eq!((train.len(), val.as_ref().map(SftDataset::len)), (4, Some(1)));
        assert_eq!(val.unwrap().samples[0].input_ids, [105, 106]);
        assert_eq!(data.clone().split(0.0).unwrap().1, None);
        assert!(data.split(1.0).is_err());
    }

    #[test]
    fn empty_text_and_missing_files_are_errors_naming_them() {
        let err = TextDataset::from_texts([("empty.txt", "")], &ByteCodec, 8).unwrap_err();
        assert!(err.to_string().starts_with("empty.txt: the dataset is empty"), "{err}");
        let err = TextDataset::load(&[PathBuf::from("/no/such/file.txt")], &ByteCodec, 8).unwrap_err();
        assert!(err.to_string().starts_with("/no/such/file.txt:"), "{err}");
        let dir = std::env::temp_dir().join(format!("deltaw-text-empty-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let err = TextDataset::load(std::slice::from_ref(&dir), &ByteCodec, 8).unwrap_err();
        assert!(err.to_string().contains("no .txt, .md, .text file"), "{err}");
        std::fs::write(dir.join("a.md"), "# Title\nbody").unwrap();
        std::fs::write(dir.join("skip.json"), "{}").unwrap();
        let data = TextDataset::load(std::slice::from_ref(&dir), &ByteCodec, 8).unwrap();
        assert_eq!(data.report.files, 1);
        std::fs::remove_dir_all(&dir).ok();
    }
}
