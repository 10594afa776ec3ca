//! Taking a model's parameters out of a checkpoint by name, with every problem reported at
//! once: missing tensors, tensors of the wrong shape, and tensors nothing used.

use crate::error::{Error, Result};
use crate::module::{Init, ParamSource};
use deltaw_autograd::Var;
use deltaw_tensor::{safetensors, DType, Device, QuantType, Tensor};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// How loaded weights are held.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WeightDtype {
    /// Every parameter widened to f32 and trainable: for full fine-tuning and reference checks.
    #[default]
    F32,
    /// Matrices stored as bf16 or f16 (embeddings, linear weights) stay in that dtype as
    /// frozen parameters, computed in f32 by the kernels that read them; vectors (norms,
    /// biases) are widened. For inference and LoRA on a half-precision base: the base takes
    /// half the memory of an f32 copy and half the bytes per decoded token.
    Stored,
    /// As [`WeightDtype::Stored`], and the linear layers' weights inside the blocks (not the
    /// embeddings or the head) block-quantized as they are read, frozen: the base of QLoRA.
    /// A matrix whose rows do not split into whole blocks stays as stored.
    Quant(QuantType),
}

/// How a quantizable checkpoint matrix lies, for [`WeightDtype::Quant`]. Blocks always run
/// along the input (dot-product) axis, the layout the quantized products read directly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuantLayout {
    /// `W (out, in)`, as `nn.Linear` stores it: its rows are quantized.
    Rows,
    /// `W (in, out)`, as GPT-2's `Conv1D` stores it: the rows of `Wᵀ` are quantized and the
    /// parameter is the view `(Q)ᵀ`, so `x @ W` still reads whole blocks.
    Transposed,
}

impl QuantLayout {
    /// The layout of a linear layer's weight: [`QuantLayout::Transposed`] when it is stored
    /// `(in, out)` (PEFT's `fan_in_fan_out`, GPT-2's `Conv1D`), else [`QuantLayout::Rows`].
    pub fn of(fan_in_fan_out: bool) -> QuantLayout {
        if fan_in_fan_out {
            QuantLayout::Transposed
        } else {
            QuantLayout::Rows
        }
    }

    /// `t` (2-D, any float dtype) quantized to `ty` as this layout says, or `t` itself when
    /// its blocks would not be whole (a dot-product axis that is not a multiple of the block).
    ///
    /// ```
    /// use deltaw_tensor::{DType, Device, QuantType, Tensor};
    /// use deltaw_transformer::QuantLayout;
    /// let w = Tensor::randn((64, 8), deltaw_tensor::Seed(0), &Device::Cpu); // Conv1D (in, out)
    /// let q = QuantLayout::Transposed.quantize(w, QuantType::Q8_0)?;
    /// assert_eq!((q.dims(), q.dtype()), (&[64, 8][..], DType::Quant(QuantType::Q8_0)));
    /// # Ok::<(), deltaw_tensor::Error>(())
    /// ```
    ///
    /// # Errors
    /// A non-finite value (named by index).
    pub fn quantize(self, t: Tensor, ty: QuantType) -> deltaw_tensor::Result<Tensor> {
        let b = ty.block_elems();
        match (t.dims(), self) {
            (&[_, cols], QuantLayout::Rows) if cols.is_multiple_of(b) => t.to_dtype(DType::Quant(ty)),
            (&[rows, _], QuantLayout::Transposed) if rows.is_multiple_of(b) => {
                Ok(t.t().to_dtype(DType::Quant(ty))?.t())
            }
            _ => Ok(t),
        }
    }
}

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
    dtype: WeightDtype,
}

impl Checkpoint {
    /// Loads `dir/model.safetensors`, or every shard that `dir/model.safetensors.index.json`
    /// lists (transformers' sharded format); `prefix` is the optional key prefix to strip.
    ///
    /// # Errors
    /// A missing or unreadable file; for a sharded folder, a malformed index, shards that do
    /// not exist (all named) or a tensor missing from the shard the index names.
    pub fn load(dir: &Path, prefix: &str, device: &Device) -> Result<Checkpoint> {
        Checkpoint::load_as(dir, prefix, device, WeightDtype::F32, |_| None)
    }

    /// [`Checkpoint::load`] handing weights out as `dtype` says. Under [`WeightDtype::Quant`]
    /// each tensor that `layout(name)` names is quantized as soon as it is read, before the
    /// next one is, so the peak holds the quantized weights plus one tensor as stored.
    ///
    /// # Errors
    /// As [`Checkpoint::load`].
    pub fn load_as(
        dir: &Path,
        prefix: &str,
        device: &Device,
        dtype: WeightDtype,
        layout: impl Fn(&str) -> Option<QuantLayout>,
    ) -> Result<Checkpoint> {
        // The f32 tensors read and quantized are freed at once, not pooled: nothing later has
        // their sizes, so in the CPU buffer pool they would only hold memory.
        let mut map = |name: &str, t: Tensor| match (dtype, layout(name)) {
            (WeightDtype::Quant(ty), Some(l)) => deltaw_tensor::cpu::pool::unpooled(|| l.quantize(t, ty)),
            _ => Ok(t),
        };
        let index = dir.join("model.safetensors.index.json");
        let (path, tensors) = if index.exists() {
            (index.clone(), load_shards(dir, &index, device, &mut map)?)
        } else {
            let path = dir.join("model.safetensors");
            let tensors = safetensors::load_mapped(&path, device, &mut map)?;
            (path, tensors)
        };
        let prefix = if tensors.keys().any(|k| k.starts_with(prefix)) { prefix.to_string() } else { String::new() };
        Ok(Checkpoint { path, tensors, prefix, problems: Vec::new(), device: device.clone(), dtype })
    }

