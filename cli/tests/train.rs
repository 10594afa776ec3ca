//! `deltaw train` end to end: pretraining a tiny byte-level GPT-2 from scratch on a text file
//! lowers its loss, writes the metrics, the loss curve and a loadable model folder, resumes,
//! takes a tokenizer.json, and refuses bad input with clear errors.

mod support;

use deltaw_tensor::Device;
use deltaw_transformer::Gpt2;
use std::path::{Path, PathBuf};
use std::process::Output;
use support::{deltaw, ok, scratch, train_losses};

#[track_caller]
fn fails_with(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("internal error"), "{stderr}");
    assert!(stderr.contains(needle), "stderr lacks {needle:?}: {stderr}");
}

/// A small text with plenty of repetition, so 60 steps of a tiny model learn something.
fn corpus(dir: &Path) -> String {
    let text: String = (0..200).map(|i| format!("the cat sat on mat number {}.\n", i % 7)).collect();
    let path = dir.join("corpus.txt");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn train(data: &str, out: &Path, steps: &str, extra: &[&str]) -> Output {
    let out = out.display().to_string();
    let mut args = vec![
        "train",
        "--data",
        data,
        "--out",
        &out,
        "--block-size",
        "32",
        "--n-layer",
        "1",
        "--n-head",
        "2",
        "--n-embd",
        "32",
        "--batch-size",
        "8",
        "--max-steps",
        steps,
        "--lr",
        "3e-3",
        "--eval-every",
        "30",
    ];
    args.extend_from_slice(extra);
    deltaw(&args)
}

#[test]
fn pretraining_on_a_text_file_learns_and_writes_a_model_folder() {
    let dir = scratch("train-learn");
    let (data, out) = (corpus(&dir), dir.join("run"));
    let stdout = ok(&train(&data, &out, "60", &[]));
    assert!(stdout.contains("1 files") && stdout.contains("parameters"), "{stdout}");
    assert!(stdout.contains("validation: loss"), "{stdout}");
    let losses = train_losses(&out);
    assert_eq!(losses.len(), 60);
    // Bytes start near ln(257) ≈ 5.5; a repetitive text is learnt well below half of that.
    let (first, last) = (losses[0], losses[losses.len() - 5..].iter().sum::<f64>() / 5.0);
    assert!(first > 5.0 && last < 2.5, "loss {first} → {last}");
    assert!(out.join("loss.png").exists());
    let model = Gpt2::from_dir(out.join("model"), &Device::Cpu).unwrap();
    assert_eq!(model.config.vocab_size, 257);
    assert!(std::fs::read_to_string(out.join("model/README.md")).unwrap().contains("id 256 is end-of-sequence"));
    // The byte-level tokenizer.json makes the folder runnable: the prompt's ids are its bytes.
    let model_dir = out.join("model").display().to_string();
    let args = ["generate", "--model", &model_dir, "--prompt", "the é", "--max-new-tokens", "4", "--json"];
    let generated = support::stdout_json(&deltaw(&args));
    assert_eq!(generated["prompt_ids"], serde_json::json!([116, 104, 101, 32, 0xc3, 0xa9]), "{generated}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_stopped_run_resumes_to_the_same_losses() {
    let dir = scratch("train-resume");
    let data = corpus(&dir);
    let (whole, parts) = (dir.join("whole"), dir.join("parts"));
    ok(&train(&data, &whole, "12", &["--save-every", "6"]));
    let first = ok(&train(&data, &parts, "12", &["--save-every", "6", "--stop-after", "6"]));
    assert!(first.contains("stopped early") && !parts.join("model").exists(), "{first}");
    // A second run in the same folder must ask for --resume or --overwrite.
    fails_with(&train(&data, &parts, "12", &[]), "--overwrite");
    let second = ok(&train(&data, &parts, "12", &["--save-every", "6", "--resume"]));
    assert!(second.contains("resuming from step 6"), "{second}");
    assert_eq!(train_losses(&whole), train_losses(&parts), "a resumed run repeats the uninterrupted one exactly");
    assert!(parts.join("model").exists());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_tokenizer_json_sets_the_vocabulary_and_is_copied() {
    let dir = scratch("train-tokenizer");
    let (data, out) = (corpus(&dir), dir.join("run"));
    let tokenizer = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tiny_gpt2");
    ok(&train(&data, &out, "4", &["--tokenizer", &tokenizer.display().to_string()]));
    assert!(out.join("model/tokenizer.json").exists());
    let model = Gpt2::from_dir(out.join("model"), &Device::Cpu).unwrap();
    let tiny = Gpt2::from_dir(&tokenizer, &Device::Cpu).unwrap();
    assert_eq!(model.config.vocab_size, tiny.config.vocab_size);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn missing_or_empty_data_and_bad_sizes_are_clear_errors() {
    let dir = scratch("train-errors");
    let out = dir.join("run");
    fails_with(&train("/no/such/corpus.txt", &out, "4", &[]), "/no/such/corpus.txt");
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    fails_with(&train(&empty.display().to_string(), &out, "4", &[]), "no .txt, .md, .text file");
    std::fs::write(empty.join("blank.txt"), "").unwrap();
    fails_with(&train(&empty.display().to_string(), &out, "4", &[]), "no text to train on");
    let data = corpus(&dir);
    let out = out.display().to_string();
    let odd_heads = ["train", "--data", &data, "--out", &out, "--n-embd", "32", "--n-head", "3"];
    fails_with(&deltaw(&odd_heads), "not divisible by n_head");
    std::fs::remove_dir_all(&dir).ok();
}
