//! `deltaw rag index` and `deltaw rag query`: retrieval over a folder of `.md` / `.txt` notes
//! with a sentence-embedding model (dense cosine, optionally fused with BM25), and answers
//! from the retrieved chunks with a GPT-2-style model (`--generate`).

use super::check_model_dir;
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use deltaw_rag::search::fit_prompt;
use deltaw_rag::{
    build_index, BuildOptions, ChunkOptions, EmbeddingModel, Hit, Index, IndexStats, Retriever, SearchOptions,
};
use deltaw_tensor::Device;
use deltaw_transformer::{load_causal_lm_with, GenerateOptions, GenerationConfig, Tokenizer, WeightDtype};
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};

/// How many characters of a chunk a plain-text result line shows.
const PREVIEW_CHARS: usize = 160;

#[derive(Args)]
pub struct RagArgs {
    #[command(subcommand)]
    pub command: RagCommand,
}

#[derive(Subcommand)]
pub enum RagCommand {
    /// Chunk and embed the .md / .txt files of a folder into an index folder; run again to
    /// update it (only new and changed files are embedded).
    Index(IndexArgs),
    /// Rank an index's chunks for a question, print sources and scores, and optionally answer.
    Query(QueryArgs),
}

#[derive(Args)]
pub struct IndexArgs {
    /// A sentence-transformers folder (e.g. all-MiniLM-L6-v2).
    #[arg(long, value_name = "EMBED_DIR")]
    pub model: PathBuf,
    /// The folder of documents (.md, .markdown, .txt; subfolders included, hidden ones skipped).
    #[arg(long, value_name = "FOLDER")]
    pub docs: PathBuf,
    /// The index folder to create or update.
    #[arg(long, value_name = "INDEX")]
    pub out: PathBuf,
    /// Most characters per chunk (whole paragraphs; a longer paragraph is cut at lines).
    #[arg(long, default_value_t = ChunkOptions::default().max_chars, value_name = "N")]
    pub max_chars: usize,
    /// Paragraphs repeated at the start of the next chunk.
    #[arg(long, default_value_t = ChunkOptions::default().overlap, value_name = "N")]
    pub overlap: usize,
    /// Embed each chunk as it is, without its document's title (a first line that is a
    /// heading) in front.
    #[arg(long)]
    pub no_title: bool,
    /// Embed every file again, replacing an index of another model or chunking.
    #[arg(long)]
    pub rebuild: bool,
    /// Print what was done as JSON: files embedded / reused / removed, chunk counts.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct QueryArgs {
    /// The index folder written by `deltaw rag index`.
    #[arg(long, value_name = "INDEX")]
    pub index: PathBuf,
    /// The embedding model; default: the folder recorded in the index. It must be the model
    /// the index was built with.
    #[arg(long, value_name = "EMBED_DIR")]
    pub model: Option<PathBuf>,
    /// How many chunks to return.
    #[arg(short = 'k', long = "top-k", default_value_t = 5, value_name = "K")]
    pub k: usize,
    /// Weight of BM25 keyword scores in [0, 1], fused with the cosine after min-max scaling
    /// of each; 0 = embeddings only, 1 = BM25 only (no model loaded).
    #[arg(long, default_value_t = SearchOptions::default().hybrid, value_name = "W")]
    pub hybrid: f32,
    /// Answer with this GPT-2 folder from a prompt `Context:\n<chunks>\n\nQuestion: <q>\nAnswer:`
    /// (the best chunks that fit in its context).
    #[arg(long, value_name = "GPT_DIR")]
    pub generate: Option<PathBuf>,
    /// Tokens the answer may take (greedy decoding, stopping at end-of-text).
    #[arg(long, default_value_t = 64, value_name = "N", requires = "generate")]
    pub max_new_tokens: usize,
    /// Print {"query", "hits": [{rank, path, start_line, end_line, score, dense, bm25, text}],
    /// and with --generate "prompt" and "answer"} as JSON.
    #[arg(long)]
    pub json: bool,
    /// The question.
    #[arg(value_name = "QUESTION")]
    pub question: String,
}

pub fn run(args: &RagArgs, device: &Device, out: &mut dyn Write) -> Result<()> {
    match &args.command {
        RagCommand::Index(args) => run_index(args, device, out),
        RagCommand::Query(args) => run_query(args, device, out),
    }
}

fn run_index(args: &IndexArgs, device: &Device, out: &mut dyn Write) -> Result<()> {
    if args.max_chars == 0 {
        bail!("--max-chars must be at least 1");
    }
    check_model_dir(&args.model)?;
    let model = EmbeddingModel::load(&args.model, device)?; // its errors name the folder or file
    let chunking = ChunkOptions { max_chars: args.max_chars, overlap: args.overlap, title: !args.no_title };
    let options = BuildOptions { chunking, rebuild: args.rebuild };
    let bar = progress_bar();
    let stats = build_index(&args.docs, &args.out, &model, &options, &mut |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    });
    bar.finish_and_clear();
    let stats = stats.with_context(|| format!("indexing {} into {}", args.docs.display(), args.out.display()))?;
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&stats)?)?;
    } else {
        writeln!(out, "{}", summary(&stats, &args.out))?;
    }
    Ok(())
}

