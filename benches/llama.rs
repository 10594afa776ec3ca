//! Shared setup of the Llama-family comparisons (`compare_llama_sft.sh`,
//! `compare_llama_decode.sh`): the Qwen2.5-0.5B-shaped folder that `benches/llama_weights.py`
//! writes, loaded in f32 or with its bf16 base kept as stored; the fixed token ids; and the
//! measurements every example prints (median step time, peak RSS).

use deltaw_tensor::Device;
use deltaw_transformer::{Llama, WeightDtype};
use std::path::Path;

/// B and T of the fine-tuning step.
pub const BATCH: usize = 2;
pub const SEQ: usize = 128;
/// Prompt length and new tokens of the greedy decode.
pub const PROMPT_TOKENS: usize = 16;
pub const NEW_TOKENS: usize = 64;

/// How the base weights are held: `f32` (the `f32/` folder, widened, as PyTorch's f32 run) or
/// `bf16` (the `bf16/` folder with [`WeightDtype::Stored`]: bf16 matrices, frozen).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Base {
    F32,
    Bf16,
}

impl Base {
    pub fn parse(s: &str) -> Option<Base> {
        match s {
            "f32" => Some(Base::F32),
            "bf16" => Some(Base::Bf16),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Base::F32 => "f32",
            Base::Bf16 => "bf16",
        }
    }
}

/// The model under `weights/<f32|bf16>/`, on the CPU.
///
/// # Panics
/// If the folder is missing or does not load (run `benches/llama_weights.py` first).
pub fn load(weights: &Path, base: Base) -> Llama {
    let dir = weights.join(base.name());
    let dtype = match base {
        Base::F32 => WeightDtype::F32,
        Base::Bf16 => WeightDtype::Stored,
    };
    Llama::from_dir_with(&dir, &Device::Cpu, dtype)
        .unwrap_or_else(|e| panic!("{}: {e} (write it with benches/llama_weights.py)", dir.display()))
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
