//! The commands on a Llama-family folder: the tiny Llama 3 of `fixtures/llama/llama3_gqa4`
//! with the Llama 3-style tokenizer and chat template of `fixtures/chat/llama3`. `info`,
//! `inspect-data --json` (ShareGPT data through the model's own template, loss on the
//! assistant turns only), LoRA `sft` on the q/k/v/o and MLP projections, `merge` into a folder
//! that loads again, and `generate --chat`, on the CPU and, where there is an adapter, the GPU.

mod support;

use support::{deltaw, fresh_path, gpu_available, llama_folder, ok, path, s, stdout_json};

#[test]
fn info_and_inspect_data_read_the_llama_folder_and_its_template() {
    let model = llama_folder("llama-info");
    let info = stdout_json(&deltaw(&["info", "--model", &s(&model), "--json"]));
    assert_eq!(info["model_type"], "llama", "{info}");
    let text = ok(&deltaw(&["info", "--model", &s(&model)]));
    assert!(text.contains("heads 8 (kv 2"), "{text}");

    let data = path("sft/sharegpt.json");
    let out = ok(&deltaw(&["inspect-data", "--model", &s(&model), "--data", &data, "--json", "-n", "1"]));
    let sample: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    let text = sample["text"].as_str().unwrap();
    assert!(text.starts_with("<|begin_of_text|>"), "the template writes the BOS once: {text}");
    assert_eq!(text.matches("<|begin_of_text|>").count(), 1, "{text}");
    assert!(text.contains("<|start_header_id|>assistant<|end_header_id|>"), "{text}");
    let (ids, labels) = (sample["input_ids"].as_array().unwrap(), sample["labels"].as_array().unwrap());
    assert_eq!(ids.len(), labels.len());
    let trained = labels.iter().filter(|l| l.as_i64() != Some(-100)).count();
    assert!(trained > 0 && trained < ids.len() / 2, "only the assistant turns train: {trained} of {}", ids.len());
    std::fs::remove_dir_all(model).ok();
}

#[test]
fn lora_sft_merge_and_chat_run_on_a_llama() {
    let model = llama_folder("llama-sft");
    let out = fresh_path("llama-sft-out");
    let data = path("sft/sharegpt.json");
    let args = ["sft", "--model", &s(&model), "--data", &data, "--max-steps", "2", "--batch-size", "2"];
    let stdout = ok(&deltaw(&[&args[..], &["--target", "all-linear", "--out", &s(&out)]].concat()));
    assert!(stdout.contains("trainable params: "), "{stdout}");
    let adapter: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("adapter/adapter_config.json")).unwrap()).unwrap();
    assert_eq!(adapter["task_type"], "CAUSAL_LM", "{adapter}");

    let merged = fresh_path("llama-merged");
    ok(&deltaw(&["merge", "--model", &s(&model), "--adapter", &s(&out.join("adapter")), "--out", &s(&merged)]));
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(model.join(f), merged.join(f)).ok();
    }
    let chat = ["generate", "--model", &s(&merged), "--chat", "--prompt", "Hello", "--max-new-tokens", "4"];
    let cpu = ok(&deltaw(&chat));
    if gpu_available() {
        assert_eq!(ok(&deltaw(&[&chat[..], &["--device", "gpu"]].concat())), cpu, "the GPU answers as the CPU");
    }
    for dir in [model, out, merged] {
        std::fs::remove_dir_all(dir).ok();
    }
}
