//! `config.json` values out of range are errors naming the file and the field, for GPT-2,
//! BERT and the Llama family: sizes of zero or past the bounds, dropouts outside [0, 1),
//! a NaN epsilon, heads that do not divide the width. None of them panics or allocates.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name)
}

/// Writes `base`'s config.json with `field` set to `value` into a fresh folder, and returns
/// the error `load` gives for it.
fn error_for(base: &str, field: &str, value: Value, load: fn(&Path) -> Result<(), String>) -> String {
    let dir =
        std::env::temp_dir().join(format!("deltaw-config-{}-{field}-{}", base.replace('/', "_"), std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = std::fs::read_to_string(fixture(base).join("config.json")).unwrap();
    let mut config: Value = serde_json::from_str(&text).unwrap();
    config[field] = value.clone();
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let result = std::panic::catch_unwind(|| load(&dir));
    std::fs::remove_dir_all(&dir).ok();
    let err = result.unwrap_or_else(|_| panic!("{base}: {field} = {value} panicked"));
    let err = err.expect_err(&format!("{base}: {field} = {value} must be refused"));
    assert!(err.contains("config.json") && err.contains(field), "{base}: {field} = {value}: {err}");
    err
}

fn gpt2(dir: &Path) -> Result<(), String> {
    deltaw_transformer::Gpt2Config::from_dir(dir).map(drop).map_err(|e| e.to_string())
}

fn bert(dir: &Path) -> Result<(), String> {
    deltaw_transformer::BertConfig::from_dir(dir).map(drop).map_err(|e| e.to_string())
}

fn llama(dir: &Path) -> Result<(), String> {
    deltaw_transformer::LlamaConfig::from_dir(dir).map(drop).map_err(|e| e.to_string())
}

#[test]
fn gpt2_config_values_out_of_range_name_the_field() {
    for (field, value) in [
        ("vocab_size", json!(0)),
        ("vocab_size", json!(1u64 << 40)),
        ("n_embd", json!(1u64 << 40)),
        ("n_positions", json!(0)),
        ("n_layer", json!(0)),
        ("n_head", json!(0)),
        ("n_head", json!(3)),
        ("n_inner", json!(0)),
        ("embd_pdrop", json!(1.0)),
        ("resid_pdrop", json!(-0.1)),
        ("attn_pdrop", json!(7)),
    ] {
        error_for("tiny_gpt2", field, value, gpt2);
    }
    let err = error_for("tiny_gpt2", "embd_pdrop", json!(1.0), gpt2);
    assert!(err.contains("[0, 1)"), "{err}");
}

#[test]
fn bert_config_values_out_of_range_name_the_field() {
    for (field, value) in [
        ("vocab_size", json!(0)),
        ("hidden_size", json!(1u64 << 33)),
        ("num_attention_heads", json!(0)),
        ("num_hidden_layers", json!(100_000)),
        ("intermediate_size", json!(0)),
        ("max_position_embeddings", json!(0)),
        ("type_vocab_size", json!(0)),
        ("hidden_dropout_prob", json!(1.0)),
        ("attention_probs_dropout_prob", json!(1.5)),
    ] {
        error_for("tiny_bert", field, value, bert);
    }
}

#[test]
fn llama_config_values_out_of_range_name_the_field() {
    for (field, value) in [
        ("vocab_size", json!(1u64 << 40)),
        ("hidden_size", json!(0)),
        ("intermediate_size", json!(0)),
        ("num_hidden_layers", json!(0)),
        ("num_attention_heads", json!(0)),
        ("num_key_value_heads", json!(0)),
        ("head_dim", json!(1u64 << 40)),
        ("max_position_embeddings", json!(0)),
        ("attention_dropout", json!(1.0)),
    ] {
        error_for("llama/llama3_gqa4", field, value, llama);
    }
}

#[test]
fn the_committed_configs_all_pass() {
    gpt2(&fixture("tiny_gpt2")).unwrap();
    bert(&fixture("tiny_bert")).unwrap();
    for name in ["llama3_gqa4", "mistral_bf16_shards", "qwen2_bias_gqa3", "qwen3_qknorm"] {
        llama(&fixture("llama").join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}
