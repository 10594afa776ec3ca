//! Writing a model back as a Hugging Face folder: `config.json` (every original field kept) and
//! `model.safetensors` under the key names transformers writes, so a fine-tuned or merged model
//! loads again here, in transformers and in sentence-transformers.

use crate::error::Result;
use crate::model::Model;
use crate::module::named_parameters;
use deltaw_tensor::{atomic, safetensors, Tensor};
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;

/// transformers' default `max_shard_size` for `save_pretrained`: a checkpoint above it is
/// split into shards with an index.
pub const DEFAULT_MAX_SHARD_BYTES: u64 = 5_000_000_000;

/// [`Model::save_dir`]: writes `config` and every parameter, keyed as transformers writes
/// them: [`Model::key_prefix`] + the parameter's path (GPT-2: `transformer.h.0.attn.c_attn.weight`;
/// a tied LM head is not stored; no causal-mask or `position_ids` buffers, which transformers
/// rebuilds). Each weight keeps its dtype (f32, or the bf16/f16 of a frozen base), and the
/// config's `dtype` / `torch_dtype` says which.
///
/// Up to `max_shard_bytes` of tensors go in one `model.safetensors`; above it, in shards
/// `model-0000i-of-0000n.safetensors` filled in key order, plus `model.safetensors.index.json`
/// (`metadata.total_size`, `weight_map`), as `save_pretrained` writes them. The folder is
/// written atomically ([`atomic::replace_dir`]): an interrupted save leaves the old folder or
/// the complete new one. Files of the old folder that are not weights or `config.json` (a
/// tokenizer, a README) are kept; weight files of an earlier save are not, so loaders see
/// one checkpoint.
pub(crate) fn save_folder<M: Model + ?Sized>(model: &M, dir: &Path, config: Value, max_shard_bytes: u64) -> Result<()> {
    let prefix = match model.key_prefix() {
        "" => String::new(),
        p => format!("{p}."),
    };
    let mut named: Vec<(String, Tensor)> =
        named_parameters(model).into_iter().map(|(name, p)| (format!("{prefix}{name}"), p.value())).collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let keep = |name: &str| name != "config.json" && !is_weight_file(name);
    atomic::replace_dir(dir, keep, |tmp| write_folder(&named, tmp, config, max_shard_bytes))
}

/// The files of [`save_folder`], written into the fresh folder `dir`.
fn write_folder(named: &[(String, Tensor)], dir: &Path, mut config: Value, max_shard_bytes: u64) -> Result<()> {
    let shards = split_shards(named, max_shard_bytes);
    if shards.len() == 1 {
        write_shard(named, &dir.join("model.safetensors"))?;
    } else {
        let n = shards.len();
        let mut weight_map = serde_json::Map::new();
        for (i, shard) in shards.iter().enumerate() {
            let file = format!("model-{:05}-of-{n:05}.safetensors", i + 1);
            write_shard(shard, &dir.join(&file))?;
            weight_map.extend(shard.iter().map(|(k, _)| (k.clone(), Value::String(file.clone()))));
        }
        let total: u64 = named.iter().map(|(_, t)| tensor_bytes(t)).sum();
        let index = serde_json::json!({"metadata": {"total_size": total}, "weight_map": weight_map});
        let text = serde_json::to_string_pretty(&index).expect("JSON") + "\n";
        atomic::write_file(&dir.join("model.safetensors.index.json"), text.as_bytes())?;
    }
    if let Value::Object(map) = &mut config {
        let dtype = storage_dtype_name(named);
        for key in ["dtype", "torch_dtype"] {
            if map.contains_key(key) {
                map.insert(key.into(), Value::String(dtype.into()));
            }
        }
    }
    let text = serde_json::to_string_pretty(&config).expect("a JSON value serializes") + "\n";
    atomic::write_file(&dir.join("config.json"), text.as_bytes())?;
    Ok(())
}

fn tensor_bytes(t: &Tensor) -> u64 {
    t.dtype().bytes_for(t.numel()) as u64
}

/// Consecutive runs of `named` of at most `max_bytes` each (a tensor larger than that gets a
/// shard of its own), as transformers splits.
fn split_shards(named: &[(String, Tensor)], max_bytes: u64) -> Vec<&[(String, Tensor)]> {
    let mut shards = Vec::new();
    let (mut start, mut size) = (0, 0);
    for (i, (_, t)) in named.iter().enumerate() {
        let bytes = tensor_bytes(t);
        if i > start && size + bytes > max_bytes {
            shards.push(&named[start..i]);
            (start, size) = (i, 0);
        }
        size += bytes;
    }
    shards.push(&named[start..]);
    shards
}

fn write_shard(tensors: &[(String, Tensor)], path: &Path) -> Result<()> {
    // transformers refuses a safetensors file whose metadata lacks the framework tag.
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::save(tensors.iter().map(|(k, t)| (k.as_str(), t)), Some(metadata), path)?;
    Ok(())
}

/// A weights file of either layout: `model.safetensors`, a shard, or the shard index.
fn is_weight_file(name: &str) -> bool {
    name == "model.safetensors"
        || name == "model.safetensors.index.json"
        || (name.starts_with("model-") && name.contains("-of-") && name.ends_with(".safetensors"))
}

/// What `config.json`'s `dtype` should say: the floating dtype every weight shares, else
/// `float32`.
fn storage_dtype_name(named: &[(String, Tensor)]) -> &'static str {
    let first = named.first().map(|(_, t)| t.dtype());
    match first {
        Some(d) if named.iter().all(|(_, t)| t.dtype() == d) => d.torch_name(),
        _ => "float32",
    }
}

