//! Sentence embeddings from token states, as sentence-transformers computes them: mean, CLS
//! or max pooling read from the folder's `1_Pooling/config.json`, then `Normalize` when its
//! `modules.json` lists one (all-MiniLM-L6-v2: mean, then L2).

use crate::error::{Error, Result};
use deltaw_tensor::{DType, Tensor};
use serde::Deserialize;
use serde_json::Value;
use std::path::Path;

/// Mean of the token states over the positions where `attention_mask` is 1, then L2
/// normalisation: `e = Σ_t m_t h_t / max(Σ_t m_t, 1e-9)`, `e / max(‖e‖, 1e-12)`.
/// Shapes: `hidden` `(B, T, C)`, `attention_mask` `(B, T)` (any dtype); returns `(B, C)`.
/// The clamps are sentence-transformers' (an all-padding row gives zeros, not NaN).
///
/// # Panics
/// If the mask's shape is not `hidden`'s first two dims.
#[track_caller]
pub fn mean_pool_normalize(hidden: &Tensor, attention_mask: &Tensor) -> Tensor {
    let (b, t) = (hidden.dims()[0], hidden.dims()[1]);
    assert_eq!(
        attention_mask.dims(),
        &[b, t],
        "mean_pool: mask {:?} vs hidden {:?}",
        attention_mask.shape(),
        hidden.shape()
    );
    let dev = hidden.device();
    let mask = attention_mask.to_dtype(DType::F32).expect("a 0/1 mask converts").reshape((b, t, 1)); // (B, T, 1)
    let summed = hidden.mul(&mask).sum(1); // (B, C)
    let count = mask.sum(1).maximum(&Tensor::scalar(1e-9, &dev)); // (B, 1)
    let mean = summed.div(&count);
    let norm = mean.mul(&mean).sum_keepdim(-1).sqrt().maximum(&Tensor::scalar(1e-12, &dev)); // (B, 1)
    mean.div(&norm)
}

/// One way to turn the token states of a text into one vector, named as sentence-transformers'
/// `1_Pooling/config.json` fields (`pooling_mode_cls_token`, `_max_tokens`, `_mean_tokens`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolingMode {
    /// The first token's state (`[CLS]`).
    Cls,
    /// The element-wise maximum over the real tokens.
    Max,
    /// The mean over the real tokens.
    Mean,
}

/// How a sentence-transformers model pools: the modes (several are concatenated, in the
/// order CLS, max, mean, as sentence-transformers does) and whether a `Normalize` module
/// follows. The default, for a plain BERT folder, is all-MiniLM-L6-v2's: mean, then L2.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolingConfig {
    pub modes: Vec<PoolingMode>,
    pub normalize: bool,
}

impl Default for PoolingConfig {
    fn default() -> PoolingConfig {
        PoolingConfig { modes: vec![PoolingMode::Mean], normalize: true }
    }
}

/// One entry of a sentence-transformers `modules.json`: the module's folder (`""` for the
/// model folder itself) and its Python type (`sentence_transformers.models.Pooling`...).
#[derive(Clone, Debug, Deserialize)]
pub struct SentenceModule {
    #[serde(default)]
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
}

/// `dir/modules.json`, or `None` when the folder has none.
///
/// # Errors
/// A file that cannot be read or is not a JSON list of `{path, type}` objects.
pub fn read_modules(dir: &Path) -> Result<Option<Vec<SentenceModule>>> {
    let path = dir.join("modules.json");
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Io { path: path.clone(), source })?;
    let modules = serde_json::from_str(&text).map_err(|e| Error::Config { path, message: e.to_string() })?;
    Ok(Some(modules))
}

/// The module of `modules.json` whose type ends in `.{name}` (`Transformer`, `Pooling`...).
pub fn find_module<'a>(modules: &'a [SentenceModule], name: &str) -> Option<&'a SentenceModule> {
    modules.iter().find(|m| m.kind.rsplit('.').next() == Some(name))
}

