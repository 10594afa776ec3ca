//! Ranking the chunks of an index for a question: dense cosine scores, BM25 keyword scores,
//! their fusion, the top k, and the prompt that hands the winners to a generator.
//!
//! Dense: chunk rows `E` `(N, D)` and the query `q` `(1, D)` are L2-normalised, so the cosine
//! similarity is a dot product and all `N` of them are one matmul, `s = E · qᵀ` `(N, 1)`, run on
//! the device the embeddings live on.
//!
//! Hybrid: both score lists are min-max normalised over the `N` chunks,
//! `ŝ_i = (s_i − min s) / (max s − min s)` (all 0 when `max s = min s`), then mixed with the
//! weight `h` of [`SearchOptions::hybrid`]: `score_i = (1 − h) · ŝ_dense_i + h · ŝ_bm25_i`.
//! `h = 0` ranks by cosine alone and reports the raw cosine; `h = 1` by BM25 alone (no model
//! needed) and reports the raw BM25 score. Min-max keeps the margins of each list, which
//! reciprocal-rank fusion (`Σ 1 / (60 + rank)`) throws away; on a small corpus the margins
//! are most of the signal.
//!
//! Where the ranking runs: BM25 is always scored on the host (from its inverted index).
//! - Embeddings on the host: the `N` cosines are a host vector; [`fuse`] and [`top_k`] rank
//!   there.
//! - Embeddings on a GPU: the ranking vector stays on the device. The dense min and max are
//!   device reductions and the normalisation and mix device element-wise ops
//!   ([`fuse_on_device`]; the BM25 scores are normalised on the host and uploaded, `N` floats),
//!   and [`Tensor::topk`] picks the winners there. Only the k indices, the k ranking scores
//!   and the k winners' cosines (an `index_select` on the device, which also reads the k
//!   indices to check them) come back, not `N` scores.
//! - BM25 alone ranks on the host whatever the device: there is no dense side to keep there.
//!
//! Both rank by the same total order (larger first, ties to the lower chunk, NaN last), so
//! they pick the same chunks unless two scores lie within the devices' rounding differences
//! (the matmul's sums in another order, a few ulp of the GPU's division).

use crate::bm25::{Bm25, Bm25Params};
use crate::index::{Chunk, Index};
use crate::model::EmbeddingModel;
use crate::{RagError, Result};
use deltaw_tensor::{Device, Tensor};
use std::path::Path;

/// How many chunks to return and how to score them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SearchOptions {
    pub k: usize,
    /// BM25's weight `h` in `[0, 1]` (see the module docs); 0 is dense only. The default, 0.4,
    /// lies in the middle of the plateau measured on the shipped notes (recall@5 0.977 for
    /// h in 0.4..=0.6, against 0.833 dense and 0.886 BM25 alone; `tests/rag.rs`).
    pub hybrid: f32,
    pub bm25: Bm25Params,
}

impl Default for SearchOptions {
    fn default() -> SearchOptions {
        SearchOptions { k: 5, hybrid: 0.4, bm25: Bm25Params::default() }
    }
}

/// One retrieved chunk: its position in the index and its scores.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hit {
    /// Index into [`Index::chunks`] (and row of the embeddings).
    pub chunk: usize,
    /// What the ranking used: the cosine, the BM25 score, or the fused score.
    pub score: f32,
    /// The cosine similarity, when the dense side was computed.
    pub dense: Option<f32>,
    /// The BM25 score, when the sparse side was computed.
    pub bm25: Option<f32>,
}

/// An index ready to be searched, with the model that built it when dense scores are wanted.
pub struct Retriever {
    pub index: Index,
    pub model: Option<EmbeddingModel>,
    bm25: Bm25,
}