#[cfg(test)]
mod tests {
    use crate::{Bert, Gpt2, Model};
    use deltaw_tensor::{safetensors, Device, Tensor};
    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(name)
    }

    fn temp_dir(tag: &str) -> PathBuf {
        std::env::temp_dir().join(format!("deltaw-save-{tag}-{}", std::process::id()))
    }

    fn keys(path: &Path) -> BTreeSet<String> {
        safetensors::load(path, &Device::Cpu).unwrap().into_keys().collect()
    }

    fn config(dir: &Path) -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap()
    }

    #[test]
    fn gpt2_saved_folder_reloads_with_the_same_logits_keys_and_config() {
        let (src, dst) = (fixture("tiny_gpt2"), temp_dir("gpt2"));
        let model = Gpt2::from_dir(&src, &Device::Cpu).unwrap();
        model.save_dir(&dst).unwrap();
        let again = Gpt2::from_dir(&dst, &Device::Cpu).unwrap();
        let ids = Tensor::from_vec(vec![5i32, 17, 42, 3, 99], (1, 5), &Device::Cpu).unwrap();
        assert_eq!(
            model.forward(&ids, None).logits.value().to_vec(),
            again.forward(&ids, None).logits.value().to_vec()
        );
        assert_eq!(keys(&dst.join("model.safetensors")), keys(&src.join("model.safetensors")));
        assert_eq!(config(&dst), config(&src), "every config field round-trips");
        std::fs::remove_dir_all(dst).ok();
    }

    #[test]
    fn an_edited_config_saves_its_edits_and_keeps_the_rest_verbatim() {
        let model = Gpt2::from_dir(fixture("tiny_gpt2"), &Device::Cpu).unwrap();
        let mut edited = model.config.clone();
        edited.n_positions = 32;
        let json = edited.to_json();
        assert_eq!(json["n_positions"], 32);
        assert_eq!(json["layer_norm_epsilon"], model.config.raw["layer_norm_epsilon"], "1e-05 keeps its spelling");
        assert_eq!(json["architectures"], model.config.raw["architectures"], "unknown fields round-trip");
        edited.raw = serde_json::Value::Null; // built in code: the typed fields alone
        assert_eq!(edited.to_json()["model_type"], "gpt2");
    }

    #[test]
    fn bert_saved_folder_reloads_with_the_same_states_and_keys() {
        let (src, dst) = (fixture("tiny_bert"), temp_dir("bert"));
        let model = Bert::from_dir(&src, &Device::Cpu).unwrap();
        model.save_dir(&dst).unwrap();
        let again = Bert::from_dir(&dst, &Device::Cpu).unwrap();
        let ids = Tensor::from_vec(vec![2i32, 17, 42, 3], (1, 4), &Device::Cpu).unwrap();
        let (a, b) = (model.forward(&ids, None, None), again.forward(&ids, None, None));
        assert_eq!(a.last_hidden_state.value().to_vec(), b.last_hidden_state.value().to_vec());
        assert_eq!(a.pooler_output.value().to_vec(), b.pooler_output.value().to_vec());
        assert_eq!(keys(&dst.join("model.safetensors")), keys(&src.join("model.safetensors")));
        assert_eq!(config(&dst), config(&src));
        std::fs::remove_dir_all(dst).ok();
    }

    #[test]
    fn saving_into_a_file_path_is_an_error_naming_it() {
        let blocker = temp_dir("blocker");
        std::fs::write(&blocker, b"not a folder").unwrap();
        let model = Gpt2::from_dir(fixture("tiny_gpt2"), &Device::Cpu).unwrap();
        let err = model.save_dir(&blocker).unwrap_err().to_string();
        assert!(err.contains(&blocker.display().to_string()), "{err}");
        std::fs::remove_file(blocker).ok();
    }

    #[test]
    fn an_interrupted_save_leaves_the_old_folder_loading() {
        // A first save, a README beside it, then a save that fails halfway through writing
        // (new weights written, config not): the folder still loads as the first model.
        let dst = temp_dir("interrupted");
        let model = Gpt2::from_dir(fixture("tiny_gpt2"), &Device::Cpu).unwrap();
        model.save_dir(&dst).unwrap();
        std::fs::write(dst.join("README.md"), "kept").unwrap();
        let before = std::fs::read(dst.join("model.safetensors")).unwrap();
        let result = deltaw_tensor::atomic::replace_dir(
            &dst,
            |_| true,
            |tmp| -> crate::Result<()> {
                std::fs::write(tmp.join("model.safetensors"), &before[..before.len() / 2]).unwrap();
                Err(crate::Error::Tensor(deltaw_tensor::Error::Io {
                    path: tmp.into(),
                    source: std::io::Error::other("simulated crash"),
                }))
            },
        );
        assert!(result.is_err());
        assert_eq!(std::fs::read(dst.join("model.safetensors")).unwrap(), before);
        assert!(Gpt2::from_dir(&dst, &Device::Cpu).is_ok(), "the old folder still loads");
        // A real re-save replaces the weights and keeps the README.
        model.save_dir_sharded(&dst, 20_000).unwrap();
        assert!(!dst.join("model.safetensors").exists(), "the single file of the old layout is gone");
        assert_eq!(std::fs::read_to_string(dst.join("README.md")).unwrap(), "kept");
        assert!(Gpt2::from_dir(&dst, &Device::Cpu).is_ok());
        std::fs::remove_dir_all(dst).ok();
    }
}
