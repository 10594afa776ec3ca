//! Fused row dot products for the legacy types with the most common files, Q8_0, Q4_0 and
//! Q4_1: the integer sums `s[b] = Σ_{i in block b} w_q[i] · x_q[i]`, one exact i32 per
//! 32-value block, computed straight from the block bytes as they are loaded (no i8 copy of the
//! row), then scaled and summed eight blocks at a time.
//!
//! The unpack-then-dot route (`blocks::unpack_row`, then `dot16s`) writes every weight row into
//! an i8 buffer and reads it back; for a gemv that is two passes of compute over every weight
//! byte, which is what kept decoding under llama.cpp's speed (see the module docs of `qdot`).
//! Here each block is widened in registers:
//! - Q8_0's 32 bytes are the signed values; AVX2 moves the sign onto the activation
//!   (`vpsignb`) so `vpmaddubsw` sees `|w|` unsigned (the bound argued in `x86.rs`);
//! - Q4_0 and Q4_1's 16 bytes become 32 unsigned nibbles (low nibbles are values 0..16, high
//!   ones 16..32), which multiply the activations directly; Q4_0's offset of 8 comes off
//!   afterwards as `Σ (q − 8)·x = Σ q·x − 8 · Σ x` with `Σ x` the activation block's sum.
//!
//! The sums are the same integers as the unpack route's `g[2b] + g[2b + 1]`, and the scales
//! combine them in the same f32 order (`blocks::combine_legacy`), so the outputs keep the same
//! bits on every path.

use super::act::ActBlocks;
use super::blocks::combine_legacy;
use super::Path;
use crate::quant::QuantType;

/// Whether [`row_dot`] covers `ty`.
pub(crate) fn covers(ty: QuantType) -> bool {
    matches!(ty, QuantType::Q8_0 | QuantType::Q4_0 | QuantType::Q4_1)
}

/// The dot product of one weight row (type `ty`, one of [`covers`]) with the quantized
/// activations `act`: exactly `blocks::combine_legacy` of the row's block sums.
#[inline(always)]
pub(crate) fn row_dot(path: Path, ty: QuantType, row: &[u8], act: &ActBlocks) -> f32 {
    debug_assert!(covers(ty) && row.len() * 32 == act.q.len() * ty.block_bytes());
    match path {
        Path::Portable => row_dot_portable(ty, row, act),
        // SAFETY: `path()` picks these only where the CPU has the features; lengths as asserted.
        #[cfg(target_arch = "x86_64")]
        Path::Avx2 => unsafe { x86::row_dot_avx2(ty, row, act) },
        #[cfg(target_arch = "x86_64")]
        Path::Avx512Vnni if ty == QuantType::Q4_0 => unsafe { super::fused_zmm::row_dot_q4_0(row, act) },
        #[cfg(target_arch = "x86_64")]
        Path::Avx512Vnni => unsafe { x86::row_dot_vnni(ty, row, act) },
    }
}

/// The reference: each block's sum from its values as `blocks::unpack_row` gives them.
pub(crate) fn row_dot_portable(ty: QuantType, row: &[u8], act: &ActBlocks) -> f32 {
    let bb = ty.block_bytes();
    combine_legacy(ty, row, act, |i| block_sum_portable(ty, &row[bb * i..bb * (i + 1)], &act.q[32 * i..32 * i + 32]))
}

/// `Σ w_q · x_q` over one block.
fn block_sum_portable(ty: QuantType, block: &[u8], x: &[i8]) -> i32 {
    let mut w = [0i8; 32];
    super::blocks::unpack_row(ty, block, &mut w);
    w.iter().zip(x).map(|(&a, &b)| a as i32 * b as i32).sum()
}

#[cfg(target_arch = "x86_64")]
pub(super) mod x86 {
    use super::super::blocks::reduce8;
    use super::{ActBlocks, QuantType};
    use std::arch::x86_64::*;

    /// Type codes for the const parameter of the kernels (one compiled loop per type).
    const Q8_0: u8 = 0;
    const Q4_0: u8 = 1;
    const Q4_1: u8 = 2;

    /// The block type of a type code.
    const fn quant_type(t: u8) -> QuantType {
        match t {
            Q8_0 => QuantType::Q8_0,
            Q4_0 => QuantType::Q4_0,
            _ => QuantType::Q4_1,
        }
    }