impl Retriever {
    /// Opens the index at `dir` with its embeddings on `device`, and checks that `model`, when
    /// given, is the one that built it.
    ///
    /// # Errors
    /// Those of [`Index::open`], and [`RagError::ModelMismatch`].
    pub fn open(dir: impl AsRef<Path>, model: Option<EmbeddingModel>, device: &Device) -> Result<Retriever> {
        let index = Index::open(dir, device)?;
        if let Some(model) = &model {
            index.check_model(&model.identity)?;
        }
        let texts: Vec<&str> = index.chunks.iter().map(|c| c.text.as_str()).collect();
        let bm25 = Bm25::new(&texts, Bm25Params::default());
        Ok(Retriever { index, model, bm25 })
    }

    /// The `options.k` best chunks for `query`, best first.
    ///
    /// # Errors
    /// [`RagError::Input`] for an empty query, `k = 0`, a weight outside `[0, 1]`, or dense
    /// scoring (`hybrid < 1`) without a model; the tokenizer's errors.
    pub fn search(&self, query: &str, options: &SearchOptions) -> Result<Vec<Hit>> {
        check_options(query, options)?;
        let h = options.hybrid;
        let sparse = (h > 0.0).then(|| self.bm25_scores(options, query));
        let query = if h < 1.0 {
            let model = self.model.as_ref().ok_or_else(|| {
                RagError::Input("dense retrieval needs the embedding model (or use BM25 alone, hybrid = 1)".into())
            })?;
            Some(model.embed_query(query)?) // (1, D)
        } else {
            None
        };
        let embeddings = &self.index.embeddings; // (N, D)
        match query {
            Some(q) if embeddings.device().is_gpu() => rank_on_device(embeddings, &q, sparse.as_deref(), h, options.k),
            Some(q) => Ok(rank_on_host(Some(dense_scores(embeddings, &q)?), sparse, h, options.k)),
            None => Ok(rank_on_host(None, sparse, h, options.k)),
        }
    }

    fn bm25_scores(&self, options: &SearchOptions, query: &str) -> Vec<f32> {
        if options.bm25 == self.bm25.params {
            self.bm25.scores(query)
        } else {
            self.bm25_with(options, query)
        }
    }

    fn bm25_with(&self, options: &SearchOptions, query: &str) -> Vec<f32> {
        let texts: Vec<&str> = self.index.chunks.iter().map(|c| c.text.as_str()).collect();
        Bm25::new(&texts, options.bm25).scores(query)
    }

    /// The chunk a hit points to.
    pub fn chunk(&self, hit: &Hit) -> &Chunk {
        &self.index.chunks[hit.chunk]
    }
}

fn check_options(query: &str, options: &SearchOptions) -> Result<()> {
    if query.trim().is_empty() {
        return Err(RagError::Input("the question is empty".into()));
    }
    if options.k == 0 {
        return Err(RagError::Input("k must be at least 1".into()));
    }
    if !(0.0..=1.0).contains(&options.hybrid) {
        return Err(RagError::Input(format!("the hybrid weight must be in [0, 1], got {}", options.hybrid)));
    }
    Ok(())
}

/// Ranks on the host: the ranking scores (cosine, BM25 or [`fuse`]d), then [`top_k`].
fn rank_on_host(dense: Option<Vec<f32>>, sparse: Option<Vec<f32>>, h: f32, k: usize) -> Vec<Hit> {
    let score = match (&dense, &sparse) {
        (Some(d), None) => d.clone(),
        (None, Some(s)) => s.clone(),
        (Some(d), Some(s)) => fuse(d, s, h),
        (None, None) => unreachable!("h is in [0, 1]"),
    };
    let hit = |i: usize| Hit {
        chunk: i,
        score: score[i],
        dense: dense.as_ref().map(|d| d[i]),
        bm25: sparse.as_ref().map(|s| s[i]),
    };
    top_k(&score, k).into_iter().map(hit).collect()
}

