//! What a cleaning run did: counts by rule and by kind of personal data, length histograms
//! before and after, a few examples, and the settings, as `report.json` and `report.md`.

use super::filters::Rule;
use super::pii::{PiiCounts, PiiKind};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Examples kept per removal rule, and of masked records.
pub const EXAMPLES_PER_RULE: usize = 3;
/// Characters of a record shown in an example.
const EXAMPLE_CHARS: usize = 200;

/// Record lengths in power-of-two bins: bin 0 counts length 0, bin `k` lengths in
/// `[2^(k-1), 2^k)`. Fixed bins make the histogram a streaming sum, and lengths of text span
/// orders of magnitude, which a log axis shows best.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Histogram {
    pub counts: Vec<usize>,
}

impl Histogram {
    pub fn add(&mut self, length: usize) {
        let bin = (usize::BITS - length.leading_zeros()) as usize;
        if self.counts.len() <= bin {
            self.counts.resize(bin + 1, 0);
        }
        self.counts[bin] += 1;
    }

    /// The lengths bin `k` covers, `lo..hi`.
    pub fn bin_range(k: usize) -> std::ops::Range<usize> {
        if k == 0 {
            0..1
        } else {
            (1 << (k - 1))..(1 << k)
        }
    }
}

/// One example of a removed, bad or masked record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Example {
    /// The rule, `bad_record`, or `masked`.
    pub why: String,
    /// `file: line N` or `file: record N`.
    pub at: String,
    /// The record's text (after cleaning, so masked data stays masked), cut to 200 characters.
    pub text: String,
}

impl Example {
    pub fn new(why: &str, at: String, text: &str) -> Example {
        let mut shown: String = text.chars().take(EXAMPLE_CHARS).collect();
        if shown.len() < text.len() {
            shown.push('…');
        }
        Example { why: why.to_string(), at, text: shown }
    }
}

/// The whole run. `removed` has every rule, zeros included, so reports compare line by line.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CleanReport {
    pub inputs: Vec<String>,
    pub records_read: usize,
    pub bad_records: usize,
    pub removed: BTreeMap<&'static str, usize>,
    pub pii_masked: BTreeMap<&'static str, usize>,
    pub records_with_pii: usize,
    pub kept: usize,
    pub train: usize,
    pub val: usize,
    /// `tokens` (with a tokenizer) or `chars`.
    pub length_unit: String,
    pub lengths_before: Histogram,
    pub lengths_after: Histogram,
    pub settings: serde_json::Value,
    pub examples_removed: Vec<Example>,
    pub examples_masked: Vec<Example>,
    pub examples_bad: Vec<Example>,
}

impl CleanReport {
    pub fn new(inputs: Vec<String>, length_unit: &str, settings: serde_json::Value) -> CleanReport {
        CleanReport {
            inputs,
            length_unit: length_unit.to_string(),
            removed: Rule::ALL.iter().map(|r| (r.name(), 0)).collect(),
            pii_masked: PiiKind::ALL.iter().map(|k| (k.name(), 0)).collect(),
            settings,
            ..Default::default()
        }
    }

    /// Counts a removal, keeping the first few examples of each rule.
    pub fn remove(&mut self, rule: Rule, at: impl FnOnce() -> String, text: &str) {
        let count = self.removed.entry(rule.name()).or_default();
        *count += 1;
        if *count <= EXAMPLES_PER_RULE {
            self.examples_removed.push(Example::new(rule.name(), at(), text));
        }
    }

    /// True while `rule` has fewer removals than the examples shown per rule (3): the next one is shown.
    pub fn wants_example(&self, rule: Rule) -> bool {
        self.removed.get(rule.name()).copied().unwrap_or(0) < EXAMPLES_PER_RULE
    }

