//! ROUGE-1, ROUGE-2 and ROUGE-L as `rouge_score.rouge_scorer.RougeScorer(["rouge1", "rouge2",
//! "rougeL"]).score(reference, prediction)` computes them (no stemmer), and their corpus mean.
//!
//! Per pair, with the tokens of [`super::Segmentation::rouge_tokens`]:
//!
//! ```text
//! ROUGE-N:  m = Σ_g min(count_ref(g), count_pred(g)) over the n-grams g
//!           P = m / max(#pred n-grams, 1),  R = m / max(#ref n-grams, 1)
//! ROUGE-L:  m = |LCS(ref, pred)|,  P = m / #pred,  R = m / #ref  (all 0 if either is empty)
//! F1 = 2PR / (P + R), 0 when P + R = 0
//! ```
//!
//! A corpus score is the mean of the per-pair F1 (as LLaMA-Factory reports it), not
//! rouge-score's bootstrap estimate, which depends on a random resampling.

use super::tokenize::Segmentation;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Precision, recall and F1 of one ROUGE variant on one pair.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RougeScore {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

impl RougeScore {
    fn new(precision: f64, recall: f64) -> RougeScore {
        let f1 = if precision + recall > 0.0 { 2.0 * precision * recall / (precision + recall) } else { 0.0 };
        RougeScore { precision, recall, f1 }
    }
}

/// ROUGE-1, ROUGE-2 and ROUGE-L of one prediction against its reference.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Rouge {
    pub rouge1: RougeScore,
    pub rouge2: RougeScore,
    pub rouge_l: RougeScore,
}

/// The three ROUGE scores of `prediction` against `reference`.
///
/// ```
/// use deltaw_train::evaluation::{rouge, Segmentation};
/// let r = rouge("the cat was under the bed", "the cat was found under the bed", Segmentation::Words);
/// assert!((r.rouge1.f1 - 12.0 / 13.0).abs() < 1e-12); // 6 shared unigrams of 7 and 6
/// assert!((r.rouge_l.recall - 1.0).abs() < 1e-12);     // the reference is a subsequence
/// ```
pub fn rouge(reference: &str, prediction: &str, segmentation: Segmentation) -> Rouge {
    let reference = segmentation.rouge_tokens(reference);
    let prediction = segmentation.rouge_tokens(prediction);
    Rouge {
        rouge1: rouge_n(&reference, &prediction, 1),
        rouge2: rouge_n(&reference, &prediction, 2),
        rouge_l: rouge_l(&reference, &prediction),
    }
}

/// The mean F1 of each variant over `scores` (zeros for none).
pub fn mean_f1(scores: &[Rouge]) -> [f64; 3] {
    let n = scores.len().max(1) as f64;
    let sum = |f: fn(&Rouge) -> f64| scores.iter().map(f).sum::<f64>() / n;
    [sum(|r| r.rouge1.f1), sum(|r| r.rouge2.f1), sum(|r| r.rouge_l.f1)]
}

fn ngrams(tokens: &[String], n: usize) -> HashMap<&[String], usize> {
    let mut counts = HashMap::new();
    for gram in tokens.windows(n) {
        *counts.entry(gram).or_insert(0) += 1;
    }
    counts
}

fn rouge_n(reference: &[String], prediction: &[String], n: usize) -> RougeScore {
    let (ref_grams, pred_grams) = (ngrams(reference, n), ngrams(prediction, n));
    let overlap: usize = ref_grams.iter().map(|(g, &c)| c.min(pred_grams.get(g).copied().unwrap_or(0))).sum();
    let ref_total: usize = ref_grams.values().sum();
    let pred_total: usize = pred_grams.values().sum();
    RougeScore::new(overlap as f64 / pred_total.max(1) as f64, overlap as f64 / ref_total.max(1) as f64)
}

fn rouge_l(reference: &[String], prediction: &[String]) -> RougeScore {
    if reference.is_empty() || prediction.is_empty() {
        return RougeScore::default();
    }
    let lcs = lcs_len(reference, prediction) as f64;
    RougeScore::new(lcs / prediction.len() as f64, lcs / reference.len() as f64)
}

/// Length of the longest common subsequence, by the usual dynamic programme kept to one row:
/// `row[j]` = LCS of `a[..i]` and `b[..j]`; `diag` holds the previous row's `row[j - 1]`.
fn lcs_len(a: &[String], b: &[String]) -> usize {
    let mut row = vec![0usize; b.len() + 1];
    for x in a {
        let mut diag = 0;
        for (j, y) in b.iter().enumerate() {
            let up = row[j + 1];
            row[j + 1] = if x == y { diag + 1 } else { up.max(row[j]) };
            diag = up;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<String> {
        s.split(' ').map(str::to_string).collect()
    }

    #[test]
    fn lcs_of_known_pairs() {
        assert_eq!(lcs_len(&toks("a b c d"), &toks("a c d b")), 3);
        assert_eq!(lcs_len(&toks("x"), &toks("y")), 0);
    }

    #[test]
    fn empty_prediction_scores_zero() {
        let r = rouge("the cat", "", Segmentation::Words);
        assert_eq!((r.rouge1.f1, r.rouge2.f1, r.rouge_l.f1), (0.0, 0.0, 0.0));
    }
}
