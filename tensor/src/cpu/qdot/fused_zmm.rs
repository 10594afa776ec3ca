//! Q4_0 row dot products on 512-bit registers (AVX-512 VNNI): the same integer block sums
//! and the same f32 terms, in the same lanes, as `fused.rs`'s kernels (so the same bits), with
//! about a third fewer instructions per block, the Q4_0 decode's bottleneck.
//!
//! Per pair of blocks (`fused.rs` spends a 256-bit `vpdpbusd` and a horizontal sum per block):
//!
//! ```text
//! qs  = [qs0 | qs1]                      two 16-byte nibble runs, one 256-bit register
//! w   = [qs & 15 | (qs >> 4) & 15]       = [lo0, lo1, hi0, hi1]: values 0..16 and 16..32 of each
//! x   = [x0 | x1] with 128-bit lanes (0, 2, 1, 3) = [x0 lo, x1 lo, x0 hi, x1 hi]
//! s   = vpdpbusd(w, x)                   16 i32 lanes: four partial sums per block half
//! y   = low half of s + high half        lanes 0..4: block 0, 4..8: block 1
//! ```
//!
//! Four such `y` (eight blocks) reduce with three `vphaddd` to the eight block sums, in block
//! order after one lane permutation. The scales are widened by F16C (`vcvtph2ps`, exact for
//! every f16) instead of `fused.rs`'s portable bit manipulation, which AVX2 machines without
//! F16C need.

use super::act::ActBlocks;
use super::fused::x86::{add_first, sum_lanes};
use std::arch::x86_64::*;

/// Bytes per Q4_0 block: an f16 scale, then 16 bytes of 32 nibbles.
const BB: usize = 18;

/// `fused::row_dot` for a Q4_0 row: `blocks::combine_legacy` of its block sums.
///
/// One row at a time, front to back: the rows of a matrix lie one after another, so the whole
/// product is one long stream for the hardware prefetcher. Dotting four rows together (sharing
/// each activation load) made four short interleaved streams and decoded 10–20% slower here,
/// with or without software prefetches.
///
/// # Safety
/// The CPU must have AVX2, F16C, AVX-512F/VL/BW and VNNI; `row` holds whole Q4_0 blocks and
/// `act` 32 values in -127..=127 per block.
#[target_feature(enable = "avx2,f16c,avx512f,avx512vl,avx512bw,avx512vnni")]
pub(crate) unsafe fn row_dot_q4_0(row: &[u8], act: &ActBlocks) -> f32 {
    let n = row.len() / BB;
    debug_assert!(row.len() == n * BB && act.q.len() == 32 * n);
    let mut acc = _mm256_setzero_ps();
    for i0 in (0..n / 8).map(|g| 8 * g) {
        // SAFETY: blocks i0..i0 + 8 lie in `row` and `act`.
        acc = _mm256_add_ps(acc, unsafe { terms::<8>(row, act, i0) });
    }
    let i0 = 8 * (n / 8);
    // The last, partial group with its size known at compile time (one copy per size), so
    // its loads are masked with a constant mask and nothing branches per block: at the
    // Qwen2.5-0.5B shape every row of K = 896 (28 blocks) ends with a group of four, and a
    // run-time size cost those rows a sixth of their time.
    // SAFETY (each arm): blocks i0..n lie in `row` and `act`.
    let tail = unsafe {
        match n % 8 {
            0 => return sum_lanes(acc),
            1 => terms::<1>(row, act, i0),
            2 => terms::<2>(row, act, i0),
            3 => terms::<3>(row, act, i0),
            4 => terms::<4>(row, act, i0),
            5 => terms::<5>(row, act, i0),
            6 => terms::<6>(row, act, i0),
            _ => terms::<7>(row, act, i0),
        }
    };
    acc = add_first(acc, tail, n % 8);
    sum_lanes(acc)
}

