//! The AVX-512 twin of `gemv_x86.rs` (read that first): the same four-outputs-at-a-time dot
//! products over B's contiguous columns, with 16-lane registers, so one run is 32 elements and
//! each output keeps 32 partial sums, one per residue of the element index mod 32.
//!
//! bf16 weights load 32 at a time as even and odd elements ([`Widen::load32x2`]), f32 and f16
//! as two halves. The 32 sums are added in one fixed tree (residues paired by 16, then 8, 4,
//! 2, 1), which [`finish`] computes for either order, so a 16-bit B gives its f32 copy's bits.
//! Results differ from the AVX2 path's (16 partial sums), as any two GEMM kernels' do.

use super::gemv::by_fours;
use super::gemv_x86::halve8;
use super::{MatRef, Widen};
use std::arch::x86_64::*;

/// Elements per run: one [`Widen::load32x2`].
const RUN: usize = 32;

/// Outputs `first..first + dst.len()` as dot products of `x` (`a` in lane order,
/// `DotPath::lane_order` in `gemv.rs`) with B's contiguous columns.
///
/// # Safety
/// The CPU must support AVX-512F, AVX2, FMA and F16C, and [`Widen::simd_ready`] must hold for `T`. B's
/// columns `first..first + dst.len()` must lie in `b.data` (checked by `sgemm`'s shape check).
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
pub(crate) unsafe fn dot_columns<T: Widen>(x: &[f32], b: &MatRef<'_, T>, first: usize, dst: &mut [f32]) {
    let ahead = 4 * b.col_stride;
    by_fours(x.len(), b, first, dst, |cols| dot4(x, cols, ahead), |col| dot1(x, col));
}

/// The run-multiple body of four dot products, then each output's reduction and tail.
///
/// A 16-bit column is short (K elements: 1.8 KB of bf16 at K = 896), and one run of 32 is a
/// single cache line of it: the hardware prefetcher does not get far enough ahead of four such
/// columns at once, and the loop stalls on their loads. So for a 16-bit B each run also asks
/// for the same line of the next four columns, `ahead` elements on (they lie just past these
/// four in a row-major W). Prefetches never fault, and the address is only formed
/// (`wrapping_add`), never read through, so past the last column it does no harm. On the
/// Qwen2.5-0.5B shape's bf16 decode (2 threads) this took 30–33 tokens/s to 34–49, against
/// llama.cpp's 39–47 on f16 in the same sittings; an f32 B (two lines a run, which the
/// prefetcher follows) ran slightly slower with it, so it has none.
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
fn dot4<T: Widen>(x: &[f32], cols: [&[T]; 4], ahead: usize) -> [f32; 4] {
    let body = x.len() / RUN * RUN;
    let prefetch = std::mem::size_of::<T>() == 2;
    let mut acc = [[_mm512_setzero_ps(); 2]; 4];
    for q in (0..body).step_by(RUN) {
        // SAFETY: q + 32 <= body <= len of `x` and of every column; the caller's CPU checks
        // cover the loads.
        unsafe {
            if prefetch {
                for col in &cols {
                    _mm_prefetch::<_MM_HINT_T0>(col.as_ptr().wrapping_add(q + ahead).cast());
                }
            }
            let x0 = _mm512_loadu_ps(x.as_ptr().add(q));
            let x1 = _mm512_loadu_ps(x.as_ptr().add(q + 16));
            for (acc, col) in acc.iter_mut().zip(&cols) {
                let [w0, w1] = T::load32x2(col.as_ptr().add(q));
                acc[0] = _mm512_fmadd_ps(x0, w0, acc[0]);
                acc[1] = _mm512_fmadd_ps(x1, w1, acc[1]);
            }
        }
    }
    std::array::from_fn(|j| finish::<T>(acc[j], &x[body..], &cols[j][body..]))
}