impl PoolingConfig {
    /// Reads a sentence-transformers folder: the pooling module's `config.json` (the folder
    /// `modules.json` names, else `1_Pooling/`) and whether `modules.json` lists a
    /// `sentence_transformers.models.Normalize`. Missing files give the default (mean + L2);
    /// a `modules.json` without `Normalize` turns normalisation off.
    ///
    /// # Errors
    /// A malformed file, no mode set, or a mode deltaw does not implement
    /// (`mean_sqrt_len_tokens`, `weightedmean_tokens`, `lasttoken`); the message names the
    /// file and the field.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<PoolingConfig> {
        let dir = dir.as_ref();
        let modules = read_modules(dir)?;
        let pooling_dir = modules.as_deref().and_then(|m| find_module(m, "Pooling")).map_or("1_Pooling", |m| &m.path);
        let normalize = modules.as_deref().is_none_or(|m| find_module(m, "Normalize").is_some());
        let path = dir.join(pooling_dir).join("config.json");
        if !path.exists() {
            return Ok(PoolingConfig { normalize, ..PoolingConfig::default() });
        }
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Io { path: path.clone(), source })?;
        let fields: serde_json::Map<String, Value> =
            serde_json::from_str(&text).map_err(|e| Error::Config { path: path.clone(), message: e.to_string() })?;
        let on = |field: &str| fields.get(field).and_then(Value::as_bool).unwrap_or(false);
        for field in ["pooling_mode_mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken"]
        {
            if on(field) {
                return Err(Error::Config {
                    path,
                    message: format!("{field} is not supported (cls, max and mean are)"),
                });
            }
        }
        let named =
            [("pooling_mode_cls_token", PoolingMode::Cls), ("pooling_mode_max_tokens", PoolingMode::Max)].into_iter();
        let modes: Vec<PoolingMode> = named
            .chain([("pooling_mode_mean_tokens", PoolingMode::Mean)])
            .filter(|(f, _)| on(f))
            .map(|(_, m)| m)
            .collect();
        if modes.is_empty() {
            return Err(Error::Config { path, message: "no pooling_mode_* field is true".into() });
        }
        Ok(PoolingConfig { modes, normalize })
    }
}