/// The terms `(dw·dx)·(Σ q·x − 8·Σ x)` of blocks `i0..i0 + R` (`R ≤ 8`) in lanes `0..R`
/// (lanes past `R` hold whatever; the caller blends them away).
///
/// # Safety
/// As [`row_dot_q4_0`]; blocks `i0..i0 + r` exist.
#[target_feature(enable = "avx2,f16c,avx512f,avx512vl,avx512bw,avx512vnni")]
#[inline]
unsafe fn terms<const R: usize>(row: &[u8], act: &ActBlocks, i0: usize) -> __m256 {
    let r = R;
    let (w, x) = (row.as_ptr(), act.q.as_ptr());
    let pair = |p: usize| {
        let b = i0 + 2 * p;
        if 2 * p >= r {
            return _mm256_setzero_si256();
        }
        // SAFETY: block b (and b + 1 when 2p + 1 < r) lies in `row` and `act`.
        unsafe { pair_sums(w.add(BB * b), x.add(32 * b), 2 * p + 1 < r) }
    };
    let (y0, y1, y2, y3) = (pair(0), pair(1), pair(2), pair(3));
    // hadd within 128-bit halves: [b0 b0 b2 b2 | b1 b1 b3 b3], then [b0 b2 b4 b6 | b1 b3 b5 b7];
    // the permutation puts the blocks in order.
    let h = _mm256_hadd_epi32(_mm256_hadd_epi32(y0, y1), _mm256_hadd_epi32(y2, y3));
    let mut isum = _mm256_permutevar8x32_epi32(h, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    // SAFETY: i0 + r ≤ n entries of `sums32` and `d`; the masked loads read only those.
    let (s32, dx) = unsafe {
        let (s, d) = (act.sums32.as_ptr().add(i0), act.d.as_ptr().add(i0));
        if r == 8 {
            (_mm256_loadu_si256(s.cast()), _mm256_loadu_ps(d))
        } else {
            let mask = ((1u32 << r) - 1) as u8;
            (_mm256_maskz_loadu_epi32(mask, s.cast()), _mm256_maskz_loadu_ps(mask, d))
        }
    };
    // Σ (q − 8)·x = Σ q·x − 8 · Σ x, in integers.
    isum = _mm256_sub_epi32(isum, _mm256_slli_epi32::<3>(s32));
    // SAFETY: r blocks at w + BB·i0.
    let dw = unsafe {
        if r == 8 {
            scales8(w.add(BB * i0))
        } else {
            scales(w.add(BB * i0), r)
        }
    };
    _mm256_mul_ps(_mm256_mul_ps(dw, dx), _mm256_cvtepi32_ps(isum))
}

/// The partial sums of the block at `w` (lanes 0..4) and of the next one (lanes 4..8; the
/// same block again when `two` is false), against their activations at `x`.
///
/// # Safety
/// As [`row_dot_q4_0`]; one block (two when `two`) at `w` and its 32 (64) activations at `x`.
#[target_feature(enable = "avx2,f16c,avx512f,avx512vl,avx512bw,avx512vnni")]
#[inline]
unsafe fn pair_sums(w: *const u8, x: *const i8, two: bool) -> __m256i {
    let next = if two { BB } else { 0 };
    // SAFETY: the caller's: 16 nibble bytes after each block's 2-byte scale, 32 (or 64)
    // activations at x.
    let (qs, xz) = unsafe {
        let qs0 = _mm_loadu_si128(w.add(2).cast());
        let qs1 = _mm_loadu_si128(w.add(next + 2).cast());
        let xz = if two { _mm512_loadu_si512(x.cast()) } else { _mm512_broadcast_i64x4(_mm256_loadu_si256(x.cast())) };
        (_mm256_inserti128_si256::<1>(_mm256_castsi128_si256(qs0), qs1), xz)
    };
    let m = _mm256_set1_epi8(0x0F);
    let lo = _mm256_and_si256(qs, m);
    let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(qs), m);
    // [lo0, lo1, hi0, hi1]: values 0..16 and 16..32 of each block.
    let wz = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi);
    // The activations' 128-bit lanes (0, 2, 1, 3), to match: [x0 values 0..16, x1 0..16,
    // x0 16..32, x1 16..32].
    let xz = _mm512_shuffle_i64x2::<0b11_01_10_00>(xz, xz);
    let s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wz, xz);
    _mm256_add_epi32(_mm512_castsi512_si256(s), _mm512_extracti64x4_epi64::<1>(s))
}

/// The f16 scales of the eight blocks at `p` as eight f32 lanes. Block j's scale is 16-bit
/// word 9j of the 144 bytes (18 = 2·9), so all eight lie in the first 128 bytes: two 512-bit
/// loads (lines the nibble loads read anyway) and one word permutation (`vpermt2w`) gather
/// them, where eight separate 16-bit inserts took a tenth of the kernel's instructions.
///
/// # Safety
/// As [`row_dot_q4_0`] (AVX-512BW too: every CPU with VNNI has it); eight blocks at `p`.
#[target_feature(enable = "avx2,f16c,avx512f,avx512vl,avx512bw,avx512vnni")]
#[inline]
unsafe fn scales8(p: *const u8) -> __m256 {
    // SAFETY: the caller's: 144 bytes at p, of which these read the first 128.
    let (lo, hi) = unsafe { (_mm512_loadu_si512(p.cast()), _mm512_loadu_si512(p.add(64).cast())) };
    let words =
        _mm512_setr_epi32(9 << 16, 27 << 16 | 18, 45 << 16 | 36, 63 << 16 | 54, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    let h = _mm512_permutex2var_epi16(lo, words, hi);
    _mm256_cvtph_ps(_mm512_castsi512_si128(h))
}

/// The f16 scales of `r ≤ 8` blocks at `p` as eight f32 lanes, zeros past `r`.
///
/// # Safety
/// As [`row_dot_q4_0`]; `r` blocks at `p`.
#[target_feature(enable = "avx2,f16c,avx512f,avx512vl,avx512bw,avx512vnni")]
#[inline]
unsafe fn scales(p: *const u8, r: usize) -> __m256 {
    // SAFETY: the caller's; block j < r starts at p + BB·j with its scale.
    let h = |j: usize| if j < r { unsafe { p.add(BB * j).cast::<i16>().read_unaligned() } } else { 0 };
    _mm256_cvtph_ps(_mm_setr_epi16(h(0), h(1), h(2), h(3), h(4), h(5), h(6), h(7)))
}