/// `index: 3 files embedded (12 chunks), 15 reused, 1 removed; 61 chunks in OUT`.
fn summary(stats: &IndexStats, out: &Path) -> String {
    format!(
        "index: {} files embedded ({} chunks), {} reused, {} removed; {} chunks in {}",
        stats.files_embedded.len(),
        stats.chunks_embedded,
        stats.files_reused.len(),
        stats.files_removed.len(),
        stats.chunks_total,
        out.display()
    )
}

/// Chunks embedded so far, on stderr when it is a terminal; hidden otherwise.
fn progress_bar() -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(0);
    let style = indicatif::ProgressStyle::with_template("embedding {bar:30} {pos}/{len} chunks [{elapsed_precise}]")
        .expect("a valid template");
    bar.set_style(style);
    bar
}

fn run_query(args: &QueryArgs, device: &Device, out: &mut dyn Write) -> Result<()> {
    if !(0.0..=1.0).contains(&args.hybrid) {
        bail!("--hybrid must be in [0, 1], got {}", args.hybrid);
    }
    let meta = Index::read_meta(&args.index).with_context(|| format!("opening the index {}", args.index.display()))?;
    let model = if args.hybrid < 1.0 {
        let dir = args.model.clone().unwrap_or_else(|| meta.model_dir.clone());
        if args.model.is_none() && !dir.is_dir() {
            bail!(
                "the index's embedding model {} (recorded in {}) is not there: pass --model EMBED_DIR",
                dir.display(),
                args.index.join("index.json").display()
            );
        }
        check_model_dir(&dir)?;
        Some(EmbeddingModel::load(&dir, device)?)
    } else {
        None
    };
    let retriever = Retriever::open(&args.index, model, device)?;
    let options = SearchOptions { k: args.k, hybrid: args.hybrid, ..Default::default() };
    let hits = retriever.search(&args.question, &options)?;
    let answer = match &args.generate {
        Some(dir) => Some(answer(dir, &args.question, &retriever, &hits, args.max_new_tokens, device)?),
        None => None,
    };
    if args.json {
        let mut value = json!({ "query": args.question, "hits": hits_json(&retriever, &hits) });
        if let Some((prompt, text)) = &answer {
            value["prompt"] = Value::from(prompt.as_str());
            value["answer"] = Value::from(text.as_str());
        }
        writeln!(out, "{value}")?;
        return Ok(());
    }
    for (rank, hit) in hits.iter().enumerate() {
        let chunk = retriever.chunk(hit);
        writeln!(out, "{}. {:.4}  {}:{}-{}", rank + 1, hit.score, chunk.path, chunk.start_line, chunk.end_line)?;
        writeln!(out, "   {}", preview(&chunk.text))?;
    }
    if let Some((_, text)) = &answer {
        writeln!(out, "\nAnswer: {}", text.trim())?;
    }
    Ok(())
}

fn hits_json(retriever: &Retriever, hits: &[Hit]) -> Vec<Value> {
    let hit_json = |(rank, hit): (usize, &Hit)| {
        let chunk = retriever.chunk(hit);
        json!({
            "rank": rank + 1,
            "path": chunk.path,
            "start_line": chunk.start_line,
            "end_line": chunk.end_line,
            "score": hit.score,
            "dense": hit.dense,
            "bm25": hit.bm25,
            "text": chunk.text,
        })
    };
    hits.iter().enumerate().map(hit_json).collect()
}

/// The chunk on one line: whitespace runs collapsed, cut at [`PREVIEW_CHARS`].
fn preview(text: &str) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(PREVIEW_CHARS) {
        Some((at, _)) => format!("{}…", &flat[..at]),
        None => flat,
    }
}

/// Greedy answer of the decoder folder `dir` from the best hits that fit its context with
/// `max_new_tokens` to spare ([`fit_prompt`]); returns (prompt, answer).
fn answer(
    dir: &Path,
    question: &str,
    retriever: &Retriever,
    hits: &[Hit],
    max_new_tokens: usize,
    device: &Device,
) -> Result<(String, String)> {
    check_model_dir(dir)?;
    let model = load_causal_lm_with(dir, device, WeightDtype::Stored)
        .with_context(|| format!("loading the generator {}", dir.display()))?;
    let tokenizer = Tokenizer::from_dir(dir)?;
    tokenizer.check_vocab(model.vocab_size())?;
    let texts: Vec<&str> = hits.iter().map(|h| retriever.chunk(h).text.as_str()).collect();
    let limit = model.max_positions().saturating_sub(max_new_tokens);
    let (prompt, _) = fit_prompt(question, &texts, |p| Ok::<bool, anyhow::Error>(tokenizer.encode(p)?.len() <= limit))?;
    let ids = tokenizer.encode(&prompt)?;
    let mut options = GenerateOptions::greedy(max_new_tokens);
    options.eos_token_ids = GenerationConfig::from_dir(dir)?.eos_token_ids;
    let new_ids = model.try_generate(&ids, &options).with_context(|| format!("generating with {}", dir.display()))?;
    Ok((prompt, tokenizer.decode(&new_ids)?))
}
