//! `deltaw sft`, `deltaw merge` and `deltaw inspect-data` end to end on the tiny GPT-2 and
//! the SFT fixture files: outputs written, nothing overwritten without a flag, resume, merge
//! into a loadable model folder, and clear errors.

mod support;

use deltaw_lora::Lora;
use deltaw_tensor::{Device, Tensor};
use deltaw_transformer::Gpt2;
use std::path::{Path, PathBuf};
use std::process::Output;
use support::{deltaw, fresh_path, ok, train_losses};

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(name).display().to_string()
}

#[track_caller]
fn fails_with(out: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("internal error"), "{stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "stderr lacks {needle:?}: {stderr}");
    }
}

fn sft(out: &Path, extra: &[&str]) -> Output {
    let out = out.display().to_string();
    let model = fixture("tiny_gpt2");
    let data = fixture("sft/alpaca.jsonl");
    let mut args =
        vec!["sft", "--model", &model, "--data", &data, "--max-steps", "4", "--batch-size", "2", "--out", &out];
    args.extend_from_slice(extra);
    deltaw(&args)
}

fn train_lines(out: &Path) -> usize {
    std::fs::read_to_string(out.join("metrics.jsonl")).unwrap().lines().filter(|l| l.contains("\"train\"")).count()
}

#[test]
fn lora_sft_writes_a_peft_adapter_and_merge_gives_a_model_with_the_same_logits() {
    let out = fresh_path("sft-lora");
    let stdout = ok(&sft(&out, &["--lr", "1e-2", "--save-every", "2", "--val-split", "0.25", "--seed", "3"]));
    assert!(stdout.contains("trainable params: "), "{stdout}");
    assert!(stdout.contains("validation: loss"), "{stdout}");
    assert_eq!(train_lines(&out), 4);
    for f in ["adapter/adapter_config.json", "adapter/adapter_model.safetensors", "run.json", "checkpoints/latest"] {
        assert!(out.join(f).exists(), "{f} missing");
    }

    // Nothing is overwritten without a flag; --resume of a finished run changes nothing.
    fails_with(&sft(&out, &[]), &["already has contents", "--resume", "--overwrite"]);
    ok(&sft(&out, &["--lr", "1e-2", "--save-every", "2", "--val-split", "0.25", "--seed", "3", "--resume"]));
    assert_eq!(train_lines(&out), 4);

    let merged = fresh_path("merged");
    let adapter = out.join("adapter").display().to_string();
    let stdout = ok(&deltaw(&[
        "merge",
        "--model",
        &fixture("tiny_gpt2"),
        "--adapter",
        &adapter,
        "--out",
        &merged.display().to_string(),
    ]));
    assert!(stdout.contains("max output change"), "{stdout}");
    // The merged folder is a plain model whose logits equal base + adapter.
    let mut base = Gpt2::from_dir(fixture("tiny_gpt2"), &Device::Cpu).unwrap();
    Lora::load_peft(&mut base, out.join("adapter"), &Device::Cpu).unwrap();
    let plain = Gpt2::from_dir(&merged, &Device::Cpu).unwrap();
    let ids = Tensor::from_vec(vec![1i32, 5, 9, 30, 2], (1, 5), &Device::Cpu).unwrap();
    let (a, b) = (base.forward(&ids, None).logits.value().to_vec(), plain.forward(&ids, None).logits.value().to_vec());
    let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    assert!(worst < 1e-5, "merged logits differ by {worst}");
    assert!(merged.join("tokenizer.json").exists());
    fails_with(
        &deltaw(&[
            "merge",
            "--model",
            &fixture("tiny_gpt2"),
            "--adapter",
            &adapter,
            "--out",
            &merged.display().to_string(),
        ]),
        &["already has contents"],
    );
}

#[test]
fn gradient_checkpointing_trains_to_the_same_losses() {
    // LoRA with the default dropout (0.05), so the checkpointed layers must replay its masks.
    let (plain, checkpointed) = (fresh_path("sft-plain"), fresh_path("sft-checkpointed"));
    ok(&sft(&plain, &["--lr", "1e-2", "--seed", "5"]));
    ok(&sft(&checkpointed, &["--lr", "1e-2", "--seed", "5", "--gradient-checkpointing"]));
    let losses = train_losses(&plain);
    assert_eq!(losses.len(), 4);
    assert_eq!(losses, train_losses(&checkpointed), "checkpointing changed the training");
}

