//! Writing a Hugging Face model folder as one GGUF file in llama.cpp's layout: metadata from
//! `config.json`, the tokenizer and chat template from the folder, tensors renamed
//! ([`gguf_name`]), q/k rows permuted for `llama`, GPT-2's `Conv1D` weights transposed, and the
//! matrices stored as f16 or block-quantized.

use super::config::GgufArch;
use super::names::gguf_name;
use super::vocab::GgufVocab;
use crate::error::{Error, Result};
use crate::llama_config::{LlamaConfig, LlamaFamily};
use crate::model::{load_causal_lm, Model};
use crate::module::named_parameters;
use deltaw_tensor::gguf::{GgufType, GgufValue, GgufWriter};
use deltaw_tensor::{quant, DType, Device, QuantType, Tensor};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// How the matrices of an exported file are stored (vectors, norms and biases stay f32).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GgufQuant {
    /// Every matrix f16.
    F16,
    /// Every matrix Q8_0 (8.5 bits per weight).
    Q8_0,
    /// Every matrix Q4_0 (4.5 bits per weight).
    Q4_0,
    /// llama.cpp's Q4_K_M mix: Q4_K, with Q6_K for `attn_v`, `ffn_down` and the output head,
    /// where those matter most.
    Q4KM,
}

impl GgufQuant {
    /// The names `--quant` takes.
    pub const NAMES: [&'static str; 4] = ["f16", "q8_0", "q4_0", "q4_k_m"];

    /// `"f16"`, `"q8_0"`, `"q4_0"` or `"q4_k_m"` (any case).
    pub fn from_name(name: &str) -> Option<GgufQuant> {
        match name.to_ascii_lowercase().as_str() {
            "f16" => Some(GgufQuant::F16),
            "q8_0" => Some(GgufQuant::Q8_0),
            "q4_0" => Some(GgufQuant::Q4_0),
            "q4_k_m" => Some(GgufQuant::Q4KM),
            _ => None,
        }
    }

    /// llama.cpp's `general.file_type` (its `LLAMA_FTYPE_MOSTLY_*`).
    fn file_type(self) -> u32 {
        match self {
            GgufQuant::F16 => 1,
            GgufQuant::Q4_0 => 2,
            GgufQuant::Q8_0 => 7,
            GgufQuant::Q4KM => 15,
        }
    }

    /// The storage of matrix `name` (a GGUF name).
    fn matrix_type(self, name: &str) -> GgufType {
        match self {
            GgufQuant::F16 => GgufType::F16,
            GgufQuant::Q8_0 => GgufType::Quant(QuantType::Q8_0),
            GgufQuant::Q4_0 => GgufType::Quant(QuantType::Q4_0),
            GgufQuant::Q4KM if name == "output.weight" || name.contains(".attn_v.") || name.contains(".ffn_down.") => {
                GgufType::Quant(QuantType::Q6K)
            }
            GgufQuant::Q4KM => GgufType::Quant(QuantType::Q4K),
        }
    }
}

/// What an export wrote.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExportReport {
    /// Tensors per stored type (`"q8_0"`, `"F32"`...).
    pub types: BTreeMap<String, usize>,
    /// Matrices whose rows are not a whole number of the type's blocks, stored f16 instead.
    pub fallbacks: Vec<String>,
    /// What the file cannot carry and llama.cpp will do differently (Mistral's sliding window:
    /// llama.cpp's `llama` architecture attends to the whole context).
    pub notes: Vec<String>,
}

/// Writes the causal LM in the folder `dir` as the GGUF file `out` (atomically).
///
/// # Errors
/// A folder deltaw cannot load, a family or rope llama.cpp's format cannot express here
/// (Llama 3.1's rope scaling), a tokenizer without a llama.cpp equivalent, or a write failure.
pub fn export_gguf(dir: &Path, out: &Path, quant: GgufQuant) -> Result<ExportReport> {
    let model = load_causal_lm(dir, &Device::Cpu)?;
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    export_model(model.as_ref(), dir, &name, out, quant)
}

