//! The index folder: building it (incrementally: only files whose content changed are
//! embedded again), writing it, and opening it with every file checked against the others.
//!
//! Chunk `i` of `chunks.json` is row `i` of `embeddings.safetensors`. Files are stored in the
//! order of their relative paths and each owns the contiguous chunk range `chunk_start..chunk_end`
//! that `index.json` records with its hash, so reusing an unchanged file is copying a range.

use crate::chunk::{chunk_text, embedding_texts, ChunkOptions, TextChunk};
use crate::docs::{decode, find_docs, read_bytes};
use crate::model::{EmbeddingModel, ModelIdentity};
use crate::{fnv1a64, hash_string, RagError, Result};
use deltaw_tensor::{atomic, safetensors, DType, Device, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Version of the index folder's layout; an index of another version is refused.
pub const FORMAT_VERSION: u32 = 1;
pub const INDEX_FILE: &str = "index.json";
pub const CHUNKS_FILE: &str = "chunks.json";
pub const EMBEDDINGS_FILE: &str = "embeddings.safetensors";
/// The one tensor of `embeddings.safetensors`, `(N, D)` f32.
pub const EMBEDDINGS_TENSOR: &str = "embeddings";

/// One chunk of a document, as `chunks.json` stores it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    /// Path relative to the docs folder, `/`-separated.
    pub path: String,
    /// First and last line, 1-based, inclusive.
    pub start_line: usize,
    pub end_line: usize,
    pub text: String,
    /// Content hash of the whole file the chunk comes from.
    pub file_hash: String,
}

/// A document of the index: its content hash and its chunks, `chunk_start..chunk_end`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub hash: String,
    pub chunk_start: usize,
    pub chunk_end: usize,
}

/// `index.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IndexMeta {
    pub format_version: u32,
    pub model: ModelIdentity,
    /// The model folder used last, made absolute: the default model of a query.
    pub model_dir: PathBuf,
    /// The docs folder indexed last, made absolute.
    pub docs_root: PathBuf,
    pub chunking: ChunkOptions,
    pub num_chunks: usize,
    /// Relative path → entry, in path order.
    pub files: BTreeMap<String, FileEntry>,
}

/// An opened index: metadata, chunks, and their unit embeddings `(N, D)` on some device.
pub struct Index {
    pub dir: PathBuf,
    pub meta: IndexMeta,
    pub chunks: Vec<Chunk>,
    pub embeddings: Tensor,
}

/// How to build: the chunking, and whether to ignore (and replace) an existing index.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BuildOptions {
    pub chunking: ChunkOptions,
    /// Embed every file again, even when an index of another model or chunking is there.
    pub rebuild: bool,
}

/// What a build did, file by file (relative paths, sorted).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct IndexStats {
    /// New or changed files, chunked and embedded.
    pub files_embedded: Vec<String>,
    /// Unchanged files whose chunks and rows were copied from the previous index.
    pub files_reused: Vec<String>,
    /// Files of the previous index that are gone from the docs folder.
    pub files_removed: Vec<String>,
    pub chunks_embedded: usize,
    pub chunks_total: usize,
}

impl Index {
    /// True when `dir` holds an `index.json` (a complete build or a damaged one).
    pub fn exists(dir: &Path) -> bool {
        dir.join(INDEX_FILE).is_file()
    }

    /// Reads an index folder, puts its embeddings on `device`, and checks that the three files
    /// agree: chunk count, each file's chunk range and hash, the tensor's name, dtype and shape.
    ///
    /// # Errors
    /// [`RagError::Corrupt`] naming the file that cannot be parsed or that disagrees;
    /// [`RagError::Io`] for a missing or unreadable file.
    pub fn open(dir: impl AsRef<Path>, device: &Device) -> Result<Index> {
        let dir = dir.as_ref().to_path_buf();
        if !dir.is_dir() {
            let source = std::io::Error::new(std::io::ErrorKind::NotFound, "no such index folder");
            return Err(RagError::Io { path: dir, source });
        }
        let meta = Index::read_meta(&dir)?;
        let chunks: Vec<Chunk> = read_json(&dir.join(CHUNKS_FILE))?;
        let embeddings = read_embeddings(&dir.join(EMBEDDINGS_FILE), device)?;
        let index = Index { dir, meta, chunks, embeddings };
        index.check_consistent()?;
        Ok(index)
    }

