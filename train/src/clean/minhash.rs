//! MinHash signatures: a short sketch of a text's set of shingles whose agreement with
//! another sketch estimates the two sets' Jaccard similarity.
//!
//! A shingle is `k` consecutive words (split on whitespace) or `k` consecutive characters
//! (for Chinese and other text without spaces). Each word (or character shingle) is hashed
//! once to 64 bits; a word shingle's hash combines its words' hashes, so a
//! word is read once however many shingles hold it. The `num_perm` permutations are then
//! derived from that one hash with multiply-add-shift, `h_i(x) = ((a_i x + b_i) mod 2^64) >> 32`
//! on the shingle's 32-bit key `x` (the low half of its hash, finalised once more) with random 64-bit `a_i`, `b_i`: Dietzfelbinger's strongly
//! universal family from 32-bit keys to 32-bit values, which stands in for a random
//! permutation as the affine maps modulo a prime do in Broder's scheme (and in datasketch),
//! but is plain `u64` arithmetic that the compiler vectorises across the `num_perm` slots
//! (two 32×32→64 multiplies per lane). Slot `i` of the signature is the minimum of `h_i`
//! over the shingles. For two sets `A` and `B`, `P[min h_i(A) = min h_i(B)] ≈ |A ∩ B| / |A ∪ B|`,
//! the Jaccard similarity `J`, so the share of equal slots estimates `J` with standard
//! deviation `sqrt(J (1 - J) / num_perm)`. Two distinct shingles share a 32-bit key with
//! probability `2^-32`, which moves an estimate by far less than that deviation.

use deltaw_tensor::cpu::simd::vectorized;
use deltaw_tensor::mix64;

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
    let mut hashes = Vec::new();
    shingles_into(text, kind, size, &mut hashes);
    hashes
}

/// [`shingles`] into `hashes` (cleared first), so a caller can reuse one buffer.
pub(crate) fn shingles_into(text: &str, kind: ShingleKind, size: usize, hashes: &mut Vec<u64>) {
    let size = size.max(1);
    hashes.clear();
    match kind {
        ShingleKind::Word => {
            // Word hashes first; shingle `i` combines words `i..i + size`. A text of at most
            // `size` words is the one shingle of all its words, as a window of a longer text
            // with the same words would be.
            hashes.extend(text.split_whitespace().map(|w| hash_word(w.as_bytes())));
            let words = hashes.len();
            let windows = words.saturating_sub(size) + 1;
            hashes.resize(windows.max(words), 0); // grows only for a text without words
                                                  // Window i reads words i.. before slot i is overwritten, so this works in place.
            for i in 0..windows {
                let end = (i + size).min(words);
                hashes[i] = hashes[i..end].iter().fold(WORD_SHINGLE_SEED, |h, &w| mix64(h ^ w));
            }
            hashes.truncate(windows);
        }
        ShingleKind::Char => {
            let starts: Vec<usize> = text.char_indices().map(|(i, _)| i).chain([text.len()]).collect();
            let count = starts.len() - 1;
            if count <= size {
                hashes.push(hash_bytes(text.as_bytes()));
            } else {
                hashes.extend((0..=count - size).map(|i| hash_bytes(&text.as_bytes()[starts[i]..starts[i + size]])));
            }
        }
    }
    hashes.sort_unstable();
    hashes.dedup();
}

/// Where a word shingle's hash chain starts: any constant away from the word hashes.
const WORD_SHINGLE_SEED: u64 = 0x5368_696e_676c_6533;

/// FNV-1a over `bytes`, then SplitMix64's finaliser: FNV alone mixes its last bytes poorly,
/// and the multiply-shift maps below need well-spread inputs.
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    mix64(fnv1a(bytes))
}

/// A word's hash: its bytes read 8 at a time (the last word zero-padded, with the length in
/// its top byte) through a multiply-rotate chain, then SplitMix64's finaliser. Cheaper than
/// [`hash_bytes`] on short strings, which it otherwise stands in for.
pub(crate) fn hash_word(bytes: &[u8]) -> u64 {
    let add = |h: u64, word: u64| (h.rotate_left(23) ^ word).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut chunks = bytes.chunks_exact(8);
    let mut h = (&mut chunks).fold(0, |h, chunk| add(h, u64::from_le_bytes(chunk.try_into().expect("8 bytes"))));
    let rest = chunks.remainder();
    let mut last = [0u8; 8];
    last[..rest.len()].copy_from_slice(rest);
    h = add(h, u64::from_le_bytes(last) ^ (bytes.len() as u64) << 56);
    mix64(h)
}

