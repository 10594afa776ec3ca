//! Shared setup of the Llama-family comparisons (`compare_llama_sft.sh`,
//! `compare_llama_decode.sh`): the Qwen2.5-0.5B-shaped folder that `benches/llama_weights.py`
//! (or, without torch, the `llama_bench_weights` example) writes, loaded in f32, with its bf16
//! base kept as stored, or with the decoder projections block-quantized (QLoRA); the fixed
//! token ids; and the measurements every example prints (median step time, peak RSS).

use deltaw_tensor::{Device, QuantType};
use deltaw_transformer::{Llama, WeightDtype};
use std::path::{Path, PathBuf};

/// B and T of the fine-tuning step.
pub const BATCH: usize = 2;
pub const SEQ: usize = 128;
/// Prompt length and new tokens of the greedy decode.
pub const PROMPT_TOKENS: usize = 16;
pub const NEW_TOKENS: usize = 64;

/// How the base weights are held: `f32` (the `f32/` folder, widened, as PyTorch's f32 run),
/// `bf16` (the `bf16/` folder with [`WeightDtype::Stored`]: bf16 matrices, frozen), or a
/// quantized type such as `q4_0` (the `f32/` folder with [`WeightDtype::Quant`]: each decoder
/// projection block-quantized as it streams in, frozen; embeddings and norms stay f32).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Base {
    F32,
    Bf16,
    Quant(QuantType),
    /// `q4_0-bf16`: quantized from the bf16 folder, so the embedding (the tied head) stays
    /// bf16, as in a QLoRA run from a checkpoint shipped in bf16.
    QuantFromBf16(QuantType),
}

impl Base {
    /// `f32`, `bf16`, or a quantized type by llama.cpp's name (`q4_0`, `q8_0`, `q4_k`, ...).
    pub fn parse(s: &str) -> Option<Base> {
        match s {
            "f32" => Some(Base::F32),
            "bf16" => Some(Base::Bf16),
            _ => match s.strip_suffix("-bf16") {
                Some(ty) => QuantType::from_name(ty).map(Base::QuantFromBf16),
                None => QuantType::from_name(s).map(Base::Quant),
            },
        }
    }

    pub fn name(self) -> String {
        match self {
            Base::F32 => "f32".into(),
            Base::Bf16 => "bf16".into(),
            Base::Quant(ty) => ty.name().into(),
            Base::QuantFromBf16(ty) => format!("{}-bf16", ty.name()),
        }
    }

    /// The folder under the weights directory that this base loads: a quantized base is
    /// quantized from the f32 weights, so every mode sees the same values.
    pub fn folder(self, weights: &Path) -> PathBuf {
        match self {
            Base::Bf16 | Base::QuantFromBf16(_) => weights.join("bf16"),
            Base::F32 | Base::Quant(_) => weights.join("f32"),
        }
    }

    fn dtype(self) -> WeightDtype {
        match self {
            Base::F32 => WeightDtype::F32,
            Base::Bf16 => WeightDtype::Stored,
            Base::Quant(ty) | Base::QuantFromBf16(ty) => WeightDtype::Quant(ty),
        }
    }
}

/// The model under `weights/<f32|bf16>/`, on the CPU, held as `base` says.
///
/// # Panics
/// If the folder is missing or does not load (write it with `benches/llama_weights.py`, or
/// without torch with the `llama_bench_weights` example).
pub fn load(weights: &Path, base: Base) -> Llama {
    let dir = base.folder(weights);
    Llama::from_dir_with(&dir, &Device::Cpu, base.dtype()).unwrap_or_else(|e| {
        panic!("{}: {e} (write it with benches/llama_weights.py or the llama_bench_weights example)", dir.display())
    })
}

/// `n` token ids `(i · 7919 + 11) mod V`, as the GPT-2 benches and the Python peers.
pub fn ids(n: usize, vocab: usize) -> Vec<i32> {
    (0..n).map(|i| ((i * 7919 + 11) % vocab) as i32).collect()
}

/// The median of `xs` (the mean of the middle two for an even count).
///
/// # Panics
/// If `xs` is empty.
pub fn median(xs: &[f64]) -> f64 {
    assert!(!xs.is_empty(), "median of no values");
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// Peak resident memory of this process in MiB (`VmHWM` of /proc/self/status; NaN elsewhere).
pub fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(f64::NAN);
    kib / 1024.0
}