    /// Only `index.json` of the index at `dir`: what a caller needs before loading a model.
    ///
    /// # Errors
    /// [`RagError::Io`] when it cannot be read, [`RagError::Corrupt`] when it cannot be parsed
    /// or has another format version.
    pub fn read_meta(dir: &Path) -> Result<IndexMeta> {
        let path = dir.join(INDEX_FILE);
        let meta: IndexMeta = read_json(&path)?;
        if meta.format_version != FORMAT_VERSION {
            let message = format!("format version {}, this deltaw reads version {FORMAT_VERSION}", meta.format_version);
            return Err(RagError::Corrupt { path, message });
        }
        Ok(meta)
    }

    /// `D`, the width of the embeddings.
    pub fn dim(&self) -> usize {
        self.meta.model.dim
    }

    /// Fails unless `model` is the model that built this index.
    ///
    /// # Errors
    /// [`RagError::ModelMismatch`] describing both models.
    pub fn check_model(&self, model: &ModelIdentity) -> Result<()> {
        if self.meta.model.same_model(model) {
            return Ok(());
        }
        Err(RagError::ModelMismatch(format!(
            "{}: the index was built with model {}, not with {}: query it with the model it was built with, or \
             rebuild it with `deltaw rag index --rebuild`",
            self.dir.join(INDEX_FILE).display(),
            self.meta.model.describe(),
            model.describe()
        )))
    }

    fn check_consistent(&self) -> Result<()> {
        let n = self.chunks.len();
        let corrupt = |file: &str, message: String| RagError::Corrupt { path: self.dir.join(file), message };
        if n != self.meta.num_chunks {
            return Err(corrupt(CHUNKS_FILE, format!("holds {n} chunks, {INDEX_FILE} says {}", self.meta.num_chunks)));
        }
        let mut next = 0;
        for (rel, file) in &self.meta.files {
            if file.chunk_start != next || file.chunk_end < file.chunk_start || file.chunk_end > n {
                let range = format!("{}..{}", file.chunk_start, file.chunk_end);
                return Err(corrupt(INDEX_FILE, format!("{rel}: chunk range {range} does not follow chunk {next}")));
            }
            let chunks = &self.chunks[file.chunk_start..file.chunk_end];
            if let Some(c) = chunks.iter().find(|c| &c.path != rel || c.file_hash != file.hash) {
                let message = format!("chunk of {} ({}) listed under {rel} ({})", c.path, c.file_hash, file.hash);
                return Err(corrupt(CHUNKS_FILE, message));
            }
            next = file.chunk_end;
        }
        if next != n {
            return Err(corrupt(INDEX_FILE, format!("its files cover {next} chunks of {n}")));
        }
        let dims = self.embeddings.dims();
        if dims != [n, self.dim()] {
            let message = format!("'{EMBEDDINGS_TENSOR}' has shape {dims:?}, expected [{n}, {}]", self.dim());
            return Err(corrupt(EMBEDDINGS_FILE, message));
        }
        Ok(())
    }
}

/// Where each document's chunks and rows come from in a build.
enum Plan {
    /// Copy rows `range` (and those chunks) of the previous index.
    Reuse(std::ops::Range<usize>),
    /// Embed these new chunks, from these texts (see [`embedding_texts`]).
    Embed(Vec<TextChunk>, Vec<String>),
}