/// [`export_gguf`] of a model already in memory (a merged one, say): `dir` is the folder
/// whose tokenizer files go into the file (and names `config.json` in errors), `name`
/// becomes `general.name`.
///
/// # Errors
/// As [`export_gguf`]; a BERT model, which is no causal LM.
pub fn export_model(model: &dyn Model, dir: &Path, name: &str, out: &Path, quant: GgufQuant) -> Result<ExportReport> {
    let config = model.config_json();
    let arch = match (model.model_type(), LlamaFamily::from_model_type(model.model_type())) {
        ("gpt2", _) => GgufArch::Gpt2,
        (_, Some(family)) => GgufArch::Llama(family),
        (other, None) => {
            return Err(Error::Input(format!("a {other} model cannot be written as GGUF (causal LMs only)")))
        }
    };
    let mut writer = GgufWriter::new();
    let mut metadata = vec![
        ("general.architecture".to_string(), GgufValue::String(arch.as_str().into())),
        ("general.name".into(), GgufValue::String(name.to_string())),
        ("general.file_type".into(), GgufValue::U32(quant.file_type())),
    ];
    metadata.extend(arch_metadata(arch, &config, dir)?);
    let mut vocab = GgufVocab::from_tokenizer_dir(dir)?;
    vocab.pad_to(model.vocab_size())?;
    metadata.extend(vocab.to_metadata());
    for (key, value) in metadata {
        writer.add_metadata(key, value)?;
    }
    let heads = |key: &str| config[key].as_u64().map(|v| v as usize);
    let nh = heads("num_attention_heads").unwrap_or(1);
    let nkv = heads("num_key_value_heads").unwrap_or(nh);
    let mut report = ExportReport::default();
    for (key, param) in named_parameters(model) {
        let gname = gguf_name(arch, &key).ok_or_else(|| Error::Input(format!("no GGUF name for parameter '{key}'")))?;
        let t = param.value().to_dtype(DType::F32)?.contiguous();
        let permute = match arch {
            GgufArch::Llama(LlamaFamily::Llama | LlamaFamily::Mistral) if key.contains(".q_proj.") => Some(nh),
            GgufArch::Llama(LlamaFamily::Llama | LlamaFamily::Mistral) if key.contains(".k_proj.") => Some(nkv),
            _ => None,
        };
        let conv1d = arch == GgufArch::Gpt2 && [".c_attn.", ".c_proj.", ".c_fc."].iter().any(|m| key.contains(m));
        let ty = add_tensor(&mut writer, &gname, t, conv1d, permute, quant, &mut report)?;
        *report.types.entry(ty.to_string()).or_default() += 1;
    }
    if let GgufArch::Llama(_) = arch {
        add_rope_freqs(&mut writer, &config, dir, &mut report)?;
        if let Some(w) =
            config["sliding_window"].as_u64().filter(|&w| Some(w) < config["max_position_embeddings"].as_u64())
        {
            report.notes.push(format!(
                "sliding_window {w} is not stored: llama.cpp attends to the whole context, so past {w} tokens it \
                 decodes differently from deltaw and transformers"
            ));
        }
    }
    writer.write(out)?;
    Ok(report)
}

/// llama.cpp's `rope_freqs.weight` (f32, one factor per frequency) for a Llama 3 rope, which
/// GGUF metadata cannot express; nothing for the other rope types.
fn add_rope_freqs(writer: &mut GgufWriter, config: &Value, dir: &Path, report: &mut ExportReport) -> Result<()> {
    let rope = LlamaConfig::from_json(config.clone(), &dir.join("config.json"))?.rope()?;
    if let Some(factors) = rope.freq_factors() {
        let n = factors.len();
        let t = Tensor::from_vec(factors, n, &Device::Cpu)?;
        let ty = add_tensor(writer, super::ROPE_FREQS, t, false, None, GgufQuant::F16, report)?;
        *report.types.entry(ty.to_string()).or_default() += 1;
    }
    Ok(())
}

/// Adds one parameter `t` (f32) as `gname` in the type `quant` picks for it, and returns that
/// type. `conv1d`: GPT-2's Conv1D weights are stored (in, out) and GGUF wants (out, in).
/// `permute`: the head count of a Llama q/k projection, whose rows llama.cpp interleaves. A
/// matrix whose rows do not split into whole blocks falls back to f16 (noted in `report`).
fn add_tensor(
    writer: &mut GgufWriter,
    gname: &str,
    mut t: Tensor,
    conv1d: bool,
    permute: Option<usize>,
    quant: GgufQuant,
    report: &mut ExportReport,
) -> Result<GgufType> {
    if conv1d && t.rank() == 2 {
        t = t.t().contiguous();
    }
    let shape = t.dims().to_vec();
    let mut values: Vec<f32> = t.to_vec();
    if let Some(h) = permute {
        values = permute_rows(&values, shape[0], h);
    }
    let ty = match if shape.len() == 2 { quant.matrix_type(gname) } else { GgufType::F32 } {
        GgufType::Quant(q) if !shape[1].is_multiple_of(q.block_elems()) => {
            report.fallbacks.push(gname.to_string());
            GgufType::F16
        }
        other => other,
    };
    let bytes = match ty {
        GgufType::Quant(q) => quant::quantize(q, &values)?,
        GgufType::F16 | GgufType::BF16 => {
            let half = Tensor::from_vec(values, shape, &Device::Cpu)?.to_dtype(DType::F16)?;
            writer.add_tensor(gname, &half)?;
            return Ok(GgufType::F16);
        }
        GgufType::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    };
    writer.add_tensor_bytes(gname, ty, &shape, bytes)?;
    Ok(ty)
}

