//! Saving a Llama-family model: the folder reloads with the same logits, in one file or in
//! shards with transformers' index; a bf16 base kept as bf16 ([`WeightDtype::Stored`]) saves
//! as bf16 and its config says so; a later save of the other layout removes the stale files.

use deltaw_tensor::{safetensors, DType, Device, Tensor};
use deltaw_transformer::{Llama, Model, WeightDtype};
use std::path::{Path, PathBuf};

fn fixture_dir(case: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures").join("llama").join(case)
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("deltaw-llama-save-{tag}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    dir
}

fn logits(model: &Llama) -> Vec<f32> {
    let ids = Tensor::from_vec(vec![5i32, 17, 42, 3, 99, 7, 1, 250], (1, 8), &Device::Cpu).unwrap();
    model.forward(&ids, None).logits.value().to_vec()
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[test]
fn a_bf16_base_saves_in_shards_as_bf16_and_reloads_with_the_same_logits() {
    let src = fixture_dir("mistral_bf16_shards");
    let model = Llama::from_dir_with(&src, &Device::Cpu, WeightDtype::Stored).unwrap();
    assert_eq!(
        model.model.layers[0].self_attn.q_proj.weight.value().dtype(),
        DType::BF16,
        "a frozen matrix stays bf16"
    );
    assert!(!model.model.layers[0].self_attn.q_proj.weight.requires_grad(), "and frozen");
    let widened = Llama::from_dir(&src, &Device::Cpu).unwrap();
    assert_eq!(logits(&model), logits(&widened), "bf16 weights read in place give the f32 copy's logits");

    let dst = temp_dir("shards");
    model.save_dir_sharded(&dst, 60_000).unwrap();
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dst.join("model.safetensors.index.json")).unwrap()).unwrap();
    let shards: std::collections::BTreeSet<&str> =
        index["weight_map"].as_object().unwrap().values().map(|v| v.as_str().unwrap()).collect();
    assert!(shards.len() >= 3, "{index}");
    assert!(shards.iter().all(|s| s.starts_with("model-") && s.contains("-of-")), "{shards:?}");
    let first = safetensors::load(dst.join(shards.iter().next().unwrap()), &Device::Cpu).unwrap();
    assert!(first.values().any(|t| t.dtype() == DType::BF16), "the weights stay bf16 on disk");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dst.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["model_type"], "mistral");
    let again = Llama::from_dir(&dst, &Device::Cpu).unwrap();
    assert_eq!(logits(&again), logits(&widened), "the sharded folder reloads");

    // One file now: the shards and the index go.
    Llama::from_dir(&dst, &Device::Cpu).unwrap().save_dir(&dst).unwrap();
    assert_eq!(files(&dst), ["config.json", "model.safetensors"]);
    assert_eq!(logits(&Llama::from_dir(&dst, &Device::Cpu).unwrap()), logits(&widened));
    std::fs::remove_dir_all(dst).ok();
}

#[test]
fn a_tied_model_saves_no_lm_head() {
    let model = Llama::from_dir(fixture_dir("qwen2_bias_gqa3"), &Device::Cpu).unwrap();
    assert!(model.lm_head.is_none());
    let dst = temp_dir("tied");
    model.save_dir(&dst).unwrap();
    let keys: Vec<String> =
        safetensors::load(dst.join("model.safetensors"), &Device::Cpu).unwrap().into_keys().collect();
    assert!(!keys.iter().any(|k| k.starts_with("lm_head")), "{keys:?}");
    assert!(keys.contains(&"model.layers.0.self_attn.q_proj.bias".to_string()), "{keys:?}");
    assert_eq!(logits(&Llama::from_dir(&dst, &Device::Cpu).unwrap()), logits(&model));
    std::fs::remove_dir_all(dst).ok();
}
