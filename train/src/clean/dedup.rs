//! Exact and near-duplicate decisions out of core, so a run's memory stays flat as its input
//! grows: the keys go to partition files on disk, and memory holds one partition at a time,
//! one bit per record and one word per shared band key.
//!
//! ## What is decided
//! For the records that passed the filters, numbered in input order:
//! - record `i` is an **exact duplicate** when an earlier record has the same 64-bit hash of
//!   its cleaned text;
//! - otherwise it is a **near duplicate** when an earlier *kept* record shares one of its band
//!   keys (the full 64-bit key: no fingerprint, no false match beyond the hash's own `2^-64`);
//! - otherwise it is **kept**.
//!
//! ## How, in three passes
//! 1. [`Dedup::push`] spills each record (`spill.rs`) and writes `(key, i)` for its exact hash
//!    and each band key into one of `P` partition files chosen by the key's high bits.
//! 2. [`Dedup::decide`] reads one partition at a time and sorts it by `(key, i)`. In a run of
//!    equal exact hashes every record but the first is an exact duplicate: a bit per record.
//!    A run of two or more equal band keys is a *group* of records that share a band; it gets
//!    a dense number `g`, and `(i, g)` goes to a second set of partitions by ranges of `i`. A
//!    band key held by one record only cannot make a duplicate, so it costs nothing after
//!    this pass.
//! 3. [`Decisions::next`] walks the spill in order with those ranges, one at a time, and a
//!    table of each group's leader, the first kept record in it: a record whose groups
//!    already have a leader is a near duplicate of the earliest of them; a kept record
//!    becomes the leader of each of its groups.
//!
//! ## Memory and disk
//! Memory is one partition (`12` bytes per entry: about `12 · (bands + 1) · n / P` for `n`
//! passed records), a bit per passed record and 4 bytes per group; `P` grows with the input
//! (4 MiB of input per partition, from 16 to 256), so the first term stays about 0.8 MiB up
//! to 1 GiB of input. Disk holds the spill (about twice the passed records' bytes: the line
//! and its text) and `12 · (bands + 2)` bytes per passed record, in a scratch folder of the
//! output folder that is removed at the end.

use super::spill::{take_partition, Partitions, Passed, ScratchDir, SpillReader, SpillWriter};
use crate::error::{Error, Location, Result};

/// The id bit that marks an exact-hash entry in the key partitions (so ids are below `2^31`).
const EXACT: u32 = 1 << 31;

/// A group without a kept record yet.
const NO_LEADER: u32 = u32::MAX;

/// Bytes of input per key partition.
const INPUT_PER_PARTITION: u64 = 4 << 20;

/// The spill and the key partitions of a run's first pass.
pub(crate) struct Dedup {
    scratch: ScratchDir,
    spill: SpillWriter,
    keys: Partitions,
    count: u32,
}

/// What became of a passed record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Keep,
    ExactDuplicate,
    /// A near duplicate of the kept record with this number, the earliest it shares a band with.
    NearDuplicate {
        leader: u32,
    },
}

impl Dedup {
    /// An empty first pass whose files live in `scratch`, sized for `input_bytes` of input.
    pub(crate) fn new(scratch: ScratchDir, input_bytes: u64) -> Result<Dedup> {
        let partitions = (input_bytes / INPUT_PER_PARTITION).next_power_of_two().clamp(16, 256) as usize;
        let spill = SpillWriter::create(&scratch)?;
        let keys = Partitions::create(&scratch, "keys", partitions)?;
        Ok(Dedup { scratch, spill, keys, count: 0 })
    }

    /// The partition of a key: its high bits (keys are `mix64` outputs, uniform in every bit).
    fn partition(&self, key: u64) -> usize {
        (key >> 40) as usize & (self.keys.len() - 1)
    }

    /// Spills the next passed record, found at `location` of input `file`, with its exact
    /// hash and band keys.
    pub(crate) fn push(
        &mut self,
        file: u32,
        location: Location,
        passed: &Passed,
        exact: u64,
        bands: &[u64],
    ) -> Result<()> {
        let id = self.count;
        if id & EXACT != 0 {
            return Err(Error::Options(format!(
                "more than {EXACT} records passed the filters: clean the input in parts"
            )));
        }
        self.spill.write(file, location, passed)?;
        self.keys.push(self.partition(exact), exact, id | EXACT)?;
        for &key in bands {
            self.keys.push(self.partition(key), key, id)?;
        }
        self.count += 1;
        Ok(())
    }

