//! The `deltaw` binary end to end on the committed tiny models: output shapes, agreement with
//! the library, and every error path exiting 1 with one `error:` line and no panic.

use deltaw_tensor::Device;
use deltaw_transformer::{GenerateOptions, Gpt2, Tokenizer};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(name)
}

fn deltaw(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_deltaw"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running deltaw {args:?}: {e}"))
}

fn stdout_json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {:?}", out.stdout))
}

/// Exit code 1, stderr starting `error: ` and containing every needle, and no panic.
#[track_caller]
fn assert_fails_with(out: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("internal error"), "{stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "stderr lacks {needle:?}: {stderr}");
    }
}

fn path(name: &str) -> String {
    fixture(name).display().to_string()
}

#[test]
fn embed_json_gives_one_unit_vector_per_text() {
    let out = deltaw(&["embed", "--model", &path("tiny_bert"), "--json", "the cat sat", "a dog", "cat"]);
    let vectors = stdout_json(&out);
    let rows = vectors.as_array().expect("an array of vectors");
    assert_eq!(rows.len(), 3);
    for row in rows {
        let v: Vec<f64> = row.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        assert_eq!(v.len(), 32, "hidden size of tiny_bert");
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "mean pooling + L2 by default: norm {norm}");
    }
}

#[test]
fn embed_reads_a_file_skipping_empty_lines_and_prints_a_line_per_text() {
    let file = std::env::temp_dir().join(format!("deltaw-cli-texts-{}.txt", std::process::id()));
    std::fs::write(&file, "the cat sat\n\n  \na dog\r\n").unwrap();
    let out = deltaw(&["embed", "--model", &path("tiny_bert"), "--file", &file.display().to_string()]);
    std::fs::remove_file(&file).ok();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("[32] ") && lines[0].ends_with("\tthe cat sat"), "{text}");
    assert!(lines[1].ends_with("\ta dog"), "{text}");
}

#[test]
fn generate_greedy_json_gives_the_library_s_new_ids() {
    let dir = fixture("tiny_gpt2");
    let prompt = "hello world";
    let out = deltaw(&["generate", "--model", &path("tiny_gpt2"), "--prompt", prompt, "--greedy", "--json"]);
    let json = stdout_json(&out);
    let ids = |key: &str| -> Vec<i32> {
        json[key]
            .as_array()
            .unwrap_or_else(|| panic!("{key}: {json}"))
            .iter()
            .map(|v| v.as_i64().unwrap() as i32)
            .collect()
    };
    let model = Gpt2::from_dir(&dir, &Device::Cpu).unwrap();
    let tokenizer = Tokenizer::from_dir(&dir).unwrap();
    let prompt_ids = tokenizer.encode(prompt).unwrap();
    assert_eq!(ids("prompt_ids"), prompt_ids);
    let options = GenerateOptions { eos_token_id: Some(0), ..GenerateOptions::greedy(32) }; // eos of config.json
    let expected = model.try_generate(&prompt_ids, &options).unwrap();
    assert_eq!(ids("new_ids"), expected);
    let text = tokenizer.decode(&[prompt_ids, expected].concat()).unwrap();
    assert_eq!(json["text"], text.as_str());
}

#[test]
fn generate_sampling_is_reproducible_by_seed() {
    let args = ["generate", "--model", &path("tiny_gpt2"), "--prompt", "the", "--temperature", "0.9", "--top-p", "0.9"];
    let run = |seed: &str| deltaw(&[&args[..], &["--seed", seed, "--max-new-tokens", "8"]].concat());
    let (a, b) = (run("5"), run("5"));
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    assert_eq!(a.stdout, b.stdout);
    assert!(String::from_utf8_lossy(&a.stdout).starts_with("the"), "plain mode prints the prompt first");
}

#[test]
fn info_reports_type_parameters_and_dtypes() {
    let json = stdout_json(&deltaw(&["info", "--model", &path("tiny_gpt2"), "--json"]));
    assert_eq!(json["model_type"], "gpt2");
    assert_eq!(json["config"]["n_layer"], 2);
    // wte 120·32 + wpe 64·32 + 2 blocks of (2 norms, c_attn, attn c_proj, c_fc, mlp c_proj) + ln_f
    let block = 2 * 64 + (32 * 96 + 96) + (32 * 32 + 32) + (32 * 128 + 128) + (128 * 32 + 32);
    assert_eq!(json["parameters"], 120 * 32 + 64 * 32 + 2 * block + 64);
    assert_eq!(json["dtypes"]["F32"], json["tensors"]);
    let bytes = std::fs::metadata(fixture("tiny_gpt2/model.safetensors")).unwrap().len();
    assert_eq!(json["file_bytes"], bytes);
    let plain = deltaw(&["info", "--model", &path("tiny_bert")]);
    let text = String::from_utf8(plain.stdout).unwrap();
    assert!(text.contains("model type   bert") && text.contains("hidden_size 32"), "{text}");
}

#[test]
fn a_missing_folder_is_an_error_naming_it() {
    let missing = "/no/such/model";
    let commands: [&[&str]; 3] = [
        &["embed", "--model", missing, "some text"],
        &["generate", "--model", missing, "--prompt", "x"],
        &["info", "--model", missing],
    ];
    for args in commands {
        assert_fails_with(&deltaw(args), &[missing, "does not exist"]);
    }
}

#[test]
fn an_unknown_model_type_names_the_file_and_the_value() {
    let dir = std::env::temp_dir().join(format!("deltaw-cli-llama-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), r#"{"model_type": "llama", "vocab_size": 10}"#).unwrap();
    let out = deltaw(&["info", "--model", &dir.display().to_string()]);
    std::fs::remove_dir_all(&dir).ok();
    assert_fails_with(&out, &["config.json", "\"llama\""]);
}

#[test]
fn a_prompt_over_the_context_names_both_numbers_and_the_limit() {
    let out = deltaw(&["generate", "--model", &path("tiny_gpt2"), "--prompt", "hello world", "--max-new-tokens", "60"]);
    assert_fails_with(&out, &["7 prompt tokens", "60 new tokens", "64", "n_positions"]);
}

#[test]
fn the_wrong_model_kind_and_bad_sampling_flags_are_errors() {
    let out = deltaw(&["generate", "--model", &path("tiny_bert"), "--prompt", "hi"]);
    assert_fails_with(&out, &["config.json", "\"bert\""]);
    let out = deltaw(&["generate", "--model", &path("tiny_gpt2"), "--prompt", "hi", "--top-p", "1.5"]);
    assert_fails_with(&out, &["--top-p"]);
    let out = deltaw(&["embed", "--model", &path("tiny_bert")]); // stdin is empty
    assert_fails_with(&out, &["no text to embed"]);
}

#[test]
fn device_gpu_is_a_clear_error() {
    let out = deltaw(&["--device", "gpu", "embed", "--model", &path("tiny_bert"), "x"]);
    assert_fails_with(&out, &["--device gpu", "not available"]);
    let out = deltaw(&["generate", "--model", &path("tiny_gpt2"), "--prompt", "x", "--device", "gpu"]);
    assert_fails_with(&out, &["GPU device is not available for models in this build"]);
}
