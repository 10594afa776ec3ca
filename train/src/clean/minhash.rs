//! MinHash signatures: a short sketch of a text's set of shingles whose agreement with
//! another sketch estimates the two sets' Jaccard similarity.
//!
//! A shingle is `k` consecutive words (split on whitespace) or `k` consecutive characters
//! (for Chinese and other text without spaces). Each shingle is hashed once to 64 bits
//! ([`hash_bytes`]), then put through `num_perm` random affine maps modulo the Mersenne prime
//! `p = 2^61 - 1`, `h_i(x) = (a_i x + b_i) mod p` with `a_i` in `1..p`, as Broder's min-wise
//! independent permutations are usually approximated (datasketch does the same). Slot `i`
//! of the signature is the minimum of `h_i` over the shingles. For two sets `A` and `B`,
//! `P[min h_i(A) = min h_i(B)] = |A ∩ B| / |A ∪ B|`, the Jaccard similarity `J`, so the share
//! of equal slots estimates `J` with standard deviation `sqrt(J (1 - J) / num_perm)`.

use deltaw_tensor::mix64;

/// The Mersenne prime `2^61 - 1`: reduction modulo it is a shift and an add.
const MERSENNE_61: u64 = (1 << 61) - 1;

/// How a text is cut into shingles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ShingleKind {
    /// `size` consecutive whitespace-separated words, joined by one space.
    Word,
    /// `size` consecutive characters (spaces included): for text without word breaks.
    Char,
}

/// The 64-bit hashes of the distinct `size`-shingles of `text`, sorted. A text shorter than
/// one shingle is one shingle, so it still has a signature.
///
/// ```
/// use deltaw_train::clean::{shingles, ShingleKind};
/// assert_eq!(shingles("a b c a b", ShingleKind::Word, 2).len(), 3); // "a b", "b c", "c a"
/// assert_eq!(shingles("你好你好", ShingleKind::Char, 2).len(), 2); // "你好", "好你"
/// ```
pub fn shingles(text: &str, kind: ShingleKind, size: usize) -> Vec<u64> {
    let size = size.max(1);
    let mut hashes: Vec<u64> = match kind {
        ShingleKind::Word => {
            let words: Vec<&str> = text.split_whitespace().collect();
            if words.len() <= size {
                vec![hash_bytes(words.join(" ").as_bytes())]
            } else {
                words.windows(size).map(|w| hash_bytes(w.join(" ").as_bytes())).collect()
            }
        }
        ShingleKind::Char => {
            let starts: Vec<usize> = text.char_indices().map(|(i, _)| i).chain([text.len()]).collect();
            let count = starts.len() - 1;
            if count <= size {
                vec![hash_bytes(text.as_bytes())]
            } else {
                (0..=count - size).map(|i| hash_bytes(&text.as_bytes()[starts[i]..starts[i + size]])).collect()
            }
        }
    };
    hashes.sort_unstable();
    hashes.dedup();
    hashes
}

/// FNV-1a over `bytes`, then SplitMix64's finaliser: FNV alone mixes its last bytes poorly,
/// and the affine maps below need well-spread inputs.
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix64(h)
}

/// `num_perm` seeded hash functions; [`MinHasher::signature`] applies them to shingle sets.
///
/// ```
/// use deltaw_train::clean::{shingles, MinHasher, ShingleKind};
/// let hasher = MinHasher::new(256, 1);
/// let a = hasher.signature(&shingles("the quick brown fox jumps over the lazy dog", ShingleKind::Word, 1));
/// let b = hasher.signature(&shingles("the quick brown fox jumps over the lazy cat", ShingleKind::Word, 1));
/// let estimate = MinHasher::jaccard(&a, &b);             // true value: 7 / 9
/// assert!((estimate - 7.0 / 9.0).abs() < 0.1, "{estimate}");
/// ```
#[derive(Clone, Debug)]
pub struct MinHasher {
    /// `(a_i, b_i)` of `h_i(x) = (a_i x + b_i) mod p`, `a_i` in `1..p`, `b_i` in `0..p`.
    coefficients: Vec<(u64, u64)>,
}

impl MinHasher {
    /// `num_perm` hash functions drawn from `seed` (a pure function of both).
    pub fn new(num_perm: usize, seed: u64) -> MinHasher {
        let draw = |i: u64| mix64(mix64(seed) ^ mix64(i)) % MERSENNE_61;
        let coefficients = (0..num_perm as u64).map(|i| (draw(2 * i).max(1), draw(2 * i + 1))).collect();
        MinHasher { coefficients }
    }

    pub fn num_perm(&self) -> usize {
        self.coefficients.len()
    }

    /// Slot `i` is `min over x of h_i(x)`; all `u64::MAX` for an empty set, which then agrees
    /// only with another empty set.
    pub fn signature(&self, shingles: &[u64]) -> Vec<u64> {
        let mut signature = vec![u64::MAX; self.coefficients.len()];
        for &shingle in shingles {
            let x = reduce_61(u128::from(shingle));
            for (slot, &(a, b)) in signature.iter_mut().zip(&self.coefficients) {
                // a, x < 2^61 so a * x + b < 2^122 fits in u128.
                let h = reduce_61(u128::from(a) * u128::from(x) + u128::from(b));
                *slot = (*slot).min(h);
            }
        }
        signature
    }

    /// The share of equal slots: the estimate of the Jaccard similarity.
    pub fn jaccard(a: &[u64], b: &[u64]) -> f64 {
        let equal = a.iter().zip(b).filter(|(x, y)| x == y).count();
        equal as f64 / a.len().max(1) as f64
    }
}

/// `v mod (2^61 - 1)` for `v < 2^122`: since `2^61 ≡ 1`, `v ≡ (v >> 61) + (v & p)`, folded
/// twice, then one conditional subtraction.
fn reduce_61(v: u128) -> u64 {
    let p = u128::from(MERSENNE_61);
    let folded = (v >> 61) + (v & p);
    let folded = (folded >> 61) + (folded & p);
    let r = folded as u64;
    if r >= MERSENNE_61 {
        r - MERSENNE_61
    } else {
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduction_modulo_the_mersenne_prime_matches_the_remainder() {
        for v in [0u128, 1, MERSENNE_61 as u128, (1u128 << 121) + 12345, (1u128 << 122) - 1, 987_654_321_987_654_321] {
            assert_eq!(u128::from(reduce_61(v)), v % u128::from(MERSENNE_61), "{v}");
        }
    }

    #[test]
    fn signature_agreement_estimates_jaccard_within_three_sigma() {
        let hasher = MinHasher::new(512, 3);
        let a: Vec<u64> = (0..300).collect();
        let b: Vec<u64> = (100..400).collect(); // |A ∩ B| = 200, |A ∪ B| = 400
        let estimate = MinHasher::jaccard(&hasher.signature(&a), &hasher.signature(&b));
        let sigma = (0.5f64 * 0.5 / 512.0).sqrt();
        assert!((estimate - 0.5).abs() < 3.0 * sigma, "estimate {estimate}");
    }

    #[test]
    fn char_shingles_respect_utf8_boundaries_and_short_texts_have_one_shingle() {
        assert_eq!(shingles("中文文本", ShingleKind::Char, 3).len(), 2);
        assert_eq!(shingles("ab", ShingleKind::Char, 5), vec![hash_bytes(b"ab")]);
        assert_eq!(shingles("one  two", ShingleKind::Word, 3), vec![hash_bytes(b"one two")]);
    }
}
