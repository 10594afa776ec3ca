//! Corpus BLEU-4 as `sacrebleu.corpus_bleu(hypotheses, [references])` computes it by default:
//! one reference per segment, no lower-casing, `exp` smoothing, no effective order.
//!
//! Statistics are summed over the corpus before any ratio is taken (corpus BLEU is not the
//! mean of sentence BLEUs). For n = 1..4, `correct_n` is the clipped n-gram matches
//! `Σ_segments Σ_g min(count_hyp(g), count_ref(g))` and `total_n` the hypothesis n-grams
//! `Σ max(0, len_hyp - n + 1)`. Then
//!
//! ```text
//! p_n  = 100 · correct_n / total_n, or, when correct_n = 0 (exp smoothing, mteval's
//!        method 3): 100 / (2^k · total_n), k counting the zero orders so far
//! BP   = 1 if hyp_len ≥ ref_len, else exp(1 - ref_len / hyp_len) (0 when hyp_len = 0)
//! BLEU = BP · exp((1/4) Σ_n ln p_n)        on sacrebleu's 0..100 scale
//! ```
//!
//! Orders from the first with `total_n = 0` on keep `p_n = 0`, whose log sacrebleu floors
//! to -9999999999, so the score is 0; with no match at any order the score is 0 as well.

use super::tokenize::Segmentation;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// BLEU's n-gram orders.
pub const MAX_ORDER: usize = 4;

/// Corpus BLEU and the statistics it came from (sacrebleu's `BLEUScore` fields).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bleu {
    /// 0..100.
    pub score: f64,
    /// Modified n-gram precisions p_1..p_4, 0..100, smoothed.
    pub precisions: [f64; MAX_ORDER],
    pub brevity_penalty: f64,
    /// Tokens in all hypotheses and in all references.
    pub hyp_len: usize,
    pub ref_len: usize,
}

/// Per-segment n-gram statistics, summed over a corpus.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Stats {
    hyp_len: usize,
    ref_len: usize,
    correct: [usize; MAX_ORDER],
    total: [usize; MAX_ORDER],
}

/// Corpus BLEU of `hypotheses` against one reference each, tokenized by `segmentation`.
///
/// ```
/// use deltaw_train::evaluation::{corpus_bleu, Segmentation};
/// let bleu = corpus_bleu(&["the cat sat on the mat"], &["the cat sat on the mat"], Segmentation::Words);
/// assert!((bleu.score - 100.0).abs() < 1e-9);
/// let bleu = corpus_bleu(&["the cat"], &["the cat sat on the mat"], Segmentation::Words);
/// assert!(bleu.brevity_penalty < 1.0);
/// ```
///
/// # Panics
/// If the two slices differ in length.
pub fn corpus_bleu<H: AsRef<str>, R: AsRef<str>>(
    hypotheses: &[H],
    references: &[R],
    segmentation: Segmentation,
) -> Bleu {
    assert_eq!(
        hypotheses.len(),
        references.len(),
        "corpus_bleu: {} hypotheses, {} references",
        hypotheses.len(),
        references.len()
    );
    let mut sum = Stats::default();
    for (hyp, reference) in hypotheses.iter().zip(references) {
        let hyp = segmentation.bleu_tokens(hyp.as_ref());
        let reference = segmentation.bleu_tokens(reference.as_ref());
        let s = segment_stats(&hyp, &reference);
        sum.hyp_len += s.hyp_len;
        sum.ref_len += s.ref_len;
        for n in 0..MAX_ORDER {
            sum.correct[n] += s.correct[n];
            sum.total[n] += s.total[n];
        }
    }
    score(&sum)
}

/// Counts of every n-gram of `tokens`, n = 1..=4.
fn ngram_counts(tokens: &[String]) -> HashMap<&[String], usize> {
    let mut counts = HashMap::new();
    for n in 1..=MAX_ORDER.min(tokens.len()) {
        for gram in tokens.windows(n) {
            *counts.entry(gram).or_insert(0) += 1;
        }
    }
    counts
}

fn segment_stats(hyp: &[String], reference: &[String]) -> Stats {
    let ref_counts = ngram_counts(reference);
    let mut stats = Stats { hyp_len: hyp.len(), ref_len: reference.len(), ..Stats::default() };
    for (gram, count) in ngram_counts(hyp) {
        let n = gram.len() - 1;
        stats.total[n] += count;
        stats.correct[n] += count.min(ref_counts.get(gram).copied().unwrap_or(0));
    }
    stats
}

/// The score from summed statistics (sacrebleu's `compute_bleu` with `smooth_method="exp"`).
fn score(s: &Stats) -> Bleu {
    let brevity_penalty = match (s.hyp_len, s.ref_len) {
        (h, r) if h >= r => 1.0,
        (0, _) => 0.0,
        (h, r) => (1.0 - r as f64 / h as f64).exp(),
    };
    let mut bleu =
        Bleu { score: 0.0, precisions: [0.0; MAX_ORDER], brevity_penalty, hyp_len: s.hyp_len, ref_len: s.ref_len };
    if s.correct.iter().all(|&c| c == 0) {
        return bleu;
    }
    let mut smooth = 1.0f64;
    for n in 0..MAX_ORDER {
        if s.total[n] == 0 {
            break;
        }
        bleu.precisions[n] = if s.correct[n] == 0 {
            smooth *= 2.0;
            100.0 / (smooth * s.total[n] as f64)
        } else {
            100.0 * s.correct[n] as f64 / s.total[n] as f64
        };
    }
    // sacrebleu's `my_log`: log(0) is floored to -9999999999, which makes the score 0.
    let log_sum: f64 = bleu.precisions.iter().map(|&p| if p == 0.0 { -9_999_999_999.0 } else { p.ln() }).sum();
    bleu.score = brevity_penalty * (log_sum / MAX_ORDER as f64).exp();
    bleu
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_hypothesis_with_no_4grams_scores_zero() {
        let bleu = corpus_bleu(&["the cat"], &["the cat"], Segmentation::Words);
        assert_eq!(bleu.score, 0.0);
        assert_eq!(bleu.precisions, [100.0, 100.0, 0.0, 0.0]);
    }

    #[test]
    fn missing_orders_are_smoothed_by_powers_of_two() {
        // 5 tokens, 1 bigram match: p3 and p4 have no match.
        let bleu = corpus_bleu(&["a b x y z"], &["a b c d e"], Segmentation::Words);
        assert_eq!(bleu.precisions, [40.0, 25.0, 100.0 / (2.0 * 3.0), 100.0 / (4.0 * 2.0)]);
    }
}
