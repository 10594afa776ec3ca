//! Writing a model back as a Hugging Face folder: `config.json` (every original field kept) and
//! `model.safetensors` under the key names transformers writes, so a fine-tuned or merged model
//! loads again here, in transformers and in sentence-transformers.

use crate::error::{Error, Result};
use crate::model::Model;
use crate::module::named_parameters;
use deltaw_tensor::{safetensors, Tensor};
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;

/// [`Model::save_dir`]: writes `config` and every parameter, keyed as transformers writes
/// them: [`Model::key_prefix`] + the parameter's path (GPT-2: `transformer.h.0.attn.c_attn.weight`;
/// its LM head is tied to `wte` and not stored; no causal-mask or `position_ids` buffers,
/// which transformers rebuilds). Weights are stored in f32, and the config's `dtype` /
/// `torch_dtype` says so.
pub(crate) fn save_folder<M: Model + ?Sized>(model: &M, dir: &Path, mut config: Value) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Io { path: dir.to_path_buf(), source })?;
    let prefix = match model.key_prefix() {
        "" => String::new(),
        p => format!("{p}."),
    };
    let named: Vec<(String, Tensor)> =
        named_parameters(model).into_iter().map(|(name, p)| (format!("{prefix}{name}"), p.value())).collect();
    // transformers refuses a safetensors file whose metadata lacks the framework tag.
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::save(named.iter().map(|(k, t)| (k.as_str(), t)), Some(metadata), dir.join("model.safetensors"))?;
    if let Value::Object(map) = &mut config {
        for key in ["dtype", "torch_dtype"] {
            if map.contains_key(key) {
                map.insert(key.into(), Value::String("float32".into()));
            }
        }
    }
    let text = serde_json::to_string_pretty(&config).expect("a JSON value serializes") + "\n";
    safetensors::write_atomic(&dir.join("config.json"), text.as_bytes())?;
    Ok(())
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
}
