//! Matrix–vector products, the m = 1 (and n = 1) case of `sgemm`, without packing.
//!
//! Generating text multiplies one token's activations (a 1×K row) by each weight matrix. The
//! packed path would copy all of B into panels to use it once, which costs more than the
//! multiply itself; here B is streamed once, straight from memory:
//! - B rows contiguous (`col_stride == 1`): `c = Σ_p a[p] · B[p, :]`, an axpy per row of B,
//!   parallel over fixed chunks of rows (each streams its rows whole) whose partial vectors
//!   are then added in chunk order;
//! - B columns contiguous (`row_stride == 1`, e.g. `x @ W.t()` with W stored (N, K)):
//!   `c[j] = a · B[:, j]`, a dot product per output, parallel over blocks of outputs.
//!
//! Both inner loops run over unit-stride slices and vectorise (the dot with 16 partial sums);
//! on x86 the dot products run in `gemv_x86.rs` (AVX2+FMA) or `gemv_avx512.rs`, four outputs
//! at a time, following the GEMM kernel in use ([`DotPath`]).
//!
//! A bf16 or f16 B (a frozen weight, at decode) is read in its storage type, half the bytes
//! of f32. bf16 is widened inside the vectorised loops (a zero-extension and a shift per
//! lane); f16 a run of up to [`CHUNK`] elements at a time into a stack buffer (F16C,
//! [`Widen::widen_into`]) just before the f32 loop uses it, while it is still in L1. The
//! multiply-adds and their order are those of an f32 B, so results are equal bit for bit.

use super::dispatch::Kernel;
use super::{MatRef, Widen};
use crate::cpu::simd::vectorized;
use rayon::prelude::*;
use std::borrow::Cow;

/// At most this many outputs (or columns) per rayon task; below [`PARALLEL_MIN`]
/// multiply-adds stay serial.
const BLOCK: usize = 1024;
const PARALLEL_MIN: usize = 1 << 16;

/// Elements of a 16-bit B widened at a time (a multiple of the dot's 16 lanes, so the
/// partial sums see the same sequence as without chunks).
const CHUNK: usize = 256;

/// Rows of B per task when B's rows are contiguous ([`axpy_by_row_chunks`]).
const KROWS: usize = 64;

/// Whether [`gemv`] handles this B (one of its strides is 1).
pub(crate) fn supports<T>(b: &MatRef<'_, T>) -> bool {
    b.col_stride == 1 || b.row_stride == 1
}

/// `c[j·c_stride] (+)= Σ_p a[p] · B[p, j]` for j < n, where `a` is row 0 of the view (k long);
/// the dot products use the instruction set of `kern` ([`DotPath`]).
#[allow(clippy::too_many_arguments)] // sgemm's operands plus the kernel
pub(crate) fn gemv<TA: Widen, TB: Widen>(
    kern: &Kernel,
    n: usize,
    k: usize,
    a: MatRef<'_, TA>,
    b: MatRef<'_, TB>,
    c: &mut [f32],
    c_stride: usize,
    accumulate: bool,
) {
    let a_row: Vec<f32> = (0..k).map(|p| a.at(0, p)).collect(); // k floats (widened): cheap to gather
    let mut out = vec![0.0f32; n];
    let parallel = super::driver::threads_for(n * k, PARALLEL_MIN) > 1;
    if b.col_stride == 1 {
        axpy_by_row_chunks(&a_row, &b, &mut out, (parallel, DotPath::of::<TB>(kern)));
    } else {
        gemv_t_many(kern, &a_row, &[b], &mut [&mut out]);
    }
    for (j, v) in out.into_iter().enumerate() {
        let y = &mut c[j * c_stride];
        *y = if accumulate { *y + v } else { v };
    }
}