    /// The second pass: exact duplicates and band groups, then the in-order walk.
    pub(crate) fn decide(self) -> Result<Decisions> {
        let Dedup { scratch, spill, keys, count } = self;
        let parts = keys.len();
        let range = (count as usize).div_ceil(parts).max(1);
        let mut exact_duplicate = vec![0u64; (count as usize).div_ceil(64)];
        let mut members = Partitions::create(&scratch, "members", parts)?;
        let mut groups = 0u32;
        for path in keys.into_paths()? {
            let mut entries = take_partition(&path)?;
            entries.sort_unstable();
            // Runs of one key and one kind; ids ascend within a run, so its first is the earliest.
            for run in entries.chunk_by(|a, b| a.0 == b.0 && (a.1 ^ b.1) & EXACT == 0) {
                if run.len() < 2 {
                    continue;
                }
                if run[0].1 & EXACT != 0 {
                    for &(_, id) in &run[1..] {
                        let id = (id & !EXACT) as usize;
                        exact_duplicate[id / 64] |= 1 << (id % 64);
                    }
                    continue;
                }
                for &(_, id) in run {
                    members.push(id as usize / range, u64::from(id), groups)?;
                }
                // At most `bands · count / 2 < 2^32` groups: `count < 2^31` and runs have two ids or more.
                groups += 1;
            }
        }
        Ok(Decisions {
            spill: spill.into_reader()?,
            members: members.into_paths()?.into_iter(),
            _scratch: scratch,
            exact_duplicate,
            leaders: vec![NO_LEADER; groups as usize],
            range,
            current: Vec::new(),
            cursor: 0,
            next: 0,
            count,
        })
    }
}

/// The in-order walk over the passed records, each with its [`Verdict`].
pub(crate) struct Decisions {
    spill: SpillReader,
    /// The `(id, group)` partitions of the ranges not yet reached.
    members: std::vec::IntoIter<std::path::PathBuf>,
    exact_duplicate: Vec<u64>,
    /// Each group's first kept record.
    leaders: Vec<u32>,
    /// Ids per `members` partition.
    range: usize,
    /// The current range's `(id, group)` entries, sorted, and the first not yet taken.
    current: Vec<(u64, u32)>,
    cursor: usize,
    next: u32,
    count: u32,
    /// Dropped last: the files above live in it.
    _scratch: ScratchDir,
}

/// A passed record read back, where it came from, and what became of it.
pub(crate) struct Decided {
    pub(crate) file: u32,
    pub(crate) location: Location,
    pub(crate) passed: Passed,
    pub(crate) verdict: Verdict,
}

impl Decisions {
    /// The next passed record in input order, or `None` after the last.
    pub(crate) fn next(&mut self) -> Result<Option<Decided>> {
        if self.next == self.count {
            return Ok(None);
        }
        let id = self.next;
        self.next += 1;
        if (id as usize).is_multiple_of(self.range) {
            let path = self.members.next().expect("one members partition per range");
            self.current = take_partition(&path)?;
            self.current.sort_unstable();
            self.cursor = 0;
        }
        let start = self.cursor;
        while self.current.get(self.cursor).is_some_and(|&(i, _)| i == u64::from(id)) {
            self.cursor += 1;
        }
        let groups = &self.current[start..self.cursor];
        let verdict = if self.exact_duplicate[id as usize / 64] >> (id % 64) & 1 == 1 {
            Verdict::ExactDuplicate
        } else if let Some(leader) =
            groups.iter().map(|&(_, g)| self.leaders[g as usize]).filter(|&l| l != NO_LEADER).min()
        {
            Verdict::NearDuplicate { leader }
        } else {
            groups.iter().for_each(|&(_, g)| self.leaders[g as usize] = id);
            Verdict::Keep
        };
        let (file, location, passed) = self.spill.read()?;
        Ok(Some(Decided { file, location, passed, verdict }))
    }