    /// Counts a record's masked spans, keeping the first few masked records as examples.
    pub fn masked(&mut self, counts: &PiiCounts, at: impl FnOnce() -> String, text: &str) {
        if counts.iter().all(|&c| c == 0) {
            return;
        }
        for (kind, &count) in PiiKind::ALL.iter().zip(counts) {
            *self.pii_masked.entry(kind.name()).or_default() += count;
        }
        self.records_with_pii += 1;
        if self.examples_masked.len() < EXAMPLES_PER_RULE * 2 {
            self.examples_masked.push(Example::new("masked", at(), text));
        }
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the report serialises")
    }

    /// The report as markdown: the counts, the length histograms, the examples, the settings.
    pub fn to_markdown(&self) -> String {
        let mut md = String::from("# deltaw data clean\n\n");
        let _ = writeln!(md, "Inputs: {}\n", self.inputs.join(", "));
        md.push_str("| | records |\n| --- | ---: |\n");
        let _ = writeln!(md, "| read | {} |\n| bad (skipped) | {} |", self.records_read, self.bad_records);
        for rule in Rule::ALL.map(Rule::name) {
            let _ = writeln!(md, "| removed: `{rule}` | {} |", self.removed.get(rule).copied().unwrap_or(0));
        }
        let _ = writeln!(md, "| kept | {} |\n| train | {} |\n| validation | {} |\n", self.kept, self.train, self.val);
        md.push_str("## Personal data masked\n\n| kind | spans |\n| --- | ---: |\n");
        for kind in PiiKind::ALL.map(PiiKind::name) {
            let _ = writeln!(md, "| {kind} | {} |", self.pii_masked.get(kind).copied().unwrap_or(0));
        }
        let _ = writeln!(md, "\n{} records had something masked.\n", self.records_with_pii);
        let _ = writeln!(md, "## Lengths ({})\n\n| length | before | after |\n| --- | ---: | ---: |", self.length_unit);
        let bins = self.lengths_before.counts.len().max(self.lengths_after.counts.len());
        for k in 0..bins {
            let range = Histogram::bin_range(k);
            let count = |h: &Histogram| h.counts.get(k).copied().unwrap_or(0);
            let _ = writeln!(
                md,
                "| {}–{} | {} | {} |",
                range.start,
                range.end - 1,
                count(&self.lengths_before),
                count(&self.lengths_after)
            );
        }
        for (title, examples) in [
            ("Examples of removed records", &self.examples_removed),
            ("Examples of masked records", &self.examples_masked),
            ("Examples of bad records", &self.examples_bad),
        ] {
            if !examples.is_empty() {
                let _ = writeln!(md, "\n## {title}\n");
                for e in examples {
                    let text = e.text.replace('\n', " ⏎ ").replace('`', "'");
                    let _ = writeln!(md, "- `{}` at {}: `{}`", e.why, e.at, text);
                }
            }
        }
        let settings = serde_json::to_string_pretty(&self.settings).unwrap_or_default();
        let _ = writeln!(md, "\n## Settings\n\n```json\n{settings}\n```");
        md
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_bins_are_powers_of_two() {
        let mut h = Histogram::default();
        for length in [0, 1, 2, 3, 4, 7, 8, 1000] {
            h.add(length);
        }
        assert_eq!(h.counts[..5], [1, 1, 2, 2, 1]);
        assert_eq!(h.counts.len(), 11);
        assert_eq!(Histogram::bin_range(10), 512..1024);
    }

    #[test]
    fn examples_are_capped_per_rule_and_markdown_lists_every_rule() {
        let mut report = CleanReport::new(vec!["in.jsonl".into()], "chars", serde_json::json!({}));
        for i in 0..5 {
            report.remove(Rule::TooShort, || format!("in.jsonl: line {i}"), "x");
        }
        assert_eq!((report.removed["too_short"], report.examples_removed.len()), (5, EXAMPLES_PER_RULE));
        let md = report.to_markdown();
        assert!(md.contains("| removed: `near_duplicate` | 0 |") && md.contains("| removed: `too_short` | 5 |"));
        assert_eq!(Example::new("r", String::new(), &"é".repeat(300)).text.chars().count(), EXAMPLE_CHARS + 1);
    }
}
