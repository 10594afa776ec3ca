//! `deltaw rag index` and `deltaw rag query` end to end on the shipped notes
//! (`tests/fixtures/rag_docs`): with the committed tiny BERT for the mechanics and errors, and
//! with all-MiniLM-L6-v2, when it has been fetched (`scripts/fetch_minilm.sh`), for hits
//! that must include the right file.

mod support;

use support::{assert_fails_with, deltaw, gpu_available, minilm_dir, path, s, scratch, stdout_json};

#[test]
fn rag_index_then_query_json_with_the_tiny_bert() {
    let root = scratch("rag-tiny");
    let index = s(&root.join("index"));
    let out = deltaw(&[
        "rag",
        "index",
        "--model",
        &path("tiny_bert"),
        "--docs",
        &path("rag_docs"),
        "--out",
        &index,
        "--json",
    ]);
    let stats = stdout_json(&out);
    assert_eq!(stats["files_embedded"].as_array().unwrap().len(), 18, "{stats}");
    let total = stats["chunks_total"].as_u64().unwrap();
    assert!(total >= 18 && stats["chunks_embedded"] == total, "{stats}");

    let again = deltaw(&["rag", "index", "--model", &path("tiny_bert"), "--docs", &path("rag_docs"), "--out", &index]);
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    let line = String::from_utf8(again.stdout).unwrap();
    assert!(line.starts_with("index: 0 files embedded (0 chunks), 18 reused, 0 removed"), "{line}");

    // The model is found through index.json; BM25 alone needs none.
    let json =
        stdout_json(&deltaw(&["rag", "query", "--index", &index, "-k", "3", "--json", "decoupled weight decay"]));
    let hits = json["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 3, "{json}");
    for (i, hit) in hits.iter().enumerate() {
        assert_eq!(hit["rank"], i + 1);
        assert!(hit["dense"].is_number() && hit["bm25"].is_number() && hit["text"].is_string(), "{hit}");
        assert!(hit["start_line"].as_u64().unwrap() <= hit["end_line"].as_u64().unwrap(), "{hit}");
    }
    let bm25 =
        stdout_json(&deltaw(&["rag", "query", "--index", &index, "--hybrid", "1", "--json", "decoupled weight decay"]));
    assert_eq!(bm25["hits"][0]["path"], "adamw.md", "{bm25}");
    assert!(bm25["hits"][0]["dense"].is_null(), "no dense score without a model: {bm25}");

    let plain = deltaw(&["rag", "query", "--index", &index, "--hybrid", "1", "-k", "2", "decoupled weight decay"]);
    let text = String::from_utf8(plain.stdout).unwrap();
    assert!(text.starts_with("1. ") && text.contains("adamw.md:") && text.contains("\n2. "), "{text}");
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn rag_query_on_the_gpu_returns_the_cpu_s_hits() {
    if !gpu_available() {
        return;
    }
    let root = scratch("rag-gpu");
    let index = s(&root.join("index"));
    let args = ["rag", "index", "--model", &path("tiny_bert"), "--docs", &path("rag_docs"), "--out", &index];
    assert!(deltaw(&args).status.success());
    for hybrid in ["0", "0.4", "1"] {
        let query = |device: &str| {
            let args = ["rag", "query", "--index", &index, "-k", "5", "--hybrid", hybrid, "--json", "--device", device];
            stdout_json(&deltaw(&[&args[..], &["how is the adapter merged?"]].concat()))
        };
        let (cpu, gpu) = (query("cpu"), query("gpu"));
        let chunks = |r: &serde_json::Value| {
            let hits = r["hits"].as_array().unwrap().iter();
            hits.map(|h| (h["path"].to_string(), h["start_line"].as_u64(), h["end_line"].as_u64())).collect::<Vec<_>>()
        };
        assert_eq!(chunks(&gpu), chunks(&cpu), "--hybrid {hybrid}: {gpu} vs {cpu}");
        // Scores: cosines of unit vectors summed in another order, min-max fused (tests/rag.rs
        // derives the bound); 1e-4 is far above it and far below the gaps between ranks.
        for (c, g) in cpu["hits"].as_array().unwrap().iter().zip(gpu["hits"].as_array().unwrap()) {
            let (c, g) = (c["score"].as_f64().unwrap(), g["score"].as_f64().unwrap());
            assert!((c - g).abs() <= 1e-4, "--hybrid {hybrid}: score {g} on the GPU, {c} on the CPU");
        }
    }
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn rag_query_generate_answers_within_the_generator_s_context() {
    let root = scratch("rag-generate");
    let index = s(&root.join("index"));
    let built = deltaw(&["rag", "index", "--model", &path("tiny_bert"), "--docs", &path("rag_docs"), "--out", &index]);
    assert!(built.status.success(), "{}", String::from_utf8_lossy(&built.stderr));
    let args = ["rag", "query", "--index", &index, "--generate", &path("tiny_gpt2"), "--max-new-tokens", "8", "--json"];
    let json = stdout_json(&deltaw(&[&args[..], &["what is lora"]].concat()));
    let prompt = json["prompt"].as_str().unwrap();
    assert!(prompt.ends_with("Question: what is lora\nAnswer:"), "{prompt}");
    assert!(json["answer"].is_string(), "{json}");
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn rag_errors_are_one_clear_line() {
    let root = scratch("rag-errors");
    let index = root.join("index");
    let empty = root.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let tiny = path("tiny_bert");
    assert_fails_with(
        &deltaw(&["rag", "index", "--model", &tiny, "--docs", &s(&empty), "--out", &s(&index)]),
        &["empty", "no .md or .txt files"],
    );
    assert_fails_with(
        &deltaw(&["rag", "index", "--model", &path("tiny_gpt2"), "--docs", &path("rag_docs"), "--out", &s(&index)]),
        &["tiny_gpt2", "not a sentence-embedding model", "gpt2"],
    );
    assert_fails_with(&deltaw(&["rag", "query", "--index", &s(&root.join("none")), "q"]), &["none", "index.json"]);

    let built = deltaw(&["rag", "index", "--model", &tiny, "--docs", &path("rag_docs"), "--out", &s(&index)]);
    assert!(built.status.success(), "{}", String::from_utf8_lossy(&built.stderr));
    assert_fails_with(&deltaw(&["rag", "query", "--index", &s(&index), "--hybrid", "2", "q"]), &["--hybrid", "[0, 1]"]);
    assert_fails_with(&deltaw(&["rag", "query", "--index", &s(&index), "-k", "0", "q"]), &["k must be at least 1"]);
    let embeddings = index.join("embeddings.safetensors");
    std::fs::write(&embeddings, b"\x10\x00\x00\x00\x00\x00\x00\x00{").unwrap();
    assert_fails_with(
        &deltaw(&["rag", "query", "--index", &s(&index), "q"]),
        &["embeddings.safetensors", "corrupt index", "--rebuild"],
    );
    std::fs::write(index.join("chunks.json"), "[{").unwrap();
    assert_fails_with(&deltaw(&["rag", "query", "--index", &s(&index), "q"]), &["chunks.json", "corrupt index"]);
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn rag_with_minilm_finds_the_right_note_in_the_top_5() {
    let Some(model) = minilm_dir() else { return };
    let root = scratch("rag-minilm");
    let index = s(&root.join("index"));
    let built = deltaw(&["rag", "index", "--model", &s(&model), "--docs", &path("rag_docs"), "--out", &index]);
    assert!(built.status.success(), "{}", String::from_utf8_lossy(&built.stderr));
    for (question, file) in [
        ("Which trick lets me fine-tune a big network by training only two skinny matrices?", "lora.md"),
        ("How can I make generated text less predictable and more creative?", "sampling.txt"),
    ] {
        let json =
            stdout_json(&deltaw(&["rag", "query", "--index", &index, "--model", &s(&model), "--json", question]));
        let hits = json["hits"].as_array().unwrap();
        assert_eq!(hits.len(), 5, "{json}");
        assert!(hits.iter().any(|h| h["path"] == file), "{question}: {file} not in the top 5: {json}");
    }
    // A query with another model than the index's is refused.
    assert_fails_with(
        &deltaw(&["rag", "query", "--index", &index, "--model", &path("tiny_bert"), "anything"]),
        &["index.json", "all-MiniLM-L6-v2", "tiny_bert"],
    );
    std::fs::remove_dir_all(&root).ok();
}