/// Indexes the `.md` / `.txt` files below `docs` into the folder `out` with `model`.
///
/// When `out` already holds an index of the same model and chunking, files whose content hash
/// is unchanged keep their chunks and embeddings; only new and changed files are embedded,
/// deleted files are dropped. `progress(done, total)` counts the chunks being embedded.
/// The three files are written atomically, `index.json` last.
///
/// # Errors
/// [`RagError::Docs`] for a docs folder without documents or with no text in them, or a file
/// that is not UTF-8; [`RagError::Io`] naming an unreadable file; [`RagError::ModelMismatch`]
/// when `out` holds an index of another model (unless `options.rebuild`);
/// [`RagError::Corrupt`] when the existing index is damaged (unless `options.rebuild`); an
/// error when `out` is a non-empty folder that is not an index.
pub fn build_index(
    docs: impl AsRef<Path>,
    out: impl AsRef<Path>,
    model: &EmbeddingModel,
    options: &BuildOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<IndexStats> {
    let (docs, out) = (docs.as_ref(), out.as_ref());
    let files = find_docs(docs)?;
    let existing = previous_index(out, model, options)?;
    // Another chunking reuses nothing: every file is cut and embedded again.
    let previous = existing.as_ref().filter(|p| p.meta.chunking == options.chunking);
    let mut stats = IndexStats::default();
    let mut plans = Vec::with_capacity(files.len());
    for doc in &files {
        let bytes = read_bytes(doc)?;
        let hash = hash_string(fnv1a64(&bytes));
        let old = previous.and_then(|p| p.meta.files.get(&doc.rel)).filter(|f| f.hash == hash);
        let plan = match old {
            Some(f) => Plan::Reuse(f.chunk_start..f.chunk_end),
            None => {
                let text = decode(doc, bytes)?;
                let chunks = chunk_text(&text, &options.chunking);
                let texts = embedding_texts(&text, &chunks, &options.chunking);
                Plan::Embed(chunks, texts)
            }
        };
        match &plan {
            Plan::Reuse(_) => stats.files_reused.push(doc.rel.clone()),
            Plan::Embed(..) => stats.files_embedded.push(doc.rel.clone()),
        }
        plans.push((doc.rel.clone(), hash, plan));
    }
    if let Some(p) = &existing {
        let kept: std::collections::HashSet<&str> = files.iter().map(|d| d.rel.as_str()).collect();
        stats.files_removed = p.meta.files.keys().filter(|rel| !kept.contains(rel.as_str())).cloned().collect();
    }
    let new_texts: Vec<&str> = plans.iter().flat_map(|(_, _, plan)| plan_texts(plan)).collect();
    let total = new_texts.len();
    progress(0, total);
    let new_rows = model.embed_normalized(&new_texts, &mut |done| progress(done, total))?;
    stats.chunks_embedded = total;
    let old_rows = previous.map(|p| p.embeddings.to_vec()).unwrap_or_default();
    let index = assemble(plans, previous, &old_rows, &new_rows, model, (docs, out), options.chunking)?;
    if index.chunks.is_empty() {
        let message = "the documents hold no text (every .md / .txt file is blank)".into();
        return Err(RagError::Docs { path: docs.to_path_buf(), message });
    }
    stats.chunks_total = index.chunks.len();
    write_index(&index)?;
    Ok(stats)
}

fn plan_texts(plan: &Plan) -> Vec<&str> {
    match plan {
        Plan::Reuse(_) => Vec::new(),
        Plan::Embed(_, texts) => texts.iter().map(String::as_str).collect(),
    }
}

/// The index of `out` to update: `None` for a new or empty folder, or with `rebuild`.
fn previous_index(out: &Path, model: &EmbeddingModel, options: &BuildOptions) -> Result<Option<Index>> {
    if Index::exists(out) {
        if options.rebuild {
            return Ok(None);
        }
        let index = Index::open(out, &Device::Cpu)?;
        index.check_model(&model.identity).map_err(|_| {
            RagError::ModelMismatch(format!(
                "{}: the index was built with model {}, not with {}: pass --rebuild to embed every file again \
                 with the new model, or choose another output folder",
                out.join(INDEX_FILE).display(),
                index.meta.model.describe(),
                model.identity.describe()
            ))
        })?;
        return Ok(Some(index));
    }
    let non_empty = out.is_dir() && std::fs::read_dir(out).map(|mut d| d.next().is_some()).unwrap_or(false);
    if non_empty || (out.exists() && !out.is_dir()) {
        let message = format!("exists and is not a deltaw rag index (no {INDEX_FILE}): choose a new or empty folder");
        return Err(RagError::Docs { path: out.to_path_buf(), message });
    }
    Ok(None)
}

/// The new index, in document order: reused ranges copied, new chunks with their new rows.
fn assemble(
    plans: Vec<(String, String, Plan)>,
    previous: Option<&Index>,
    old_rows: &[f32],
    new_rows: &[f32],
    model: &EmbeddingModel,
    (docs, out): (&Path, &Path),
    chunking: ChunkOptions,
) -> Result<Index> {
    let d = model.identity.dim;
    let (mut chunks, mut rows, mut files) = (Vec::new(), Vec::new(), BTreeMap::new());
    let mut next_new = 0; // first unused row of new_rows
    for (rel, hash, plan) in plans {
        let chunk_start = chunks.len();
        match plan {
            Plan::Reuse(range) => {
                let old = &previous.expect("reuse needs a previous index").chunks;
                chunks.extend_from_slice(&old[range.clone()]);
                rows.extend_from_slice(&old_rows[range.start * d..range.end * d]);
            }
            Plan::Embed(text_chunks, _) => {
                let n = text_chunks.len();
                rows.extend_from_slice(&new_rows[next_new * d..(next_new + n) * d]);
                next_new += n;
                chunks.extend(text_chunks.into_iter().map(|c| Chunk {
                    path: rel.clone(),
                    start_line: c.start_line,
                    end_line: c.end_line,
                    text: c.text,
                    file_hash: hash.clone(),
                }));
            }
        }
        files.insert(rel, FileEntry { hash, chunk_start, chunk_end: chunks.len() });
    }
    let meta = IndexMeta {
        format_version: FORMAT_VERSION,
        model: model.identity.clone(),
        model_dir: absolute(&model.dir),
        docs_root: absolute(docs),
        chunking,
        num_chunks: chunks.len(),
        files,
    };
    let embeddings =
        Tensor::from_vec(rows, (chunks.len(), d), &Device::Cpu).map_err(deltaw_transformer::Error::from)?;
    Ok(Index { dir: out.to_path_buf(), meta, chunks, embeddings })
}

/// `path` resolved (links followed), or as it is when that fails.
fn absolute(path: &Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| path.to_path_buf())
}

