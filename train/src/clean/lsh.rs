//! Locality-sensitive hashing over MinHash signatures: `b` bands of `r` slots each; two
//! records are candidates when all `r` slots of at least one band agree.
//!
//! For two records of Jaccard similarity `s`, one band agrees with probability `s^r`, so they
//! become candidates with probability `P(s) = 1 - (1 - s^r)^b`, an S-curve that rises around
//! `(1/b)^(1/r)`. [`LshParams::optimal`] picks the `(b, r)` with `b r <= num_perm` that, for a
//! threshold `t`, minimises the area of false positives `∫_0^t P(s) ds` plus the area of false
//! negatives `∫_t^1 (1 - P(s)) ds` (equal weights), which is also how datasketch's `MinHashLSH`
//! chooses, so the two draw the same curve.

use deltaw_tensor::mix64;
use std::collections::HashMap;

/// The banding of a signature: `bands` bands of `rows` slots (`bands * rows <= num_perm`; the
/// remaining slots are unused).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LshParams {
    pub bands: usize,
    pub rows: usize,
}

impl LshParams {
    /// The banding that minimises false positive plus false negative area at `threshold`.
    ///
    /// ```
    /// use deltaw_train::clean::LshParams;
    /// let p = LshParams::optimal(0.8, 128);
    /// assert!(p.bands * p.rows <= 128);
    /// assert!(p.probability(0.95) > 0.99 && p.probability(0.5) < 0.05);
    /// ```
    pub fn optimal(threshold: f64, num_perm: usize) -> LshParams {
        let mut best = (f64::INFINITY, LshParams { bands: 1, rows: num_perm.max(1) });
        for bands in 1..=num_perm {
            for rows in 1..=num_perm / bands {
                let params = LshParams { bands, rows };
                let false_positive = integrate(|s| params.probability(s), 0.0, threshold);
                let false_negative = integrate(|s| 1.0 - params.probability(s), threshold, 1.0);
                let error = 0.5 * false_positive + 0.5 * false_negative;
                if error < best.0 {
                    best = (error, params);
                }
            }
        }
        best.1
    }

    /// `P(s) = 1 - (1 - s^r)^b`: the chance that two records of Jaccard similarity `s` share a band.
    pub fn probability(&self, similarity: f64) -> f64 {
        1.0 - (1.0 - similarity.powi(self.rows as i32)).powi(self.bands as i32)
    }

    /// One key per band: the band's slots hashed together with the band's index, so equal
    /// slot values in different bands never collide. Slots are folded two at a time (one
    /// 64-bit word per pair), the last alone when `rows` is odd.
    pub fn band_keys(&self, signature: &[u32]) -> Vec<u64> {
        let mut keys = Vec::with_capacity(self.bands);
        self.band_keys_into(signature, &mut keys);
        keys
    }

    /// [`LshParams::band_keys`] into `keys` (cleared first), so a caller can reuse one buffer.
    pub(crate) fn band_keys_into(&self, signature: &[u32], keys: &mut Vec<u64>) {
        keys.clear();
        keys.extend(signature.chunks_exact(self.rows).take(self.bands).enumerate().map(|(band, slots)| {
            slots.chunks(2).fold(mix64(band as u64 + 1), |h, pair| {
                let word = u64::from(pair[0]) | pair.get(1).map_or(0, |&hi| u64::from(hi) << 32);
                mix64(h ^ word)
            })
        }));
    }
}

/// Composite Simpson's rule with 256 intervals: the S-curve is smooth, and this is far more
/// accurate than the choice of `(b, r)` needs.
fn integrate(f: impl Fn(f64) -> f64, a: f64, b: f64) -> f64 {
    const N: usize = 256;
    let h = (b - a) / N as f64;
    let inner: f64 = (1..N).map(|i| f(a + i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 }).sum();
    (f(a) + inner + f(b)) * h / 3.0
}

/// Every pair `(i, j)`, `i < j`, of signatures that share at least one band: what querying a
/// datasketch `MinHashLSH` holding all records returns, pair by pair. Sorted.
pub fn candidate_pairs(signatures: &[Vec<u32>], params: LshParams) -> Vec<(usize, usize)> {
    let mut buckets: HashMap<u64, Vec<usize>> = HashMap::new();
    for (i, signature) in signatures.iter().enumerate() {
        for key in params.band_keys(signature) {
            buckets.entry(key).or_default().push(i);
        }
    }
    let mut pairs: Vec<(usize, usize)> = buckets
        .values()
        .flat_map(|ids| ids.iter().enumerate().flat_map(move |(k, &i)| ids[k + 1..].iter().map(move |&j| (i, j))))
        .filter(|(i, j)| i != j)
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simpson_integrates_a_cubic_exactly() {
        let value = integrate(|x| x * x * x, 0.0, 2.0);
        assert!((value - 4.0).abs() < 1e-12, "{value}");
    }

    #[test]
    fn optimal_banding_puts_the_s_curve_around_the_threshold() {
        for (threshold, num_perm) in [(0.5, 128), (0.7, 128), (0.9, 256)] {
            let p = LshParams::optimal(threshold, num_perm);
            assert!(p.bands * p.rows <= num_perm);
            let knee = (1.0 / p.bands as f64).powf(1.0 / p.rows as f64);
            assert!((knee - threshold).abs() < 0.1, "{p:?}: knee {knee} for threshold {threshold}");
        }
    }

    #[test]
    fn records_sharing_a_band_are_candidates_and_bands_are_keyed_by_position() {
        let params = LshParams { bands: 2, rows: 2 };
        let (a, b, c) = ([1, 2, 3, 4], [1, 2, 9, 9], [7, 7, 3, 4]);
        assert_eq!(params.band_keys(&a)[0], params.band_keys(&b)[0]);
        assert_ne!(params.band_keys(&a)[1], params.band_keys(&b)[1]);
        assert_ne!(params.band_keys(&[3, 4, 1, 2])[0], params.band_keys(&a)[1], "same slots, other band");
        let signatures = vec![a.to_vec(), b.to_vec(), c.to_vec()];
        assert_eq!(candidate_pairs(&signatures, params), vec![(0, 1), (0, 2)]);
    }
}
