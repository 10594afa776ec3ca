//! The in-order deduplication state of a cleaning run, kept compact so memory grows by a few
//! dozen bytes per kept record: the exact-duplicate set and the near-duplicate (LSH) index,
//! each one flat open-addressing table, with the full band keys and each kept record's
//! location in a scratch file beside the outputs.
//!
//! ## Exact duplicates
//! One 64-bit hash per record that passed the filters, in a table of `u64` slots (linear
//! probing, at most 3/4 full; the hash 0 is stored as 1). Two distinct records share a hash
//! with probability `2^-64`, so among `n` records a false "exact duplicate" has probability
//! about `n² / 2^65` (below 10^-3 for 10^8 records).
//!
//! ## Near duplicates
//! One 32-bit fingerprint per (kept record, band): the band key's high 32 bits, in the slot its
//! low bits choose (the band keys are already seeded by their band's index, so one table
//! serves every band). A fingerprint alone does not say which slot it came from, so when the
//! table fills it doubles and is refilled from the scratch file, which holds every kept
//! record's full keys: an amortised re-read of `12 + 8 · bands` bytes per kept record. A
//! lookup compares fingerprints along its probe run, and a different key's fingerprint
//! matches with probability `2^-32` per compared slot; at most 3/4 full a miss compares
//! fewer than 9 slots on average, so a record is wrongly called a near duplicate with
//! probability below `bands · 9 · 2^-32` (`2 · 10^-8` at 9 bands), far below the banding's
//! own false positives (two records of Jaccard 0.5 collide with probability `10^-3` at the
//! default 9 bands of 13 rows).
//!
//! ## Memory per record
//! `bands · 4 / load` bytes per kept record (48 to 96 at 9 bands, the load being between 3/8
//! and 3/4 as the table doubles) plus `8 / load` bytes (11 to 21) per record that passed the
//! filters. The scratch file costs `12 + 8 · bands` bytes of disk per kept record.
//!
//! ## Which record is the leader
//! [`DedupIndex::leader`] reads the scratch file from the start and returns the first kept
//! record that shares a full 64-bit band key with the query: the earliest kept record of the
//! cluster, as the report names it. It is only called for the report's few examples.

use super::lsh::LshParams;
use crate::error::{Error, Location, Result};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// Tables start with this many slots and double when 3/4 full.
const INITIAL_SLOTS: usize = 1 << 12;

/// The exact-duplicate set, the near-duplicate index and their scratch file.
pub(crate) struct DedupIndex {
    params: LshParams,
    /// Exact hashes (0 stored as 1), 0 = empty slot.
    exact: Vec<u64>,
    exact_len: usize,
    /// Band-key fingerprints (never 0), 0 = empty slot.
    bands: Vec<u32>,
    bands_len: usize,
    /// Kept records: `[file u32][location u64][band keys u64 × bands]`, little-endian.
    log: BufWriter<File>,
    log_path: PathBuf,
}

impl DedupIndex {
    /// An empty index whose scratch file is `scratch` (created, and removed on drop).
    pub(crate) fn new(params: LshParams, scratch: &Path) -> Result<DedupIndex> {
        let file = File::create(scratch).map_err(|source| Error::Io { path: scratch.to_path_buf(), source })?;
        Ok(DedupIndex {
            params,
            exact: vec![0; INITIAL_SLOTS],
            exact_len: 0,
            bands: vec![0; INITIAL_SLOTS],
            bands_len: 0,
            log: BufWriter::with_capacity(1 << 16, file),
            log_path: scratch.to_path_buf(),
        })
    }

    /// Records `hash` as seen; false when it was seen before (an exact duplicate).
    pub(crate) fn insert_exact(&mut self, hash: u64) -> bool {
        if 4 * (self.exact_len + 1) > 3 * self.exact.len() {
            let slots = 2 * self.exact.len();
            let old = std::mem::replace(&mut self.exact, vec![0; slots]);
            for value in old.into_iter().filter(|&v| v != 0) {
                place_u64(&mut self.exact, value);
            }
        }
        let inserted = place_u64(&mut self.exact, hash.max(1));
        self.exact_len += usize::from(inserted);
        inserted
    }

