//! deltaw-train's SFT data against `tests/fixtures/sft_reference.json` (an independent Python
//! implementation with the `tokenizers` library, `tests/fixtures/sft.py`), and its errors,
//! split, batching and rendering on the files in `tests/fixtures/sft/`.

use deltaw_tensor::Device;
use deltaw_train::data::{collate, ByteCodec, DataFormat, HfCodec, PromptTemplate, Sample, SftDataset, SftOptions};
use deltaw_train::{Error, TextCodec};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn data_file(name: &str) -> PathBuf {
    fixtures().join("sft").join(name)
}

fn tiny_gpt2() -> HfCodec {
    HfCodec::from_dir(fixtures().join("tiny_gpt2")).expect("tiny_gpt2 tokenizer")
}

/// `text` written to a fresh file under Cargo's scratch directory for integration tests.
fn temp_file(name: &str, text: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("sft_data_{name}"));
    std::fs::write(&path, text).expect("write temp file");
    path
}

fn load(path: &Path, codec: &dyn TextCodec, options: &SftOptions) -> deltaw_train::Result<SftDataset> {
    SftDataset::load(path, DataFormat::Auto, codec, &PromptTemplate::default(), options).map(|(data, _)| data)
}

/// The options and template a reference case was made with.
fn case_options(options: &Value) -> (SftOptions, PromptTemplate) {
    let sft = SftOptions {
        train_on_prompt: options["train_on_prompt"].as_bool().unwrap_or(false),
        mask_history: options["mask_history"].as_bool().unwrap_or(false),
        cutoff_len: options["cutoff_len"].as_u64().map(|n| n as usize),
        skip_bad_lines: options["skip_bad_lines"].as_bool().unwrap_or(false),
    };
    let template = match options.get("template") {
        Some(t) => serde_json::from_value(t.clone()).expect("template in the reference"),
        None => PromptTemplate::default(),
    };
    (sft, template)
}

fn ints(value: &Value) -> Vec<i32> {
    value.as_array().expect("list").iter().map(|v| v.as_i64().expect("integer") as i32).collect()
}

/// Compares one case; `Err` describes the first difference.
fn check_case(case: &Value, codec: &dyn TextCodec) -> Result<(), String> {
    let (options, template) = case_options(&case["options"]);
    let path = data_file(case["file"].as_str().unwrap());
    let loaded = SftDataset::load(&path, DataFormat::Auto, codec, &template, &options);
    if case.get("error").is_some() {
        return match loaded {
            Err(Error::EmptyDataset { path: p, .. }) if p == path => Ok(()),
            Err(other) => Err(format!("expected an empty-dataset error, got: {other}")),
            Ok((data, _)) => Err(format!("expected an empty-dataset error, got {} samples", data.len())),
        };
    }
    let (data, report) = loaded.map_err(|e| e.to_string())?;
    let expected = case["samples"].as_array().unwrap();
    for (key, actual) in [("dropped", report.dropped), ("truncated", report.truncated), ("skipped", report.skipped)] {
        if case[key].as_u64() != Some(actual as u64) {
            return Err(format!("{key}: {actual}, reference {}", case[key]));
        }
    }
    if data.len() != expected.len() {
        return Err(format!("{} samples, reference {}", data.len(), expected.len()));
    }
    for (i, (sample, reference)) in data.samples.iter().zip(expected).enumerate() {
        let (ids, labels) = (ints(&reference["input_ids"]), ints(&reference["labels"]));
        if sample.input_ids != ids || sample.labels != labels {
            return Err(format!(
                "sample {i}:\n  input_ids {:?}\n  reference {ids:?}\n  labels    {:?}\n  reference {labels:?}",
                sample.input_ids, sample.labels
            ));
        }
    }
    Ok(())
}