/// Ranks on the embeddings' device: the cosines `(N,)`, fused there with `sparse` when given,
/// [`Tensor::topk`]; reads back k indices and `(2, k)` winners' scores and cosines.
fn rank_on_device(embeddings: &Tensor, query: &Tensor, sparse: Option<&[f32]>, h: f32, k: usize) -> Result<Vec<Hit>> {
    let dense = dense_scores_on_device(embeddings, query)?; // (N,)
    let score = match sparse {
        Some(s) => fuse_on_device(&dense, s, h)?, // (N,)
        None => dense.clone(),
    };
    let k = k.min(score.numel());
    let top = score.topk(k); // (k,) values and i32 indices, on the device
    let winners = Tensor::stack(&[&top.values, &dense.index_select(0, &top.indices)], 0); // (2, k)
    let ids = top.indices.to_vec_i32();
    let winners = winners.to_vec();
    let (scores, cosines) = winners.split_at(k);
    let hit = |(r, &i): (usize, &i32)| Hit {
        chunk: i as usize,
        score: scores[r],
        dense: Some(cosines[r]),
        bm25: sparse.map(|s| s[i as usize]),
    };
    Ok(ids.iter().enumerate().map(hit).collect())
}

/// Cosine similarity of every row of `embeddings` `(N, D)` with `query` `(1, D)`, both unit
/// rows: `E · qᵀ` by one matmul on `embeddings`' device (`query` is moved there), read back.
///
/// ```
/// use deltaw_tensor::{Device, Tensor};
/// use deltaw_rag::search::dense_scores;
/// let e = Tensor::from_vec(vec![1.0, 0.0, 0.6, 0.8], (2, 2), &Device::Cpu)?;
/// let q = Tensor::from_vec(vec![0.0, 1.0], (1, 2), &Device::Cpu)?;
/// assert_eq!(dense_scores(&e, &q)?, [0.0, 0.8]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// When `query` cannot be moved to the embeddings' device.
///
/// # Panics
/// If the widths differ.
pub fn dense_scores(embeddings: &Tensor, query: &Tensor) -> Result<Vec<f32>> {
    Ok(dense_scores_on_device(embeddings, query)?.to_vec())
}

/// [`dense_scores`] left on the embeddings' device: a tensor `(N,)`.
///
/// # Errors
/// When `query` cannot be moved to the embeddings' device.
///
/// # Panics
/// If the widths differ.
pub fn dense_scores_on_device(embeddings: &Tensor, query: &Tensor) -> Result<Tensor> {
    let (n, d) = (embeddings.dims()[0], embeddings.dims()[1]);
    assert_eq!(query.numel(), d, "dense_scores: query {:?} vs embeddings {:?}", query.shape(), embeddings.shape());
    let query = query.to_device(&embeddings.device()).map_err(deltaw_transformer::Error::from)?.reshape((d, 1)); // (D, 1)
    let scores = embeddings.matmul(&query); // (N, 1)
    debug_assert_eq!(scores.dims(), &[n, 1]);
    Ok(scores.reshape(n))
}

/// `(s − min s) / (max s − min s)`, or all zeros when every score is the same.
pub fn min_max(scores: &[f32]) -> Vec<f32> {
    let lo = scores.iter().copied().fold(f32::INFINITY, f32::min);
    let hi = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let range = hi - lo;
    scores.iter().map(|s| if range > 0.0 { (s - lo) / range } else { 0.0 }).collect()
}

/// `(1 − h) · min_max(dense) + h · min_max(sparse)`, element-wise.
///
/// ```
/// use deltaw_rag::search::fuse;
/// // dense ranks chunk 0 first, BM25 chunk 1; at h = 0.75 BM25 wins.
/// assert_eq!(fuse(&[0.9, 0.5, 0.1], &[0.0, 4.0, 2.0], 0.75), [0.25, 0.875, 0.375]);
/// ```
pub fn fuse(dense: &[f32], sparse: &[f32], hybrid: f32) -> Vec<f32> {
    let (d, s) = (min_max(dense), min_max(sparse));
    d.iter().zip(&s).map(|(d, s)| (1.0 - hybrid) * d + hybrid * s).collect()
}

