//! # deltaw-rag
//!
//! Retrieval-augmented generation on deltaw's transformers: chunk a folder of `.md` / `.txt`
//! files, embed the chunks with a sentence-embedding model, store them as an index folder,
//! and rank chunks for a question by cosine similarity, optionally fused with BM25 keyword
//! scores.
//!
//! The pieces, one file each:
//! - [`chunk`]: paragraphs grouped into chunks of at most `max_chars`, the last paragraph(s)
//!   of a chunk repeated at the start of the next (overlap), each with its 1-based line range,
//!   and embedded after its document's title.
//! - [`model`]: the [`EmbeddingModel`] (a [`SentenceEmbedder`](deltaw_transformer::SentenceEmbedder) plus
//!   the [`ModelIdentity`] that an index records, so that a query with another model fails).
//! - [`index`]: the index folder, built and rebuilt incrementally (only files whose content
//!   hash changed are embedded again), opened with every cross-file consistency checked.
//! - [`bm25`]: Okapi BM25 over lower-cased alphanumeric tokens.
//! - [`search`]: cosine scores by one matmul on the embeddings' device, min-max fusion with
//!   BM25 and the top k (on that device too when it is a GPU, reading back only the k
//!   winners), and the prompt template for answering with a GPT-2-style model.
//!
//! An index folder holds three files:
//! - `embeddings.safetensors`: one f32 tensor `embeddings` of shape `(N, D)`, row `i` the
//!   L2-normalised embedding of chunk `i`;
//! - `chunks.json`: the `N` chunks (path relative to the docs folder, start and end line,
//!   text, content hash of the file);
//! - `index.json`: format version, the model's identity, the docs folder, the chunking
//!   options, and per file its hash and its range of chunks. Written last: it is the commit.
//!
//! ```no_run
//! use deltaw_tensor::Device;
//! use deltaw_rag::{build_index, BuildOptions, EmbeddingModel, Retriever, SearchOptions};
//! let model = EmbeddingModel::load("all-MiniLM-L6-v2", &Device::Cpu)?;
//! let stats = build_index("docs", "docs.index", &model, &BuildOptions::default(), &mut |_, _| {})?;
//! println!("{} files embedded, {} reused", stats.files_embedded.len(), stats.files_reused.len());
//! let retriever = Retriever::open("docs.index", Some(model), &Device::Cpu)?;
//! for hit in retriever.search("how are gradients computed?", &SearchOptions::default())? {
//!     let chunk = &retriever.index.chunks[hit.chunk];
//!     println!("{:.3} {}:{}-{}", hit.score, chunk.path, chunk.start_line, chunk.end_line);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]

pub mod bm25;
pub mod chunk;
pub mod docs;
pub mod index;
pub mod model;
pub mod search;

pub use bm25::{Bm25, Bm25Params};
pub use chunk::{chunk_text, ChunkOptions, TextChunk};
pub use index::{build_index, BuildOptions, Chunk, FileEntry, Index, IndexMeta, IndexStats, FORMAT_VERSION};
pub use model::{EmbeddingModel, ModelIdentity};
pub use search::{answer_prompt, Hit, Retriever, SearchOptions};

use std::path::PathBuf;

/// What can go wrong building or reading an index; every message names the file or folder.
#[derive(Debug, thiserror::Error)]
pub enum RagError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },

    /// A docs folder that is missing, empty of `.md` / `.txt` files, or holds a file that
    /// is not UTF-8 text.
    #[error("{path}: {message}")]
    Docs { path: PathBuf, message: String },

    /// An index file that cannot be parsed, or files of one index that disagree.
    #[error("{path}: corrupt index: {message} (rebuild it with `deltaw rag index --rebuild`)")]
    Corrupt { path: PathBuf, message: String },

    /// A model folder that cannot embed sentences (GPT-2, say).
    #[error("{path}: not a sentence-embedding model: {message}")]
    NotEmbeddingModel { path: PathBuf, message: String },

    /// An index used with, or updated by, a model other than the one that built it.
    #[error("{0}")]
    ModelMismatch(String),

    /// A bad argument: an empty question, `k = 0`, a fusion weight outside `[0, 1]`.
    #[error("{0}")]
    Input(String),

    #[error(transparent)]
    Model(#[from] deltaw_transformer::Error),
}

pub type Result<T> = std::result::Result<T, RagError>;

/// 64-bit FNV-1a of `bytes`: `h = 0xcbf29ce484222325`, then per byte `h = (h ^ byte) · 0x100000001b3`
/// (mod 2⁶⁴). Stable across platforms and versions, which is all the index needs to tell a
/// changed file from an unchanged one; not a defence against deliberate collisions.
///
/// ```
/// use deltaw_rag::fnv1a64;
/// assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
/// assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
/// ```
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    Fnv1a64::new().update(bytes).finish()
}

/// [`fnv1a64`] fed piece by piece, for files too large to hold at once.
#[derive(Clone, Copy, Debug)]
pub struct Fnv1a64(u64);

impl Fnv1a64 {
    const OFFSET: u64 = 0xcbf29ce484222325;
    const PRIME: u64 = 0x100000001b3;

    pub fn new() -> Fnv1a64 {
        Fnv1a64(Self::OFFSET)
    }

    pub fn update(mut self, bytes: &[u8]) -> Fnv1a64 {
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(Self::PRIME);
        }
        self
    }

    pub fn finish(self) -> u64 {
        self.0
    }
}

impl Default for Fnv1a64 {
    fn default() -> Fnv1a64 {
        Fnv1a64::new()
    }
}

/// The form hashes take in the index files: `fnv1a64:` and 16 hex digits.
pub fn hash_string(hash: u64) -> String {
    format!("fnv1a64:{hash:016x}")
}

/// The README's examples, compiled (and run unless marked `no_run`) as doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