    /// The input file and location of passed record number `id`.
    pub(crate) fn place(&mut self, id: u32) -> Result<(u32, Location)> {
        self.spill.place(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltaw_tensor::mix64;

    fn passed(k: usize) -> Passed {
        Passed { line: format!("line {k}"), text: format!("text {k}"), split: k as u64, length: k, pii: [0; 6] }
    }

    /// Runs `records` (exact hash, band keys) through both passes with at least `input_bytes`
    /// worth of partitions; the verdicts in order.
    fn verdicts(name: &str, input_bytes: u64, records: &[(u64, Vec<u64>)]) -> Vec<Verdict> {
        let dir = std::env::temp_dir().join(format!("deltaw-dedup-{name}-{}", std::process::id()));
        let mut dedup = Dedup::new(ScratchDir::create(dir.clone()).unwrap(), input_bytes).unwrap();
        for (k, (exact, bands)) in records.iter().enumerate() {
            dedup.push((k % 2) as u32, Location::Line(k + 1), &passed(k), *exact, bands).unwrap();
        }
        let mut decisions = dedup.decide().unwrap();
        let mut out = Vec::new();
        while let Some(d) = decisions.next().unwrap() {
            assert_eq!(
                (d.file, d.location, d.passed),
                ((out.len() % 2) as u32, Location::Line(out.len() + 1), passed(out.len()))
            );
            out.push(d.verdict);
        }
        drop(decisions);
        assert!(!dir.exists(), "the scratch folder is removed");
        out
    }

    #[test]
    fn exact_then_near_duplicates_of_kept_records_only() {
        let key = |k: u64| mix64(k);
        let records = [
            (key(100), vec![key(1), key(2)]),  // 0 kept
            (key(101), vec![key(3), key(2)]),  // 1 shares band key 2 with 0
            (key(100), vec![key(9), key(10)]), // 2 exact duplicate of 0
            (key(102), vec![key(3), key(4)]),  // 3 shares key 3 with 1 only, which was dropped: kept
            (key(103), vec![key(4), key(1)]),  // 4 shares with 3 and 0: the earliest is 0
            (key(104), vec![key(9), key(11)]), // 5 shares key 9 with 2, an exact duplicate: kept
        ];
        let expected = [
            Verdict::Keep,
            Verdict::NearDuplicate { leader: 0 },
            Verdict::ExactDuplicate,
            Verdict::Keep,
            Verdict::NearDuplicate { leader: 0 },
            Verdict::Keep,
        ];
        assert_eq!(verdicts("small", 0, &records), expected);
    }

    #[test]
    fn many_partitions_and_ranges_give_the_in_memory_answer() {
        // Clusters of 1 to 4 records; members of a cluster share one of 3 bands.
        let records: Vec<(u64, Vec<u64>)> = (0..5_000u64)
            .map(|i| {
                let cluster = i / 4 * 4 + (i % 4).min(i % 3);
                let bands =
                    (0..3)
                        .map(|b| if b == i % 3 { mix64((cluster << 8) | b) } else { mix64((i << 8) | b | (1 << 60)) });
                (mix64((i % 4_000) | (1 << 50)), bands.collect())
            })
            .collect();
        // The same decisions with an in-memory map of band key to leader.
        let mut seen = std::collections::HashSet::new();
        let mut leader = std::collections::HashMap::new();
        let expected: Vec<Verdict> = records
            .iter()
            .enumerate()
            .map(|(i, (exact, bands))| {
                if !seen.insert(*exact) {
                    return Verdict::ExactDuplicate;
                }
                match bands.iter().filter_map(|k| leader.get(k).copied()).min() {
                    Some(l) => Verdict::NearDuplicate { leader: l },
                    None => {
                        bands.iter().for_each(|&k| {
                            leader.insert(k, i as u32);
                        });
                        Verdict::Keep
                    }
                }
            })
            .collect();
        assert!(
            expected.contains(&Verdict::ExactDuplicate)
                && expected.iter().any(|v| matches!(v, Verdict::NearDuplicate { .. }))
        );
        assert_eq!(verdicts("large", 1 << 30, &records), expected, "256 partitions");
        assert_eq!(verdicts("medium", 0, &records), expected, "16 partitions");
    }
}
