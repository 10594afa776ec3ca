//! x86 packing with AVX: the transposing case (row-major A, column-major B) 8×8 in registers.
//!
//! When each source row is contiguous along the depth (`col_stride == 1`), a panel is the
//! transpose of W such rows. Done one float at a time that costs a store per element; here
//! 8 rows × 8 depths are loaded as 8 vectors, transposed with 24 shuffles and stored as 8
//! runs of consecutive floats. Other layouts, edge panels and depth tails use `pack_panels`.
//! A bf16 or f16 source is widened by the loads ([`Widen::load8`]: AVX2 zero-extension and
//! shift for bf16, F16C `vcvtph2ps` for f16), then transposed the same way.

use super::pack::pack_panels;
use super::{MatRef, Widen};
use std::arch::x86_64::*;

/// `pack_panels::<W>`, with the full panels of a depth-contiguous source transposed 8×8 at a
/// time in AVX registers.
///
/// # Safety
/// The CPU must support AVX2 (implied for the kernels that use this); an f16 source without
/// F16C takes the portable path.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn pack_panels_avx2<const W: usize, T: Widen>(
    src: MatRef<'_, T>,
    (i0, rows): (usize, usize),
    (p0, kc): (usize, usize),
    dst: &mut [f32],
) {
    if src.col_stride != 1 || src.row_stride == 1 || kc < 8 || !T::simd_ready() {
        return pack_panels::<W, T>(src, (i0, rows), (p0, kc), dst);
    }
    let full = rows / W;
    let (head, tail) = dst.split_at_mut(full * W * kc);
    for (r, panel) in head.chunks_exact_mut(W * kc).enumerate() {
        pack_full_panel::<W, T>(src, i0 + r * W, p0, kc, panel);
    }
    if rows > full * W {
        pack_panels::<W, T>(src, (i0 + full * W, rows - full * W), (p0, kc), tail);
    }
}

/// One panel of W live rows `i0..i0+W` over depth `p0..p0+kc`: `panel[p*W + i] = src(i0+i, p0+p)`.
#[target_feature(enable = "avx2")]
fn pack_full_panel<const W: usize, T: Widen>(src: MatRef<'_, T>, i0: usize, p0: usize, kc: usize, panel: &mut [f32]) {
    // src(i0 + i, p0 + p) is at base + i*row_stride + p.
    let base = src.offset + i0 * src.row_stride + p0;
    let blocks = kc / 8;
    for q0 in 0..blocks {
        // Rows g..g+8 of the panel; past W, the last row is loaded again and not stored.
        for g in (0..W).step_by(8) {
            let live = 8.min(W - g);
            let v: [__m256; 8] = std::array::from_fn(|r| {
                let start = base + (g + r.min(live - 1)) * src.row_stride + q0 * 8;
                let piece = &src.data[start..start + 8];
                // SAFETY: `piece` holds the 8 elements read; AVX2 is enabled here and
                // `T::simd_ready()` was checked by the caller.
                unsafe { T::load8(piece.as_ptr()) }
            });
            // t[q] = depth q0*8 + q of rows g..g+8: goes to panel[(q0*8 + q)*W + g ..][..live].
            for (q, t) in transpose8(v).into_iter().enumerate() {
                let at = (q0 * 8 + q) * W + g;
                store_live(&mut panel[at..at + live], t);
            }
        }
    }
    // The last kc % 8 depth steps, one float at a time.
    for p in blocks * 8..kc {
        for (i, out) in panel[p * W..(p + 1) * W].iter_mut().enumerate() {
            *out = src.data[base + i * src.row_stride + p].widen();
        }
    }
}

/// Stores the first `out.len()` (1 to 8) lanes of `t`. Whole vectors and halves (the 8 + 4
/// rows of a 12-wide A panel) are plain stores: `vmaskmovps` to memory is microcoded on AMD
/// CPUs (Zen 2 to 4: one every ~12 cycles or worse), and with it this packing took 15% of a
/// MiniLM embedding's time.
#[target_feature(enable = "avx2")]
fn store_live(out: &mut [f32], t: __m256) {
    match out.len() {
        // SAFETY (all three): `out` holds exactly the floats written.
        8 => unsafe { _mm256_storeu_ps(out.as_mut_ptr(), t) },
        4 => unsafe { _mm_storeu_ps(out.as_mut_ptr(), _mm256_castps256_ps128(t)) },
        live => {
            // Lanes 0..live of the mask are all ones: `maskstore` writes just those.
            let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(live as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
            unsafe { _mm256_maskstore_ps(out.as_mut_ptr(), mask, t) }
        }
    }
}

/// Transposes the 8×8 matrix whose rows are `r`: lane j of result q is lane q of `r[j]`.
#[target_feature(enable = "avx2")]
fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
    // Writing ab_k for lanes k of rows a and b side by side (each 128-bit half separately):
    // stage 1 interleaves row pairs: t0 = 01_0 01_1 | 01_4 01_5, t1 = 01_2 01_3 | 01_6 01_7.
    let t = [
        _mm256_unpacklo_ps(r[0], r[1]),
        _mm256_unpackhi_ps(r[0], r[1]),
        _mm256_unpacklo_ps(r[2], r[3]),
        _mm256_unpackhi_ps(r[2], r[3]),
        _mm256_unpacklo_ps(r[4], r[5]),
        _mm256_unpackhi_ps(r[4], r[5]),
        _mm256_unpacklo_ps(r[6], r[7]),
        _mm256_unpackhi_ps(r[6], r[7]),
    ];
    // Stage 2 joins pairs of pairs: s0 = 0123_0 | 0123_4, s1 = 0123_1 | 0123_5,
    // s2 = 0123_2 | 0123_6, s3 = 0123_3 | 0123_7, and s4..s7 the same for rows 4..8.
    // (0x44 takes lanes 0,1 of each operand's half, 0xEE lanes 2,3.)
    let s = [
        _mm256_shuffle_ps::<0x44>(t[0], t[2]),
        _mm256_shuffle_ps::<0xEE>(t[0], t[2]),
        _mm256_shuffle_ps::<0x44>(t[1], t[3]),
        _mm256_shuffle_ps::<0xEE>(t[1], t[3]),
        _mm256_shuffle_ps::<0x44>(t[4], t[6]),
        _mm256_shuffle_ps::<0xEE>(t[4], t[6]),
        _mm256_shuffle_ps::<0x44>(t[5], t[7]),
        _mm256_shuffle_ps::<0xEE>(t[5], t[7]),
    ];
    // Stage 3 joins the halves: column q < 4 is the low halves of s[q] and s[q+4], column
    // q + 4 their high halves (0x20 = both low halves, 0x31 = both high halves).
    [
        _mm256_permute2f128_ps::<0x20>(s[0], s[4]),
        _mm256_permute2f128_ps::<0x20>(s[1], s[5]),
        _mm256_permute2f128_ps::<0x20>(s[2], s[6]),
        _mm256_permute2f128_ps::<0x20>(s[3], s[7]),
        _mm256_permute2f128_ps::<0x31>(s[0], s[4]),
        _mm256_permute2f128_ps::<0x31>(s[1], s[5]),
        _mm256_permute2f128_ps::<0x31>(s[2], s[6]),
        _mm256_permute2f128_ps::<0x31>(s[3], s[7]),
    ]
}