    /// The eight i32 lanes of each of `v[0..8]` summed: lane `j` of the result is `Σ v[j]`.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn hsum8(v: &[__m256i; 8]) -> __m256i {
        // hadd pairs lanes within 128-bit halves; two rounds leave, per half, the partial sums
        // of four vectors; adding the halves crosswise finishes them in order.
        let abcd = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
        let efgh = _mm256_hadd_epi32(_mm256_hadd_epi32(v[4], v[5]), _mm256_hadd_epi32(v[6], v[7]));
        _mm256_add_epi32(_mm256_permute2x128_si256(abcd, efgh, 0x20), _mm256_permute2x128_si256(abcd, efgh, 0x31))
    }

    /// A block's 32 weights as unsigned nibbles from its 16 bytes at `p`: low nibbles first
    /// (values 0..16), then the high ones (values 16..32).
    ///
    /// # Safety
    /// AVX2; 16 readable bytes at `p`.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn nibbles(p: *const u8) -> __m256i {
        // SAFETY: the caller's.
        let qs = unsafe { _mm_loadu_si128(p.cast()) };
        let m = _mm_set1_epi8(0x0F);
        _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(qs, 4), m), _mm_and_si128(qs, m))
    }

    /// One block's eight partial sums (four products each) with AVX2's `vpmaddubsw`.
    ///
    /// # Safety
    /// AVX2; a whole block of type `T` at `b`, 32 activations at `x`.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn block_avx2<const T: u8>(b: *const u8, x: *const i8) -> __m256i {
        // SAFETY: the caller's.
        let xv = unsafe { _mm256_loadu_si256(x.cast()) };
        let pairs = match T {
            Q8_0 => {
                let w = unsafe { _mm256_loadu_si256(b.add(2).cast()) };
                _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(xv, w))
            }
            // Nibbles ≤ 15 against |x| ≤ 127: a pair is at most 3810, far from i16 saturation.
            Q4_0 => _mm256_maddubs_epi16(unsafe { nibbles(b.add(2)) }, xv),
            _ => _mm256_maddubs_epi16(unsafe { nibbles(b.add(4)) }, xv),
        };
        _mm256_madd_epi16(pairs, _mm256_set1_epi16(1))
    }

    /// The same with AVX-512 VNNI's `vpdpbusd` (u8·i8, four products into each i32 lane, no
    /// i16 step), on 256-bit registers.
    ///
    /// # Safety
    /// AVX2, AVX-512F/VL/VNNI; as [`block_avx2`].
    #[target_feature(enable = "avx2,avx512f,avx512vl,avx512vnni")]
    #[inline]
    unsafe fn block_vnni<const T: u8>(b: *const u8, x: *const i8) -> __m256i {
        let zero = _mm256_setzero_si256();
        // SAFETY: the caller's.
        let xv = unsafe { _mm256_loadu_si256(x.cast()) };
        match T {
            Q8_0 => {
                let w = unsafe { _mm256_loadu_si256(b.add(2).cast()) };
                _mm256_dpbusd_epi32(zero, _mm256_sign_epi8(w, w), _mm256_sign_epi8(xv, w))
            }
            Q4_0 => _mm256_dpbusd_epi32(zero, unsafe { nibbles(b.add(2)) }, xv),
            _ => _mm256_dpbusd_epi32(zero, unsafe { nibbles(b.add(4)) }, xv),
        }
    }

    /// The first 4 bytes of each of `r ≤ 8` blocks of `bb` bytes at `p` (a legacy block's
    /// scale, and for Q4_1 its minimum above it), as eight u32 lanes, zeros past `r`. Plain
    /// loads: `vpgatherdd` was the slowest instruction of the loop on this machine's CPU.
    ///
    /// # Safety
    /// AVX2; `r` blocks of `bb ≥ 4` bytes at `p`.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn heads(p: *const u8, bb: usize, r: usize) -> __m256i {
        // SAFETY: the caller's; block j < r starts at p + bb·j and holds 4 bytes or more.
        let word = |j: usize| if j < r { unsafe { p.add(bb * j).cast::<i32>().read_unaligned() } } else { 0 };
        _mm256_setr_epi32(word(0), word(1), word(2), word(3), word(4), word(5), word(6), word(7))
    }

    /// The f16 in the low (`high == false`) or high half of each lane of `words`, widened
    /// exactly as `blocks::f16_at` widens one: the exponent and mantissa bits moved into an
    /// f32's place and scaled by 2¹¹² (subnormals included), all-ones exponents kept, the sign
    /// put back.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn f16x8(words: __m256i, high: bool) -> __m256 {
        let h = if high { _mm256_srli_epi32(words, 16) } else { _mm256_and_si256(words, _mm256_set1_epi32(0xFFFF)) };
        let sign = _mm256_slli_epi32(_mm256_and_si256(h, _mm256_set1_epi32(0x8000)), 16);
        let bits = _mm256_slli_epi32(_mm256_and_si256(h, _mm256_set1_epi32(0x7FFF)), 13);
        let scaled = _mm256_castps_si256(_mm256_mul_ps(
            _mm256_castsi256_ps(bits),
            _mm256_castsi256_ps(_mm256_set1_epi32(0x7780_0000)),
        ));
        let exp = _mm256_and_si256(h, _mm256_set1_epi32(0x7C00));
        let special = _mm256_cmpeq_epi32(exp, _mm256_set1_epi32(0x7C00));
        let inf_nan = _mm256_or_si256(bits, _mm256_set1_epi32(0x7F80_0000));
        _mm256_castsi256_ps(_mm256_or_si256(_mm256_blendv_epi8(scaled, inf_nan, special), sign))
    }

    /// `acc + term` in lanes `0..r`, and `acc`'s own bits past `r`: a row's last, partial group
    /// of blocks adds into its own lanes only (a blend, so the others keep their bits).
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(in crate::cpu::qdot) fn add_first(acc: __m256, term: __m256, r: usize) -> __m256 {
        let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(r as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        _mm256_blendv_ps(acc, _mm256_add_ps(acc, term), _mm256_castsi256_ps(mask))
    }

    /// The eight lanes of `acc` summed in [`reduce8`]'s order, the one every path uses.
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(in crate::cpu::qdot) fn sum_lanes(acc: __m256) -> f32 {
        let mut lanes = [0.0f32; 8];
        // SAFETY: 8 f32 fit `lanes`.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), acc) };
        reduce8(lanes)
    }

    /// Eight lanes of `v[..r]`, zeros past `r` (a row's last, partial group of blocks).
    #[inline(always)]
    fn first<E: Copy + Default>(v: &[E], r: usize) -> [E; 8] {
        std::array::from_fn(|j| if j < r { v[j] } else { E::default() })
    }

    macro_rules! row_dot_with {
        ($name:ident, $typed:ident, $step:ident, $features:literal, $block:ident) => {
            /// `super::row_dot` on this path.
            ///
            /// # Safety
            /// The CPU must have the named features; `row` holds whole blocks of `ty` (one of
            /// `super::covers`) and `act` 32 values per block, in -127..=127.
            #[target_feature(enable = $features)]
            pub(crate) unsafe fn $name(ty: QuantType, row: &[u8], act: &ActBlocks) -> f32 {
                // SAFETY: the caller's.
                unsafe {
                    match ty {
                        QuantType::Q8_0 => $typed::<Q8_0>(row, act),
                        QuantType::Q4_0 => $typed::<Q4_0>(row, act),
                        _ => $typed::<Q4_1>(row, act),
                    }
                }
            }

            /// One type's loop: eight blocks at a time, their integer sums reduced together,
            /// scaled as eight f32 lanes and added into one 8-lane accumulator (lane j holds
            /// the blocks ≡ j mod 8, `blocks::combine_legacy`'s order); a last group of fewer
            /// than eight adds into its own lanes only (a blend, so the others keep their bits).
            ///
            /// # Safety
            /// As the dispatcher above.
            #[target_feature(enable = $features)]
            unsafe fn $typed<const T: u8>(row: &[u8], act: &ActBlocks) -> f32 {
                let bb = quant_type(T).block_bytes();
                let n = row.len() / bb;
                let mut acc = _mm256_setzero_ps();
                for i0 in (0..n / 8).map(|st| 8 * st) {
                    // SAFETY: blocks i0..i0 + 8 lie in `row` and `act`.
                    acc = _mm256_add_ps(acc, unsafe { $step::<T>(row, bb, act, i0, 8) });
                }
                let (i0, r) = (8 * (n / 8), n % 8);
                if r > 0 {
                    // SAFETY: blocks i0..n lie in `row` and `act`.
                    acc = add_first(acc, unsafe { $step::<T>(row, bb, act, i0, r) }, r);
                }
                sum_lanes(acc)
            }

            /// The terms of blocks `i0..i0 + r` (`r ≤ 8`) in lanes `0..r`: `(dw·dx)·isum`, plus
            /// `m·(dx·Σx)` for Q4_1, as `blocks::legacy_term` forms each (lanes past `r` are
            /// garbage-free zeros times zeros, and the caller blends them away).
            ///
            /// # Safety
            /// As the dispatcher; blocks `i0..i0 + r` of `bb` bytes exist.
            #[target_feature(enable = $features)]
            #[inline]
            unsafe fn $step<const T: u8>(row: &[u8], bb: usize, act: &ActBlocks, i0: usize, r: usize) -> __m256 {
                let (w, x) = (row.as_ptr(), act.q.as_ptr());
                let mut v = [_mm256_setzero_si256(); 8];
                for (j, v) in v.iter_mut().enumerate().take(r) {
                    // SAFETY: block i0 + j < n lies at w[bb·i..bb·(i+1)] and x[32·i..].
                    *v = unsafe { $block::<T>(w.add(bb * (i0 + j)), x.add(32 * (i0 + j))) };
                }
                let mut isum = hsum8(&v);
                let (s32, dx) = if r == 8 {
                    // SAFETY: i0 + 8 ≤ n entries of `sums32` and `d`.
                    unsafe {
                        (
                            _mm256_loadu_si256(act.sums32.as_ptr().add(i0).cast()),
                            _mm256_loadu_ps(act.d.as_ptr().add(i0)),
                        )
                    }
                } else {
                    let (s, d) = (first(&act.sums32[i0..], r), first(&act.d[i0..], r));
                    // SAFETY: 8 values each.
                    unsafe { (_mm256_loadu_si256(s.as_ptr().cast()), _mm256_loadu_ps(d.as_ptr())) }
                };
                // SAFETY: r blocks of bb ≥ 18 bytes at w + bb·i0.
                let words = unsafe { heads(w.add(bb * i0), bb, r) };
                if T == Q4_0 {
                    // Σ (q − 8)·x = Σ q·x − 8 · Σ x, in integers.
                    isum = _mm256_sub_epi32(isum, _mm256_slli_epi32(s32, 3));
                }
                let term = _mm256_mul_ps(_mm256_mul_ps(f16x8(words, false), dx), _mm256_cvtepi32_ps(isum));
                if T == Q4_1 {
                    let m = f16x8(words, true);
                    return _mm256_add_ps(term, _mm256_mul_ps(m, _mm256_mul_ps(dx, _mm256_cvtepi32_ps(s32))));
                }
                term
            }
        };
    }

    row_dot_with!(row_dot_avx2, dot_avx2, step_avx2, "avx2", block_avx2);
    row_dot_with!(row_dot_vnni, dot_vnni, step_vnni, "avx2,avx512f,avx512vl,avx512vnni", block_vnni);

    #[cfg(test)]
    mod tests {
        /// The gathered f16 widening equals `half`'s for every f16, scale (low half) and
        /// minimum (high half) alike, subnormals, infinities and NaNs included.
        #[test]
        fn f16x8_widens_every_f16_as_half_does() {
            if !std::arch::is_x86_feature_detected!("avx2") {
                return;
            }
            let bb = 20usize;
            for first in (0..=u16::MAX as usize).step_by(8) {
                let mut blocks = vec![0u8; 8 * bb];
                for j in 0..8 {
                    let h = (first + j) as u16;
                    blocks[bb * j..bb * j + 2].copy_from_slice(&h.to_le_bytes());
                    blocks[bb * j + 2..bb * j + 4].copy_from_slice(&(!h).to_le_bytes());
                }
                for (high, of) in [(false, 0u16), (true, u16::MAX)] {
                    let mut got = [0.0f32; 8];
                    // SAFETY: AVX2 checked above; eight blocks of `bb` bytes.
                    unsafe {
                        let words = super::heads(blocks.as_ptr(), bb, 8);
                        std::arch::x86_64::_mm256_storeu_ps(got.as_mut_ptr(), super::f16x8(words, high))
                    };
                    for (j, g) in got.iter().enumerate() {
                        let want = half::f16::from_bits((first + j) as u16 ^ of).to_f32();
                        assert!(g.to_bits() == want.to_bits() || (g.is_nan() && want.is_nan()), "{:#06x}", first + j);
                    }
                }
            }
        }
    }
}
