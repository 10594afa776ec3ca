//! Element types the GEMM reads for B: f32, and the 16-bit storage types widened to f32.
//!
//! A frozen bf16 or f16 weight is multiplied where it lies: the GEMM widens each element to
//! f32 as it packs a panel (`pack.rs`, `pack_x86.rs`), and the gemv path widens a short run
//! of a row or column into a stack buffer just before its f32 loop (`gemv.rs`). Every
//! multiply-add is f32, in the same order as for an f32 B, and widening is exact, so the
//! product is bit for bit that of the f32 copy of B, without that copy ever existing.
//!
//! - bf16 is the top half of an f32: `f32::from_bits((bits as u32) << 16)`. The loops that do
//!   this vectorise (a zero-extension and a shift per lane); x86 packs with AVX2
//!   `_mm256_cvtepu16_epi32` + `_mm256_slli_epi32`.
//! - f16 needs a real conversion (5-bit exponent, subnormals): x86 uses F16C
//!   (`_mm256_cvtph_ps`, 8 at a time) when the CPU has it, else `half`'s exact scalar code.

use half::{bf16, f16};

/// An element type `sgemm` accepts for B, widened to f32 exactly.
///
/// Sealed in practice: implemented for `f32`, `bf16` and `f16` only.
pub trait Widen: Copy + Send + Sync + 'static {
    /// The value as f32 (exact).
    fn widen(self) -> f32;

    /// `dst[i] = src[i].widen()`; the two slices have one length.
    fn widen_into(src: &[Self], dst: &mut [f32]);

    /// Whether [`Widen::widen`] is cheap enough to call inside a vectorised loop (f32, bf16:
    /// a shift); f16 is widened a run at a time with [`Widen::widen_into`] instead.
    const INLINE: bool = true;

    /// `src` itself when `Self` is f32 (nothing to widen), else `None`.
    fn as_f32(src: &[Self]) -> Option<&[f32]> {
        let _ = src;
        None
    }

    /// Loads 8 consecutive elements at `ptr`, widened, into one AVX register.
    ///
    /// # Safety
    /// `ptr` must be valid for reading 8 elements; the CPU must have AVX2, and F16C for f16
    /// (see [`Widen::simd_ready`]).
    #[cfg(target_arch = "x86_64")]
    #[doc(hidden)]
    unsafe fn load8(ptr: *const Self) -> std::arch::x86_64::__m256;

    /// Whether [`Widen::load8`] may run on this CPU, given AVX2 (f16 also needs F16C).
    #[cfg(target_arch = "x86_64")]
    #[doc(hidden)]
    fn simd_ready() -> bool {
        true
    }

    /// Whether the gemv loads ([`Widen::load16x2`], [`Widen::load32x2`]) return a run's even
    /// elements and then its odd ones (bf16, where that saves the widening shuffles), rather
    /// than its first and second halves.
    #[doc(hidden)]
    const INTERLEAVED: bool = false;

    /// Loads 16 consecutive elements at `ptr`, widened, into two AVX registers: elements
    /// `0..8` and `8..16`, or for an [`Widen::INTERLEAVED`] type `0, 2, .., 14` and `1, 3, .., 15`.
    ///
    /// # Safety
    /// `ptr` must be valid for reading 16 elements; the CPU must have AVX2, and F16C.
    #[cfg(target_arch = "x86_64")]
    #[doc(hidden)]
    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn load16x2(ptr: *const Self) -> [std::arch::x86_64::__m256; 2] {
        // SAFETY: the caller's guarantees are `load8`'s, twice.
        unsafe { [Self::load8(ptr), Self::load8(ptr.add(8))] }
    }

    /// [`Widen::load16x2`] with AVX-512 registers: 32 elements as `0..16` and `16..32`, or
    /// the even and the odd ones.
    ///
    /// # Safety
    /// `ptr` must be valid for reading 32 elements; the CPU must have AVX-512F.
    #[cfg(target_arch = "x86_64")]
    #[doc(hidden)]
    unsafe fn load32x2(ptr: *const Self) -> [std::arch::x86_64::__m512; 2];
}

impl Widen for f32 {
    #[inline(always)]
    fn widen(self) -> f32 {
        self
    }

    fn widen_into(src: &[f32], dst: &mut [f32]) {
        dst.copy_from_slice(src);
    }

    fn as_f32(src: &[f32]) -> Option<&[f32]> {
        Some(src)
    }

