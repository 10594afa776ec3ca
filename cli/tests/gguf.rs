//! `deltaw info`, `generate` and `chat` on GGUF files: the tiny models of
//! tests/fixtures/gguf_models (written in llama.cpp's layout, with transformers' greedy tokens
//! in expected.json).

mod support;

use deltaw_tensor::Device;
use deltaw_transformer::gguf::GgufModel;
use deltaw_transformer::{ChatTemplate, GenerateOptions, Message, WeightDtype};
use support::{assert_fails_with, deltaw, fixture, scratch, stdout_json};

fn gguf(case: &str) -> String {
    fixture("gguf_models").join(format!("{case}.gguf")).display().to_string()
}

fn expected(case: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(fixture("gguf_models/expected.json")).unwrap();
    serde_json::from_str::<serde_json::Value>(&text).unwrap()[case].clone()
}

#[test]
fn info_reads_the_header_of_a_gguf_file() {
    let json = stdout_json(&deltaw(&["info", "--model", &gguf("llama_mistral_q8_0"), "--json"]));
    assert_eq!(json["format"], "gguf");
    assert_eq!(json["architecture"], "llama");
    assert_eq!(json["config"]["num_key_value_heads"], 2);
    assert_eq!(json["config"]["tie_word_embeddings"], false);
    assert_eq!(json["tokenizer_model"], "llama");
    assert_eq!(json["chat_template"], true);
    // Every 2-D weight is Q8_0, the norms f32: 2 layers × 7 matrices + embedding + head.
    assert_eq!(json["dtypes"]["q8_0"], 16, "{json}");
    assert_eq!(json["dtypes"]["F32"], 5, "{json}");
    let text = deltaw(&["info", "--model", &gguf("gpt2_llama3")]);
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.starts_with("model type   gpt2 (GGUF v3"), "{text}");
    assert!(text.contains("n_embd 32") && text.contains("gpt2 (tokenizer.ggml.*)"), "{text}");
}

#[test]
fn generate_on_a_gguf_file_gives_transformers_greedy_tokens() {
    for case in ["llama_mistral_q8_0", "qwen3_qwen2"] {
        let want = expected(case);
        let prompt = want["prompt"].as_str().unwrap();
        let json = stdout_json(&deltaw(&[
            "generate",
            "--model",
            &gguf(case),
            "--prompt",
            prompt,
            "--max-new-tokens",
            "12",
            "--json",
        ]));
        assert_eq!(json["prompt_ids"], want["prompt_ids"], "{case}");
        assert_eq!(json["new_ids"], want["new_tokens"], "{case}");
    }
}

#[test]
fn generate_chat_uses_the_template_in_the_metadata() {
    let path = gguf("llama_mistral");
    let json = stdout_json(&deltaw(&[
        "generate",
        "--model",
        &path,
        "--chat",
        "--prompt",
        "hi",
        "--max-new-tokens",
        "5",
        "--json",
    ]));
    // The library's answer through the same file's template: [INST] hi[/INST] with the BOS.
    let lm = GgufModel::load(&path, &Device::Cpu, WeightDtype::Stored).unwrap();
    let config = lm.tokenizer.config();
    let template = ChatTemplate::new("t", config.chat_template.as_deref().unwrap(), config).unwrap();
    let rendered = template.render(&[Message::new("user", "hi")], true, None).unwrap();
    assert_eq!(rendered, "<s>[INST] hi[/INST]");
    let ids = lm.tokenizer.encode_plain(&rendered).unwrap();
    let options = GenerateOptions { eos_token_ids: lm.generation.eos_token_ids.clone(), ..GenerateOptions::greedy(5) };
    let new = lm.model.try_generate(&ids, &options).unwrap();
    assert_eq!(json["prompt_ids"], serde_json::json!(ids));
    assert_eq!(json["new_ids"], serde_json::json!(new));
}

#[test]
fn a_file_that_is_not_gguf_is_refused_by_name() {
    let dir = scratch("gguf-not");
    let file = dir.join("notes.txt");
    std::fs::write(&file, "hello").unwrap();
    let out = deltaw(&["generate", "--model", &file.display().to_string(), "--prompt", "x"]);
    assert_fails_with(&out, &["notes.txt", "not a GGUF model"]);
    let bad = dir.join("broken.gguf");
    std::fs::write(&bad, b"GGUF\x03\x00\x00\x00").unwrap();
    assert_fails_with(&deltaw(&["info", "--model", &bad.display().to_string()]), &["broken.gguf"]);
    std::fs::remove_dir_all(&dir).unwrap();
}
