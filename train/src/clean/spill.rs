//! The scratch files of a cleaning run, so that its memory does not grow with the input: a
//! folder beside the outputs, partition files of fixed-size `(key, id)` entries, and the spill
//! of every record that passed the filters, read back in order once the duplicates are known.

use super::pii::PiiCounts;
use crate::error::{Error, Location, Result};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The error for an I/O failure on `path`.
pub(crate) fn io_error(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.to_path_buf(), source }
}

/// A folder of scratch files, removed with everything in it when dropped (on success and on
/// error alike).
pub(crate) struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    pub(crate) fn create(path: PathBuf) -> Result<ScratchDir> {
        std::fs::create_dir_all(&path).map_err(io_error(&path))?;
        Ok(ScratchDir { path })
    }

    pub(crate) fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.path).ok();
    }
}

/// Bytes of one partition entry: a `u64` key and a `u32` id, little-endian.
const ENTRY: usize = 12;

/// Each partition's write buffer. With at most 256 partitions open at once that is 1 MiB in
/// all, and still 341 entries per `write` call.
const PARTITION_BUFFER: usize = 4096;

/// `n` files of `(key, id)` entries, each entry going to the file its caller picks; written in
/// one pass, then read back one file at a time with [`take_partition`].
pub(crate) struct Partitions {
    paths: Vec<PathBuf>,
    writers: Vec<BufWriter<File>>,
}

impl Partitions {
    pub(crate) fn create(dir: &ScratchDir, prefix: &str, n: usize) -> Result<Partitions> {
        let paths: Vec<PathBuf> = (0..n).map(|k| dir.file(&format!("{prefix}-{k:03}"))).collect();
        let writers = paths
            .iter()
            .map(|path| Ok(BufWriter::with_capacity(PARTITION_BUFFER, File::create(path).map_err(io_error(path))?)))
            .collect::<Result<_>>()?;
        Ok(Partitions { paths, writers })
    }

    pub(crate) fn len(&self) -> usize {
        self.paths.len()
    }

    pub(crate) fn push(&mut self, part: usize, key: u64, id: u32) -> Result<()> {
        let mut entry = [0u8; ENTRY];
        entry[..8].copy_from_slice(&key.to_le_bytes());
        entry[8..].copy_from_slice(&id.to_le_bytes());
        self.writers[part].write_all(&entry).map_err(io_error(&self.paths[part]))
    }

    /// Flushes and closes every file; their paths, in partition order.
    pub(crate) fn into_paths(self) -> Result<Vec<PathBuf>> {
        for (writer, path) in self.writers.into_iter().zip(&self.paths) {
            writer.into_inner().map_err(|e| Error::Io { path: path.clone(), source: e.into_error() })?;
        }
        Ok(self.paths)
    }
}

/// A partition's entries in the order they were written; the file is removed.
pub(crate) fn take_partition(path: &Path) -> Result<Vec<(u64, u32)>> {
    let file = File::open(path).map_err(io_error(path))?;
    let count = file.metadata().map_err(io_error(path))?.len() as usize / ENTRY;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let mut entries = Vec::with_capacity(count);
    let mut entry = [0u8; ENTRY];
    for _ in 0..count {
        reader.read_exact(&mut entry).map_err(io_error(path))?;
        let key = u64::from_le_bytes(entry[..8].try_into().expect("8 bytes"));
        entries.push((key, u32::from_le_bytes(entry[8..].try_into().expect("4 bytes"))));
    }
    drop(reader);
    std::fs::remove_file(path).map_err(io_error(path))?;
    Ok(entries)
}

/// What the in-order decisions need of a record that passed the filters.
#[derive(Debug, PartialEq)]
pub(crate) struct Passed {
    /// The cleaned record in its input's layout, as it is written out.
    pub(crate) line: String,
    /// Its text as the filters and the report see it.
    pub(crate) text: String,
    /// Decides the split: `hash_bytes(text ++ [1])`.
    pub(crate) split: u64,
    pub(crate) length: usize,
    pub(crate) pii: PiiCounts,
}

/// A record's place in 64 bits: the top bit says `Record`, the rest is the number.
fn encode_location(location: Location) -> u64 {
    match location {
        Location::Line(n) => n as u64,
        Location::Record(n) => n as u64 | 1 << 63,
    }
}

fn decode_location(word: u64) -> Location {
    let n = (word & !(1 << 63)) as usize;
    if word >> 63 == 1 {
        Location::Record(n)
    } else {
        Location::Line(n)
    }
}

/// Bytes of a spilled record's fixed part: input file, location, split, length, the six PII
/// counts, and the lengths of the line and the text that follow it.
const HEADER: usize = 4 + 8 * (3 + 6 + 2);

/// The spill of passed records, and beside it a file of their fixed-size locations so that
/// any record's place can be looked up by its number.
pub(crate) struct SpillWriter {
    records: BufWriter<File>,
    locations: BufWriter<File>,
    paths: [PathBuf; 2],
}

impl SpillWriter {
    pub(crate) fn create(dir: &ScratchDir) -> Result<SpillWriter> {
        let paths = [dir.file("records"), dir.file("locations")];
        let open = |path: &PathBuf| {
            Ok::<_, Error>(BufWriter::with_capacity(1 << 20, File::create(path).map_err(io_error(path))?))
        };
        Ok(SpillWriter { records: open(&paths[0])?, locations: open(&paths[1])?, paths })
    }