/// `outs[i] = a · Bᵢ` for matrices `Bᵢ` (K × Nᵢ) with contiguous columns that share the row
/// `a` (K long; `x @ Wᵢᵀ` for weights stored `(Nᵢ, K)`): [`gemv`]'s dot-product route for all
/// of them in one parallel pass, each output computed as `gemv` computes it (same bits), the
/// lane order of `a` formed once. Decoding's query, key and value projections share one
/// normed hidden state, and apart each would be its own hand-over to the worker threads. One
/// matrix alone is [`gemv`]'s dot-product route.
pub(crate) fn gemv_t_many<T: Widen>(kern: &Kernel, a: &[f32], bs: &[MatRef<'_, T>], outs: &mut [&mut [f32]]) {
    let k = a.len();
    let path = DotPath::of::<T>(kern);
    let x = path.lane_order::<T>(a);
    let total: usize = outs.iter().map(|o| o.len()).sum();
    let block = block_size(total);
    let mut tasks: Vec<(&MatRef<'_, T>, usize, &mut [f32])> = Vec::new();
    for (b, out) in bs.iter().zip(outs.iter_mut()) {
        debug_assert!(b.row_stride == 1);
        tasks.extend(out.chunks_mut(block).enumerate().map(|(i, dst)| (b, i * block, dst)));
    }
    let task = |(b, first, dst): (&MatRef<'_, T>, usize, &mut [f32])| dot_columns(path, &x, b, first, dst);
    if super::driver::threads_for(total * k, PARALLEL_MIN) > 1 {
        tasks.into_par_iter().for_each(task);
    } else {
        tasks.into_iter().for_each(task);
    }
}

/// Outputs per task of the dot-product route: about four tasks per thread so every core streams
/// its share of B, in multiples of 16 floats, between 64 and [`BLOCK`]. Each output is computed by the same operations whatever
/// the block, so results do not depend on it.
fn block_size(n: usize) -> usize {
    let per_task = n.div_ceil(4 * rayon::current_num_threads().max(1));
    per_task.next_multiple_of(16).clamp(64, BLOCK)
}

/// `out = a · B` for B with contiguous rows, as the sum of partial products over fixed chunks
/// of [`KROWS`] rows: each task streams its rows of B whole, front to back (column blocks of
/// every row, the earlier split, read B in short strided runs and reached less than half the
/// bandwidth of the dot products), into a partial vector; the partials are then added in
/// chunk order. The chunks do not depend on the thread count, so neither do the bits.
fn axpy_by_row_chunks<T: Widen>(a: &[f32], b: &MatRef<'_, T>, out: &mut [f32], (parallel, path): (bool, DotPath)) {
    let n = out.len();
    let chunk = |c: usize| {
        let rows = c * KROWS..(a.len()).min((c + 1) * KROWS);
        let sub = MatRef { offset: b.offset + rows.start * b.row_stride, ..*b };
        let mut partial = vec![0.0f32; n];
        // Whole rows when they fit L1 with room to spare (the chunk is then one front-to-back
        // stream); else pieces of BLOCK columns.
        let piece_len = if T::INLINE && n <= ROW_PIECE_MAX { n.max(1) } else { BLOCK };
        for (i, piece) in partial.chunks_mut(piece_len).enumerate() {
            axpy_rows(&a[rows.clone()], &sub, i * piece_len, piece, path);
        }
        partial
    };
    let chunks = a.len().div_ceil(KROWS);
    let partials: Vec<Vec<f32>> =
        if parallel { (0..chunks).into_par_iter().map(chunk).collect() } else { (0..chunks).map(chunk).collect() };
    vectorized(|| {
        for partial in &partials {
            for (o, &v) in out.iter_mut().zip(partial) {
                *o += v;
            }
        }
    });
}

/// Longest row piece of an inline-widened B (f32, bf16) that [`axpy_by_row_chunks`] takes
/// whole: 4096 floats, 16 KiB of partial sums, half of a 32 KiB L1.
const ROW_PIECE_MAX: usize = 4096;

/// Columns `first..first + dst.len()` of `a · B` for B with contiguous rows (`dst.len() <=
/// BLOCK` unless B widens inline: each row piece of another type is widened into a stack
/// buffer of BLOCK floats).
fn axpy_rows<T: Widen>(a: &[f32], b: &MatRef<'_, T>, first: usize, dst: &mut [f32], path: DotPath) {
    let w = dst.len();
    let row_at = |p: usize| {
        let start = b.offset + p * b.row_stride + first;
        &b.data[start..start + w]
    };
    let done = axpy_rows_simd(a, &row_at, dst, path);
    let mut wide = [0.0f32; BLOCK];
    vectorized(|| {
        for (p, &ap) in a.iter().enumerate().skip(done) {
            let row = row_at(p);
            if T::INLINE {
                for (d, &x) in dst.iter_mut().zip(row) {
                    *d += ap * x.widen();
                }
            } else {
                for (d, &x) in dst.iter_mut().zip(widened(row, &mut wide[..w])) {
                    *d += ap * x;
                }
            }
        }
    });
}

/// The first rows of [`axpy_rows`] by an explicit SIMD loop, [`AXPY_ROWS`] at a time, where
/// there is one (f32 rows on the AVX-512 path); returns how many rows it took (0 otherwise).
fn axpy_rows_simd<'a, T: Widen>(
    a: &[f32],
    row_at: &impl Fn(usize) -> &'a [T],
    dst: &mut [f32],
    path: DotPath,
) -> usize {
    #[cfg(target_arch = "x86_64")]
    if path == DotPath::Avx512 && T::as_f32(&[]).is_some() {
        let groups = a.len() / AXPY_ROWS * AXPY_ROWS;
        for p in (0..groups).step_by(AXPY_ROWS) {
            let rows: [&[f32]; AXPY_ROWS] = std::array::from_fn(|i| T::as_f32(row_at(p + i)).expect("f32 rows"));
            let coefs: [f32; AXPY_ROWS] = std::array::from_fn(|i| a[p + i]);
            // SAFETY: `DotPath::Avx512` is chosen only with the AVX-512 GEMM kernel, on a CPU
            // that has AVX-512F; every row holds `dst.len()` values.
            unsafe { super::gemv_avx512::axpy_rows_f32(coefs, rows, dst) };
        }
        return groups;
    }
    let _ = (a, row_at, dst, path);
    0
}

/// Rows per pass of the explicit SIMD loop of [`axpy_rows`].
const AXPY_ROWS: usize = 8;

/// Which loop computes the dot products of [`dot_columns`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DotPath {
    /// `gemv_avx512.rs`: with the AVX-512 GEMM kernel (32 partial sums).
    #[cfg(target_arch = "x86_64")]
    Avx512,
    /// `gemv_x86.rs`: with the AVX2 GEMM kernel on a CPU with F16C, which every AVX2 CPU
    /// sold has (16 partial sums).
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// [`dot`], plain loops the compiler vectorises: with any other kernel (so
    /// `DELTAW_GEMM_KERNEL=portable` runs it on any CPU), or when B's type cannot be loaded
    /// with SIMD here (f16 without F16C).
    Portable,
}

impl DotPath {
    /// The path that goes with the GEMM kernel `kern` (its instruction set was checked when
    /// it was listed as available), for a B of type `T` (f16 needs F16C).
    fn of<T: Widen>(kern: &Kernel) -> DotPath {
        #[cfg(target_arch = "x86_64")]
        if T::simd_ready() && std::arch::is_x86_feature_detected!("f16c") {
            if kern.name.starts_with("avx512") {
                return DotPath::Avx512;
            }
            if kern.name.starts_with("avx2") {
                return DotPath::Avx2;
            }
        }
        let _ = kern;
        DotPath::Portable
    }

    /// How many elements this path loads as one run of `T`, when it loads them as the even
    /// elements and then the odd ones (bf16 on a SIMD path); `None` when it keeps their order.
    fn interleaved_run<T: Widen>(self) -> Option<usize> {
        match self {
            #[cfg(target_arch = "x86_64")]
            DotPath::Avx512 if T::INTERLEAVED => Some(32),
            #[cfg(target_arch = "x86_64")]
            DotPath::Avx2 if T::INTERLEAVED => Some(16),
            _ => None,
        }
    }

    /// `a` in the lane order in which this path loads a `T` column: itself, or for an
    /// [`Widen::INTERLEAVED`] type (bf16) on a SIMD path each run of 16 (AVX2) or 32
    /// (AVX-512) elements as its even elements and then its odd ones. The tail past the last
    /// whole run keeps its order. Done once per product, shared by every task.
    fn lane_order<T: Widen>(self, a: &[f32]) -> Cow<'_, [f32]> {
        let Some(run) = self.interleaved_run::<T>() else {
            return Cow::Borrowed(a);
        };
        let body = a.len() / run * run;
        let mut x = Vec::with_capacity(a.len());
        for piece in a[..body].chunks_exact(run) {
            x.extend(piece.iter().step_by(2));
            x.extend(piece.iter().skip(1).step_by(2));
        }
        x.extend_from_slice(&a[body..]);
        Cow::Owned(x)
    }
}

