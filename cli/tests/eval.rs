//! `deltaw eval` and `sft --eval` end to end on the tiny GPT-2 and the tiny Llama 3 fixtures:
//! base against base + adapter, two folders side by side, the report files and what they
//! hold, reproducible sampling, Chinese data, and errors that name the file and line.

mod support;

use deltaw_train::evaluation::{score_answers, Segmentation};
use serde_json::Value;
use std::path::Path;
use support::{assert_fails_with, deltaw, fresh_path, llama_folder, ok, path, s};

fn report(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap()
}

/// The report's scores are those of its own answers: recomputed here from the JSON.
#[track_caller]
fn check_scores_match_answers(report: &Value) {
    let rows = report["examples"].as_array().unwrap();
    let refs: Vec<&str> = rows.iter().map(|r| r["reference"].as_str().unwrap()).collect();
    for (m, model) in report["models"].as_array().unwrap().iter().enumerate() {
        let answers: Vec<&str> = rows.iter().map(|r| r["predictions"][m].as_str().unwrap()).collect();
        let scores = score_answers(&answers, &refs, Segmentation::Auto);
        let metrics = &model["metrics"];
        assert_eq!(metrics["exact_match"].as_f64().unwrap(), scores.exact_match);
        assert_eq!(metrics["bleu"]["score"].as_f64().unwrap(), scores.bleu.score);
        assert_eq!(metrics["rouge_l"].as_f64().unwrap(), scores.rouge_l);
        let (loss, ppl) = (metrics["loss"].as_f64().unwrap(), metrics["perplexity"].as_f64().unwrap());
        assert!(loss > 0.0 && (ppl - loss.exp()).abs() < 1e-9 * ppl, "loss {loss}, perplexity {ppl}");
    }
}

#[test]
fn adapter_is_compared_with_its_base_and_the_report_is_written() {
    let out = fresh_path("eval-gpt2");
    let args = [
        "eval",
        "--model",
        &path("tiny_gpt2"),
        "--adapter",
        &path("lora_gpt2"),
        "--data",
        &path("sft/alpaca.jsonl"),
        "--max-new-tokens",
        "6",
        "--out",
        &s(&out),
    ];
    let stdout = ok(&deltaw(&args));
    for needle in
        ["base", "tuned", "perplexity", "exact match", "BLEU-4", "ROUGE-1", "ROUGE-2", "ROUGE-L", "4 examples"]
    {
        assert!(stdout.contains(needle), "stdout lacks {needle:?}: {stdout}");
    }
    let first = report(&out);
    assert_eq!(first["models"][0]["name"], "base");
    assert_eq!(first["models"][1]["name"], "tuned");
    assert_eq!(first["models"][1]["adapter"], path("lora_gpt2"));
    assert_eq!(first["examples_count"], 4);
    assert_eq!(first["examples"][0]["reference"], "mat.");
    assert_eq!(first["segmentation"], "words");
    let (base, tuned) = (&first["models"][0]["metrics"], &first["models"][1]["metrics"]);
    assert_ne!(base["loss"], tuned["loss"], "the adapter changes the model");
    assert_eq!(base["output_tokens"], tuned["output_tokens"]);
    check_scores_match_answers(&first);
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("| perplexity |") && md.contains("| base | tuned |"), "{md}");

    // Reports are never replaced silently; greedy decoding gives the same report again.
    assert_fails_with(&deltaw(&args), &["report.json", "already exists", "--overwrite"]);
    ok(&deltaw(&[&args[..], &["--overwrite"]].concat()));
    assert_eq!(report(&out)["examples"], first["examples"]);
    std::fs::remove_dir_all(out).ok();
}

#[test]
fn two_folders_side_by_side_through_their_own_templates() {
    let llama = llama_folder("eval-llama");
    let out = fresh_path("eval-compare");
    let args = [
        "eval",
        "--model",
        &path("tiny_gpt2"),
        "--compare",
        &s(&llama),
        "--data",
        &path("sft/sharegpt.json"),
        "--max-new-tokens",
        "4",
        "--out",
        &s(&out),
    ];
    let stdout = ok(&deltaw(&args));
    assert!(stdout.contains("tiny_gpt2") && stdout.contains(llama.file_name().unwrap().to_str().unwrap()), "{stdout}");
    let r = report(&out);
    assert_eq!(r["models"].as_array().unwrap().len(), 2);
    // The last assistant turn of each conversation is the reference, whatever the template.
    assert_eq!(r["examples"][0]["reference"], "Word.");
    assert_eq!(r["examples"][2]["reference"], "A mat.");
    check_scores_match_answers(&r);
    std::fs::remove_dir_all(out).ok();
    std::fs::remove_dir_all(llama).ok();
}

