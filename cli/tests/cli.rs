//! The `deltaw` binary end to end on the committed tiny models: output shapes, agreement with
//! the library, and every error path exiting 1 with one `error:` line and no panic.

mod support;

use deltaw_tensor::Device;
use deltaw_transformer::{CausalLm, GenerateOptions, Gpt2, Tokenizer};
use support::{
    assert_fails_with, deltaw, deltaw_with_env, fixture, fresh_path, gpu_available, path, stdout_json, train_losses,
};

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
    let options = GenerateOptions { eos_token_ids: vec![0], ..GenerateOptions::greedy(32) }; // eos of config.json
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
    std::fs::write(dir.join("config.json"), r#"{"model_type": "mamba", "vocab_size": 10}"#).unwrap();
    let out = deltaw(&["info", "--model", &dir.display().to_string()]);
    std::fs::remove_dir_all(&dir).ok();
    assert_fails_with(&out, &["config.json", "\"mamba\"", "llama, qwen2, qwen3, mistral"]);
}

/// `info` reads headers through the loader's validated parser: an element count that
/// overflows or offsets that leave a gap are errors naming the file, not a panic.
#[test]
fn info_rejects_crafted_safetensors_headers() {
    let dir = std::env::temp_dir().join(format!("deltaw-cli-crafted-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(fixture("tiny_gpt2/config.json"), dir.join("config.json")).unwrap();
    let huge = 1u64 << 32;
    let headers = [
        (format!(r#"{{"w":{{"dtype":"F32","shape":[{huge},{huge}],"data_offsets":[0,0]}}}}"#), "overflows"),
        (r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#.to_string(), "not contiguous"),
    ];
    for (header, expected) in headers {
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(&[0u8; 8]);
        std::fs::write(dir.join("model.safetensors"), bytes).unwrap();
        let out = deltaw(&["info", "--model", &dir.display().to_string()]);
        assert_fails_with(&out, &["model.safetensors", expected]);
    }
    std::fs::remove_dir_all(&dir).ok();
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
fn device_gpu_embeds_and_generates_as_the_cpu_does() {
    if !gpu_available() {
        return;
    }
    let embed = |device: &str| {
        let out =
            deltaw(&["embed", "--model", &path("tiny_bert"), "--json", "--device", device, "the cat sat", "a dog"]);
        let rows = stdout_json(&out);
        let rows = rows.as_array().expect("an array of vectors").clone();
        rows.iter().flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap())).collect::<Vec<f64>>()
    };
    let (cpu, gpu) = (embed("cpu"), embed("gpu"));
    assert_eq!(cpu.len(), gpu.len());
    // Unit vectors through two f32 layers: the devices' rounding differs by ~1e-6.
    let worst = cpu.iter().zip(&gpu).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(worst < 1e-4, "embed --device gpu vs cpu: max abs diff {worst}");

    let generate = |device: &str| {
        let args = ["generate", "--model", &path("tiny_gpt2"), "--prompt", "hello world", "--greedy", "--json"];
        stdout_json(&deltaw(&[&args[..], &["--device", device]].concat()))
    };
    let (cpu, gpu) = (generate("cpu"), generate("gpu"));
    assert_eq!(gpu["new_ids"], cpu["new_ids"], "greedy ids on the GPU");
    assert_eq!(gpu["text"], cpu["text"]);
}

#[test]
fn device_gpu_without_a_matching_adapter_is_a_clear_error() {
    let env = [("DELTAW_GPU_ADAPTER", "no-such-adapter-deltaw")];
    let out = deltaw_with_env(&["--device", "gpu", "embed", "--model", &path("tiny_bert"), "x"], &env);
    assert_fails_with(&out, &["--device gpu: ", "--device cpu"]);
    #[cfg(feature = "gpu")]
    assert_fails_with(&out, &["no GPU adapter found", "backends tried", "no-such-adapter-deltaw"]);
    let out = deltaw_with_env(&["generate", "--model", &path("tiny_gpt2"), "--prompt", "x", "--device", "gpu"], &env);
    assert_fails_with(&out, &["--device gpu: "]);
    // Commands that only read files never open the device.
    let out = deltaw_with_env(&["info", "--model", &path("tiny_gpt2"), "--device", "gpu"], &env);
    assert!(out.status.success(), "info --device gpu: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn device_gpu_fine_tunes_and_merges_as_the_cpu_does() {
    if !gpu_available() {
        return;
    }
    let (model, data) = (path("tiny_gpt2"), path("sft/alpaca.jsonl"));
    let mut merged_weights = Vec::new();
    for device in ["cpu", "gpu"] {
        let (run, merged) = (fresh_path(&format!("gpu-sft-{device}")), fresh_path(&format!("gpu-merged-{device}")));
        let run_s = run.display().to_string();
        let sft = ["sft", "--model", &model, "--data", &data, "--max-steps", "4", "--batch-size", "2", "--lr", "1e-2"];
        let out = deltaw(&[&sft[..], &["--seed", "3", "--overwrite", "--out", &run_s, "--device", device]].concat());
        assert!(out.status.success(), "sft --device {device}: {}", String::from_utf8_lossy(&out.stderr));
        let adapter = run.join("adapter").display().to_string();
        let merge_args = ["merge", "--model", &model, "--adapter", &adapter, "--overwrite", "--device", device];
        let out = deltaw(&[&merge_args[..], &["--out", &merged.display().to_string()]].concat());
        assert!(out.status.success(), "merge --device {device}: {}", String::from_utf8_lossy(&out.stderr));
        merged_weights.push((
            train_losses(&run),
            deltaw_tensor::safetensors::load(merged.join("model.safetensors"), &Device::Cpu).unwrap(),
        ));
        std::fs::remove_dir_all(run).ok();
        std::fs::remove_dir_all(merged).ok();
    }
    let ((cpu_losses, cpu_weights), (gpu_losses, gpu_weights)) = (&merged_weights[0], &merged_weights[1]);
    assert_eq!(cpu_losses.len(), 4);
    // Four f32 AdamW steps apart from rounding: the devices' losses agree to ~1e-6 relative.
    for (step, (c, g)) in cpu_losses.iter().zip(gpu_losses).enumerate() {
        assert!((c - g).abs() <= 1e-4 * c.abs(), "step {}: loss {g} on the GPU, {c} on the CPU", step + 1);
    }
    for (name, c) in cpu_weights {
        let (c, g) = (c.to_vec(), gpu_weights[name].to_vec());
        let worst = c.iter().zip(&g).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(worst <= 1e-5, "merged {name}: max abs diff {worst} between the GPU and CPU runs");
    }
}