/// Outputs `first..first + dst.len()` as dot products with B's contiguous columns; `a` is in
/// the path's lane order ([`DotPath::lane_order`]).
fn dot_columns<T: Widen>(path: DotPath, a: &[f32], b: &MatRef<'_, T>, first: usize, dst: &mut [f32]) {
    match path {
        // SAFETY (both): `DotPath::of` checked F16C and took the kernel's instruction set, which
        // `dispatch::available` checked, and `simd_ready` for T; `sgemm` checked that B's
        // columns lie in its buffer.
        #[cfg(target_arch = "x86_64")]
        DotPath::Avx512 => unsafe { super::gemv_avx512::dot_columns(a, b, first, dst) },
        #[cfg(target_arch = "x86_64")]
        DotPath::Avx2 => unsafe { super::gemv_x86::dot_columns(a, b, first, dst) },
        DotPath::Portable => {
            let k = a.len();
            let mut wide = [0.0f32; CHUNK];
            for (j, d) in dst.iter_mut().enumerate() {
                let start = b.offset + (first + j) * b.col_stride;
                *d = vectorized(|| dot(a, &b.data[start..start + k], &mut wide));
            }
        }
    }
}

/// Outputs `first..first + dst.len()`, four at a time through `dot4` and the rest one at a
/// time through `dot1`, each given B's columns (`k` long) for its outputs: the loop the SIMD
/// paths share.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(super) fn by_fours<T: Widen>(
    k: usize,
    b: &MatRef<'_, T>,
    first: usize,
    dst: &mut [f32],
    dot4: impl Fn([&[T]; 4]) -> [f32; 4],
    dot1: impl Fn(&[T]) -> f32,
) {
    let column = |j: usize| {
        let start = b.offset + (first + j) * b.col_stride;
        &b.data[start..start + k]
    };
    let done = dst.len() / 4 * 4;
    let mut quads = dst.chunks_exact_mut(4);
    for (g, out) in (&mut quads).enumerate() {
        out.copy_from_slice(&dot4(std::array::from_fn(|i| column(4 * g + i))));
    }
    for (j, d) in quads.into_remainder().iter_mut().enumerate() {
        *d = dot1(column(done + j));
    }
}

