//! Streaming input: a file is read piece by piece and cut into raw records, so its size is
//! bounded by the disk, not by memory.
//!
//! - JSONL: one record per non-blank line (`Location::Line`, from 1).
//! - a JSON array (first non-blank byte `[`): elements are cut out by a scanner that tracks
//!   strings, escapes and bracket depth, so a multi-gigabyte array is never held whole
//!   (`Location::Record`, from 0).
//! - plain text (`.txt`, `.md`, `.text`): one record per paragraph, paragraphs separated by
//!   blank lines (`Location::Line` of the paragraph's first line).
//!
//! A file with a NUL byte in its first 8 KiB is refused as binary; a line that is not UTF-8
//! is that record's problem only.

use crate::error::{Error, Location, Result};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// How a file's bytes become records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputKind {
    JsonLines,
    JsonArray,
    Text,
}

/// One record as read: where it is and its text, or why it could not be read.
#[derive(Debug)]
pub struct RawItem {
    pub location: Location,
    pub text: std::result::Result<String, String>,
    pub kind: InputKind,
}

/// Reads raw records from one file, in order.
pub struct RecordReader {
    path: PathBuf,
    reader: BufReader<File>,
    kind: InputKind,
    /// Lines read so far (JSONL, text) or elements seen (array).
    count: usize,
    /// Bytes consumed so far, for the progress bar.
    pub bytes_read: u64,
    done: bool,
    /// The array's opening `[` has been read (JSON arrays).
    opened: bool,
}

impl RecordReader {
    /// Opens `path`, refuses binary files and decides its kind from the extension (`.json`,
    /// `.jsonl`, `.txt`, `.md`, `.text`) or, for any other, from its first non-blank byte
    /// (`{` JSONL, `[` array); anything else is an unknown format.
    ///
    /// # Errors
    /// The file cannot be read, is binary, or its format cannot be told.
    pub fn open(path: &Path) -> Result<RecordReader> {
        let io = |source| Error::Io { path: path.to_path_buf(), source };
        let mut head = Vec::with_capacity(8192);
        File::open(path).map_err(io)?.take(8192).read_to_end(&mut head).map_err(io)?;
        if let Some(at) = head.iter().position(|&b| b == 0) {
            let message = format!("a NUL byte at offset {at}: this looks like a binary file, not text or JSON");
            return Err(Error::Record {
                path: path.to_path_buf(),
                location: Location::Line(line_of(&head, at)),
                message,
            });
        }
        let first = head.iter().copied().find(|b| !b.is_ascii_whitespace() && !matches!(b, 0xef | 0xbb | 0xbf));
        let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
        let kind = match (extension.as_str(), first) {
            ("txt" | "md" | "text", _) => InputKind::Text,
            (_, Some(b'[')) => InputKind::JsonArray,
            ("json" | "jsonl", _) | (_, Some(b'{')) => InputKind::JsonLines,
            _ => {
                let message = "unknown format: expected JSON / JSONL records (Alpaca, ShareGPT, OpenAI messages) or \
                               a .txt / .md text file"
                    .to_string();
                return Err(Error::Record { path: path.to_path_buf(), location: Location::Line(1), message });
            }
        };
        let reader = BufReader::with_capacity(1 << 20, File::open(path).map_err(io)?);
        Ok(RecordReader { path: path.to_path_buf(), reader, kind, count: 0, bytes_read: 0, done: false, opened: false })
    }

    pub fn kind(&self) -> InputKind {
        self.kind
    }

    /// The next record, `None` at the end of the file.
    ///
    /// # Errors
    /// Reading fails (a record that is merely malformed is an `Err` inside the item).
    pub fn next_item(&mut self) -> Result<Option<RawItem>> {
        if self.done {
            return Ok(None);
        }
        let item = match self.kind {
            InputKind::JsonLines => self.next_line(),
            InputKind::JsonArray => self.next_element(),
            InputKind::Text => self.next_paragraph(),
        };
        let item = item.map_err(|source| Error::Io { path: self.path.clone(), source })?;
        self.done = item.is_none();
        Ok(item)
    }

