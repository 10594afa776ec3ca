//! AVX2+FMA matrix–vector product for the layout decoding meets most: `c = a · B` with B's
//! columns contiguous, i.e. `x @ W.t()` for a weight W stored `(N, K)` (PyTorch's `nn.Linear`).
//!
//! At decode every weight is read once per token, so the loop must keep up with memory:
//! - four outputs at a time, so each 8-float load of `a` feeds four FMAs (one per column of B)
//!   and four weight rows stream side by side;
//! - per output, two 8-lane accumulators: lanes `0..8` sum the elements `16q + 0..8` and lanes
//!   `8..16` the elements `16q + 8..16`, fused multiply-adds, the same for every output;
//! - bf16 and f16 weights are widened by the load ([`Widen::load8`]), so a 16-bit B goes
//!   through exactly the operations of its f32 copy and gives the same bits.
//!
//! Each output's value depends only on its own column and `a`: not on which group of four
//! it fell in, the thread split, or the block size.

use super::{MatRef, Widen};
use std::arch::x86_64::*;

/// Outputs `first..first + dst.len()` as dot products of `a` with B's contiguous columns.
///
/// # Safety
/// The CPU must support AVX2 and FMA, and [`Widen::simd_ready`] must hold for `T`. B's
/// columns `first..first + dst.len()` must lie in `b.data` (checked by `sgemm`'s shape check).
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn dot_columns<T: Widen>(a: &[f32], b: &MatRef<'_, T>, first: usize, dst: &mut [f32]) {
    let k = a.len();
    let column = |j: usize| {
        let start = b.offset + (first + j) * b.col_stride;
        &b.data[start..start + k]
    };
    let done = dst.len() / 4 * 4;
    let mut quads = dst.chunks_exact_mut(4);
    for (g, out) in (&mut quads).enumerate() {
        let cols = [column(4 * g), column(4 * g + 1), column(4 * g + 2), column(4 * g + 3)];
        out.copy_from_slice(&dot4(a, cols));
    }
    for (j, d) in quads.into_remainder().iter_mut().enumerate() {
        *d = dot1(a, column(done + j));
    }
}

/// The 16-multiple body of four dot products, then each output's reduction and tail.
#[target_feature(enable = "avx2,fma")]
fn dot4<T: Widen>(a: &[f32], cols: [&[T]; 4]) -> [f32; 4] {
    let body = a.len() / 16 * 16;
    let mut acc = [[_mm256_setzero_ps(); 2]; 4];
    for q in (0..body).step_by(16) {
        // SAFETY: q + 16 <= body <= len of `a` and of every column; the caller's CPU checks
        // cover the loads.
        unsafe {
            let x0 = _mm256_loadu_ps(a.as_ptr().add(q));
            let x1 = _mm256_loadu_ps(a.as_ptr().add(q + 8));
            for (acc, col) in acc.iter_mut().zip(&cols) {
                let w = col.as_ptr().add(q);
                acc[0] = _mm256_fmadd_ps(x0, T::load8(w), acc[0]);
                acc[1] = _mm256_fmadd_ps(x1, T::load8(w.add(8)), acc[1]);
            }
        }
    }
    std::array::from_fn(|j| finish(acc[j], &a[body..], &cols[j][body..]))
}

/// One dot product, computed as each of [`dot4`]'s four.
#[target_feature(enable = "avx2,fma")]
fn dot1<T: Widen>(a: &[f32], col: &[T]) -> f32 {
    let body = a.len() / 16 * 16;
    let mut acc = [_mm256_setzero_ps(); 2];
    for q in (0..body).step_by(16) {
        // SAFETY: as in `dot4`.
        unsafe {
            let w = col.as_ptr().add(q);
            acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(a.as_ptr().add(q)), T::load8(w), acc[0]);
            acc[1] = _mm256_fmadd_ps(_mm256_loadu_ps(a.as_ptr().add(q + 8)), T::load8(w.add(8)), acc[1]);
        }
    }
    finish(acc, &a[body..], &col[body..])
}

/// The 16 lanes summed (the two accumulators added lane by lane, then the 8 lanes pairwise),
/// plus the `< 16` tail elements, which are summed in order and added last.
#[target_feature(enable = "avx2,fma")]
fn finish<T: Widen>(acc: [__m256; 2], a_tail: &[f32], w_tail: &[T]) -> f32 {
    let v = _mm256_add_ps(acc[0], acc[1]);
    let quad = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let pair = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
    let one = _mm_add_ss(pair, _mm_movehdup_ps(pair));
    let tail: f32 = a_tail.iter().zip(w_tail).map(|(x, w)| x * w.widen()).sum();
    _mm_cvtss_f32(one) + tail
}