#[test]
fn samples_equal_the_python_reference_exactly() {
    let text = std::fs::read_to_string(fixtures().join("sft_reference.json")).expect("sft_reference.json");
    let reference: Value = serde_json::from_str(&text).expect("valid JSON");
    let hf = tiny_gpt2();
    assert_eq!(i64::from(hf.eos_id), reference["eos"]["hf"].as_i64().unwrap(), "HF eos id");
    assert_eq!(i64::from(ByteCodec.eos_id()), reference["eos"]["byte"].as_i64().unwrap(), "byte eos id");
    let cases = reference["cases"].as_array().expect("cases");
    assert!(cases.len() >= 30, "only {} cases", cases.len());
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|case| {
            let codec: &dyn TextCodec = if case["codec"] == "hf" { &hf } else { &ByteCodec };
            check_case(case, codec).err().map(|e| format!("{}: {e}", case["name"]))
        })
        .collect();
    assert!(failures.is_empty(), "{} of {} cases differ:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

#[test]
fn broken_jsonl_line_is_reported_with_file_and_line() {
    let path = data_file("bad.jsonl");
    let err = load(&path, &ByteCodec, &SftOptions::default()).unwrap_err().to_string();
    assert!(err.starts_with(&format!("{}: line 2: invalid JSON", path.display())), "{err}");
}

#[test]
fn skip_bad_lines_skips_and_counts_the_broken_line() {
    let options = SftOptions { skip_bad_lines: true, ..Default::default() };
    let (data, report) =
        SftDataset::load(data_file("bad.jsonl"), DataFormat::Auto, &ByteCodec, &PromptTemplate::default(), &options)
            .unwrap();
    assert_eq!((data.len(), report.records, report.skipped), (2, 3, 1));
    assert!(report.skipped_messages[0].contains("line 2"), "{:?}", report.skipped_messages);
}

#[test]
fn empty_or_all_bad_files_are_errors_naming_the_file() {
    for (name, text) in [("empty.jsonl", "\n  \n"), ("empty.json", "[]"), ("all_bad.jsonl", "{oops\n")] {
        let path = temp_file(name, text);
        let options = SftOptions { skip_bad_lines: true, ..Default::default() };
        let err = load(&path, &ByteCodec, &options).unwrap_err();
        assert!(matches!(err, Error::EmptyDataset { .. }), "{name}: {err}");
        assert!(err.to_string().contains(&path.display().to_string()), "{err}");
    }
}

#[test]
fn unknown_role_and_bad_order_name_the_record() {
    let unknown = r#"[{"instruction": "a", "output": "b"},
        {"conversations": [{"from": "human", "value": "q"}, {"from": "bot", "value": "a"}]}]"#;
    let err = load(&temp_file("unknown_role.json", unknown), &ByteCodec, &SftOptions::default()).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("record 1: conversations[1]: unknown role 'bot'"), "{message}");
    let no_answer = "{\"messages\": [{\"role\": \"user\", \"content\": \"q\"}]}\n";
    let err = load(&temp_file("no_answer.jsonl", no_answer), &ByteCodec, &SftOptions::default()).unwrap_err();
    assert!(err.to_string().contains("line 1: the conversation ends with a user turn"), "{err}");
    let missing = "{\"instruction\": \"q\"}\n";
    let err = load(&temp_file("missing.jsonl", missing), &ByteCodec, &SftOptions::default()).unwrap_err();
    assert!(err.to_string().ends_with("line 1: missing field 'output'"), "{err}");
}

#[test]
fn forced_format_refuses_records_of_the_other_layout() {
    let template = PromptTemplate::default();
    let options = SftOptions::default();
    let path = data_file("sharegpt.json");
    let err = SftDataset::load(&path, DataFormat::Alpaca, &ByteCodec, &template, &options).unwrap_err();
    assert!(err.to_string().contains("record 0: missing field 'instruction'"), "{err}");
    let forced = SftDataset::load(&path, DataFormat::ShareGpt, &ByteCodec, &template, &options).unwrap().0;
    assert_eq!(forced, load(&path, &ByteCodec, &options).unwrap());
}