    /// True when a kept record shares one of `keys` (one per band).
    pub(crate) fn is_near_duplicate(&self, keys: &[u64]) -> bool {
        keys.iter().any(|&key| find_u32(&self.bands, key))
    }

    /// Indexes a kept record found at `location` of input `file`.
    pub(crate) fn keep(&mut self, file: u32, location: Location, keys: &[u64]) -> Result<()> {
        let io = |source| Error::Io { path: self.log_path.clone(), source };
        let mut entry = Vec::with_capacity(12 + 8 * keys.len());
        entry.extend_from_slice(&file.to_le_bytes());
        entry.extend_from_slice(&encode_location(location).to_le_bytes());
        keys.iter().for_each(|key| entry.extend_from_slice(&key.to_le_bytes()));
        self.log.write_all(&entry).map_err(io)?;
        if 4 * (self.bands_len + keys.len()) > 3 * self.bands.len() {
            self.refill(2 * self.bands.len())?;
        }
        for &key in keys {
            self.bands_len += usize::from(place_u32(&mut self.bands, key));
        }
        Ok(())
    }

    /// Rebuilds the fingerprint table with `slots` slots from the scratch file, all but the
    /// entry just written (its keys are placed by the caller).
    fn refill(&mut self, slots: usize) -> Result<()> {
        // The old table is freed before the new one exists: peak memory is the new table only.
        self.bands = Vec::new();
        self.bands = vec![0; slots];
        self.bands_len = 0;
        let mut keys = Vec::with_capacity(self.params.bands);
        let mut entries = self.read_log()?;
        let total = entries.count;
        for _ in 0..total - 1 {
            entries.next_entry(&mut keys)?;
            for &key in &keys {
                self.bands_len += usize::from(place_u32(&mut self.bands, key));
            }
        }
        Ok(())
    }

    /// The input file and location of the earliest kept record sharing a band key with `keys`;
    /// `None` only when the table's match was a fingerprint collision.
    pub(crate) fn leader(&mut self, keys: &[u64]) -> Result<Option<(u32, Location)>> {
        let mut entries = self.read_log()?;
        let mut stored = Vec::with_capacity(keys.len());
        for _ in 0..entries.count {
            let (file, location) = entries.next_entry(&mut stored)?;
            if stored.iter().zip(keys).any(|(a, b)| a == b) {
                return Ok(Some((file, location)));
            }
        }
        Ok(None)
    }

    /// Flushes the scratch file and opens it for reading from the start.
    fn read_log(&mut self) -> Result<LogReader> {
        let io = |source| Error::Io { path: self.log_path.clone(), source };
        self.log.flush().map_err(io)?;
        let file = File::open(&self.log_path).map_err(io)?;
        let bytes = file.metadata().map_err(io)?.len() as usize;
        let entry = 12 + 8 * self.params.bands;
        let reader = BufReader::with_capacity(1 << 16, file);
        Ok(LogReader { reader, count: bytes / entry, bands: self.params.bands, path: self.log_path.clone() })
    }
}

impl Drop for DedupIndex {
    fn drop(&mut self) {
        std::fs::remove_file(&self.log_path).ok();
    }
}

/// Sequential reads of the scratch file's entries.
struct LogReader {
    reader: BufReader<File>,
    /// Entries in the file.
    count: usize,
    bands: usize,
    path: PathBuf,
}

