//! The embedding model of an index: a [`SentenceEmbedder`] checked to be one, and the
//! [`ModelIdentity`] recorded in `index.json` so that an index is never searched, or updated,
//! with vectors from another model.

use crate::{hash_string, Fnv1a64, RagError, Result};
use deltaw_tensor::{Device, Tensor};
use deltaw_transformer::{find_module, read_modules, Model, SentenceEmbedder};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};

/// What makes two embedding models the same: the bytes of the transformer's `config.json` and
/// `model.safetensors`, the pooling and the truncation length. `name` (the folder's name) is
/// only for messages: moving or renaming the folder keeps the identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelIdentity {
    pub name: String,
    pub model_type: String,
    /// Width of one embedding, `D`.
    pub dim: usize,
    /// Pooling modes and normalisation, e.g. `mean+normalize`.
    pub pooling: String,
    /// Texts are truncated to this many tokens.
    pub max_length: usize,
    /// [`hash_string`] of the FNV-1a of `config.json`.
    pub config_hash: String,
    /// [`hash_string`] of the FNV-1a of `model.safetensors`.
    pub weights_hash: String,
}

impl ModelIdentity {
    /// True when both describe the same weights, configuration, pooling and truncation.
    pub fn same_model(&self, other: &ModelIdentity) -> bool {
        (self.dim, &self.pooling, self.max_length, &self.config_hash, &self.weights_hash)
            == (other.dim, &other.pooling, other.max_length, &other.config_hash, &other.weights_hash)
    }

    /// `'name' (dim D, pooling P, weights fnv1a64:…)`, for messages.
    pub fn describe(&self) -> String {
        format!("'{}' (dim {}, pooling {}, weights {})", self.name, self.dim, self.pooling, self.weights_hash)
    }
}

/// A sentence-embedding model and its identity.
pub struct EmbeddingModel {
    /// The folder it was loaded from.
    pub dir: PathBuf,
    pub identity: ModelIdentity,
    pub embedder: SentenceEmbedder,
}

impl EmbeddingModel {
    /// Loads a sentence-transformers folder (or a plain BERT folder, pooled by mean and L2,
    /// as sentence-transformers does for one) and computes its identity, which reads the
    /// whole weights file once.
    ///
    /// # Errors
    /// [`RagError::NotEmbeddingModel`] for a folder whose `config.json` is not BERT's (a GPT-2
    /// folder, say) or whose `modules.json` has no `Transformer` module; otherwise the
    /// loader's errors, naming the file.
    pub fn load(dir: impl AsRef<Path>, device: &Device) -> Result<EmbeddingModel> {
        let dir = dir.as_ref().to_path_buf();
        let model_dir = check_embedding_model(&dir)?;
        let embedder = SentenceEmbedder::from_dir(&dir, device)?;
        let modes: Vec<String> = embedder.pooling.modes.iter().map(|m| format!("{m:?}").to_lowercase()).collect();
        let pooling = modes.join("+") + if embedder.pooling.normalize { "+normalize" } else { "" };
        let name = dir.canonicalize().unwrap_or(dir.clone()).file_name().map(|n| n.to_string_lossy().into_owned());
        let identity = ModelIdentity {
            name: name.unwrap_or_default(),
            model_type: embedder.model.config.model_type.clone(),
            dim: embedder.dim(),
            pooling,
            max_length: embedder.max_length,
            config_hash: hash_string(hash_file(&model_dir.join("config.json"))?),
            weights_hash: hash_string(hash_file(&model_dir.join("model.safetensors"))?),
        };
        Ok(EmbeddingModel { dir, identity, embedder })
    }

    /// Embeds `texts` in the embedder's batches, calling `progress(texts done)` after each, and
    /// returns the rows L2-normalised (`e / max(‖e‖, 1e-12)`, whether or not the model's own
    /// pooling normalises), flattened: `texts.len() · D` values.
    pub fn embed_normalized(&self, texts: &[&str], progress: &mut dyn FnMut(usize)) -> Result<Vec<f32>> {
        let mut rows = Vec::with_capacity(texts.len() * self.identity.dim);
        for batch in texts.chunks(self.embedder.batch_size.max(1)) {
            rows.extend(self.embedder.embed(batch)?.to_vec()); // (B, D) read back
            progress(rows.len() / self.identity.dim);
        }
        normalize_rows(&mut rows, self.identity.dim);
        Ok(rows)
    }