/// Writes the index folder atomically ([`atomic::replace_dir`]): the three files go into a
/// temp folder beside it, `index.json` last, which then replaces the old folder. An
/// interrupted update leaves the old index, never embeddings of one build beside chunks of
/// another. Other files in the folder are kept.
pub fn write_index(index: &Index) -> Result<()> {
    let metadata = HashMap::from([
        ("format".to_string(), "deltaw-rag".to_string()),
        ("format_version".to_string(), FORMAT_VERSION.to_string()),
    ]);
    let fill = |tmp: &Path| -> std::result::Result<(), deltaw_tensor::Error> {
        safetensors::save([(EMBEDDINGS_TENSOR, &index.embeddings)], Some(metadata), tmp.join(EMBEDDINGS_FILE))?;
        write_json(&tmp.join(CHUNKS_FILE), &index.chunks)?;
        write_json(&tmp.join(INDEX_FILE), &index.meta)
    };
    atomic::replace_dir(&index.dir, |_| true, fill).map_err(|e| RagError::Model(e.into()))
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> std::result::Result<(), deltaw_tensor::Error> {
    let bytes = serde_json::to_vec_pretty(value).expect("index metadata serialises");
    atomic::write_file(path, &bytes)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|source| RagError::Io { path: path.to_path_buf(), source })?;
    serde_json::from_str(&text).map_err(|e| RagError::Corrupt { path: path.to_path_buf(), message: e.to_string() })
}

/// The `(N, D)` f32 tensor of `embeddings.safetensors` on `device`.
fn read_embeddings(path: &Path, device: &Device) -> Result<Tensor> {
    let corrupt = |message: String| RagError::Corrupt { path: path.to_path_buf(), message };
    let mut tensors = safetensors::load(path, device).map_err(|e| match e {
        deltaw_tensor::Error::Safetensors { message, .. } => corrupt(message),
        deltaw_tensor::Error::Io { source, .. } if source.kind() == std::io::ErrorKind::UnexpectedEof => {
            corrupt(format!("the file is truncated ({source})"))
        }
        deltaw_tensor::Error::Io { path, source } => RagError::Io { path, source },
        other => corrupt(other.to_string()),
    })?;
    let embeddings =
        tensors.remove(EMBEDDINGS_TENSOR).ok_or_else(|| corrupt(format!("no '{EMBEDDINGS_TENSOR}' tensor")))?;
    if embeddings.dtype() != DType::F32 || embeddings.rank() != 2 {
        let (dtype, shape) = (embeddings.dtype(), embeddings.dims().to_vec());
        return Err(corrupt(format!("'{EMBEDDINGS_TENSOR}' is {dtype:?} {shape:?}, expected a 2-D F32 tensor")));
    }
    Ok(embeddings)
}