    /// One line without its line break, `None` at the end.
    fn read_line(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        let mut line = Vec::new();
        let n = self.reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            return Ok(None);
        }
        self.bytes_read += n as u64;
        self.count += 1;
        while line.last().is_some_and(|&b| b == b'\n' || b == b'\r') {
            line.pop();
        }
        if self.count == 1 && line.starts_with(b"\xef\xbb\xbf") {
            line.drain(..3);
        }
        Ok(Some(line))
    }

    fn next_line(&mut self) -> std::io::Result<Option<RawItem>> {
        while let Some(line) = self.read_line()? {
            if !line.iter().all(u8::is_ascii_whitespace) {
                let location = Location::Line(self.count);
                return Ok(Some(RawItem { location, text: utf8(line), kind: self.kind }));
            }
        }
        Ok(None)
    }

    fn next_paragraph(&mut self) -> std::io::Result<Option<RawItem>> {
        let mut paragraph: Vec<u8> = Vec::new();
        let mut first_line = 0;
        while let Some(line) = self.read_line()? {
            let blank = line.iter().all(u8::is_ascii_whitespace);
            if blank && !paragraph.is_empty() {
                break;
            }
            if !blank {
                if paragraph.is_empty() {
                    first_line = self.count;
                } else {
                    paragraph.push(b'\n');
                }
                paragraph.extend_from_slice(&line);
            }
        }
        if paragraph.is_empty() {
            return Ok(None);
        }
        Ok(Some(RawItem { location: Location::Line(first_line), text: utf8(paragraph), kind: self.kind }))
    }

    /// The next element of the top-level array: skips `[`, `,` and whitespace before it, then
    /// takes bytes until a `,` or `]` at depth 0 outside a string.
    fn next_element(&mut self) -> std::io::Result<Option<RawItem>> {
        let mut element = Vec::new();
        let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
        loop {
            let buffer = self.reader.fill_buf()?;
            if buffer.is_empty() {
                break;
            }
            let mut used = 0;
            let mut end = false;
            for &b in buffer {
                used += 1;
                if in_string {
                    in_string = b != b'"' || escaped;
                    escaped = b == b'\\' && !escaped;
                } else if element.is_empty() && (b.is_ascii_whitespace() || b == b',') {
                    continue;
                } else if element.is_empty() && b == b'[' && !self.opened {
                    self.opened = true;
                    continue;
                } else if (element.is_empty() && b == b']') || (depth == 0 && (b == b',' || b == b']')) {
                    // The end of the array, or of an element at the top level.
                    end = true;
                    break;
                } else {
                    match b {
                        b'"' => in_string = true,
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => depth = depth.saturating_sub(1),
                        _ => {}
                    }
                }
                element.push(b);
            }
            self.reader.consume(used);
            self.bytes_read += used as u64;
            if end {
                break;
            }
        }
        while element.last().is_some_and(u8::is_ascii_whitespace) {
            element.pop();
        }
        if element.is_empty() {
            return Ok(None);
        }
        let location = Location::Record(self.count);
        self.count += 1;
        Ok(Some(RawItem { location, text: utf8(element), kind: self.kind }))
    }
}

/// The records of several files in order, in chunks of at most `chunk` records (a chunk never
/// spans two files, so each names its file).
pub(crate) struct Inputs<'a> {
    paths: &'a [PathBuf],
    /// The file being read and its index in `paths`.
    current: Option<(usize, RecordReader)>,
    next: usize,
    /// Bytes of the files read to the end.
    finished_bytes: u64,
    chunk: usize,
}

