//! Writing a model back as a Hugging Face folder: `config.json` (every original field kept) and
//! `model.safetensors` under the key names transformers writes, so a fine-tuned or merged model
//! loads again here, in transformers and in sentence-transformers.

use crate::bert::Bert;
use crate::error::{Error, Result};
use crate::gpt2::Gpt2;
use deltaw_autograd::Var;
use deltaw_tensor::{safetensors, Tensor};
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;

impl Gpt2 {
    /// Writes `dir/config.json` and `dir/model.safetensors` as `GPT2LMHeadModel.save_pretrained`
    /// does: keys prefixed `transformer.`, the LM head tied to `transformer.wte.weight` and not
    /// stored, no causal-mask buffers (transformers rebuilds them). Weights are stored in f32,
    /// and the config's `dtype` / `torch_dtype` says so. Both files are written atomically;
    /// `dir` is created if needed.
    ///
    /// # Errors
    /// When a file cannot be written (the message names it) or a parameter lost its name.
    pub fn save_dir(&self, dir: impl AsRef<Path>) -> Result<()> {
        save_folder(dir.as_ref(), self.config.to_json(), "transformer.", &self.parameters())
    }
}

impl Bert {
    /// Writes `dir/config.json` and `dir/model.safetensors` as `BertModel.save_pretrained`
    /// does: bare keys (`embeddings.word_embeddings.weight`...; a `bert.` prefix read from a
    /// head model is not written back), the pooler included, no `position_ids` buffer. Weights
    /// are stored in f32; files are written atomically and `dir` is created if needed.
    ///
    /// # Errors
    /// When a file cannot be written (the message names it) or a parameter lost its name.
    pub fn save_dir(&self, dir: impl AsRef<Path>) -> Result<()> {
        save_folder(dir.as_ref(), self.config.to_json(), "", &self.parameters())
    }
}

/// Writes `config` and the named `params` (each key = `prefix` + the parameter's name).
fn save_folder(dir: &Path, mut config: Value, prefix: &str, params: &[Var]) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Io { path: dir.to_path_buf(), source })?;
    let weights = dir.join("model.safetensors");
    let mut named: Vec<(String, Tensor)> = Vec::with_capacity(params.len());
    for (i, param) in params.iter().enumerate() {
        let Some(name) = param.name() else {
            let message = format!("cannot save parameter {i} of shape {:?}: it has no name", param.value().shape());
            return Err(Error::Input(format!("{}: {message}", weights.display())));
        };
        named.push((format!("{prefix}{name}"), param.value()));
    }
    // transformers refuses a safetensors file whose metadata lacks the framework tag.
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::save(named.iter().map(|(k, t)| (k.as_str(), t)), Some(metadata), &weights)?;
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
    use crate::{Bert, Gpt2};
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