#[test]
fn json_array_and_jsonl_of_the_same_records_give_the_same_samples() {
    let path = data_file("alpaca.json");
    let records: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let jsonl: Vec<String> = records.iter().map(Value::to_string).collect();
    let as_lines = temp_file("alpaca_copy.jsonl", &jsonl.join("\n"));
    let hf = tiny_gpt2();
    assert_eq!(
        load(&path, &hf, &SftOptions::default()).unwrap(),
        load(&as_lines, &hf, &SftOptions::default()).unwrap()
    );
}

#[test]
fn split_is_deterministic_and_partitions_the_samples() {
    let data = load(&data_file("alpaca.jsonl"), &ByteCodec, &SftOptions::default()).unwrap();
    let (train, val) = data.clone().split(0.25, 11);
    assert_eq!((train.len(), val.len()), (3, 1));
    assert_eq!(data.clone().split(0.25, 11), (train.clone(), val.clone()));
    let mut all: Vec<Sample> = train.samples.into_iter().chain(val.samples).collect();
    let mut original = data.samples.clone();
    all.sort_by(|a, b| a.input_ids.cmp(&b.input_ids));
    original.sort_by(|a, b| a.input_ids.cmp(&b.input_ids));
    assert_eq!(all, original);
    let vals: Vec<SftDataset> = (0..8).map(|seed| data.clone().split(0.25, seed).1).collect();
    assert!(vals.iter().any(|v| v != &vals[0]), "every seed picked the same validation sample");
}

#[test]
fn collate_right_pads_with_pad_id_and_masks_padding() {
    let data = load(&data_file("sharegpt.json"), &tiny_gpt2(), &SftOptions::default()).unwrap();
    let samples: Vec<&Sample> = data.samples.iter().collect();
    let batch = collate(&samples, 7, &Device::Cpu).unwrap();
    let t = samples.iter().map(|s| s.len()).max().unwrap();
    assert_eq!(batch.input_ids.dims(), &[3, t]);
    let (ids, mask, labels) =
        (batch.input_ids.to_vec_i32(), batch.attention_mask.to_vec_i32(), batch.labels.to_vec_i32());
    for (b, sample) in samples.iter().enumerate() {
        let row = b * t..(b + 1) * t;
        let n = sample.len();
        assert_eq!(&ids[row.start..row.start + n], &sample.input_ids[..]);
        assert_eq!(&labels[row.start..row.start + n], &sample.labels[..]);
        assert!(ids[row.start + n..row.end].iter().all(|&id| id == 7), "row {b} padding");
        assert!(labels[row.start + n..row.end].iter().all(|&l| l == -100), "row {b} labels");
        assert_eq!(mask[row].iter().sum::<i32>(), n as i32, "row {b} mask");
    }
}

#[test]
fn render_marks_the_trained_answer_and_its_eos() {
    let data = load(&data_file("alpaca.jsonl"), &tiny_gpt2(), &SftOptions::default()).unwrap();
    let text = data.samples[3].render(&tiny_gpt2());
    let (header, body) = text.split_once('\n').unwrap();
    let sample = &data.samples[3];
    assert_eq!(header, format!("{} tokens, {} trained ([bracketed]; untrained split by |)", sample.len(), 7));
    assert!(body.ends_with("[A][ token][,][ a][ token][.][<eos>]\n"), "{text}");
    assert!(body.starts_with(" |n|st|r|c|tion|W|rit|e| "), "{text}");
}

#[test]
fn hf_codec_falls_back_to_endoftext_and_refuses_a_tokenizer_without_eos() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sft_data_no_config");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(fixtures().join("tiny_gpt2/tokenizer.json"), dir.join("tokenizer.json")).unwrap();
    assert_eq!(HfCodec::from_dir(&dir).unwrap().eos_id, 0, "<|endoftext|> is id 0 in tiny_gpt2");
    let bert = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sft_data_bert_tokenizer");
    std::fs::create_dir_all(&bert).unwrap();
    std::fs::copy(fixtures().join("tiny_bert/tokenizer.json"), bert.join("tokenizer.json")).unwrap();
    let err = HfCodec::from_dir(&bert).err().expect("no EOS in a WordPiece tokenizer without config.json");
    assert!(err.to_string().contains("no end-of-sequence token"), "{err}");
}