/// [`min_max`] of a tensor `(N,)` on its own device: the min and max are reductions there, the
/// rest element-wise ops, and nothing is read back. Bit for bit [`min_max`] on the host for
/// finite scores; on a GPU the division may differ by a few ulp. (A NaN score, which unit
/// embeddings never give, makes the whole row 0 here, where [`min_max`] skips it.)
pub fn min_max_on_device(scores: &Tensor) -> Tensor {
    let zero = Tensor::zeros((), &scores.device());
    let (lo, hi) = (scores.min_all(), scores.max_all()); // () each
    let range = hi.sub(&lo);
    let scaled = scores.sub(&lo).div(&range); // 0/0 = NaN when range = 0, masked out next
    range.gt(&zero).where_(&scaled, &zero)
}

/// [`fuse`] with the dense scores a tensor `(N,)` on any device: dense min-max by
/// [`min_max_on_device`], BM25 min-max on the host and uploaded (`N` floats), mixed on the
/// device. The result stays there, `(N,)`.
///
/// ```
/// use deltaw_tensor::{Device, Tensor};
/// use deltaw_rag::search::{fuse, fuse_on_device};
/// let (dense, sparse) = ([0.9, 0.5, 0.1], [0.0, 4.0, 2.0]);
/// let on_device = fuse_on_device(&Tensor::from_slice(&dense, 3, &Device::Cpu)?, &sparse, 0.75)?;
/// assert_eq!(on_device.to_vec(), fuse(&dense, &sparse, 0.75));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// When the BM25 scores cannot be uploaded.
///
/// # Panics
/// If the lengths differ.
pub fn fuse_on_device(dense: &Tensor, sparse: &[f32], hybrid: f32) -> Result<Tensor> {
    assert_eq!(dense.numel(), sparse.len(), "fuse: {} dense scores vs {} BM25 scores", dense.numel(), sparse.len());
    let sparse =
        Tensor::from_vec(min_max(sparse), sparse.len(), &dense.device()).map_err(deltaw_transformer::Error::from)?;
    Ok(min_max_on_device(dense).mul_scalar(1.0 - hybrid).add(&sparse.mul_scalar(hybrid)))
}

/// The indices of the `k` largest scores (all of them when `k` exceeds their number), largest
/// first; ties go to the lower index and NaN ranks last, below -inf: [`Tensor::topk`]'s order,
/// so that a search ranks alike on every device.
///
/// ```
/// use deltaw_rag::search::top_k;
/// assert_eq!(top_k(&[0.1, f32::NAN, 0.7, 0.7, 0.3], 3), [2, 3, 4]);
/// assert_eq!(top_k(&[f32::NAN, f32::NEG_INFINITY], 5), [1, 0]);
/// ```
pub fn top_k(scores: &[f32], k: usize) -> Vec<usize> {
    let n = scores.len();
    let scores = Tensor::from_slice(scores, n, &Device::Cpu).expect("n scores make a tensor (n,)");
    scores.topk(k.min(n)).indices.to_vec_i32().into_iter().map(|i| i as usize).collect()
}

/// The prompt for answering `question` from `chunks` with a GPT-2-style model:
///
/// ```text
/// Context:
/// <chunk 1 text>
///
/// <chunk 2 text>
///
/// Question: <question>
/// Answer:
/// ```
///
/// (with no chunks, the `Context:` block is left out). The best chunk comes first.
///
/// ```
/// use deltaw_rag::answer_prompt;
/// assert_eq!(answer_prompt("Why?", &["A.", "B."]), "Context:\nA.\n\nB.\n\nQuestion: Why?\nAnswer:");
/// assert_eq!(answer_prompt("Why?", &[]), "Question: Why?\nAnswer:");
/// ```
pub fn answer_prompt(question: &str, chunks: &[&str]) -> String {
    let question = format!("Question: {}\nAnswer:", question.trim());
    if chunks.is_empty() {
        return question;
    }
    let context: Vec<&str> = chunks.iter().map(|c| c.trim()).collect();
    format!("Context:\n{}\n\n{question}", context.join("\n\n"))
}

