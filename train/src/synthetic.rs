//! Built-in synthetic instruction tasks with exact answers, for demos and for tests that must
//! show learning quickly and offline: the answer is a short deterministic function of the
//! prompt, so exact-match accuracy measures whether the model learned the task.
//!
//! Every task draws its inputs with a seeded generator: the same `(task, n, seed)` gives the
//! same records on every machine.

use crate::data::{Conversation, PromptTemplate, SftDataset, SftOptions, TextCodec};
use crate::error::Result;
use deltaw_tensor::Seed;

/// A task: a prompt `"<name> <input>"` and its exact answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    /// `copy cabd` → `cabd`
    Copy,
    /// `upper cabd` → `CABD`
    Upper,
    /// `reverse cabd` → `dbac`
    Reverse,
    /// `sort cabd` → `abcd`
    Sort,
    /// `add 23+41` → `64` (two numbers below 50)
    Add,
    /// `lookup b in a=3,b=7,c=1` → `7`
    Lookup,
}

/// The letters the string tasks draw from: few enough for a tiny model to learn in seconds.
pub const ALPHABET: &[u8] = b"abcdefgh";

impl Task {
    pub const ALL: [Task; 6] = [Task::Copy, Task::Upper, Task::Reverse, Task::Sort, Task::Add, Task::Lookup];

    pub fn name(self) -> &'static str {
        match self {
            Task::Copy => "copy",
            Task::Upper => "upper",
            Task::Reverse => "reverse",
            Task::Sort => "sort",
            Task::Add => "add",
            Task::Lookup => "lookup",
        }
    }

    /// Parses a task name.
    pub fn parse(name: &str) -> Option<Task> {
        Task::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Record `i` of the stream `seed`: `(prompt, answer)`, words of 3 to 6 letters.
    pub fn record(self, seed: u64, i: u64) -> (String, String) {
        self.record_with(seed, i, 3..=6)
    }

    /// [`Task::record`] with words of `lens` letters (fixed-length words are learned faster:
    /// the answer's k-th letter then sits at a fixed distance from the input's).
    pub fn record_with(self, seed: u64, i: u64, lens: std::ops::RangeInclusive<usize>) -> (String, String) {
        let mut rng = Rng(Seed(seed).derive(i).0);
        let span = (lens.end() + 1).saturating_sub(*lens.start()).max(1) as u64;
        let word = |rng: &mut Rng| -> String {
            let len = lens.start() + rng.below(span) as usize;
            (0..len).map(|_| ALPHABET[rng.below(ALPHABET.len() as u64) as usize] as char).collect()
        };
        let (input, answer) = match self {
            Task::Copy => {
                let w = word(&mut rng);
                (w.clone(), w)
            }
            Task::Upper => {
                let w = word(&mut rng);
                let up = w.to_uppercase();
                (w, up)
            }
            Task::Reverse => {
                let w = word(&mut rng);
                let r = w.chars().rev().collect();
                (w, r)
            }
            Task::Sort => {
                let w = word(&mut rng);
                let mut s: Vec<char> = w.chars().collect();
                s.sort_unstable();
                (w, s.into_iter().collect())
            }
            Task::Add => {
                let (a, b) = (rng.below(50), rng.below(50));
                (format!("{a}+{b}"), (a + b).to_string())
            }
            Task::Lookup => {
                let keys: Vec<char> = ALPHABET[..3].iter().map(|&c| c as char).collect();
                let values: Vec<u64> = keys.iter().map(|_| rng.below(10)).collect();
                let k = rng.below(3) as usize;
                let table: Vec<String> = keys.iter().zip(&values).map(|(k, v)| format!("{k}={v}")).collect();
                (format!("{} in {}", keys[k], table.join(",")), values[k].to_string())
            }
        };
        (format!("{} {input}", self.name()), answer)
    }

    /// Records `start..start + n` of the stream `seed`.
    pub fn records(self, seed: u64, start: u64, n: usize) -> Vec<(String, String)> {
        self.records_with(seed, start, n, 3..=6)
    }

    /// [`Task::records`] with words of `lens` letters.
    pub fn records_with(
        self,
        seed: u64,
        start: u64,
        n: usize,
        lens: std::ops::RangeInclusive<usize>,
    ) -> Vec<(String, String)> {
        (start..start + n as u64).map(|i| self.record_with(seed, i, lens.clone())).collect()
    }
}

/// A compact template for the synthetic tasks: `"<prompt>="` then the answer and EOS.
pub fn compact_template() -> PromptTemplate {
    PromptTemplate { user: "{content}=".into(), ..PromptTemplate::default() }
}

/// Tokenizes `(prompt, answer)` records into an SFT dataset (answers trained, prompts masked).
pub fn dataset(records: &[(String, String)], codec: &dyn TextCodec, template: &PromptTemplate) -> Result<SftDataset> {
    let options = SftOptions::default();
    let samples = records
        .iter()
        .map(|(p, a)| template.encode(&Conversation::single_turn(None, p.clone(), a.clone()), codec, &options))
        .collect::<Result<Vec<_>>>()?;
    Ok(SftDataset { samples })
}

/// SplitMix64 over a seeded state, for drawing task inputs.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_seeded_and_correct() {
        assert_eq!(Task::Upper.records(1, 0, 5), Task::Upper.records(1, 0, 5));
        assert_ne!(Task::Upper.records(1, 0, 5), Task::Upper.records(2, 0, 5));
        for (p, a) in Task::Add.records(3, 0, 20) {
            let (x, y) = p.strip_prefix("add ").unwrap().split_once('+').unwrap();
            assert_eq!(x.parse::<u64>().unwrap() + y.parse::<u64>().unwrap(), a.parse::<u64>().unwrap());
        }
        let (p, a) = Task::Sort.record(0, 0);
        let mut chars: Vec<char> = p.strip_prefix("sort ").unwrap().chars().collect();
        chars.sort_unstable();
        assert_eq!(a, chars.into_iter().collect::<String>());
    }
}