    /// The unit embedding of one query, `(1, D)` on the model's device.
    pub fn embed_query(&self, query: &str) -> Result<Tensor> {
        let row = self.embed_normalized(&[query], &mut |_| {})?;
        let dev = self.embedder.model.device();
        Ok(Tensor::from_vec(row, (1, self.identity.dim), &dev).map_err(deltaw_transformer::Error::from)?)
    }
}

/// Scales each length-`d` row of `rows` to unit L2 norm (a zero row stays zero).
pub fn normalize_rows(rows: &mut [f32], d: usize) {
    for row in rows.chunks_mut(d.max(1)) {
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        row.iter_mut().for_each(|x| *x /= norm);
    }
}

/// Refuses folders that cannot embed sentences before loading anything; returns the folder
/// of the `Transformer` module (the folder itself, or `modules.json`'s path for it).
fn check_embedding_model(dir: &Path) -> Result<PathBuf> {
    let not = |message: String| RagError::NotEmbeddingModel { path: dir.to_path_buf(), message };
    if !dir.is_dir() {
        return Err(not("no such folder".into()));
    }
    let modules = read_modules(dir)?;
    let model_dir = match modules.as_deref() {
        None => dir.to_path_buf(),
        Some(modules) => match find_module(modules, "Transformer") {
            Some(m) if m.path.is_empty() => dir.to_path_buf(),
            Some(m) => dir.join(&m.path),
            None => return Err(not("modules.json lists no sentence_transformers Transformer module".into())),
        },
    };
    let config = model_dir.join("config.json");
    let text = std::fs::read_to_string(&config).map_err(|source| RagError::Io { path: config.clone(), source })?;
    let raw: Value = serde_json::from_str(&text).map_err(|e| {
        RagError::Model(deltaw_transformer::Error::Config { path: config.clone(), message: e.to_string() })
    })?;
    match raw.get("model_type").and_then(Value::as_str) {
        Some("bert") | None => Ok(model_dir),
        Some(other) => Err(not(format!(
            "{} has model_type \"{other}\"; rag embeds with a BERT sentence-transformers model such as \
             all-MiniLM-L6-v2",
            config.strip_prefix(dir).unwrap_or(&config).display()
        ))),
    }
}

/// FNV-1a 64 of a file's bytes, read 1 MiB at a time.
pub fn hash_file(path: &Path) -> Result<u64> {
    let io = |source| RagError::Io { path: path.to_path_buf(), source };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut hash = Fnv1a64::new();
    loop {
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            return Ok(hash.finish());
        }
        hash = hash.update(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(name)
    }

    #[test]
    fn a_gpt2_folder_is_not_an_embedding_model() {
        let err = EmbeddingModel::load(fixture("tiny_gpt2"), &Device::Cpu).err().expect("refused").to_string();
        assert!(err.contains("not a sentence-embedding model") && err.contains("\"gpt2\""), "{err}");
        assert!(err.contains("config.json"), "{err}");
    }

    #[test]
    fn tiny_bert_identity_is_stable_and_unit_rows() {
        let model = EmbeddingModel::load(fixture("tiny_bert"), &Device::Cpu).unwrap();
        let again = EmbeddingModel::load(fixture("tiny_bert"), &Device::Cpu).unwrap();
        assert!(model.identity.same_model(&again.identity));
        assert_eq!((model.identity.dim, model.identity.pooling.as_str()), (32, "mean+normalize"));
        let rows = model.embed_normalized(&["the cat sat", "a dog"], &mut |_| {}).unwrap();
        for row in rows.chunks(32) {
            let norm: f32 = row.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
        }
    }
}
