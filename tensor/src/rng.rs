//! Seeded random numbers that do not depend on the thread count.
//!
//! Element `i` of a random tensor is a pure function of `(seed, i)`: a counter-based generator
//! (SplitMix64's finaliser applied to `seed`-scrambled `i`). Any split of the work across
//! threads therefore produces the same tensor, and `randn` with the same seed is reproducible
//! across runs, machines and rayon pool sizes.

/// A generator seed: `Tensor::randn(shape, Seed(7), &dev)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Seed(pub u64);

impl Seed {
    /// An independent seed for sub-stream `stream` (one per dropout call, per step, per
    /// worker...): the pair is mixed, so `Seed(s).derive(1)` and `Seed(s + 1).derive(0)` differ.
    pub fn derive(self, stream: u64) -> Seed {
        Seed(mix64(mix64(self.0 ^ 0x6a09_e667_f3bc_c909).wrapping_add(stream.wrapping_mul(0x9e37_79b9_7f4a_7c15))))
    }
}

/// SplitMix64's output function: a bijective mix of 64 bits with good avalanche (each input
/// bit flips each output bit with probability about 1/2). The one mixer of the workspace: the
/// tensor generators here and the data shuffles of `deltaw-train` both use it.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// 64 random bits for counter `i` of stream `seed`.
pub(crate) fn bits(seed: Seed, i: u64) -> u64 {
    let key = mix64(seed.0 ^ 0x9e37_79b9_7f4a_7c15);
    mix64(key.wrapping_add(i.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
}

/// Uniform in [0, 1) with 24 random bits (every representable step of an f32 mantissa).
pub(crate) fn uniform(seed: Seed, i: u64) -> f32 {
    (bits(seed, i) >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
}

/// Standard normal for element `i`: Box–Muller on the uniform pair of index `i / 2`, taking
/// the cosine branch for even `i` and the sine branch for odd `i`. Computed in f64 so the
/// tails (u close to 0) stay accurate.
pub(crate) fn normal(seed: Seed, i: u64) -> f32 {
    let pair = i / 2;
    let b = bits(seed, pair);
    // 53-bit uniform in (0, 1]: never 0, so ln() is finite.
    let u1 = ((b >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64);
    let u2 = (bits(seed, pair ^ (1 << 63)) >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
    let r = (-2.0 * u1.ln()).sqrt();
    let theta = 2.0 * std::f64::consts::PI * u2;
    let z = if i.is_multiple_of(2) { r * theta.cos() } else { r * theta.sin() };
    z as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_is_in_unit_interval_with_mean_half() {
        let n = 100_000;
        let xs: Vec<f32> = (0..n).map(|i| uniform(Seed(3), i)).collect();
        assert!(xs.iter().all(|&x| (0.0..1.0).contains(&x)));
        let mean = xs.iter().map(|&x| x as f64).sum::<f64>() / n as f64;
        assert!((mean - 0.5).abs() < 0.01, "mean {mean}");
    }

    #[test]
    fn normal_has_unit_variance() {
        let n = 100_000;
        let xs: Vec<f64> = (0..n).map(|i| normal(Seed(5), i) as f64).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.02 && (var - 1.0).abs() < 0.02, "mean {mean} var {var}");
    }

    #[test]
    fn different_seeds_differ() {
        assert_ne!(bits(Seed(1), 0), bits(Seed(2), 0));
    }
}