    // `target_feature` (not `inline(always)`) so that LLVM inlines it, intrinsics included,
    // into the AVX2 callers: a plain function calling an AVX2 intrinsic keeps it a call.
    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn load8(ptr: *const f32) -> std::arch::x86_64::__m256 {
        // SAFETY: the caller guarantees 8 readable floats and AVX.
        unsafe { std::arch::x86_64::_mm256_loadu_ps(ptr) }
    }

    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn load32x2(ptr: *const f32) -> [std::arch::x86_64::__m512; 2] {
        use std::arch::x86_64::_mm512_loadu_ps;
        // SAFETY: the caller guarantees 32 readable floats and AVX-512F.
        unsafe { [_mm512_loadu_ps(ptr), _mm512_loadu_ps(ptr.add(16))] }
    }
}

impl Widen for bf16 {
    /// bf16 keeps the sign, exponent and top 7 mantissa bits of an f32: put them back on top.
    #[inline(always)]
    fn widen(self) -> f32 {
        f32::from_bits((self.to_bits() as u32) << 16)
    }

    /// A plain loop: inlined into a `vectorized` caller (gemv) it uses that caller's AVX2.
    #[inline(always)]
    fn widen_into(src: &[bf16], dst: &mut [f32]) {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = s.widen();
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn load8(ptr: *const bf16) -> std::arch::x86_64::__m256 {
        use std::arch::x86_64::*;
        // SAFETY: the caller guarantees 8 readable bf16 (16 bytes) and AVX2.
        unsafe {
            let bits = _mm_loadu_si128(ptr.cast());
            _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(bits)))
        }
    }

    /// Even/odd order: read as 32-bit lanes, 16 bf16 are 8 pairs, element `2i` in the low
    /// half of lane i (little-endian) and `2i + 1` in the high half. A shift left by 16 makes
    /// the low halves f32s, a mask of the low 16 bits the high halves: two cheap ops per 16
    /// elements instead of two zero-extending shuffles and two shifts.
    const INTERLEAVED: bool = true;

    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn load16x2(ptr: *const bf16) -> [std::arch::x86_64::__m256; 2] {
        use std::arch::x86_64::*;
        // SAFETY: the caller guarantees 16 readable bf16 (32 bytes) and AVX2.
        unsafe {
            let pairs = _mm256_loadu_si256(ptr.cast());
            let even = _mm256_slli_epi32::<16>(pairs);
            let odd = _mm256_and_si256(pairs, _mm256_set1_epi32(HIGH_HALF));
            [_mm256_castsi256_ps(even), _mm256_castsi256_ps(odd)]
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn load32x2(ptr: *const bf16) -> [std::arch::x86_64::__m512; 2] {
        use std::arch::x86_64::*;
        // SAFETY: the caller guarantees 32 readable bf16 (64 bytes) and AVX-512F.
        unsafe {
            let pairs = _mm512_loadu_si512(ptr.cast());
            let even = _mm512_slli_epi32::<16>(pairs);
            let odd = _mm512_and_si512(pairs, _mm512_set1_epi32(HIGH_HALF));
            [_mm512_castsi512_ps(even), _mm512_castsi512_ps(odd)]
        }
    }
}

/// The top 16 bits of a 32-bit lane (`0xFFFF_0000` as the `i32` the intrinsics take).
#[cfg(target_arch = "x86_64")]
const HIGH_HALF: i32 = 0xFFFF_0000_u32 as i32;

impl Widen for f16 {
    const INLINE: bool = false;

    #[inline(always)]
    fn widen(self) -> f32 {
        self.to_f32()
    }

    fn widen_into(src: &[f16], dst: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if f16c() {
            // SAFETY: F16C (which implies AVX) was detected.
            return unsafe { widen_f16c(src, dst) };
        }
        widen_f16_portable(src, dst);
    }

    #[cfg(target_arch = "x86_64")]
    unsafe fn load8(ptr: *const f16) -> std::arch::x86_64::__m256 {
        // SAFETY: the caller guarantees 8 readable f16 and F16C.
        unsafe { load8_f16c(ptr) }
    }

    #[cfg(target_arch = "x86_64")]
    fn simd_ready() -> bool {
        f16c()
    }

    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn load16x2(ptr: *const f16) -> [std::arch::x86_64::__m256; 2] {
        use std::arch::x86_64::*;
        // SAFETY: the caller guarantees 16 readable f16 and F16C.
        unsafe { [_mm256_cvtph_ps(_mm_loadu_si128(ptr.cast())), _mm256_cvtph_ps(_mm_loadu_si128(ptr.add(8).cast()))] }
    }

    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn load32x2(ptr: *const f16) -> [std::arch::x86_64::__m512; 2] {
        use std::arch::x86_64::*;
        // SAFETY: the caller guarantees 32 readable f16 and AVX-512F (whose `vcvtph2ps`
        // widens 16 at a time).
        unsafe {
            let lo = _mm512_cvtph_ps(_mm256_loadu_si256(ptr.cast()));
            [lo, _mm512_cvtph_ps(_mm256_loadu_si256(ptr.add(16).cast()))]
        }
    }
}

/// `half`'s exact scalar f16 → f32, one element at a time (the reference for the F16C path).
pub(crate) fn widen_f16_portable(src: &[f16], dst: &mut [f32]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = s.to_f32();
    }
}

