//! Seeded permutations for splitting and shuffling: SplitMix64 and Fisher–Yates, so a seed
//! gives the same order on every machine and every run without a `rand` dependency.

/// SplitMix64 (Steele, Lea and Flood 2014): a 64-bit counter passed through a bijective mix.
/// Plenty for shuffling; not for cryptography.
struct SplitMix64 {
    state: u64,
}

const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

pub(crate) use deltaw_tensor::mix64;

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN_GAMMA);
        mix64(self.state)
    }

    /// Uniform in `0..n` by Lemire's multiply-shift; the bias, at most n / 2^64, is far below
    /// anything a shuffle of a dataset could show.
    fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }
}

/// A uniformly random permutation of `0..n`, a pure function of `(n, seed)`.
pub(crate) fn permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut rng = SplitMix64 { state: mix64(seed) };
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = rng.below(i + 1);
        order.swap(i, j);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutation_is_deterministic_and_complete() {
        let p = permutation(100, 7);
        assert_eq!(p, permutation(100, 7));
        assert_ne!(p, permutation(100, 8));
        let mut sorted = p.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn every_position_is_reached_evenly() {
        // Over 4000 shuffles of 4 items, each item lands first about 1000 times.
        let mut first = [0usize; 4];
        for seed in 0..4000 {
            first[permutation(4, seed)[0]] += 1;
        }
        assert!(first.iter().all(|&c| (850..1150).contains(&c)), "{first:?}");
    }
}
