//! GGUF files (llama.cpp's format) as deltaw models: the config from the `{arch}.*` metadata,
//! the tokenizer and chat template from `tokenizer.*`, and the tensors renamed from
//! llama.cpp's names (`blk.0.attn_q.weight`) to transformers' (`model.layers.0.self_attn.
//! q_proj.weight`), with the layout changes llama.cpp's converter made undone:
//! - `llama`: the rows of `attn_q` / `attn_k` are permuted so that each head's two rotary
//!   halves interleave (llama.cpp rotates adjacent pairs, transformers the two halves); see
//!   [`unpermute_rows`]. `qwen2` and `qwen3` are converted without it.
//! - `gpt2`: the `Conv1D` weights, stored `(in, out)` by transformers, were transposed to
//!   `(out, in)`; they are transposed back. `output.weight`, the converter's copy of the token
//!   embedding, is dropped: deltaw's GPT-2 head is tied.
//!
//! Block-quantized tensors (Q8_0, Q4_K...) go through [`quantized_weight`].
//!
//! ```no_run
//! use deltaw_tensor::Device;
//! use deltaw_transformer::gguf::GgufModel;
//! use deltaw_transformer::{generate_text, GenerateOptions, WeightDtype};
//! let lm = GgufModel::load("model.gguf", &Device::Cpu, WeightDtype::Stored)?;
//! let ids = lm.tokenizer.encode("Once upon a time")?;
//! let new = lm.model.try_generate(&ids, &GenerateOptions::greedy(16))?;
//! println!("{}", lm.tokenizer.decode(&new)?);
//! # Ok::<(), deltaw_transformer::Error>(())
//! ```

mod config;
mod export;
mod names;
mod vocab;
mod vocab_export;

pub use config::{gpt2_config, llama_config, GgufArch};
pub use export::{export_gguf, export_model, ExportReport, GgufQuant};
pub use names::{gguf_name, hf_name};
pub use vocab::GgufVocab;

use crate::error::{Error, Result};
use crate::llama_config::LlamaFamily;
use crate::model::CausalLm;
use crate::tokenizer::Tokenizer;
use crate::tokenizer_config::GenerationConfig;
use crate::weights::{Checkpoint, WeightDtype};
use crate::{Gpt2, Llama};
use deltaw_tensor::gguf::{GgufFile, GgufTensorInfo, GgufType};
use deltaw_tensor::{quant, DType, Device, QuantType, Tensor};
use std::collections::BTreeMap;
use std::path::Path;

/// A causal LM read from one GGUF file, with its tokenizer and generation ids.
pub struct GgufModel {
    pub model: Box<dyn CausalLm>,
    /// From `tokenizer.*`, its [`Tokenizer::config`] holding the special tokens and the
    /// chat template (`tokenizer.chat_template`).
    pub tokenizer: Tokenizer,
    /// EOS (`tokenizer.ggml.eos_token_id`, and `eot_token_id` when it differs), BOS and pad.
    pub generation: GenerationConfig,
    pub arch: GgufArch,
}

impl GgufModel {
    /// Reads the model, tokenizer and generation ids of the GGUF file at `path`.
    /// `dtype` as for a folder: [`WeightDtype::Stored`] keeps f16/bf16 matrices as they are.
    ///
    /// # Errors
    /// A file that is not valid GGUF, an unsupported architecture, a missing or mistyped
    /// metadata key (named), or tensors that do not fit the config (all named at once).
    pub fn load(path: impl AsRef<Path>, device: &Device, dtype: WeightDtype) -> Result<GgufModel> {
        let path = path.as_ref();
        let file = GgufFile::open(path)?;
        let metadata = file.metadata();
        GgufArch::from_metadata(metadata, path)?; // an unknown architecture is named first
        let vocab = GgufVocab::from_metadata(metadata)?;
        let tokenizer = vocab.tokenizer(path)?;
        let eos: Vec<i32> = [vocab.eos_token_id, eot_id(&file)?].into_iter().flatten().map(|i| i as i32).fold(
            Vec::new(),
            |mut v, i| {
                if !v.contains(&i) {
                    v.push(i);
                }
                v
            },
        );
        let generation = GenerationConfig {
            eos_token_ids: eos,
            bos_token_id: vocab.bos_token_id.map(|i| i as i32),
            pad_token_id: vocab.padding_token_id.map(|i| i as i32),
        };
        let (model, arch) = build_model(&file, vocab.tokens.len(), device, dtype)?;
        tokenizer.check_vocab(model.vocab_size())?;
        Ok(GgufModel { model, tokenizer, generation, arch })
    }
}

/// The causal LM of the GGUF file at `path` alone, without reading its tokenizer: for a file
/// whose vocabulary deltaw cannot build (`tokenizer.ggml.model` `"none"`, as benchmark files
/// driven by token ids have) or a caller that brings its own. `dtype` as for
/// [`GgufModel::load`].
///
/// # Errors
/// As [`GgufModel::load`], less the tokenizer's.
pub fn load_causal_lm(path: impl AsRef<Path>, device: &Device, dtype: WeightDtype) -> Result<Box<dyn CausalLm>> {
    let file = GgufFile::open(path.as_ref())?;
    let tokens = file.metadata().get_str_array("tokenizer.ggml.tokens").map(|t| t.len()).unwrap_or(0);
    Ok(build_model(&file, tokens, device, dtype)?.0)
}

