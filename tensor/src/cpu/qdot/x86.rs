//! The integer kernel on x86: `g[t] = Σ_{i in 16t..16t+16} w[i] · x[i]` over i8 rows, exact in
//! i32 (the same numbers as [`super::dot16s_portable`]), in AVX2 or AVX-512 VNNI.
//!
//! **AVX2** (`vpmaddubsw`): the instruction multiplies *unsigned* by signed bytes, so the
//! sign of `w` moves onto `x` first: `|w| · (x · sign w) = w · x` (`vpsignb` twice). Adjacent
//! products are summed into i16 with saturation: `|w| ≤ 128` and `|x| ≤ 127` (the activation
//! quantizer never writes -128) bound a pair by 2·128·127 = 32512 < 32767, so nothing
//! saturates. `vpmaddwd` by ones widens pairs of those into i32.
//!
//! **AVX-512 VNNI** (`vpdpbusd`, zmm): four u8·i8 products summed straight into each i32
//! lane, no i16 step. No 512-bit `vpsignb` exists, so `w` is biased instead: `u = w + 128`
//! (`w ^ 0x80`) is unsigned and `Σ w·x = Σ u·x − 128·Σ x`, the second term a `vpdpbusd` of
//! the constant 128 with `x`. Both sums are exact (|Σ| < 2^31 for 16 terms).
//!
//! Both finish with a horizontal step that turns lanes holding partial sums of 4 products into
//! one i32 per 16 values; a tail of fewer groups than one step handles is done in scalar code.

use std::arch::x86_64::*;

/// AVX2 `g` for `w`, `x` of `16 · g.len()` values (an even number of groups).
///
/// # Safety
/// The CPU must have AVX2. `w.len() == x.len() == 16 * g.len()`, every `x` in -127..=127.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn dot16s_avx2(w: &[i8], x: &[i8], g: &mut [i32]) {
    debug_assert!(w.len() == x.len() && w.len() == 16 * g.len());
    let ones = _mm256_set1_epi16(1);
    // Output lanes come out as groups [0, 2, 4, 6, 1, 3, 5, 7] of an 8-group step.
    let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    let steps = g.len() / 8;
    // One 32-byte load: 8 i32 lanes, lanes 0..4 from group 2s, lanes 4..8 from group 2s+1.
    let pair = |p: usize| {
        // SAFETY: p + 32 ≤ 128 · steps ≤ w.len() = x.len() (p = 128·s + 32·i, i < 4, s < steps).
        let (wv, xv) =
            unsafe { (_mm256_loadu_si256(w.as_ptr().add(p).cast()), _mm256_loadu_si256(x.as_ptr().add(p).cast())) };
        let prod = _mm256_maddubs_epi16(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(xv, wv));
        _mm256_madd_epi16(prod, ones)
    };
    for s in 0..steps {
        let p = 128 * s;
        let (a, b, c, d) = (pair(p), pair(p + 32), pair(p + 64), pair(p + 96));
        let sums = _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d));
        let sums = _mm256_permutevar8x32_epi32(sums, order);
        // SAFETY: 8 · s + 8 ≤ g.len().
        unsafe { _mm256_storeu_si256(g.as_mut_ptr().add(8 * s).cast(), sums) };
    }
    let done = 8 * steps;
    super::dot16s_portable(&w[16 * done..], &x[16 * done..], &mut g[done..]);
}

/// AVX-512 VNNI `g` (see the module docs), 16 groups (256 values) per step.
///
/// # Safety
/// The CPU must have AVX-512F and AVX-512 VNNI. Lengths as [`dot16s_avx2`].
#[target_feature(enable = "avx512f,avx512vnni")]
pub(crate) unsafe fn dot16s_avx512_vnni(w: &[i8], x: &[i8], g: &mut [i32]) {
    debug_assert!(w.len() == x.len() && w.len() == 16 * g.len());
    let bias = _mm512_set1_epi8(-128); // 0x80: flips the sign bit (w + 128 as u8)
    let zero = _mm512_setzero_si512();
    // After the two unpack rounds, lane 4j + s holds group 4s + j; this puts it at 4s + j.
    let order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    let steps = g.len() / 16;
    // One 64-byte load: 16 i32 lanes, each 128-bit lane j holding group 4·(step part) + j.
    let quad = |p: usize| {
        // SAFETY: p + 64 ≤ 256 · steps ≤ w.len() = x.len().
        let (wv, xv) =
            unsafe { (_mm512_loadu_si512(w.as_ptr().add(p).cast()), _mm512_loadu_si512(x.as_ptr().add(p).cast())) };
        let biased = _mm512_dpbusd_epi32(zero, _mm512_xor_si512(wv, bias), xv);
        _mm512_sub_epi32(biased, _mm512_dpbusd_epi32(zero, bias, xv))
    };
    for s in 0..steps {
        let p = 256 * s;
        let (v0, v1, v2, v3) = (quad(p), quad(p + 64), quad(p + 128), quad(p + 192));
        // Per 128-bit lane: [v0 a+c, v1 a+c, v0 b+d, v1 b+d] (a..d the lane's four i32).
        let t0 = _mm512_add_epi32(_mm512_unpacklo_epi32(v0, v1), _mm512_unpackhi_epi32(v0, v1));
        let t1 = _mm512_add_epi32(_mm512_unpacklo_epi32(v2, v3), _mm512_unpackhi_epi32(v2, v3));
        // Per 128-bit lane j: [Σ v0, Σ v1, Σ v2, Σ v3], i.e. groups 4·0+j, 4·1+j, 4·2+j, 4·3+j.
        let u = _mm512_add_epi32(_mm512_unpacklo_epi64(t0, t1), _mm512_unpackhi_epi64(t0, t1));
        let sums = _mm512_permutexvar_epi32(order, u);
        // SAFETY: 16 · s + 16 ≤ g.len().
        unsafe { _mm512_storeu_si512(g.as_mut_ptr().add(16 * s).cast(), sums) };
    }
    let done = 16 * steps;
    // SAFETY: AVX-512F implies this CPU has AVX2 as well (checked by the dispatcher anyway).
    unsafe { dot16s_avx2(&w[16 * done..], &x[16 * done..], &mut g[done..]) };
}