    pub(crate) fn write(&mut self, file: u32, location: Location, passed: &Passed) -> Result<()> {
        let mut place = [0u8; 12];
        place[..4].copy_from_slice(&file.to_le_bytes());
        place[4..].copy_from_slice(&encode_location(location).to_le_bytes());
        self.locations.write_all(&place).map_err(io_error(&self.paths[1]))?;
        let mut header = Vec::with_capacity(HEADER);
        header.extend_from_slice(&place);
        let words = [passed.split, passed.length as u64].into_iter().chain(passed.pii.iter().map(|&c| c as u64));
        let lengths = [passed.line.len() as u64, passed.text.len() as u64];
        words.chain(lengths).for_each(|w| header.extend_from_slice(&w.to_le_bytes()));
        let io = io_error(&self.paths[0]);
        self.records.write_all(&header).map_err(&io)?;
        self.records.write_all(passed.line.as_bytes()).map_err(&io)?;
        self.records.write_all(passed.text.as_bytes()).map_err(&io)
    }

    /// Flushes both files and opens them for reading from the start.
    pub(crate) fn into_reader(self) -> Result<SpillReader> {
        let [records, locations] = self.paths;
        let flush = |writer: BufWriter<File>, path: &Path| {
            writer.into_inner().map_err(|e| Error::Io { path: path.to_path_buf(), source: e.into_error() })
        };
        flush(self.records, &records)?;
        flush(self.locations, &locations)?;
        let reader = BufReader::with_capacity(1 << 20, File::open(&records).map_err(io_error(&records))?);
        let places = File::open(&locations).map_err(io_error(&locations))?;
        Ok(SpillReader { records: reader, locations: places, paths: [records, locations] })
    }
}

/// The spill read back in order, with random access to any record's place.
pub(crate) struct SpillReader {
    records: BufReader<File>,
    locations: File,
    paths: [PathBuf; 2],
}

impl SpillReader {
    /// The next record: its input file, its location and what was spilled of it.
    pub(crate) fn read(&mut self) -> Result<(u32, Location, Passed)> {
        let io = io_error(&self.paths[0]);
        let mut header = [0u8; HEADER];
        self.records.read_exact(&mut header).map_err(&io)?;
        let file = u32::from_le_bytes(header[..4].try_into().expect("4 bytes"));
        let word = |k: usize| u64::from_le_bytes(header[4 + 8 * k..12 + 8 * k].try_into().expect("8 bytes"));
        let mut pii = PiiCounts::default();
        pii.iter_mut().enumerate().for_each(|(k, c)| *c = word(3 + k) as usize);
        let mut string = |len: u64| -> Result<String> {
            let mut bytes = vec![0u8; len as usize];
            self.records.read_exact(&mut bytes).map_err(&io)?;
            String::from_utf8(bytes).map_err(|e| io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))
        };
        let line = string(word(9))?;
        let text = string(word(10))?;
        Ok((file, decode_location(word(0)), Passed { line, text, split: word(1), length: word(2) as usize, pii }))
    }

    /// The input file and location of record number `id`.
    pub(crate) fn place(&mut self, id: u32) -> Result<(u32, Location)> {
        let io = io_error(&self.paths[1]);
        let mut place = [0u8; 12];
        self.locations.seek(SeekFrom::Start(12 * u64::from(id))).map_err(&io)?;
        self.locations.read_exact(&mut place).map_err(&io)?;
        let word = u64::from_le_bytes(place[4..].try_into().expect("8 bytes"));
        Ok((u32::from_le_bytes(place[..4].try_into().expect("4 bytes")), decode_location(word)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> ScratchDir {
        ScratchDir::create(std::env::temp_dir().join(format!("deltaw-spill-{name}-{}", std::process::id()))).unwrap()
    }

    #[test]
    fn partitions_return_their_entries_in_order_and_are_removed() {
        let dir = scratch("parts");
        let mut parts = Partitions::create(&dir, "p", 3).unwrap();
        for id in 0..1000u32 {
            parts.push(id as usize % 3, u64::MAX - u64::from(id), id).unwrap();
        }
        let paths = parts.into_paths().unwrap();
        let second = take_partition(&paths[1]).unwrap();
        assert_eq!(second.len(), 333);
        assert_eq!(second[..2], [(u64::MAX - 1, 1), (u64::MAX - 4, 4)]);
        assert!(!paths[1].exists() && paths[2].exists());
        let root = dir.path.clone();
        drop(dir);
        assert!(!root.exists(), "the scratch folder goes with its files");
    }

    #[test]
    fn spilled_records_read_back_whole_and_places_by_number() {
        let dir = scratch("records");
        let mut spill = SpillWriter::create(&dir).unwrap();
        let passed = |k: usize| Passed {
            line: format!("{{\"text\":\"é {k}\"}}"),
            text: format!("é {k}\n"),
            split: u64::MAX - k as u64,
            length: k,
            pii: [k, 0, 1, 2, 3, usize::MAX >> 1],
        };
        let places = [Location::Line(1), Location::Record(7), Location::Line(1 << 40)];
        for (k, &place) in places.iter().enumerate() {
            spill.write(k as u32, place, &passed(k)).unwrap();
        }
        let mut reader = spill.into_reader().unwrap();
        for (k, &place) in places.iter().enumerate() {
            assert_eq!(reader.read().unwrap(), (k as u32, place, passed(k)));
        }
        assert_eq!(reader.place(1).unwrap(), (1, Location::Record(7)));
        assert_eq!(reader.place(0).unwrap(), (0, Location::Line(1)));
        assert!(reader.read().is_err(), "past the end");
    }
}