/// FNV-1a's 64-bit state after `bytes`, before any finaliser.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// FNV-1a's 64-bit multiplier.
pub(crate) const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

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
    /// `a_i` of `h_i(x) = ((a_i x + b_i) mod 2^64) >> 32`, one per slot.
    multipliers: Vec<u64>,
    /// `b_i`, one per slot.
    offsets: Vec<u64>,
}

impl MinHasher {
    /// `num_perm` hash functions drawn from `seed` (a pure function of both).
    pub fn new(num_perm: usize, seed: u64) -> MinHasher {
        let draw = |i: u64| mix64(mix64(seed) ^ mix64(i));
        let multipliers = (0..num_perm as u64).map(|i| draw(2 * i)).collect();
        let offsets = (0..num_perm as u64).map(|i| draw(2 * i + 1)).collect();
        MinHasher { multipliers, offsets }
    }

    pub fn num_perm(&self) -> usize {
        self.multipliers.len()
    }

    /// Slot `i` is `min over x of h_i(x)`; all `u32::MAX` for an empty set, which then agrees
    /// only with another empty set.
    pub fn signature(&self, shingles: &[u64]) -> Vec<u32> {
        let mut signature = vec![u32::MAX; self.num_perm()];
        self.signature_into(shingles, &mut signature);
        signature
    }

    /// [`MinHasher::signature`] into `signature`, whose length must be `num_perm`.
    pub(crate) fn signature_into(&self, shingles: &[u64], signature: &mut [u32]) {
        assert_eq!(signature.len(), self.num_perm(), "MinHasher::signature_into: signature length");
        signature.fill(u32::MAX);
        // Compiled for the widest SIMD the CPU has: the slot loop is independent per lane.
        vectorized(|| {
            for &shingle in shingles {
                // The 32-bit key, finalised once more: multiply-shift is only pairwise
                // independent, and on structured keys (0, 1, 2, ...) its minima are biased.
                let x = mix64(shingle) & 0xffff_ffff;
                for ((slot, &a), &b) in signature.iter_mut().zip(&self.multipliers).zip(&self.offsets) {
                    // x < 2^32, so a·x mod 2^64 needs only the 32×32→64 products of a's halves.
                    let h = (a.wrapping_mul(x).wrapping_add(b) >> 32) as u32;
                    *slot = (*slot).min(h);
                }
            }
        });
    }

    /// The share of equal slots: the estimate of the Jaccard similarity.
    pub fn jaccard(a: &[u32], b: &[u32]) -> f64 {
        let equal = a.iter().zip(b).filter(|(x, y)| x == y).count();
        equal as f64 / a.len().max(1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_shingles_of_a_short_text_equal_the_same_window_of_a_longer_one() {
        let short = shingles("one two three", ShingleKind::Word, 3);
        let long = shingles("one two three four", ShingleKind::Word, 3);
        assert_eq!(short.len(), 1);
        assert!(long.contains(&short[0]), "the window 'one two three' hashes the same in both");
        assert_ne!(shingles("a b", ShingleKind::Word, 2), shingles("b a", ShingleKind::Word, 2), "order counts");
    }

    #[test]
    fn signature_slots_are_the_minimum_of_each_multiply_shift_map() {
        let hasher = MinHasher::new(16, 9);
        let keys = [3u64 << 32, 0xdead_beef_0000_0000, u64::MAX];
        let signature = hasher.signature(&keys);
        for (i, slot) in signature.iter().enumerate() {
            let (a, b) = (hasher.multipliers[i], hasher.offsets[i]);
            let expected = keys
                .iter()
                .map(|&k| ((u128::from(a) * u128::from(mix64(k) & 0xffff_ffff) + u128::from(b)) % (1 << 64)) >> 32);
            assert_eq!(u128::from(*slot), expected.min().unwrap(), "slot {i}");
        }
        assert_eq!(hasher.signature(&[]), vec![u32::MAX; 16]);
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
        assert_eq!(shingles("one  two", ShingleKind::Word, 3), shingles("one two", ShingleKind::Word, 3));
        assert_eq!(shingles("", ShingleKind::Word, 3).len(), 1, "an empty text is one shingle");
    }
}