impl LogReader {
    /// The next entry's file and location, its band keys into `keys`.
    fn next_entry(&mut self, keys: &mut Vec<u64>) -> Result<(u32, Location)> {
        let io = |source| Error::Io { path: self.path.clone(), source };
        let mut word = [0u8; 8];
        let mut file = [0u8; 4];
        self.reader.read_exact(&mut file).map_err(io)?;
        self.reader.read_exact(&mut word).map_err(io)?;
        let location = decode_location(u64::from_le_bytes(word));
        keys.resize(self.bands, 0);
        for key in keys.iter_mut() {
            self.reader.read_exact(&mut word).map_err(io)?;
            *key = u64::from_le_bytes(word);
        }
        Ok((u32::from_le_bytes(file), location))
    }
}

/// A location in 64 bits: the top bit says `Record`, the rest is the number.
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

/// Inserts `value` (not 0) into a linear-probing table with room to spare, probing from
/// `start`; false if present.
fn place<T: Copy + PartialEq + Default>(slots: &mut [T], start: usize, value: T) -> bool {
    let mask = slots.len() - 1;
    let mut i = start & mask;
    loop {
        match slots[i] {
            v if v == T::default() => {
                slots[i] = value;
                return true;
            }
            v if v == value => return false,
            _ => i = (i + 1) & mask,
        }
    }
}

/// Inserts an exact hash (not 0), probing from its low bits; false if present.
fn place_u64(slots: &mut [u64], value: u64) -> bool {
    place(slots, value as usize, value)
}

/// The slot and fingerprint of a band key: low bits choose the slot, the high 32 bits (0 read
/// as 1, as 0 marks an empty slot) are stored.
fn slot_and_fingerprint(key: u64, mask: usize) -> (usize, u32) {
    (key as usize & mask, ((key >> 32) as u32).max(1))
}

/// Stores `key`'s fingerprint unless its probe run already holds it; true when stored.
fn place_u32(slots: &mut [u32], key: u64) -> bool {
    let (start, fingerprint) = slot_and_fingerprint(key, slots.len() - 1);
    place(slots, start, fingerprint)
}

fn find_u32(slots: &[u32], key: u64) -> bool {
    let mask = slots.len() - 1;
    let (mut i, fingerprint) = slot_and_fingerprint(key, mask);
    loop {
        match slots[i] {
            0 => return false,
            v if v == fingerprint => return true,
            _ => i = (i + 1) & mask,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(name: &str, bands: usize) -> DedupIndex {
        let path = std::env::temp_dir().join(format!("deltaw-dedup-index-{name}-{}", std::process::id()));
        DedupIndex::new(LshParams { bands, rows: 2 }, &path).unwrap()
    }

    #[test]
    fn exact_hashes_are_seen_once_across_growth() {
        let mut index = index("exact", 2);
        for round in 0..2 {
            for h in 1..=10_000u64 {
                let hash = deltaw_tensor::mix64(h);
                assert_eq!(index.insert_exact(hash), round == 0, "hash {h} in round {round}");
            }
        }
        assert!(index.insert_exact(0) && !index.insert_exact(1), "0 is stored as 1");
    }

    #[test]
    fn kept_keys_are_found_after_refills_and_name_their_first_record() {
        let mut index = index("bands", 3);
        let keys = |i: u64| [1, 2, 3].map(|band| deltaw_tensor::mix64(i * 8 + band));
        for i in 0..5_000u64 {
            assert!(!index.is_near_duplicate(&keys(i)), "record {i} is new");
            index.keep((i % 2) as u32, Location::Line(i as usize + 1), &keys(i)).unwrap();
        }
        assert!(index.bands.len() > INITIAL_SLOTS, "the table grew");
        for i in [0, 1, 2_345, 4_999] {
            let mut query = keys(10_000 + i);
            query[1] = keys(i)[1];
            assert!(index.is_near_duplicate(&query), "record {i}'s middle band");
            assert_eq!(index.leader(&query).unwrap(), Some(((i % 2) as u32, Location::Line(i as usize + 1))));
        }
        assert_eq!(index.leader(&keys(20_000)).unwrap(), None);
        assert_eq!(decode_location(encode_location(Location::Record(7))), Location::Record(7));
    }
}
