//! Rotary position embeddings: the frequencies of each rope type and the cos/sin tables the
//! [`deltaw_autograd::Var::rope`] op reads.
//!
//! A head vector of size `HS` is seen as `HS/2` planes; position `p` turns plane `i` by the
//! angle `p · inv_freq[i]`, with `inv_freq[i] = θ^(−2i/HS)` for the default type (`θ` =
//! `rope_theta`). Hugging Face pairs coordinate `i` with `i + HS/2` (the "rotate-half"
//! convention), so the op needs only the half tables `cos[p, i]`, `sin[p, i]`. The scaled types
//! change `inv_freq` (and yarn also scales the tables by `attention_scaling`):
//!
//! | type | `inv_freq[i]` |
//! | --- | --- |
//! | `default` | `θ^(−2i/HS)` |
//! | `linear` | `default / factor` (positions squeezed by `factor`) |
//! | `dynamic` | `default` with `θ' = θ·((factor·L/L₀) − (factor − 1))^(HS/(HS−2))` once the sequence length `L` passes `L₀ = max_position_embeddings` (NTK-aware, recomputed per call) |
//! | `llama3` | low frequencies (wavelength > `L₀/low_freq_factor`) divided by `factor`, high ones kept, a smooth blend between |
//! | `yarn` | a blend of `default` and `default / factor`, ramped over the planes between the correction dims of `beta_fast` and `beta_slow`; tables scaled by `0.1·ln(factor) + 1` |
//!
//! Every formula follows transformers' `modeling_rope_utils.py` step for step in f32 where it
//! computes in f32, so the frequencies agree to the last bits with the fixtures.

use crate::error::{Error, Result};
use deltaw_tensor::{Device, Tensor};
use serde_json::Value;
use std::f64::consts::PI;
use std::path::Path;

/// The rope types deltaw knows, as `rope_type` spells them.
pub const ROPE_TYPES: [&str; 5] = ["default", "linear", "dynamic", "llama3", "yarn"];

/// How the frequencies are scaled.
#[derive(Clone, Debug, PartialEq)]
pub enum RopeScaling {
    Default,
    Linear {
        factor: f64,
    },
    /// NTK-aware scaling past `max_position_embeddings`.
    Dynamic {
        factor: f64,
    },
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: f64,
    },
    Yarn {
        factor: f64,
        attention_factor: f64,
        beta_fast: f64,
        beta_slow: f64,
        original_max_position_embeddings: f64,
        truncate: bool,
    },
}

/// The rotary embedding of one model: base, head size, scaling.
#[derive(Clone, Debug, PartialEq)]
pub struct Rope {
    /// `rope_theta`.
    pub theta: f64,
    /// The rotated size: the head size.
    pub dim: usize,
    /// `max_position_embeddings` (the dynamic type's `L₀`).
    pub max_position_embeddings: usize,
    pub scaling: RopeScaling,
}

impl Rope {
    /// Reads the rope of a `config.json` in either form: the newer `rope_parameters`
    /// (`{rope_type, rope_theta, ...}`), or the older `rope_theta` beside an optional
    /// `rope_scaling` (`{rope_type | type, factor, ...}`) that Llama 3.x checkpoints carry.
    ///
    /// # Errors
    /// An unknown rope type (the message names it and the supported ones), a missing or
    /// non-numeric field, or `partial_rotary_factor` other than 1; `path` names the file.
    pub fn from_config(raw: &Value, dim: usize, max_position_embeddings: usize, path: &Path) -> Result<Rope> {
        let bad = |message: String| Error::Config { path: path.to_path_buf(), message };
        let params = match raw.get("rope_parameters").filter(|v| !v.is_null()) {
            Some(p) => p.clone(),
            None => {
                raw.get("rope_scaling").filter(|v| !v.is_null()).cloned().unwrap_or(Value::Object(Default::default()))
            }
        };
        let field =
            |name: &str| params.get(name).filter(|v| !v.is_null()).or_else(|| raw.get(name).filter(|v| !v.is_null()));
        let number = |name: &str| -> Result<Option<f64>> {
            match field(name) {
                None => Ok(None),
                Some(v) => v.as_f64().map(Some).ok_or_else(|| bad(format!("rope field {name} is {v}, not a number"))),
            }
        };
        let need = |name: &str, kind: &str| -> Result<f64> {
            number(name)?.ok_or_else(|| bad(format!("rope_type \"{kind}\" needs the field {name}")))
        };
        if let Some(f) = number("partial_rotary_factor")?.filter(|&f| f != 1.0) {
            return Err(bad(format!("partial_rotary_factor {f} is not supported (deltaw rotates whole heads)")));
        }
        let kind = params.get("rope_type").or_else(|| params.get("type")).and_then(Value::as_str).unwrap_or("default");
        let theta = number("rope_theta")?.unwrap_or(10_000.0);
        // llama3 and yarn: the pretraining length, `max_position_embeddings` when not given.
        let original = number("original_max_position_embeddings")?.unwrap_or(max_position_embeddings as f64);
        let scaling = match kind {
            "default" => RopeScaling::Default,
            "linear" => RopeScaling::Linear { factor: need("factor", kind)? },
            "dynamic" => RopeScaling::Dynamic { factor: need("factor", kind)? },
            "llama3" => RopeScaling::Llama3 {
                factor: need("factor", kind)?,
                low_freq_factor: need("low_freq_factor", kind)?,
                high_freq_factor: need("high_freq_factor", kind)?,
                original_max_position_embeddings: original,
            },
            "yarn" => yarn(&number, original, max_position_embeddings, params.get("truncate"))?,
            other => {
                return Err(bad(format!(
                    "rope_type \"{other}\" is not supported (supported: {})",
                    ROPE_TYPES.join(", ")
                )))
            }
        };
        Ok(Rope { theta, dim, max_position_embeddings, scaling })
    }

