//! `deltaw data clean` end to end: outputs present and complete, errors with file and line,
//! `--skip-bad`, identical results for one and two threads, token lengths with `--model`.

mod support;

use std::path::{Path, PathBuf};
use support::{assert_fails_with, deltaw, deltaw_with_env, path, scratch};

fn write(dir: &Path, name: &str, text: &str) -> String {
    let file = dir.join(name);
    std::fs::write(&file, text).unwrap();
    file.display().to_string()
}

fn report(out: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap()
}

fn lines(file: PathBuf) -> Vec<String> {
    std::fs::read_to_string(file).unwrap().lines().map(String::from).collect()
}

/// Alpaca record `i` of a corpus from a small vocabulary: every 7th repeats the record 3
/// before it exactly, every 5th is the one 2 before with one word changed, every 11th carries
/// an e-mail address.
fn record(i: usize) -> String {
    let words = ["river", "stone", "light", "paper", "garden", "music", "window", "cloud", "bread", "train", "forest"];
    match i {
        i if i % 7 == 6 => record(i - 3),
        i if i % 5 == 4 => record(i - 2).replacen("river", "ocean", 1),
        i => {
            let mut output: Vec<&str> = (0..24).map(|k| words[(i * 7 + k * k * 3 + i / 3 * k) % words.len()]).collect();
            let mail = format!("write to user{i}@example.com");
            if i % 11 == 0 {
                output.push(&mail);
            }
            format!("{{\"instruction\": \"Describe item {i}\", \"output\": \"{}\"}}", output.join(" "))
        }
    }
}

fn corpus(n: usize) -> String {
    (0..n).map(|i| record(i) + "\n").collect()
}