/// The longest [`answer_prompt`] that `fits` (a token budget, say): the best chunks that fit
/// whole, then as much of the next one as fits, cut at a character boundary found by
/// bisection and trimmed back to the last whitespace. Returns the prompt and how many chunks it
/// holds (a cut one included); with none fitting, the bare question.
///
/// ```
/// use deltaw_rag::search::fit_prompt;
/// let fits = |p: &str| -> Result<bool, std::convert::Infallible> { Ok(p.len() <= 60) };
/// let (prompt, used) = fit_prompt("Why?", &["one two three", "four five six seven"], fits)?;
/// assert_eq!((prompt.as_str(), used), ("Context:\none two three\n\nfour five\n\nQuestion: Why?\nAnswer:", 2));
/// # Ok::<(), std::convert::Infallible>(())
/// ```
///
/// # Errors
/// Those of `fits`.
pub fn fit_prompt<E>(
    question: &str,
    chunks: &[&str],
    mut fits: impl FnMut(&str) -> std::result::Result<bool, E>,
) -> std::result::Result<(String, usize), E> {
    let mut used = 0;
    while used < chunks.len() && fits(&answer_prompt(question, &chunks[..=used]))? {
        used += 1;
    }
    if used == chunks.len() {
        return Ok((answer_prompt(question, chunks), used));
    }
    let next = chunks[used].trim();
    let cut = |n: usize| -> &str {
        let end = next.char_indices().nth(n).map_or(next.len(), |(i, _)| i);
        let head = &next[..end];
        if end < next.len() {
            head.rfind(char::is_whitespace).map_or("", |i| head[..i].trim_end())
        } else {
            head
        }
    };
    let with = |n: usize| [&chunks[..used], &[cut(n)][..]].concat();
    let (mut lo, mut hi) = (0, next.chars().count()); // the longest cut that fits is in lo..hi
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if fits(&answer_prompt(question, &with(mid)))? {
            lo = mid
        } else {
            hi = mid - 1
        }
    }
    if cut(lo).is_empty() {
        return Ok((answer_prompt(question, &chunks[..used]), used));
    }
    Ok((answer_prompt(question, &with(lo)), used + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_max_of_constant_scores_is_zero() {
        assert_eq!(min_max(&[2.0, 2.0]), [0.0, 0.0]);
        assert_eq!(min_max(&[1.0, 3.0, 2.0]), [0.0, 1.0, 0.5]);
    }

    #[test]
    fn fusion_at_the_ends_is_either_ranking() {
        let (dense, sparse) = ([0.2, 0.9, 0.5], [3.0, 0.0, 1.0]);
        assert_eq!(top_k(&fuse(&dense, &sparse, 0.0), 3), [1, 2, 0]);
        assert_eq!(top_k(&fuse(&dense, &sparse, 1.0), 3), [0, 2, 1]);
    }

    #[test]
    fn top_k_takes_at_most_what_there_is() {
        assert_eq!(top_k(&[0.5, 0.25], 5), [0, 1]);
        assert!(top_k(&[], 5).is_empty());
    }

    #[test]
    fn bad_options_are_refused() {
        let ok = SearchOptions::default();
        assert!(check_options("q", &ok).is_ok());
        let err = |q: &str, o: SearchOptions| check_options(q, &o).unwrap_err().to_string();
        assert!(err("  ", ok).contains("empty"));
        assert!(err("q", SearchOptions { k: 0, ..ok }).contains("k must be"));
        assert!(err("q", SearchOptions { hybrid: 1.5, ..ok }).contains("[0, 1]"));
        assert!(err("q", SearchOptions { hybrid: f32::NAN, ..ok }).contains("[0, 1]"));
    }
}