#[test]
fn full_sft_writes_a_model_folder_and_resume_continues_an_interrupted_run() {
    let out = fresh_path("sft-full");
    // A time-boxed first run is not possible from the command line, so run 4 of 4 steps with
    // checkpoints, point `latest` back at step 2 and resume: the log keeps 4 train lines.
    ok(&sft(&out, &["--full", "--save-every", "2"]));
    assert!(Gpt2::from_dir(out.join("model"), &Device::Cpu).is_ok());
    std::fs::write(out.join("checkpoints/latest"), "step-000002").unwrap();
    let stdout = ok(&sft(&out, &["--full", "--save-every", "2", "--resume"]));
    assert!(stdout.contains("resuming from step 2"), "{stdout}");
    assert_eq!(train_lines(&out), 4, "the repeated steps replace their old log lines");
    // Resuming with other settings would not reproduce the run: refused, naming the setting.
    std::fs::write(out.join("checkpoints/latest"), "step-000002").unwrap();
    fails_with(&sft(&out, &["--full", "--resume", "--lr", "0.5"]), &["changed: lr"]);
    ok(&sft(&out, &["--full", "--overwrite"]));
}

#[test]
fn inspect_data_marks_trained_tokens() {
    let out = ok(&deltaw(&[
        "inspect-data",
        "--model",
        &fixture("tiny_gpt2"),
        "--data",
        &fixture("sft/sharegpt.json"),
        "-n",
        "1",
    ]));
    assert!(out.contains("--- sample 0 ---") && out.contains("[<eos>]"), "{out}");
    assert!(!out.contains("--- sample 1 ---"), "{out}");
}

#[test]
fn bad_data_and_bad_targets_are_clear_errors() {
    let bad = fixture("sft/bad.jsonl");
    let out = fresh_path("sft-bad");
    let o = out.display().to_string();
    let model = fixture("tiny_gpt2");
    fails_with(&deltaw(&["sft", "--model", &model, "--data", &bad, "--out", &o]), &["bad.jsonl", "line 2"]);
    let stdout = ok(&deltaw(&["inspect-data", "--model", &model, "--data", &bad, "--skip-bad-lines"]));
    assert!(stdout.contains("1 skipped"), "{stdout}");
    let o2 = fresh_path("sft-target").display().to_string();
    fails_with(&sft(Path::new(&o2), &["--target", "q_proj"]), &["q_proj", "transformer.h.0.attn.c_attn"]);
}

/// An EOS id outside the model's vocabulary, negative, or past i32 (which `as i32` used to
/// wrap to a small valid id) is an error naming `eos_token_id`, checked before any training.
#[test]
fn sft_refuses_an_eos_id_outside_the_model_vocabulary() {
    let model = fresh_path("sft-bad-eos-model");
    std::fs::create_dir_all(&model).unwrap();
    let src = PathBuf::from(fixture("tiny_gpt2"));
    for f in ["model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json"] {
        std::fs::copy(src.join(f), model.join(f)).unwrap();
    }
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    for (eos, expected) in [
        (serde_json::json!(500), "outside the model's vocab_size of 120"),
        (serde_json::json!(-1), "not a token id"),
        (serde_json::json!((1u64 << 32) + 5), "not a token id"),
    ] {
        let mut config = config.clone();
        config["eos_token_id"] = eos.clone();
        std::fs::write(model.join("config.json"), config.to_string()).unwrap();
        let out = fresh_path("sft-bad-eos-out");
        let args = [
            "sft",
            "--model",
            &model.display().to_string(),
            "--data",
            &fixture("sft/alpaca.jsonl"),
            "--max-steps",
            "1",
            "--out",
            &out.display().to_string(),
        ];
        fails_with(&deltaw(&args), &["eos_token_id", expected]);
        std::fs::remove_dir_all(&out).ok();
    }
    std::fs::remove_dir_all(&model).ok();
}

#[test]
fn merge_refuses_a_base_model_with_vocab_size_zero() {
    // The tiny GPT-2 with `vocab_size: 0`: merge used to reach `% vocab` in its probe ids.
    let model = support::scratch("merge-vocab0");
    let base = PathBuf::from(fixture("tiny_gpt2"));
    for entry in std::fs::read_dir(&base).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), model.join(entry.file_name())).unwrap();
    }
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(base.join("config.json")).unwrap()).unwrap();
    config["vocab_size"] = 0.into();
    std::fs::write(model.join("config.json"), config.to_string()).unwrap();
    let out = fresh_path("merge-vocab0-out");
    let result = deltaw(&[
        "merge",
        "--model",
        &model.display().to_string(),
        "--adapter",
        &fixture("lora_gpt2"),
        "--out",
        &out.display().to_string(),
    ]);
    fails_with(&result, &["vocab_size"]);
    assert!(!out.join("model.safetensors").exists(), "nothing is written for a refused merge");
    std::fs::remove_dir_all(model).ok();
    std::fs::remove_dir_all(out).ok();
}
