//! Taking a model's parameters out of a checkpoint by name, with every problem reported at
//! once: missing tensors, tensors of the wrong shape, and tensors nothing used.

use crate::error::{Error, Result};
use crate::module::{Init, ParamSource};
use deltaw_autograd::Var;
use deltaw_tensor::{safetensors, DType, Device, Tensor};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The tensors of a `model.safetensors`, handed out by name.
pub struct Checkpoint {
    path: PathBuf,
    tensors: BTreeMap<String, Tensor>,
    /// A prefix Hugging Face sometimes writes before every key (`transformer.` for GPT-2
    /// head models), found once and stripped.
    prefix: String,
    problems: Vec<String>,
    /// Where the tensors were loaded, and where stand-ins for bad ones are made.
    device: Device,
}

impl Checkpoint {
    /// Loads `dir/model.safetensors`; `prefix` is the optional key prefix to strip.
    pub fn load(dir: &Path, prefix: &str, device: &Device) -> Result<Checkpoint> {
        let path = dir.join("model.safetensors");
        let tensors = safetensors::load(&path, device)?;
        let prefix = if tensors.keys().any(|k| k.starts_with(prefix)) { prefix.to_string() } else { String::new() };
        Ok(Checkpoint { path, tensors, prefix, problems: Vec::new(), device: device.clone() })
    }

    /// Removes and returns `name` as f32 with the expected shape, or records why it cannot.
    pub fn take(&mut self, name: &str, shape: &[usize]) -> Tensor {
        let key = format!("{}{name}", self.prefix);
        match self.tensors.remove(&key) {
            Some(t) if t.dims() == shape => t.to_dtype(DType::F32).unwrap_or(t),
            Some(t) => {
                self.problems.push(format!("'{key}' has shape {:?}, expected {shape:?}", t.shape()));
                Tensor::zeros(shape.to_vec(), &self.device)
            }
            None => {
                self.problems.push(format!("'{key}' is missing"));
                Tensor::zeros(shape.to_vec(), &self.device)
            }
        }
    }

    /// Drops the non-parameter buffers some checkpoints carry (keys ending in one of
    /// `suffixes`, e.g. BERT's `embeddings.position_ids`, older GPT-2's `attn.bias` causal
    /// masks), so they are not reported as unexpected.
    pub fn skip_buffers(&mut self, suffixes: &[&str]) {
        self.tensors.retain(|k, _| !suffixes.iter().any(|s| k.ends_with(s)));
    }

    /// Succeeds when every tensor was found with its shape and none is left over.
    pub fn finish(self) -> Result<()> {
        let mut problems = self.problems;
        problems.extend(self.tensors.keys().map(|k| format!("'{k}' is unexpected")));
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::Checkpoint { path: self.path, problems: problems.join("; ") })
        }
    }
}

impl ParamSource for Checkpoint {
    /// The stored tensor (the init is for fresh models), as a parameter named `key`.
    fn param(&mut self, key: &str, shape: &[usize], _init: Init) -> Var {
        Var::parameter(self.take(key, shape)).named(key)
    }
}