#[test]
fn clean_writes_every_output_and_refuses_to_overwrite_without_the_flag() {
    let dir = scratch("clean-outputs");
    let input = write(&dir, "in.jsonl", &corpus(300));
    let out = dir.join("out");
    let run = deltaw(&["data", "clean", &input, "--out", &out.display().to_string(), "--val", "0.2"]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    for name in ["train.jsonl", "val.jsonl", "report.json", "report.md", "lengths.png"] {
        assert!(out.join(name).is_file(), "{name} missing");
    }
    let report = report(&out);
    let (train, val) = (lines(out.join("train.jsonl")), lines(out.join("val.jsonl")));
    assert_eq!(report["kept"], train.len() + val.len());
    assert_eq!(report["train"], train.len());
    assert!(!val.is_empty() && val.len() < train.len(), "{} val of {}", val.len(), train.len());
    assert!(report["removed"]["exact_duplicate"].as_u64().unwrap() > 0, "{report}");
    assert!(report["removed"]["near_duplicate"].as_u64().unwrap() > 0, "{report}");
    assert!(report["pii_masked"]["email"].as_u64().unwrap() > 0, "{report}");
    assert!(train.iter().chain(&val).all(|l| !l.contains("@example.com")), "e-mails are masked");
    assert!(train.iter().all(|l| l.starts_with("{\"instruction\":")), "records keep the Alpaca layout");
    assert!(std::fs::read_to_string(out.join("report.md")).unwrap().contains("| removed: `near_duplicate` |"));
    let again = deltaw(&["data", "clean", &input, "--out", &out.display().to_string()]);
    assert_fails_with(&again, &["already holds", "--overwrite"]);
    let forced = deltaw(&["data", "clean", &input, "--out", &out.display().to_string(), "--overwrite"]);
    assert!(forced.status.success(), "{}", String::from_utf8_lossy(&forced.stderr));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_malformed_line_is_an_error_with_file_and_line_and_writes_nothing() {
    let dir = scratch("clean-malformed");
    let input = write(&dir, "in.jsonl", "{\"instruction\": \"a\", \"output\": \"b\"}\n\n{\"instruction\": \"a\",\n");
    let out = dir.join("out");
    let run = deltaw(&["data", "clean", &input, "--out", &out.display().to_string()]);
    assert_fails_with(&run, &["in.jsonl: line 3: invalid JSON"]);
    let left: Vec<_> =
        std::fs::read_dir(&out).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "nothing written, no temporary files left: {left:?}");
    let missing = write(&dir, "missing.jsonl", "{\"instruction\": \"a\"}\n");
    assert_fails_with(
        &deltaw(&["data", "clean", &missing, "--out", &out.display().to_string()]),
        &["missing.jsonl: line 1: missing field 'output'"],
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn skip_bad_counts_bad_lines_and_keeps_the_good_ones() {
    let dir = scratch("clean-skip-bad");
    let text = "{\"instruction\": \"a\", \"output\": \"first answer\"}\n{oops\n\u{1}\n{\"prompt\": \"x\"}\n\
                {\"instruction\": \"b\", \"output\": \"second answer\"}\n";
    let input = write(&dir, "in.jsonl", text);
    let out = dir.join("out");
    let run = deltaw(&["data", "clean", &input, "--out", &out.display().to_string(), "--skip-bad", "--val", "0"]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let report = report(&out);
    assert_eq!((report["bad_records"].as_u64(), report["kept"].as_u64()), (Some(3), Some(2)), "{report}");
    assert_eq!(report["examples_bad"][0]["at"], format!("{input}: line 2"));
    assert_eq!(lines(out.join("train.jsonl")).len(), 2);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn binary_and_unknown_inputs_are_refused_with_their_file() {
    let dir = scratch("clean-binary");
    let out = dir.join("out").display().to_string();
    let binary = dir.join("weights.bin");
    std::fs::write(&binary, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR").unwrap();
    assert_fails_with(
        &deltaw(&["data", "clean", &binary.display().to_string(), "--out", &out]),
        &["weights.bin: line 3: a NUL byte at offset 8", "binary file"],
    );
    let csv = write(&dir, "table.csv", "a,b\n1,2\n");
    assert_fails_with(&deltaw(&["data", "clean", &csv, "--out", &out]), &["table.csv: line 1: unknown format"]);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn outputs_are_byte_identical_for_one_and_two_threads() {
    let dir = scratch("clean-threads");
    // More records than one parallel chunk (4096), so chunk boundaries are crossed.
    let input = write(&dir, "in.jsonl", &corpus(9000));
    let mut outputs = Vec::new();
    for threads in ["1", "2"] {
        let out = dir.join(format!("out{threads}"));
        let args = ["data", "clean", &input, "--out", &out.display().to_string(), "--seed", "5"];
        let run = deltaw_with_env(&args, &[("RAYON_NUM_THREADS", threads)]);
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
        let files: Vec<Vec<u8>> = ["train.jsonl", "val.jsonl", "report.json", "report.md"]
            .iter()
            .map(|f| std::fs::read(out.join(f)).unwrap())
            .collect();
        outputs.push(files);
    }
    assert!(outputs[0] == outputs[1], "outputs differ between 1 and 2 threads");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn text_files_json_arrays_and_token_lengths_with_a_model() {
    let dir = scratch("clean-formats");
    let text = write(&dir, "notes.txt", "First paragraph\nstill first.\n\n\nSecond <b>paragraph</b> &amp; more.\n");
    let array = write(
        &dir,
        "data.json",
        r#"[{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there"}]}]"#,
    );
    let out = dir.join("out");
    let args = ["data", "clean", &text, &array, "--out", &out.display().to_string(), "--strip-html", "--val", "0"];
    let run = deltaw(&[&args[..], &["--model", &path("tiny_gpt2")]].concat());
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let train = lines(out.join("train.jsonl"));
    assert_eq!(train[0], r#"{"text":"First paragraph\nstill first."}"#);
    assert_eq!(train[1], r#"{"text":"Second paragraph & more."}"#);
    assert!(train[2].starts_with(r#"{"messages":["#), "{}", train[2]);
    assert_eq!(report(&out)["length_unit"], "tokens");
    std::fs::remove_dir_all(&dir).ok();
}