/// The model of `file`; its vocabulary size is the token embedding's rows (`tokens`, the
/// tokenizer's size, when the file has no such tensor).
fn build_model(
    file: &GgufFile,
    tokens: usize,
    device: &Device,
    dtype: WeightDtype,
) -> Result<(Box<dyn CausalLm>, GgufArch)> {
    let (path, metadata) = (file.path(), file.metadata());
    let arch = GgufArch::from_metadata(metadata, path)?;
    let vocab_size = match file.tensor_info("token_embd.weight") {
        Some(info) if info.shape.len() == 2 => info.shape[0],
        _ => tokens,
    };
    let tensors = hf_tensors(file, arch, device, dtype != WeightDtype::F32)?;
    let mut ck = Checkpoint::from_tensors(path, tensors, device).with_dtype(dtype);
    let model: Box<dyn CausalLm> = match arch {
        GgufArch::Llama(family) => {
            let tied = file.tensor_info("output.weight").is_none();
            let bias = file.tensor_info("blk.0.attn_q.bias").is_some();
            let factors = rope_freqs(file)?;
            let config = llama_config(metadata, family, vocab_size, tied, bias, factors.as_deref(), path)?;
            Box::new(Llama::build(config, &mut ck)?)
        }
        GgufArch::Gpt2 => Box::new(Gpt2::build(gpt2_config(metadata, vocab_size, path)?, &mut ck)),
    };
    ck.finish()?;
    Ok((model, arch))
}

/// The tensor in which llama.cpp stores Llama 3's rope scaling, one factor per frequency.
pub const ROPE_FREQS: &str = "rope_freqs.weight";

/// The factors of [`ROPE_FREQS`], when the file has that tensor.
///
/// # Errors
/// A tensor that cannot be read.
pub fn rope_freqs(file: &GgufFile) -> Result<Option<Vec<f32>>> {
    match file.tensor_info(ROPE_FREQS) {
        None => Ok(None),
        Some(_) => Ok(Some(file.tensor(ROPE_FREQS, &Device::Cpu)?.to_vec())),
    }
}

/// `tokenizer.ggml.eot_token_id` (end of turn, `<|eot_id|>`), when the file has one.
fn eot_id(file: &GgufFile) -> Result<Option<u32>> {
    let key = "tokenizer.ggml.eot_token_id";
    match file.metadata().get(key) {
        None => Ok(None),
        Some(_) => Ok(u32::try_from(file.metadata().get_uint(key)?).ok()),
    }
}

/// Every tensor of `file` under transformers' name, laid out as transformers holds it.
/// Names deltaw does not know keep their GGUF name, so the checkpoint reports them.
fn hf_tensors(file: &GgufFile, arch: GgufArch, device: &Device, keep_blocks: bool) -> Result<BTreeMap<String, Tensor>> {
    let metadata = file.metadata();
    let heads = |key: &str| -> Result<usize> { Ok(metadata.get_uint(&format!("{}.{key}", arch.as_str()))? as usize) };
    let mut out = BTreeMap::new();
    for info in file.tensor_infos() {
        let name = info.name.as_str();
        if name == ROPE_FREQS {
            continue; // the rope's config, read by `rope_freqs`
        }
        let Some(key) = hf_name(arch, name) else {
            out.insert(name.to_string(), read_tensor(file, info, None, device, keep_blocks)?);
            continue;
        };
        if key.is_empty() {
            continue; // GPT-2's copy of the tied head
        }
        // llama.cpp's converter permuted q's rows with the query heads, k's with the kv heads.
        let permuted = match arch {
            GgufArch::Llama(LlamaFamily::Llama | LlamaFamily::Mistral)
                if key.ends_with("q_proj.weight") || key.ends_with("q_proj.bias") =>
            {
                Some(heads("attention.head_count")?)
            }
            GgufArch::Llama(LlamaFamily::Llama | LlamaFamily::Mistral)
                if key.ends_with("k_proj.weight") || key.ends_with("k_proj.bias") =>
            {
                let nh = heads("attention.head_count")?;
                Some(
                    metadata
                        .get("llama.attention.head_count_kv")
                        .map_or(Ok(nh), |_| heads("attention.head_count_kv"))?,
                )
            }
            _ => None,
        };
        let mut t = read_tensor(file, info, permuted, device, keep_blocks)?;
        if arch == GgufArch::Gpt2 && is_conv1d(&key) && t.rank() == 2 {
            // Blocks stay along the input axis: the view (Q)ᵀ, as a quantized base holds it.
            t = if t.dtype().quant_type().is_some() { t.t() } else { t.to_dtype(DType::F32)?.t().contiguous() };
        }
        out.insert(key, t);
    }
    Ok(out)
}