    /// A checkpoint of tensors already loaded and named as transformers names them (a GGUF
    /// file's, renamed); `path` names the file in errors.
    pub fn from_tensors(path: &Path, tensors: BTreeMap<String, Tensor>, device: &Device) -> Checkpoint {
        let device = device.clone();
        Checkpoint {
            path: path.to_path_buf(),
            tensors,
            prefix: String::new(),
            problems: Vec::new(),
            device,
            dtype: WeightDtype::F32,
        }
    }

    /// How [`ParamSource::param`] hands out weights (f32 by default).
    pub fn with_dtype(mut self, dtype: WeightDtype) -> Checkpoint {
        self.dtype = dtype;
        self
    }

    /// Removes and returns `name` as f32 with the expected shape, or records why it cannot.
    pub fn take(&mut self, name: &str, shape: &[usize]) -> Tensor {
        self.take_as(name, shape, false)
    }

    /// [`Checkpoint::take`], keeping a bf16/f16 or quantized tensor's dtype when `keep_stored`.
    fn take_as(&mut self, name: &str, shape: &[usize], keep_stored: bool) -> Tensor {
        let key = format!("{}{name}", self.prefix);
        match self.tensors.remove(&key) {
            Some(t) if t.dims() == shape && keep_stored && t.dtype() != DType::F32 && t.dtype() != DType::I32 => t,
            Some(t) if t.dims() == shape => t.to_dtype(DType::F32).unwrap_or(t),
            Some(t) => {
                self.problems.push(format!("'{key}' has shape {:?}, expected {shape:?}", t.shape()));
                self.stand_in(shape)
            }
            None if self.path.ends_with("model.safetensors.index.json") => {
                self.problems.push(format!("'{key}' is in no shard (the index's weight_map does not list it)"));
                self.stand_in(shape)
            }
            None => {
                self.problems.push(format!("'{key}' is missing"));
                self.stand_in(shape)
            }
        }
    }

    /// A zero of `shape` for a tensor already reported as a problem, so the model can finish
    /// building before [`Checkpoint::finish`] reports everything at once. It is one element
    /// broadcast (stride 0), not `shape`'s worth of memory: the shape comes from `config.json`,
    /// and a crafted size must give the error, not an allocation failure.
    fn stand_in(&self, shape: &[usize]) -> Tensor {
        Tensor::zeros(vec![1; shape.len()], &self.device).expand(shape.to_vec())
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

/// The tensors of every shard an index lists: `{"weight_map": {tensor: shard file}}`.
fn load_shards(
    dir: &Path,
    index: &Path,
    device: &Device,
    convert: &mut dyn FnMut(&str, Tensor) -> deltaw_tensor::Result<Tensor>,
) -> Result<BTreeMap<String, Tensor>> {
    let bad = |problems: String| Error::Checkpoint { path: index.to_path_buf(), problems };
    let text = std::fs::read_to_string(index).map_err(|source| Error::Io { path: index.to_path_buf(), source })?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
    let map = json.get("weight_map").and_then(|m| m.as_object()).ok_or_else(|| bad("no object weight_map".into()))?;
    let mut by_shard: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (tensor, shard) in map {
        let shard = shard.as_str().ok_or_else(|| bad(format!("weight_map['{tensor}'] is not a file name")))?;
        if shard.contains('/') || shard.contains('\\') || shard.starts_with('.') {
            return Err(bad(format!("weight_map['{tensor}'] names '{shard}', not a file in the folder")));
        }
        by_shard.entry(shard.to_string()).or_default().push(tensor.clone());
    }
    let missing: Vec<&String> = by_shard.keys().filter(|s| !dir.join(s).is_file()).collect();
    if !missing.is_empty() {
        let names: Vec<String> = missing.iter().map(|s| format!("'{s}'")).collect();
        return Err(bad(format!("missing shard file(s) {} in {}", names.join(", "), dir.display())));
    }
    let mut tensors = BTreeMap::new();
    let mut problems = Vec::new();
    for (shard, names) in by_shard {
        let mut loaded = safetensors::load_mapped(dir.join(&shard), device, &mut *convert)?;
        for name in names {
            match loaded.remove(&name) {
                Some(t) => drop(tensors.insert(name, t)),
                None => problems.push(format!("'{name}' is not in '{shard}', where the index puts it")),
            }
        }
        problems.extend(loaded.into_keys().map(|k| format!("'{k}' in '{shard}' is not in the index")));
    }
    if problems.is_empty() {
        Ok(tensors)
    } else {
        Err(bad(problems.join("; ")))
    }
}

impl ParamSource for Checkpoint {
    /// The stored tensor (the init is for fresh models), as a parameter named `key`; under
    /// [`WeightDtype::Stored`] a half-precision matrix stays half and frozen, and under
    /// [`WeightDtype::Quant`] a quantized one stays quantized and frozen too.
    fn param(&mut self, key: &str, shape: &[usize], _init: Init) -> Var {
        let keep_stored = self.dtype != WeightDtype::F32 && shape.len() >= 2;
        let value = self.take_as(key, shape, keep_stored);
        let trainable = value.dtype() == DType::F32;
        Var::new(value, trainable).named(key)
    }
}