    /// `θ^(−2i/dim)` for `i < dim/2`, as transformers computes it in f32.
    pub(crate) fn default_inv_freq(&self, theta: f64) -> Vec<f32> {
        (0..self.dim / 2).map(|i| 1.0 / (theta as f32).powf((2 * i) as f32 / self.dim as f32)).collect()
    }

    /// The frequencies for a call whose largest position is `seq_len − 1` (only the dynamic
    /// type depends on it).
    pub fn inv_freq(&self, seq_len: usize) -> Vec<f32> {
        match &self.scaling {
            RopeScaling::Default => self.default_inv_freq(self.theta),
            RopeScaling::Linear { factor } => {
                self.default_inv_freq(self.theta).into_iter().map(|f| f / *factor as f32).collect()
            }
            RopeScaling::Dynamic { factor } => {
                let l0 = self.max_position_embeddings as f64;
                let len = (seq_len as f64).max(l0);
                let d = self.dim as f64;
                let theta = self.theta * ((factor * len / l0) - (factor - 1.0)).powf(d / (d - 2.0));
                self.default_inv_freq(theta)
            }
            RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max_position_embeddings } => {
                let (old, lo, hi) = (*original_max_position_embeddings, *low_freq_factor, *high_freq_factor);
                let (low_wavelen, high_wavelen) = (old / lo, old / hi);
                let factor = *factor as f32;
                self.default_inv_freq(self.theta)
                    .into_iter()
                    .map(|f| {
                        let wavelen = 2.0 * PI as f32 / f;
                        let (low, high) = (low_wavelen as f32, high_wavelen as f32);
                        let scaled = if wavelen > low { f / factor } else { f };
                        let smooth = ((old as f32 / wavelen) - lo as f32) / (hi - lo) as f32;
                        let medium = wavelen >= high && wavelen <= low;
                        if medium {
                            (1.0 - smooth) * scaled / factor + smooth * scaled
                        } else {
                            scaled
                        }
                    })
                    .collect()
            }
            RopeScaling::Yarn { factor, beta_fast, beta_slow, original_max_position_embeddings, truncate, .. } => {
                self.yarn_inv_freq(*factor, (*beta_fast, *beta_slow), *original_max_position_embeddings, *truncate)
            }
        }
    }

    /// Yarn's blend: extrapolated frequencies for the fast planes, interpolated ones (÷ factor)
    /// for the slow planes, a linear ramp between the correction dims.
    fn yarn_inv_freq(
        &self,
        factor: f64,
        (beta_fast, beta_slow): (f64, f64),
        original: f64,
        truncate: bool,
    ) -> Vec<f32> {
        let dim = self.dim as f64;
        let correction_dim =
            |rotations: f64| (dim * (original / (rotations * 2.0 * PI)).ln()) / (2.0 * self.theta.ln());
        let (mut low, mut high) = (correction_dim(beta_fast), correction_dim(beta_slow));
        if truncate {
            (low, high) = (low.floor(), high.ceil());
        }
        let (low, mut high) = (low.max(0.0), high.min(dim - 1.0));
        if low == high {
            high += 0.001;
        }
        (0..self.dim / 2)
            .map(|i| {
                let pos_freq = (self.theta as f32).powf((2 * i) as f32 / self.dim as f32);
                let (extrapolation, interpolation) = (1.0 / pos_freq, 1.0 / (factor as f32 * pos_freq));
                let ramp = ((i as f32 - low as f32) / (high - low) as f32).clamp(0.0, 1.0);
                let keep = 1.0 - ramp;
                interpolation * (1.0 - keep) + extrapolation * keep
            })
            .collect()
    }

    /// The factor the cos/sin tables are multiplied by (yarn's; 1 for the others).
    pub fn attention_scaling(&self) -> f32 {
        match self.scaling {
            RopeScaling::Yarn { attention_factor, .. } => attention_factor as f32,
            _ => 1.0,
        }
    }

    /// The half tables `(cos, sin)`, each `(B, T, dim/2)` on `dev`, for i32 positions `(B, T)`
    /// given as host values: `cos(p · inv_freq[i]) · attention_scaling`. The angle is the f32
    /// product, as transformers forms it.
    pub fn tables(&self, positions: &[i32], (b, t): (usize, usize), dev: &Device) -> (Tensor, Tensor) {
        assert_eq!(positions.len(), b * t, "rope: {} positions for a ({b}, {t}) batch", positions.len());
        let seq_len = positions.iter().copied().max().map_or(0, |p| p as usize + 1);
        let inv_freq = self.inv_freq(seq_len);
        let scale = self.attention_scaling();
        let half = inv_freq.len();
        let (mut cos, mut sin) = (Vec::with_capacity(b * t * half), Vec::with_capacity(b * t * half));
        for &p in positions {
            for &f in &inv_freq {
                let angle = p as f32 * f;
                cos.push(angle.cos() * scale);
                sin.push(angle.sin() * scale);
            }
        }
        let table = |v| Tensor::from_vec(v, (b, t, half), dev).expect("b·t·half values");
        (table(cos), table(sin))
    }
}

