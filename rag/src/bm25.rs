//! Okapi BM25 keyword scores over chunks, the sparse half of hybrid retrieval.
//!
//! Texts become terms by [`tokenize`]: maximal runs of alphanumeric characters, lower-cased
//! (no stemming, no stop list: the IDF weight already makes `the` worth almost nothing). For a
//! query with distinct terms `q`, document `d` scores
//!
//! ```text
//! score(d) = Σ_q  idf(q) · tf(q, d) · (k1 + 1) / (tf(q, d) + k1 · (1 − b + b · |d| / avgdl))
//! idf(q)   = ln(1 + (N − n(q) + 0.5) / (n(q) + 0.5))
//! ```
//!
//! with `tf(q, d)` the count of `q` in `d`, `|d|` its length in terms, `avgdl` the mean length,
//! `N` the number of documents and `n(q)` how many contain `q`. `k1` (1.2) caps how much
//! repeating a term helps; `b` (0.75) is how strongly long documents are discounted. The IDF is
//! Lucene's, which stays positive even for a term in every document.

use std::collections::HashMap;

/// BM25's two constants, Lucene's and Elasticsearch's defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bm25Params {
    pub k1: f32,
    pub b: f32,
}

impl Default for Bm25Params {
    fn default() -> Bm25Params {
        Bm25Params { k1: 1.2, b: 0.75 }
    }
}

/// Term statistics of a set of documents, ready to score queries.
#[derive(Clone, Debug)]
pub struct Bm25 {
    pub params: Bm25Params,
    /// `|d|` per document, in terms.
    doc_len: Vec<f32>,
    /// Mean of `doc_len` (1 when every document is empty, to avoid dividing by 0).
    avgdl: f32,
    /// term → (document, count) for each document holding it.
    postings: HashMap<String, Vec<(usize, u32)>>,
}

/// Lower-cased maximal runs of alphanumeric characters (Unicode-aware).
///
/// ```
/// use deltaw_rag::bm25::tokenize;
/// assert_eq!(tokenize("AdamW's lr=3e-4, (B, T)!"), ["adamw", "s", "lr", "3e", "4", "b", "t"]);
/// ```
pub fn tokenize(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|t| !t.is_empty()).map(str::to_lowercase).collect()
}

impl Bm25 {
    /// Counts the terms of every document.
    pub fn new(docs: &[&str], params: Bm25Params) -> Bm25 {
        let mut postings: HashMap<String, Vec<(usize, u32)>> = HashMap::new();
        let mut doc_len = Vec::with_capacity(docs.len());
        for (d, text) in docs.iter().enumerate() {
            let terms = tokenize(text);
            doc_len.push(terms.len() as f32);
            let mut counts: HashMap<String, u32> = HashMap::new();
            for term in terms {
                *counts.entry(term).or_default() += 1;
            }
            for (term, tf) in counts {
                postings.entry(term).or_default().push((d, tf));
            }
        }
        let total: f32 = doc_len.iter().sum();
        let avgdl = if total > 0.0 { total / doc_len.len() as f32 } else { 1.0 };
        Bm25 { params, doc_len, avgdl, postings }
    }

    /// The number of documents, `N`.
    pub fn len(&self) -> usize {
        self.doc_len.len()
    }

    pub fn is_empty(&self) -> bool {
        self.doc_len.is_empty()
    }

    /// `ln(1 + (N − n + 0.5) / (n + 0.5))` for the `n` documents holding `term` (a lower-cased
    /// token); the largest value, `ln(1 + (N + 0.5) / 0.5)`, for a term no document holds.
    pub fn idf(&self, term: &str) -> f32 {
        let n = self.postings.get(term).map_or(0, Vec::len) as f32;
        (1.0 + (self.len() as f32 - n + 0.5) / (n + 0.5)).ln()
    }

    /// The BM25 score of every document for `query` (see the module docs), in document order;
    /// all zeros when no query term occurs anywhere.
    ///
    /// ```
    /// use deltaw_rag::{Bm25, Bm25Params};
    /// let bm25 = Bm25::new(&["the cat sat", "the dog ran", "a cat, a cat"], Bm25Params::default());
    /// let scores = bm25.scores("Cat?");
    /// assert!(scores[2] > scores[0] && scores[0] > 0.0 && scores[1] == 0.0);
    /// ```
    pub fn scores(&self, query: &str) -> Vec<f32> {
        let Bm25Params { k1, b } = self.params;
        let mut terms = tokenize(query);
        terms.sort();
        terms.dedup();
        let mut scores = vec![0.0f32; self.len()];
        for term in &terms {
            let Some(docs) = self.postings.get(term) else { continue };
            let idf = self.idf(term);
            for &(d, tf) in docs {
                let tf = tf as f32;
                let norm = k1 * (1.0 - b + b * self.doc_len[d] / self.avgdl);
                scores[d] += idf * tf * (k1 + 1.0) / (tf + norm);
            }
        }
        scores
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn assert_close(actual: &[f32], expected: &[f32]) {
        let worst = actual.iter().zip(expected).map(|(a, e)| (a - e).abs()).fold(0.0f32, f32::max);
        assert!(actual.len() == expected.len() && worst < 1e-5, "actual {actual:?} vs expected {expected:?}");
    }

    #[test]
    fn scores_match_hand_computed_bm25() {
        // N = 3, |d| = 3, 2, 3, avgdl = 8/3. "cat" is in 2 documents: idf = ln(1 + 1.5/2.5) = ln 1.6.
        // d0 (tf 1): norm = 1.2·(0.25 + 0.75·3/(8/3)) = 1.3125 → ln1.6 · 2.2/2.3125 = 0.4471388
        // d2 (tf 2): ln1.6 · 4.4/3.3125 = 0.6243069
        // "dog" (n = 2, same idf), d1 (tf 1, |d| = 2): norm = 1.2·(0.25 + 0.5625) = 0.975
        //   → ln1.6 · 2.2/1.975 = 0.5235488; d2 (tf 1, |d| = 3) → 0.4471388
        let bm25 = Bm25::new(&["The cat sat", "the DOG", "cat dog cat"], Bm25Params::default());
        assert_close(&[bm25.idf("cat")], &[1.6f32.ln()]);
        assert_close(&bm25.scores("cat"), &[0.4471388, 0.0, 0.6243069]);
        assert_close(&bm25.scores("dog"), &[0.0, 0.5235488, 0.4471388]);
        assert_close(&bm25.scores("cat dog, cat!"), &[0.4471388, 0.5235488, 0.6243069 + 0.4471388]);
    }

    #[test]
    fn b_zero_ignores_length_and_k1_zero_ignores_repetition() {
        let docs = ["x", "x y y y y y y y"];
        let flat = Bm25::new(&docs, Bm25Params { k1: 1.2, b: 0.0 }).scores("x");
        assert_close(&flat, &[flat[0], flat[0]]);
        let binary = Bm25::new(&["x", "x x x"], Bm25Params { k1: 0.0, b: 0.75 }).scores("x");
        assert_close(&binary, &[binary[0], binary[0]]);
    }

    #[test]
    fn unknown_terms_and_empty_documents_score_zero() {
        let bm25 = Bm25::new(&["", "alpha"], Bm25Params::default());
        assert_close(&bm25.scores("beta"), &[0.0, 0.0]);
        assert!(bm25.scores("alpha")[1] > 0.0);
        let empty = Bm25::new(&[], Bm25Params::default());
        assert!(empty.is_empty() && empty.scores("anything").is_empty());
    }
}
