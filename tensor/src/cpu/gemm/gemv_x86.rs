//! AVX2+FMA matrix–vector product for the layout decoding meets most: `c = a · B` with B's
//! columns contiguous, i.e. `x @ W.t()` for a weight W stored `(N, K)` (PyTorch's `nn.Linear`).
//! `gemv_avx512.rs` is the same loop with registers twice as wide.
//!
//! At decode every weight is read once per token, so the loop must keep up with memory:
//! - four outputs at a time, so each load of `a` feeds four FMAs (one per column of B) and
//!   four weight rows stream side by side;
//! - per output, 16 partial sums (two 8-lane accumulators) over runs of 16 elements, fused
//!   multiply-adds: the partial sum for residue r accumulates the products of the elements
//!   `16q + r`, in order of q;
//! - bf16 and f16 weights are widened by the load ([`Widen::load16x2`]). bf16 comes out as
//!   the run's even elements, then its odd ones, which costs one shift and one mask per 16
//!   weights; `a` is put in the same order once per product (`DotPath::lane_order` in `gemv.rs`).
//!
//! **Equal bits for every weight type.** Whatever the lane order, each residue's partial sum
//! sees the same products in the same order, and the 16 sums are then added in one fixed tree
//! (pairing residues that differ by 8, then 4, 2, 1): in halves order that is `acc0 + acc1`
//! and a horizontal halving; in even/odd order it is the halving of each register and then
//! `even + odd` (see [`finish`]). Float addition is commutative, so both give the same bits,
//! and a bf16 or f16 B gives exactly the result of its f32 copy.
//!
//! Each output's value depends only on its own column and `a`: not on which group of four
//! it fell in, the thread split, or the block size.

use super::gemv::by_fours;
use super::{MatRef, Widen};
use std::arch::x86_64::*;

/// Elements per run: one [`Widen::load16x2`].
const RUN: usize = 16;

/// Outputs `first..first + dst.len()` as dot products of `x` (`a` in lane order,
/// `DotPath::lane_order` in `gemv.rs`) with B's contiguous columns.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C, and [`Widen::simd_ready`] must hold for `T`. B's
/// columns `first..first + dst.len()` must lie in `b.data` (checked by `sgemm`'s shape check).
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot_columns<T: Widen>(x: &[f32], b: &MatRef<'_, T>, first: usize, dst: &mut [f32]) {
    by_fours(x.len(), b, first, dst, |cols| dot4(x, cols), |col| dot1(x, col));
}

/// The run-multiple body of four dot products, then each output's reduction and tail.
#[target_feature(enable = "avx2,fma,f16c")]
fn dot4<T: Widen>(x: &[f32], cols: [&[T]; 4]) -> [f32; 4] {
    let body = x.len() / RUN * RUN;
    let mut acc = [[_mm256_setzero_ps(); 2]; 4];
    for q in (0..body).step_by(RUN) {
        // SAFETY: q + 16 <= body <= len of `x` and of every column; the caller's CPU checks
        // cover the loads.
        unsafe {
            let x0 = _mm256_loadu_ps(x.as_ptr().add(q));
            let x1 = _mm256_loadu_ps(x.as_ptr().add(q + 8));
            for (acc, col) in acc.iter_mut().zip(&cols) {
                let [w0, w1] = T::load16x2(col.as_ptr().add(q));
                acc[0] = _mm256_fmadd_ps(x0, w0, acc[0]);
                acc[1] = _mm256_fmadd_ps(x1, w1, acc[1]);
            }
        }
    }
    std::array::from_fn(|j| finish::<T>(acc[j], &x[body..], &cols[j][body..]))
}

/// One dot product, computed as each of [`dot4`]'s four.
#[target_feature(enable = "avx2,fma,f16c")]
fn dot1<T: Widen>(x: &[f32], col: &[T]) -> f32 {
    let body = x.len() / RUN * RUN;
    let mut acc = [_mm256_setzero_ps(); 2];
    for q in (0..body).step_by(RUN) {
        // SAFETY: as in `dot4`.
        unsafe {
            let [w0, w1] = T::load16x2(col.as_ptr().add(q));
            acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(x.as_ptr().add(q)), w0, acc[0]);
            acc[1] = _mm256_fmadd_ps(_mm256_loadu_ps(x.as_ptr().add(q + 8)), w1, acc[1]);
        }
    }
    finish::<T>(acc, &x[body..], &col[body..])
}

/// The 16 partial sums added in the fixed tree of the module doc, plus the `< 16` tail
/// elements, which are summed in order and added last.
#[target_feature(enable = "avx2,fma,f16c")]
fn finish<T: Widen>(acc: [__m256; 2], x_tail: &[f32], w_tail: &[T]) -> f32 {
    let sum = if T::INTERLEAVED {
        // Register 0 holds residues 0, 2, .., 14 and register 1 residues 1, 3, .., 15.
        halve8(acc[0]) + halve8(acc[1])
    } else {
        // Register 0 holds residues 0..8, register 1 residues 8..16.
        halve8(_mm256_add_ps(acc[0], acc[1]))
    };
    let tail: f32 = x_tail.iter().zip(w_tail).map(|(x, w)| x * w.widen()).sum();
    sum + tail
}

/// The 8 lanes of `v` summed by halving: lane i + lane i+4, then i+2, then i+1.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn halve8(v: __m256) -> f32 {
    let quad = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let pair = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
    _mm_cvtss_f32(_mm_add_ss(pair, _mm_movehdup_ps(pair)))
}