/// `src` as f32: itself when it is f32, else widened into `buf` (of `src`'s length).
#[inline(always)]
fn widened<'a, T: Widen>(src: &'a [T], buf: &'a mut [f32]) -> &'a [f32] {
    match T::as_f32(src) {
        Some(same) => same,
        None => {
            T::widen_into(src, buf);
            buf
        }
    }
}

/// `Σ x·y` with 16 partial sums, so the loop vectorises; an f16 `y` is widened [`CHUNK`] at
/// a time (the partial sums see the same sequence either way).
/// The tail (`len % 16` elements) is summed apart and added last, whatever `T`.
#[inline(always)]
fn dot<T: Widen>(x: &[f32], y: &[T], wide: &mut [f32; CHUNK]) -> f32 {
    let mut acc = [0.0f32; 16];
    let body = x.len() / 16 * 16;
    let tail: f32 = x[body..].iter().zip(&y[body..]).map(|(a, b)| a * b.widen()).sum();
    if T::INLINE {
        // f32 and bf16: widened in the loop, one shift per lane for bf16.
        for (xs, ys) in x[..body].chunks_exact(16).zip(y[..body].chunks_exact(16)) {
            for ((s, &a), &b) in acc.iter_mut().zip(xs).zip(ys) {
                *s += a * b.widen();
            }
        }
    } else {
        for (xs, ys) in x[..body].chunks(CHUNK).zip(y[..body].chunks(CHUNK)) {
            let ys = widened(ys, &mut wide[..ys.len()]);
            for (xs, ys) in xs.chunks_exact(16).zip(ys.chunks_exact(16)) {
                for ((s, &a), &b) in acc.iter_mut().zip(xs).zip(ys) {
                    *s += a * b;
                }
            }
        }
    }
    acc.iter().sum::<f32>() + tail
}
