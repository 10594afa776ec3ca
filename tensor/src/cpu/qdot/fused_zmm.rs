//! Q4_0 row dot products on 512-bit registers (AVX-512 VNNI): the same integer block sums
//! and the same f32 terms, in the same lanes, as `fused.rs`'s kernels (so the same bits), with
//! well under half their instructions per block, the Q4_0 decode's bottleneck.
//!
//! Per quad of blocks (`fused.rs` spends a 256-bit `vpdpbusd` and a horizontal sum per block):
//!
//! ```text
//! w   = [qs0 | qs1 | qs2 | qs3]          four 16-byte nibble runs, one 512-bit register
//! x   = ActBlocks::quads                 [x0..3 values 0..16], then [x0..3 values 16..32]
//! s   = vpdpbusd(w & 15, x lo)           16 i32 lanes, lanes 4j..4j+4: block j's partial sums
//!     + vpdpbusd((w >> 4) & 15, x hi)
//! ```
//!
//! The activations come arranged once per matrix–vector product (`ActBlocks::quads`), so the
//! two halves of each block meet the right bytes with no shuffle per block, and the partial
//! sums of both halves land in the same lanes with no extract and add. Two quads (eight
//! blocks) reduce to the eight block sums, in block order, with two two-register permutations
//! (`vpermt2d`) and two adds; the eight f16 scales come from one word permutation (`scales8`) and are
//! widened by F16C (`vcvtph2ps`, exact for every f16) instead of `fused.rs`'s portable bit
//! manipulation, which AVX2 machines without F16C need.
//!
//! History, measured on the 2-core Zen 5 at the Qwen2.5-0.5B shape: a pair-of-blocks kernel
//! (a 256-bit load of two nibble runs, one shuffle of the activations and one extract-and-add
//! per pair) decoded 121–138 tokens/s where this one decoded 136–138, alternating in one
//! sitting; its 896→4864 product (2.4 MB, in cache) ran at 41 GiB/s against 45 with quads.
//! Reducing the quads' partial sums by `vpermt2d` instead of three `vphaddd`, an extract pair
//! and a `vpermd` took that product to 51 GiB/s and 4864→896 from 47 to 56 GiB/s (criterion,
//! `benches/quant_gemv.rs`, same sitting).

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
/// `act` 32 values in -127..=127 per block, with their `quads` (32-value blocks).
#[target_feature(enable = "avx2,f16c,avx512f,avx512vl,avx512bw,avx512vnni")]
pub(crate) unsafe fn row_dot_q4_0(row: &[u8], act: &ActBlocks) -> f32 {
    let n = row.len() / BB;
    debug_assert!(row.len() == n * BB && act.q.len() == 32 * n && act.quads.len() == n.div_ceil(4) * 128);
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
    let w = row.as_ptr();
    // Blocks i0..i0 + 4 and i0 + 4..i0 + 8: 16 lanes each, four per block.
    // SAFETY: blocks i0..i0 + R lie in `row`; `quads` holds whole quads (zeros past `q`).
    let (qa, qb) = unsafe {
        let x = act.quads.as_ptr().add(32 * i0);
        let qa = quad_sums(w.add(BB * i0), x, R.min(4));
        let qb = if R > 4 { quad_sums(w.add(BB * (i0 + 4)), x.add(128), R - 4) } else { _mm512_setzero_si512() };
        (qa, qb)
    };
    // Each block's four partial sums into one lane: two permutations across both registers
    // take partials 0 and 1 (lanes 0..8 and 8..16, block order), and 2 and 3; their sum's two
    // halves added give the eight block sums in order. Integer adds, so any order is exact.
    let first = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 1, 5, 9, 13, 17, 21, 25, 29);
    let second = _mm512_setr_epi32(2, 6, 10, 14, 18, 22, 26, 30, 3, 7, 11, 15, 19, 23, 27, 31);
    let u = _mm512_add_epi32(_mm512_permutex2var_epi32(qa, first, qb), _mm512_permutex2var_epi32(qa, second, qb));
    let mut isum = _mm256_add_epi32(_mm512_castsi512_si256(u), _mm512_extracti64x4_epi64::<1>(u));
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

/// The partial sums of the `r ≤ 4` blocks at `w` (lanes 4j..4j + 4: block j; zeros past
/// `r`), against their activations at `x` as [`ActBlocks::quads`] arranges them.
///
/// ```text
/// w   = [qs0 | qs1 | qs2 | qs3]          four 16-byte nibble runs, one 512-bit register
/// s   = vpdpbusd(w & 15, x lo halves)    values 0..16 of each block
///     + vpdpbusd(w >> 4 & 15, x hi)      values 16..32
/// ```
///
/// # Safety
/// As [`row_dot_q4_0`]; `r` blocks at `w` and 128 arranged activations at `x`.
#[target_feature(enable = "avx2,f16c,avx512f,avx512vl,avx512bw,avx512vnni")]
#[inline]
unsafe fn quad_sums(w: *const u8, x: *const i8, r: usize) -> __m512i {
    // SAFETY: the caller's: 16 nibble bytes after each of the r blocks' 2-byte scale, 128
    // bytes at x.
    let (qs, xlo, xhi) = unsafe {
        let run = |j: usize| if j < r { _mm_loadu_si128(w.add(BB * j + 2).cast()) } else { _mm_setzero_si128() };
        let mut qs = _mm512_castsi128_si512(run(0));
        qs = _mm512_inserti32x4::<1>(qs, run(1));
        qs = _mm512_inserti32x4::<2>(qs, run(2));
        qs = _mm512_inserti32x4::<3>(qs, run(3));
        (qs, _mm512_loadu_si512(x.cast()), _mm512_loadu_si512(x.add(64).cast()))
    };
    let m = _mm512_set1_epi8(0x0F);
    let lo = _mm512_and_si512(qs, m);
    let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(qs), m);
    _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, xlo), hi, xhi)
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