/// llama.cpp's q/k permutation (convert_hf_to_gguf.py's `permute`): in each head, row `i` of
/// the first rotary half goes to `2i`, row `i` of the second to `2i + 1`. Undone by
/// [`super::unpermute_rows`].
fn permute_rows(values: &[f32], rows: usize, heads: usize) -> Vec<f32> {
    let (hs, row) = (rows / heads, values.len() / rows);
    let mut out = vec![0.0; values.len()];
    for h in 0..heads {
        for i in 0..hs / 2 {
            for j in 0..2 {
                let (to, from) = (h * hs + 2 * i + j, h * hs + j * hs / 2 + i);
                out[to * row..(to + 1) * row].copy_from_slice(&values[from * row..(from + 1) * row]);
            }
        }
    }
    out
}

/// The `{arch}.*` keys for a model's `config.json`.
fn arch_metadata(arch: GgufArch, config: &Value, dir: &Path) -> Result<Vec<(String, GgufValue)>> {
    let path = dir.join("config.json");
    let bad = |message: String| Error::Config { path: path.clone(), message };
    let uint = |field: &str| -> Result<GgufValue> {
        let v = config[field].as_u64().ok_or_else(|| bad(format!("{field}: expected a count")))?;
        Ok(GgufValue::U32(u32::try_from(v).map_err(|_| bad(format!("{field} {v} does not fit GGUF's UINT32")))?))
    };
    let float = |field: &str| -> Result<GgufValue> {
        config[field]
            .as_f64()
            .map(|v| GgufValue::F32(v as f32))
            .ok_or_else(|| bad(format!("{field}: expected a number")))
    };
    let a = arch.as_str();
    let key = |k: &str| format!("{a}.{k}");
    let mut out = Vec::new();
    match arch {
        GgufArch::Gpt2 => {
            out.push((key("context_length"), uint("n_positions")?));
            out.push((key("embedding_length"), uint("n_embd")?));
            out.push((key("block_count"), uint("n_layer")?));
            let inner = config["n_inner"].as_u64().unwrap_or(4 * config["n_embd"].as_u64().unwrap_or(0));
            out.push((key("feed_forward_length"), GgufValue::U32(inner as u32)));
            out.push((key("attention.head_count"), uint("n_head")?));
            out.push((key("attention.layer_norm_epsilon"), float("layer_norm_epsilon")?));
        }
        GgufArch::Llama(_) => {
            let c = LlamaConfig::from_json(config.clone(), &path)?;
            let u = |v: usize| GgufValue::U32(v as u32);
            out.push((key("context_length"), u(c.max_position_embeddings)));
            out.push((key("embedding_length"), u(c.hidden_size)));
            out.push((key("block_count"), u(c.num_hidden_layers)));
            out.push((key("feed_forward_length"), u(c.intermediate_size)));
            out.push((key("attention.head_count"), u(c.num_attention_heads)));
            out.push((key("attention.head_count_kv"), u(c.num_kv_heads())));
            out.push((key("attention.key_length"), u(c.head_size())));
            out.push((key("attention.value_length"), u(c.head_size())));
            out.push((key("rope.dimension_count"), u(c.head_size())));
            out.push((key("attention.layer_norm_rms_epsilon"), GgufValue::F32(c.rms_norm_eps)));
            out.extend(rope_metadata(a, config).map_err(bad)?);
        }
    }
    Ok(out)
}

/// The `{arch}.rope.*` keys for the rope in `config` (either config form); an error message for
/// a rope type GGUF metadata cannot express (llama3's frequency bands need a `rope_freqs` tensor).
fn rope_metadata(a: &str, config: &Value) -> std::result::Result<Vec<(String, GgufValue)>, String> {
    let key = |k: &str| format!("{a}.{k}");
    let params = config.get("rope_parameters").filter(|p| p.is_object());
    let scaling = params.or_else(|| config.get("rope_scaling").filter(|p| p.is_object()));
    let theta = params.and_then(|p| p["rope_theta"].as_f64()).or_else(|| config["rope_theta"].as_f64());
    let mut out = vec![(key("rope.freq_base"), GgufValue::F32(theta.unwrap_or(10_000.0) as f32))];
    let Some(s) = scaling else { return Ok(out) };
    match s["rope_type"].as_str().or_else(|| s["type"].as_str()).unwrap_or("default") {
        "default" => {}
        // Llama 3's bands go in the tensor rope_freqs.weight (`add_rope_freqs`); its
        // pretraining length here, so reading the file back gives the same parameters.
        "llama3" => {
            if let Some(orig) = s["original_max_position_embeddings"].as_u64() {
                out.push((key("rope.scaling.original_context_length"), GgufValue::U32(orig as u32)));
            }
        }
        kind @ ("linear" | "yarn") => {
            out.push((key("rope.scaling.type"), GgufValue::String(kind.into())));
            out.push((key("rope.scaling.factor"), GgufValue::F32(s["factor"].as_f64().unwrap_or(1.0) as f32)));
            if let Some(orig) = s["original_max_position_embeddings"].as_u64() {
                out.push((key("rope.scaling.original_context_length"), GgufValue::U32(orig as u32)));
            }
        }
        other => return Err(format!("rope type \"{other}\" cannot be written as GGUF metadata here")),
    }
    Ok(out)
}