/// Yarn's parameters, with transformers' defaults: `factor` from the two lengths when absent,
/// `attention_factor` from `mscale` (and `mscale_all_dim`) or `0.1·ln(factor) + 1`, betas 32 / 1.
fn yarn(
    number: &dyn Fn(&str) -> Result<Option<f64>>,
    original: f64,
    max_positions: usize,
    truncate: Option<&Value>,
) -> Result<RopeScaling> {
    let factor = number("factor")?.unwrap_or(max_positions as f64 / original);
    let get_mscale = |scale: f64, mscale: f64| if scale <= 1.0 { 1.0 } else { 0.1 * mscale * scale.ln() + 1.0 };
    let attention_factor = match number("attention_factor")? {
        Some(a) => a,
        None => match (number("mscale")?.filter(|&m| m != 0.0), number("mscale_all_dim")?.filter(|&m| m != 0.0)) {
            (Some(m), Some(all)) => get_mscale(factor, m) / get_mscale(factor, all),
            _ => get_mscale(factor, 1.0),
        },
    };
    Ok(RopeScaling::Yarn {
        factor,
        attention_factor,
        beta_fast: number("beta_fast")?.filter(|&b| b != 0.0).unwrap_or(32.0),
        beta_slow: number("beta_slow")?.filter(|&b| b != 0.0).unwrap_or(1.0),
        original_max_position_embeddings: original,
        truncate: truncate.and_then(Value::as_bool).unwrap_or(true),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rope(raw: Value) -> Result<Rope> {
        Rope::from_config(&raw, 8, 64, Path::new("config.json"))
    }

    #[test]
    fn both_config_forms_give_the_same_rope() {
        let old = json!({"rope_theta": 500000.0, "rope_scaling": {"rope_type": "llama3", "factor": 8.0,
            "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 16}});
        let new = json!({"rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
            "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 16}});
        assert_eq!(rope(old).unwrap(), rope(new).unwrap());
    }

    #[test]
    fn an_unknown_rope_type_is_named_with_the_supported_ones() {
        let err = rope(json!({"rope_scaling": {"type": "longrope"}})).unwrap_err().to_string();
        assert!(err.contains("\"longrope\"") && err.contains("default, linear, dynamic, llama3, yarn"), "{err}");
    }

    #[test]
    fn default_frequencies_halve_every_two_planes_for_theta_16() {
        let r = rope(json!({"rope_theta": 16.0})).unwrap();
        assert_eq!(r.inv_freq(1), vec![1.0, 0.5, 0.25, 0.125]);
        let (cos, sin) = r.tables(&[0, 1], (1, 2), &Device::Cpu);
        assert_eq!(cos.to_vec()[..4], [1.0; 4]);
        assert_eq!(sin.to_vec()[4], 1f32.sin());
    }

    #[test]
    fn linear_scaling_divides_and_dynamic_waits_for_long_sequences() {
        let base = rope(json!({"rope_theta": 16.0})).unwrap().inv_freq(1);
        let linear = rope(json!({"rope_scaling": {"type": "linear", "factor": 2.0}, "rope_theta": 16.0})).unwrap();
        assert_eq!(linear.inv_freq(1), base.iter().map(|f| f / 2.0).collect::<Vec<_>>());
        let dynamic = rope(json!({"rope_scaling": {"type": "dynamic", "factor": 2.0}, "rope_theta": 16.0})).unwrap();
        assert_eq!(dynamic.inv_freq(64), base);
        assert!(dynamic.inv_freq(128)[1] < base[1]);
    }
}