impl<'a> Inputs<'a> {
    pub(crate) fn new(paths: &'a [PathBuf], chunk: usize) -> Inputs<'a> {
        Inputs { paths, current: None, next: 0, finished_bytes: 0, chunk }
    }

    /// The next chunk and its file's index, `None` after the last file.
    ///
    /// # Errors
    /// A file cannot be opened or read, is binary, or has an unknown format.
    pub(crate) fn next_chunk(&mut self) -> Result<Option<(usize, Vec<RawItem>)>> {
        loop {
            let (file, reader) = match &mut self.current {
                Some((file, reader)) => (*file, reader),
                None if self.next == self.paths.len() => return Ok(None),
                None => {
                    let reader = RecordReader::open(&self.paths[self.next])?;
                    self.next += 1;
                    let (file, reader) = self.current.insert((self.next - 1, reader));
                    (*file, reader)
                }
            };
            let mut items = Vec::with_capacity(self.chunk);
            while items.len() < self.chunk {
                match reader.next_item()? {
                    Some(item) => items.push(item),
                    None => break,
                }
            }
            if !items.is_empty() {
                return Ok(Some((file, items)));
            }
            self.finished_bytes += reader.bytes_read;
            self.current = None;
        }
    }

    /// Bytes read so far over all files, for the progress bar.
    pub(crate) fn bytes_read(&self) -> u64 {
        self.finished_bytes + self.current.as_ref().map_or(0, |(_, reader)| reader.bytes_read)
    }
}

fn utf8(bytes: Vec<u8>) -> std::result::Result<String, String> {
    String::from_utf8(bytes)
        .map_err(|e| format!("not valid UTF-8 (byte {} of the record)", e.utf8_error().valid_up_to()))
}

/// The line (from 1) that byte `at` of `bytes` sits on.
fn line_of(bytes: &[u8], at: usize) -> usize {
    bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(name: &str, contents: &[u8]) -> Result<Vec<RawItem>> {
        let dir = std::env::temp_dir().join(format!("deltaw-reader-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap();
        let mut reader = RecordReader::open(&path)?;
        let mut items = Vec::new();
        while let Some(item) = reader.next_item()? {
            items.push(item);
        }
        Ok(items)
    }

    #[test]
    fn json_arrays_are_cut_at_top_level_commas_only() {
        let items = read_all("a.json", br#" [ {"a": "x, ]}"}, {"b": [1, {"c": "\"]"}]}, [2] ] "#).unwrap();
        let texts: Vec<&str> = items.iter().map(|i| i.text.as_deref().unwrap()).collect();
        assert_eq!(texts, [r#"{"a": "x, ]}"}"#, r#"{"b": [1, {"c": "\"]"}]}"#, "[2]"]);
        assert_eq!(items[1].location, Location::Record(1));
    }

    #[test]
    fn jsonl_lines_and_text_paragraphs_keep_their_line_numbers() {
        let items = read_all("a.jsonl", b"\xef\xbb\xbf{\"a\":1}\r\n\n{\"b\":\xff}\n").unwrap();
        assert_eq!((items.len(), items[1].location), (2, Location::Line(3)));
        assert!(items[1].text.as_ref().unwrap_err().contains("not valid UTF-8"));
        let items = read_all("a.txt", b"\n\none\ntwo\n\n\nthree\n").unwrap();
        assert_eq!(items[0].text.as_deref(), Ok("one\ntwo"));
        assert_eq!((items[0].location, items[1].location), (Location::Line(3), Location::Line(7)));
    }

    #[test]
    fn binary_and_unknown_files_are_refused_with_a_location() {
        let e = read_all("model.bin", b"PK\x03\x04\n\x00\x00").unwrap_err().to_string();
        assert!(e.contains("model.bin: line 2: a NUL byte at offset 5"), "{e}");
        let e = read_all("table.csv", b"a,b\n1,2\n").unwrap_err().to_string();
        assert!(e.contains("table.csv: line 1: unknown format"), "{e}");
    }
}