#[test]
fn a_llama_with_its_adapter_and_seeded_sampling_is_reproducible() {
    let llama = llama_folder("eval-llama-lora");
    let run = |out: &Path| {
        let args = [
            "eval",
            "--model",
            &s(&llama),
            "--adapter",
            &path("lora_llama"),
            "--data",
            &path("sft/sharegpt.json"),
            "--temperature",
            "1.5",
            "--seed",
            "7",
            "--max-new-tokens",
            "5",
            "--out",
            &s(out),
        ];
        ok(&deltaw(&args));
        report(out)
    };
    let (a, b) = (fresh_path("eval-sample-a"), fresh_path("eval-sample-b"));
    let (ra, rb) = (run(&a), run(&b));
    assert_eq!(ra["examples"], rb["examples"], "the same seed gives the same answers");
    assert_eq!(ra["decoding"]["greedy"], false);
    assert_ne!(ra["models"][0]["metrics"]["loss"], ra["models"][1]["metrics"]["loss"]);
    check_scores_match_answers(&ra);
    for dir in [a, b, llama] {
        std::fs::remove_dir_all(dir).ok();
    }
}

#[test]
fn chinese_references_are_scored_by_characters() {
    let dir = fresh_path("eval-zh");
    std::fs::create_dir_all(&dir).unwrap();
    let data = dir.join("zh.jsonl");
    let lines = [
        r#"{"instruction": "北京是哪个国家的首都？", "output": "中国的首都。"}"#,
        r#"{"instruction": "翻译：cat", "output": "猫"}"#,
    ];
    std::fs::write(&data, lines.join("\n")).unwrap();
    let out = dir.join("report");
    let args = ["eval", "--model", &path("tiny_gpt2"), "--data", &s(&data), "--max-new-tokens", "4", "--out", &s(&out)];
    let stdout = ok(&deltaw(&args));
    assert!(stdout.contains("Chinese characters"), "{stdout}");
    let r = report(&out);
    assert_eq!(r["segmentation"], "chinese");
    check_scores_match_answers(&r);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn bad_inputs_are_errors_naming_what_to_fix() {
    let model = path("tiny_gpt2");
    let bad = path("sft/bad.jsonl");
    let out = deltaw(&["eval", "--model", &model, "--data", &bad]);
    assert_fails_with(&out, &["bad.jsonl", "line 2", "invalid JSON"]);
    let missing = s(&fresh_path("no-such-data.jsonl"));
    assert_fails_with(&deltaw(&["eval", "--model", &model, "--data", &missing]), &["no-such-data.jsonl"]);
    let no_model = s(&fresh_path("no-such-model"));
    assert_fails_with(&deltaw(&["eval", "--model", &no_model, "--data", &bad]), &["does not exist"]);
    let no_adapter = s(&fresh_path("no-such-adapter"));
    let data = path("sft/alpaca.jsonl");
    let out = deltaw(&["eval", "--model", &model, "--adapter", &no_adapter, "--data", &data]);
    assert_fails_with(&out, &["adapter folder", "does not exist"]);
    let both = deltaw(&["eval", "--model", &model, "--adapter", &model, "--compare", &model, "--data", &data]);
    assert!(!both.status.success() && String::from_utf8_lossy(&both.stderr).contains("cannot be used with"));
    // --skip-bad-lines evaluates what can be read.
    let stdout = ok(&deltaw(&["eval", "--model", &model, "--data", &bad, "--skip-bad-lines", "--max-new-tokens", "2"]));
    assert!(stdout.contains("1 skipped") && stdout.contains("2 examples"), "{stdout}");
}

#[test]
fn sft_eval_compares_base_and_tuned_on_the_validation_split() {
    let out = fresh_path("sft-eval");
    let base = [
        "sft",
        "--model",
        &path("tiny_gpt2"),
        "--data",
        &path("sft/alpaca.jsonl"),
        "--max-steps",
        "2",
        "--batch-size",
        "2",
        "--lr",
        "1e-2",
        "--out",
        &s(&out),
        "--eval",
        "--eval-max-new-tokens",
        "4",
    ];
    assert_fails_with(&deltaw(&base), &["--eval", "--val-split"]);
    let stdout = ok(&deltaw(&[&base[..], &["--val-split", "0.5", "--overwrite"]].concat()));
    assert!(stdout.contains("ROUGE-L") && stdout.contains("tuned"), "{stdout}");
    let r = report(&out.join("eval"));
    assert_eq!(r["examples_count"], 2, "half of the 4 records are held out");
    assert_eq!(r["models"][0]["name"], "base");
    assert_ne!(r["models"][0]["metrics"]["loss"], r["models"][1]["metrics"]["loss"], "training moved the loss");
    check_scores_match_answers(&r);
    std::fs::remove_dir_all(out).ok();
}