/// GPT-2's weights that transformers stores `(in, out)` (`Conv1D`).
fn is_conv1d(key: &str) -> bool {
    key.ends_with(".weight") && (key.contains(".c_attn.") || key.contains(".c_proj.") || key.contains(".c_fc."))
}

/// Tensor `info` of `file`, its rows un-permuted for `permuted = Some(heads)`; a quantized
/// one kept in its blocks when `keep_blocks`, else dequantized.
fn read_tensor(
    file: &GgufFile,
    info: &GgufTensorInfo,
    permuted: Option<usize>,
    device: &Device,
    keep_blocks: bool,
) -> Result<Tensor> {
    let bad = |message: String| Error::Config { path: file.path().to_path_buf(), message };
    match (info.ty, permuted) {
        (GgufType::Quant(ty), _) => {
            let mut bytes = file.read_bytes(&info.name)?;
            if let Some(heads) = permuted {
                let rows = info.shape[0];
                bytes = unpermute_rows(&bytes, rows, heads).map_err(|m| bad(format!("tensor {}: {m}", info.name)))?;
            }
            quantized_weight(ty, &info.shape, bytes, device, keep_blocks)
        }
        (_, None) => Ok(file.tensor(&info.name, device)?),
        (_, Some(heads)) => {
            // Float rows, un-permuted on their f32 bytes.
            let t = file.tensor(&info.name, &Device::Cpu)?.to_dtype(DType::F32)?;
            let values: Vec<f32> = t.to_vec();
            let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            let bytes =
                unpermute_rows(&bytes, info.shape[0], heads).map_err(|m| bad(format!("tensor {}: {m}", info.name)))?;
            let values: Vec<f32> =
                bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            Ok(Tensor::from_vec(values, info.shape.clone(), device)?)
        }
    }
}

/// Undoes llama.cpp's q/k row permutation, on rows of any byte width (a quantized row's blocks
/// move with it). The converter took each head's `hs` rows, transformers' two rotary halves
/// `[x0 .. x(hs/2-1) | y0 .. y(hs/2-1)]`, and interleaved them as `x0 y0 x1 y1 ...` (rows
/// viewed `(heads, 2, hs/2)` and swapped to `(heads, hs/2, 2)`), so row `h·hs + 2i + j` of
/// the file is row `h·hs + j·hs/2 + i` of transformers' weight.
///
/// ```
/// use deltaw_transformer::gguf::unpermute_rows;
/// // One head of 4 rows, one byte each: the file holds x0 y0 x1 y1.
/// assert_eq!(unpermute_rows(&[10, 20, 11, 21], 4, 1).unwrap(), vec![10, 11, 20, 21]);
/// ```
///
/// # Errors
/// When `rows` is not `heads` times an even head size, or the bytes are not `rows` rows.
pub fn unpermute_rows(bytes: &[u8], rows: usize, heads: usize) -> std::result::Result<Vec<u8>, String> {
    if heads == 0
        || !rows.is_multiple_of(heads)
        || !(rows / heads).is_multiple_of(2)
        || !bytes.len().is_multiple_of(rows.max(1))
    {
        return Err(format!("{rows} rows of {} bytes cannot be {heads} heads of an even size", bytes.len()));
    }
    let (hs, row) = (rows / heads, bytes.len() / rows);
    let mut out: Vec<u8> = deltaw_tensor::cpu::huge::zeroed(bytes.len());
    for h in 0..heads {
        for i in 0..hs / 2 {
            for j in 0..2 {
                let (from, to) = (h * hs + 2 * i + j, h * hs + j * hs / 2 + i);
                out[to * row..(to + 1) * row].copy_from_slice(&bytes[from * row..(from + 1) * row]);
            }
        }
    }
    Ok(out)
}

/// A block-quantized weight as the model holds it: its blocks as they are
/// ([`Tensor::from_quant`], read directly by the quantized products on the CPU and in WGSL)
/// when `keep_blocks`, else dequantized to f32 (llama.cpp's reference arithmetic,
/// [`quant::dequantize`]).
///
/// # Errors
/// When the byte count does not match the shape (the last dim a whole number of blocks).
pub fn quantized_weight(
    ty: QuantType,
    shape: &[usize],
    bytes: Vec<u8>,
    device: &Device,
    keep_blocks: bool,
) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let last = shape.last().copied().unwrap_or(0);
    let expected = ty.bytes_for(n).filter(|_| last.is_multiple_of(ty.block_elems()));
    if expected != Some(bytes.len()) {
        return Err(Error::Input(format!(
            "{} tensor of shape {shape:?}: {} bytes, expected rows of whole {}-element blocks ({:?} bytes)",
            ty.name(),
            bytes.len(),
            ty.block_elems(),
            expected
        )));
    }
    if keep_blocks {
        return Ok(Tensor::from_quant(ty, shape.to_vec(), bytes, device)?);
    }
    let mut values = vec![0.0f32; n];
    quant::dequantize(ty, &bytes, &mut values);
    Ok(Tensor::from_vec(values, shape.to_vec(), device)?)
}
