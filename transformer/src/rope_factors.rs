//! Llama 3's rope scaling as llama.cpp stores it: not as parameters but as one factor per
//! frequency, the tensor `rope_freqs.weight` (`dim/2` values), each default frequency
//! `θ^(−2i/dim)` divided by its factor. Writing a GGUF file computes the factors from the
//! parameters; reading one fits the parameters back, so the model keeps transformers' config.
//!
//! Llama 3's rule (transformers' `_compute_llama3_parameters`), with `L` the pretraining length,
//! `λ = 2π/f` a frequency's wavelength and `s = (L/λ − lo)/(hi − lo)`:
//!
//! ```text
//! λ < L/hi (fast planes)   f' = f                     factor 1
//! λ > L/lo (slow planes)   f' = f / k                 factor k
//! between                  f' = (1 − s)·f/k + s·f      factor 1 / ((1 − s)/k + s)
//! ```
//!
//! In the band, `s = (1/factor − 1/k) / (1 − 1/k)` is linear in `f` (`s = a·f + c` with
//! `a = L / (2π (hi − lo))`, `c = −lo / (hi − lo)`), so the band's factors give `a` and `c`,
//! and `lo`, `hi` follow for any `L`: every `L` with its own `lo`, `hi` gives the same
//! frequencies, so the file's `L` (or 8192, Llama 3.1's) is kept.

use crate::rope::{Rope, RopeScaling};
use std::f64::consts::PI;

/// How closely the fitted parameters must reproduce the file's frequencies: the factors are
/// f32 and the frequencies are recomputed in f32 through `powf` and a division, a few ulps.
const REFIT_TOLERANCE: f32 = 1e-4;

impl Rope {
    /// llama.cpp's `rope_freqs.weight` for this rope: `default_i / inv_freq_i` for each of the
    /// `dim/2` frequencies; `None` for a type whose frequencies are not a fixed rescaling of
    /// the defaults that llama.cpp stores this way (only llama3 is).
    pub fn freq_factors(&self) -> Option<Vec<f32>> {
        matches!(self.scaling, RopeScaling::Llama3 { .. }).then(|| {
            let base = self.default_inv_freq(self.theta);
            base.iter().zip(self.inv_freq(self.max_position_embeddings)).map(|(b, f)| b / f).collect()
        })
    }
}

/// The llama3 scaling whose frequencies are the defaults of `θ`, `dim` divided by `factors`
/// (a GGUF file's `rope_freqs.weight`); `original` is the pretraining length `L` to express it
/// with. All factors 1 is no scaling; all equal is linear scaling.
///
/// # Errors
/// A count other than `dim/2`, a factor that is not positive and finite, or factors no llama3
/// scaling reproduces (within `REFIT_TOLERANCE`, 1e-4 relative).
pub fn llama3_from_factors(theta: f64, dim: usize, factors: &[f32], original: f64) -> Result<RopeScaling, String> {
    if factors.len() != dim / 2 {
        return Err(format!(
            "rope_freqs.weight has {} factors for a head size of {dim} ({} expected)",
            factors.len(),
            dim / 2
        ));
    }
    if let Some(f) = factors.iter().find(|f| !(f.is_finite() && **f > 0.0)) {
        return Err(format!("rope_freqs.weight holds the factor {f}; factors are positive"));
    }
    let k = factors.iter().copied().fold(1.0f32, f32::max) as f64;
    let probe = Rope { theta, dim, max_position_embeddings: original as usize, scaling: RopeScaling::Default };
    let freqs = probe.default_inv_freq(theta);
    let near = |a: f32, b: f64| ((a as f64) - b).abs() <= 1e-6 * b;
    let (mut band, mut fast, mut slow) = (Vec::new(), Vec::new(), Vec::new());
    for (&f, &factor) in freqs.iter().zip(factors) {
        match () {
            _ if near(factor, 1.0) => fast.push(f as f64),
            _ if near(factor, k) => slow.push(f as f64),
            _ => band.push((f as f64, (1.0 / factor as f64 - 1.0 / k) / (1.0 - 1.0 / k))),
        }
    }
    let scaling = fit(k, &band, (&fast, &slow), original)?;
    let fitted = Rope { scaling: scaling.clone(), ..probe };
    let worst = fitted
        .inv_freq(original as usize)
        .iter()
        .zip(freqs.iter().zip(factors))
        .map(|(got, (f, factor))| ((got - f / factor) / (f / factor)).abs())
        .fold(0.0f32, f32::max);
    if worst > REFIT_TOLERANCE {
        return Err(format!(
            "rope_freqs.weight: no llama3 rope scaling gives these factors (the closest is {worst:.1e} off)"
        ));
    }
    Ok(scaling)
}