/// Whether this CPU has F16C (checked once). `DELTAW_SIMD=portable` or
/// `DELTAW_GEMM_KERNEL=portable` turns it off, so the tests can run the scalar path on any
/// machine.
#[cfg(target_arch = "x86_64")]
pub(crate) fn f16c() -> bool {
    static DETECTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *DETECTED.get_or_init(|| {
        let forced_portable = std::env::var("DELTAW_GEMM_KERNEL").is_ok_and(|k| k.starts_with("portable"))
            || crate::cpu::simd::simd_level() == crate::cpu::simd::SimdLevel::Portable;
        !forced_portable && is_x86_feature_detected!("f16c") && is_x86_feature_detected!("avx")
    })
}

/// 8 f16 at `ptr` to 8 f32 with one `vcvtph2ps`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,f16c")]
unsafe fn load8_f16c(ptr: *const f16) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    // SAFETY: the caller guarantees 8 readable f16 (16 bytes).
    unsafe { _mm256_cvtph_ps(_mm_loadu_si128(ptr.cast())) }
}

/// [`Widen::widen_into`] for f16 with F16C: 8 at a time, the tail through `half`.
///
/// # Safety
/// The CPU must have AVX and F16C.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,f16c")]
pub(crate) unsafe fn widen_f16c(src: &[f16], dst: &mut [f32]) {
    use std::arch::x86_64::*;
    let len = src.len().min(dst.len());
    let full = len / 8 * 8;
    for (s, d) in src[..full].chunks_exact(8).zip(dst[..full].chunks_exact_mut(8)) {
        // SAFETY: `s` holds 8 f16 and `d` 8 f32; F16C is enabled on this function.
        unsafe { _mm256_storeu_ps(d.as_mut_ptr(), _mm256_cvtph_ps(_mm_loadu_si128(s.as_ptr().cast()))) };
    }
    widen_f16_portable(&src[full..len], &mut dst[full..len]);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every one of the 65,536 bf16 bit patterns widens to the f32 `half` gives, and to the
    /// f32 whose top half it is (NaNs compared by NaN-ness: `half` quiets signalling NaNs).
    #[test]
    fn bf16_widening_is_exact_for_every_bit_pattern() {
        let all: Vec<bf16> = (0..=u16::MAX).map(bf16::from_bits).collect();
        let mut out = vec![0.0f32; all.len()];
        bf16::widen_into(&all, &mut out);
        for (x, y) in all.iter().zip(&out) {
            let want = x.to_f32();
            assert!(y.to_bits() == want.to_bits() || (y.is_nan() && want.is_nan()), "bf16 bits {:#06x}", x.to_bits());
            assert_eq!(y.to_bits() >> 16, x.to_bits() as u32, "bf16 bits {:#06x}", x.to_bits());
        }
    }

    /// F16C and the scalar path agree on every f16 bit pattern (NaN payloads compared by
    /// NaN-ness only: F16C quiets signalling NaNs, `half` may not).
    #[test]
    fn f16_widening_agrees_with_half_for_every_bit_pattern() {
        let all: Vec<f16> = (0..=u16::MAX).map(f16::from_bits).collect();
        let mut out = vec![0.0f32; all.len()];
        f16::widen_into(&all, &mut out);
        for (x, y) in all.iter().zip(&out) {
            let want = x.to_f32();
            assert!(
                y.to_bits() == want.to_bits() || (y.is_nan() && want.is_nan()),
                "f16 bits {:#06x}: {y} vs {want}",
                x.to_bits()
            );
        }
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("f16c") && is_x86_feature_detected!("avx") {
            let mut simd = vec![0.0f32; all.len()];
            // SAFETY: F16C and AVX were detected.
            unsafe { widen_f16c(&all, &mut simd) };
            for ((x, y), s) in all.iter().zip(&out).zip(&simd) {
                assert!(s.to_bits() == y.to_bits() || (s.is_nan() && y.is_nan()), "f16 bits {:#06x}", x.to_bits());
            }
        }
    }
}