/// Pools token states into one vector per text, as sentence-transformers' `Pooling` (then
/// `Normalize` when `config.normalize`) computes it. Shapes: `hidden` `(B, T, C)`,
/// `attention_mask` `(B, T)` (any dtype); returns `(B, C · modes)`.
///
/// - CLS: `h[:, 0]`.
/// - max: `max_t h_t` with padded positions set to -1e9 first (an all-padding row gives -1e9).
/// - mean: `Σ_t m_t h_t / max(Σ_t m_t, 1e-9)`.
/// - normalize: `e / max(‖e‖, 1e-12)` over the concatenation.
///
/// # Panics
/// If the mask's shape is not `hidden`'s first two dims, or `config.modes` is empty.
#[track_caller]
pub fn pool(hidden: &Tensor, attention_mask: &Tensor, config: &PoolingConfig) -> Tensor {
    let (b, t) = (hidden.dims()[0], hidden.dims()[1]);
    assert_eq!(
        attention_mask.dims(),
        &[b, t],
        "pool: mask {:?} vs hidden {:?}",
        attention_mask.shape(),
        hidden.shape()
    );
    assert!(!config.modes.is_empty(), "pool: no pooling mode");
    let dev = hidden.device();
    let mask = attention_mask.to_dtype(DType::F32).expect("a 0/1 mask converts").reshape((b, t, 1)); // (B, T, 1)
    let parts: Vec<Tensor> = config
        .modes
        .iter()
        .map(|mode| match mode {
            PoolingMode::Cls => hidden.narrow(1, 0, 1).squeeze(1), // (B, C)
            PoolingMode::Max => hidden.masked_fill(&mask.eq(&Tensor::scalar(0.0, &dev)), -1e9).max(1),
            PoolingMode::Mean => {
                let count = mask.sum(1).maximum(&Tensor::scalar(1e-9, &dev)); // (B, 1)
                hidden.mul(&mask).sum(1).div(&count)
            }
        })
        .collect();
    let pooled = if parts.len() == 1 { parts[0].clone() } else { Tensor::cat(&parts.iter().collect::<Vec<_>>(), 1) };
    if !config.normalize {
        return pooled;
    }
    let norm = pooled.mul(&pooled).sum_keepdim(-1).sqrt().maximum(&Tensor::scalar(1e-12, &dev)); // (B, 1)
    pooled.div(&norm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltaw_tensor::Device;

    fn hidden_and_mask() -> (Tensor, Tensor) {
        // Two texts of three slots, C = 2; the second text has one padded slot.
        let hidden = Tensor::from_vec(
            vec![1.0f32, 2.0, 3.0, -4.0, 5.0, 0.0, 2.0, 2.0, -1.0, 6.0, 9.0, 9.0],
            (2, 3, 2),
            &Device::Cpu,
        );
        let mask = Tensor::from_vec(vec![1i32, 1, 1, 1, 1, 0], (2, 3), &Device::Cpu);
        (hidden.unwrap(), mask.unwrap())
    }

    fn raw(modes: Vec<PoolingMode>) -> PoolingConfig {
        PoolingConfig { modes, normalize: false }
    }

    #[test]
    fn cls_max_and_mean_skip_padding() {
        let (h, m) = hidden_and_mask();
        assert_eq!(pool(&h, &m, &raw(vec![PoolingMode::Cls])).to_vec(), vec![1.0, 2.0, 2.0, 2.0]);
        assert_eq!(pool(&h, &m, &raw(vec![PoolingMode::Max])).to_vec(), vec![5.0, 2.0, 2.0, 6.0]);
        assert_eq!(pool(&h, &m, &raw(vec![PoolingMode::Mean])).to_vec(), vec![3.0, -2.0 / 3.0, 0.5, 4.0]);
        let both = pool(&h, &m, &raw(vec![PoolingMode::Cls, PoolingMode::Max]));
        assert_eq!(both.dims(), &[2, 4]);
        assert_eq!(both.to_vec(), vec![1.0, 2.0, 5.0, 2.0, 2.0, 2.0, 2.0, 6.0]);
    }

    #[test]
    fn default_pooling_equals_mean_pool_normalize() {
        let (h, m) = hidden_and_mask();
        assert_eq!(pool(&h, &m, &PoolingConfig::default()).to_vec(), mean_pool_normalize(&h, &m).to_vec());
        let unit = pool(&h, &m, &PoolingConfig { modes: vec![PoolingMode::Max], normalize: true }).to_vec();
        assert!((unit[0] * unit[0] + unit[1] * unit[1] - 1.0).abs() < 1e-6);
    }

    fn folder(tag: &str, files: &[(&str, &str)]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("deltaw-pooling-{tag}-{}", std::process::id()));
        for (name, text) in files {
            let path = dir.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    const MODULES: &str = r#"[{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]"#;

    #[test]
    fn config_is_read_from_pooling_and_modules_json() {
        let empty = folder("empty", &[]);
        assert_eq!(PoolingConfig::from_dir(&empty).unwrap(), PoolingConfig::default());
        let cls = r#"{"pooling_mode_cls_token": true, "pooling_mode_mean_tokens": false}"#;
        let dir = folder("cls", &[("modules.json", MODULES), ("1_Pooling/config.json", cls)]);
        assert_eq!(PoolingConfig::from_dir(&dir).unwrap(), raw(vec![PoolingMode::Cls]), "no Normalize module");
        let sqrt = r#"{"pooling_mode_mean_sqrt_len_tokens": true}"#;
        let bad = folder("sqrt", &[("1_Pooling/config.json", sqrt)]);
        let err = PoolingConfig::from_dir(&bad).unwrap_err().to_string();
        assert!(err.contains("1_Pooling/config.json") && err.contains("pooling_mode_mean_sqrt_len_tokens"), "{err}");
        for d in [empty, dir, bad] {
            std::fs::remove_dir_all(d).ok();
        }
    }
}