/// One dot product, computed as each of [`dot4`]'s four.
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
fn dot1<T: Widen>(x: &[f32], col: &[T]) -> f32 {
    let body = x.len() / RUN * RUN;
    let mut acc = [_mm512_setzero_ps(); 2];
    for q in (0..body).step_by(RUN) {
        // SAFETY: as in `dot4`.
        unsafe {
            let [w0, w1] = T::load32x2(col.as_ptr().add(q));
            acc[0] = _mm512_fmadd_ps(_mm512_loadu_ps(x.as_ptr().add(q)), w0, acc[0]);
            acc[1] = _mm512_fmadd_ps(_mm512_loadu_ps(x.as_ptr().add(q + 16)), w1, acc[1]);
        }
    }
    finish::<T>(acc, &x[body..], &col[body..])
}

/// The 32 partial sums added in the fixed tree, plus the `< 32` tail elements, summed in order
/// and added last.
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
fn finish<T: Widen>(acc: [__m512; 2], x_tail: &[f32], w_tail: &[T]) -> f32 {
    let sum = if T::INTERLEAVED {
        // Register 0 holds the even residues, register 1 the odd ones.
        halve16(acc[0]) + halve16(acc[1])
    } else {
        // Register 0 holds residues 0..16, register 1 residues 16..32.
        halve16(_mm512_add_ps(acc[0], acc[1]))
    };
    let tail: f32 = x_tail.iter().zip(w_tail).map(|(x, w)| x * w.widen()).sum();
    sum + tail
}

/// The 16 lanes of `v` summed by halving: lane i + lane i+8, then [`halve8`].
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
fn halve16(v: __m512) -> f32 {
    let high = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)));
    halve8(_mm256_add_ps(_mm512_castps512_ps256(v), high))
}

/// `dst[j] = (((dst[j] + a[0]·r0[j]) + a[1]·r1[j]) + …)` over `R` rows of f32 (`gemv.rs`'s
/// `axpy_rows`): each product and each sum rounded as the one-row loop rounds them, in its
/// order, so the same bits, with `dst` loaded and stored once per `R` rows instead of once
/// per row.
///
/// # Safety
/// The CPU must support AVX-512F; every row holds at least `dst.len()` values.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn axpy_rows_f32<const R: usize>(a: [f32; R], rows: [&[f32]; R], dst: &mut [f32]) {
    let w = dst.len();
    debug_assert!(rows.iter().all(|r| r.len() >= w));
    let body = w / 16 * 16;
    let mut av = [_mm512_setzero_ps(); R];
    for (v, &x) in av.iter_mut().zip(&a) {
        *v = _mm512_set1_ps(x);
    }
    let d = dst.as_mut_ptr();
    for j in (0..body).step_by(16) {
        // SAFETY: j + 16 ≤ w ≤ every row's length and dst's.
        unsafe {
            let mut y = _mm512_loadu_ps(d.add(j));
            for i in 0..R {
                y = _mm512_add_ps(y, _mm512_mul_ps(av[i], _mm512_loadu_ps(rows[i].as_ptr().add(j))));
            }
            _mm512_storeu_ps(d.add(j), y);
        }
    }
    for j in body..w {
        let mut y = dst[j];
        for i in 0..R {
            y += a[i] * rows[i][j];
        }
        dst[j] = y;
    }
}

#[cfg(test)]
mod tests {
    /// The R-row AVX-512 loop against the one-row scalar loop: the same bits.
    #[test]
    fn axpy_rows_f32_has_the_bits_of_one_row_at_a_time() {
        if !std::arch::is_x86_feature_detected!("avx512f") {
            return;
        }
        let w = 37;
        let rows: Vec<Vec<f32>> =
            (0..4).map(|r| (0..w).map(|j| ((r * 31 + j * 7) % 23) as f32 * 0.37 - 4.1).collect()).collect();
        let a = [0.3f32, -1.7, 2.9, 1e-3];
        let mut want: Vec<f32> = (0..w).map(|j| j as f32 * 0.11).collect();
        let mut got = want.clone();
        for (ap, row) in a.iter().zip(&rows) {
            for (d, &x) in want.iter_mut().zip(row) {
                *d += ap * x;
            }
        }
        let refs = [&rows[0][..], &rows[1][..], &rows[2][..], &rows[3][..]];
        // SAFETY: AVX-512F checked above; every row has w values.
        unsafe { super::axpy_rows_f32(a, refs, &mut got) };
        assert_eq!(
            got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            want.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }
}