/// The llama3 scaling of top factor `k` through the band's `(frequency, s)` points, given the
/// frequencies left unscaled (`fast`) and divided by `k` (`slow`).
fn fit(k: f64, band: &[(f64, f64)], (fast, slow): (&[f64], &[f64]), original: f64) -> Result<RopeScaling, String> {
    Ok(match (band.len(), fast.is_empty(), slow.is_empty()) {
        (0, _, true) => RopeScaling::Default,
        (0, true, false) => RopeScaling::Linear { factor: k },
        (0, false, false) => {
            // No frequency in the band: put its edges between the two groups.
            let lo = original * slow.iter().copied().fold(0.0, f64::max) / (2.0 * PI);
            let hi = original * fast.iter().copied().fold(f64::MAX, f64::min) / (2.0 * PI);
            llama3(k, lo, hi, original)
        }
        (1, _, _) => {
            // One frequency in the band fixes a point of the line, not its slope: take the
            // least steep slope that keeps the slow planes at s ≤ 0 and the fast ones at s ≥ 1.
            let (fb, sb) = band[0];
            let mut a = f64::MIN_POSITIVE;
            if let Some(fs) = slow.iter().copied().reduce(f64::max) {
                a = a.max(sb / (fb - fs));
            }
            if let Some(fu) = fast.iter().copied().reduce(f64::min) {
                a = a.max((1.0 - sb) / (fu - fb));
            }
            let width = original / (2.0 * PI * a);
            let lo = (a * fb - sb) * width; // c = sb − a·fb = −lo / width
            llama3(k, lo, lo + width, original)
        }
        _ => {
            let (a, c) = line(band);
            if a <= 0.0 {
                return Err("rope_freqs.weight: the factors do not fall from the slow planes to the fast ones".into());
            }
            let width = original / (2.0 * PI * a);
            llama3(k, -c * width, -c * width + width, original)
        }
    })
}

fn llama3(factor: f64, low_freq_factor: f64, high_freq_factor: f64, original: f64) -> RopeScaling {
    RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max_position_embeddings: original }
}

/// The least-squares line `y = a·x + c` through `points` (two or more).
fn line(points: &[(f64, f64)]) -> (f64, f64) {
    let n = points.len() as f64;
    let (mx, my) = (points.iter().map(|p| p.0).sum::<f64>() / n, points.iter().map(|p| p.1).sum::<f64>() / n);
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let a = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    (a, my - a * mx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn llama31(dim: usize) -> Rope {
        Rope { theta: 500_000.0, dim, max_position_embeddings: 131_072, scaling: llama3(8.0, 1.0, 4.0, 8192.0) }
    }

    /// Llama 3.1's parameters → factors → parameters gives the same frequencies, and the
    /// factors are those llama.cpp's converter writes (1 for the fast planes, 8 for the slow).
    #[test]
    fn llama3_factors_fit_back_to_the_same_frequencies() {
        for dim in [64, 128] {
            let rope = llama31(dim);
            let factors = rope.freq_factors().unwrap();
            assert_eq!(factors[0], 1.0);
            assert!((factors[dim / 2 - 1] - 8.0).abs() < 1e-5, "{factors:?}");
            let band = factors.iter().filter(|&&f| f > 1.0 + 1e-6 && f < 8.0 - 1e-5).count();
            assert!(band >= 2, "dim {dim}: {band} factors in the band");
            let fitted = llama3_from_factors(500_000.0, dim, &factors, 8192.0).unwrap();
            let RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, .. } = fitted else { panic!() };
            assert!((factor - 8.0).abs() < 1e-5 && (low_freq_factor - 1.0).abs() < 1e-3, "{fitted:?}");
            assert!((high_freq_factor - 4.0).abs() < 1e-3, "{fitted:?}");
        }
    }

    #[test]
    fn plain_factors_are_no_or_linear_scaling_and_nonsense_is_refused() {
        assert_eq!(llama3_from_factors(1e4, 8, &[1.0; 4], 64.0), Ok(RopeScaling::Default));
        assert_eq!(llama3_from_factors(1e4, 8, &[2.0; 4], 64.0), Ok(RopeScaling::Linear { factor: 2.0 }));
        assert!(llama3_from_factors(1e4, 8, &[1.0; 3], 64.0).unwrap_err().contains("3 factors"));
        assert!(llama3_from_factors(1e4, 8, &[1.0, -1.0, 1.0, 1.0], 64.0).unwrap_err().contains("positive"));
        // Rising factors towards the fast planes are no llama3 scaling.
        let err = llama3_from_factors(1e4, 8, &[8.0, 3.0, 2.0, 1.0], 64.0).unwrap_err();
        assert!(err.contains("rope_freqs.weight"), "{err}");
    }
}
