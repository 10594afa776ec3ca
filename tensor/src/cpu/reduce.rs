//! Reductions along one dim of a contiguous tensor viewed as `(outer, d, inner)`: the reduced
//! dim has size `d` and stride `inner`. Output element `(o, i)` reduces
//! `x[o·d·inner + j·inner + i]` over `j < d`.
//!
//! Two loop orders: when `inner == 1` each output reduces one contiguous row (split across
//! several accumulators so the loop vectorises and rounding error grows like n/16, not n);
//! otherwise each output block accumulates `d` contiguous rows of length `inner` elementwise,
//! which is also unit-stride.

use crate::kinds::{ReduceDims, ReduceOp};
use rayon::prelude::*;

/// Columns per rayon task when reducing along a non-last dim.
const COLS: usize = 2048;

/// Reduces contiguous `x` along the middle dim of `dims`; output is `(outer, inner)` row-major.
pub fn reduce(op: ReduceOp, x: &[f32], dims: ReduceDims) -> Vec<f32> {
    let ReduceDims { outer, d, inner } = dims;
    let mut out = vec![0.0; outer * inner];
    if out.is_empty() {
        return out;
    }
    if inner == 1 {
        out.par_iter_mut().enumerate().with_min_len(64).for_each(|(o, y)| *y = reduce_row(op, &x[o * d..(o + 1) * d]));
        return out;
    }
    out.par_chunks_mut(inner).enumerate().for_each(|(o, block)| {
        let base = &x[o * d * inner..(o + 1) * d * inner];
        block.par_chunks_mut(COLS).enumerate().for_each(|(c, cols)| {
            reduce_columns(op, base, d, inner, c * COLS, cols);
        });
    });
    out
}

/// One contiguous row.
fn reduce_row(op: ReduceOp, row: &[f32]) -> f32 {
    let n = row.len() as f32;
    match op {
        ReduceOp::Sum => sum(row),
        ReduceOp::Mean => sum(row) / n,
        ReduceOp::Max => row.iter().copied().fold(f32::NEG_INFINITY, max_nan),
        ReduceOp::Min => row.iter().copied().fold(f32::INFINITY, min_nan),
        ReduceOp::Var if row.is_empty() => f32::NAN, // 0/0, as torch.var of nothing
        ReduceOp::Var => {
            let mean = sum(row) / n;
            let sq: f32 = sum_map(row, |x| (x - mean) * (x - mean));
            sq / (n - 1.0)
        }
        ReduceOp::ArgMax => argmax_row(row) as f32,
    }
}

/// Columns `first..first + out.len()` of a `(d, inner)` block, accumulated row by row.
fn reduce_columns(op: ReduceOp, block: &[f32], d: usize, inner: usize, first: usize, out: &mut [f32]) {
    let w = out.len();
    let row = |j: usize| &block[j * inner + first..j * inner + first + w];
    match op {
        ReduceOp::Sum | ReduceOp::Mean | ReduceOp::Var => {
            out.fill(0.0);
            (0..d).for_each(|j| out.iter_mut().zip(row(j)).for_each(|(y, &x)| *y += x));
            if op != ReduceOp::Sum {
                out.iter_mut().for_each(|y| *y /= d as f32);
            }
            if op == ReduceOp::Var {
                let mean = out.to_vec();
                out.fill(0.0);
                for j in 0..d {
                    for ((y, &x), &m) in out.iter_mut().zip(row(j)).zip(&mean) {
                        *y += (x - m) * (x - m);
                    }
                }
                // d = 0 must give NaN (0/0), not 0/(-1).
                out.iter_mut().for_each(|y| *y = if d == 0 { f32::NAN } else { *y / (d as f32 - 1.0) });
            }
        }
        ReduceOp::Max => {
            out.fill(f32::NEG_INFINITY);
            (0..d).for_each(|j| out.iter_mut().zip(row(j)).for_each(|(y, &x)| *y = max_nan(*y, x)));
        }
        ReduceOp::Min => {
            out.fill(f32::INFINITY);
            (0..d).for_each(|j| out.iter_mut().zip(row(j)).for_each(|(y, &x)| *y = min_nan(*y, x)));
        }
        ReduceOp::ArgMax => {
            for (i, y) in out.iter_mut().enumerate() {
                *y = argmax((0..d).map(|j| block[j * inner + first + i])) as f32;
            }
        }
    }
}

/// Sum with 16 independent partial sums: vectorises, and each partial sees n/16 terms.
#[inline(always)]
pub fn sum(xs: &[f32]) -> f32 {
    sum_map(xs, |x| x)
}

/// `Σ f(x)` with the same 16 partial sums as [`sum`].
#[inline(always)]
pub fn sum_map(xs: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0.0f32; 16];
    let chunks = xs.chunks_exact(16);
    let tail: f32 = chunks.remainder().iter().map(|&x| f(x)).sum();
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += f(x);
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// max that propagates NaN, as PyTorch's reductions do.
fn max_nan(a: f32, b: f32) -> f32 {
    if a >= b || a.is_nan() {
        a
    } else {
        b
    }
}

fn min_nan(a: f32, b: f32) -> f32 {
    if a <= b || a.is_nan() {
        a
    } else {
        b
    }
}

/// Index of the first maximum; a NaN counts as the maximum (first NaN wins), as PyTorch.
fn argmax(xs: impl Iterator<Item = f32>) -> usize {
    let mut best = (0, f32::NEG_INFINITY);
    for (i, x) in xs.enumerate() {
        if best.1.is_nan() {
            break;
        }
        if x > best.1 || x.is_nan() || i == 0 {
            best = (i, x);
        }
    }
    best.0
}

/// [`argmax`] of a contiguous row, in two vectorised passes: the maximum (16 running maxima,
/// and whether any value is NaN), then the first run of 64 that holds it. A decoding step
/// takes the argmax of a whole vocabulary (151,936 logits for Qwen2.5) on one thread while the
/// others wait; the one-pass loop, with its NaN test and early exit per value, took 0.15 ms
/// of a Q4_0 step of about 9 ms. Same index: the first value equal to the maximum (`-0.0`
/// equals `0.0`, as `>` sees them), and with a NaN the one-pass loop's answer.
fn argmax_row(row: &[f32]) -> usize {
    let mut lanes = [f32::NEG_INFINITY; 16];
    let mut nan = false;
    let runs = row.chunks_exact(16);
    let tail = runs.remainder();
    for run in runs {
        for (m, &x) in lanes.iter_mut().zip(run) {
            nan |= x.is_nan();
            *m = if x > *m { x } else { *m };
        }
    }
    if nan || tail.iter().any(|x| x.is_nan()) {
        return argmax(row.iter().copied());
    }
    let max = lanes.iter().chain(tail).fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m });
    let mut start = 0;
    for run in row.chunks(64) {
        if run.iter().fold(false, |hit, &x| hit | (x == max)) {
            return start + run.iter().position(|&x| x == max).unwrap_or(0);
        }
        start += run.len();
    }
    0 // an empty row, as `argmax`
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduces_middle_dim() {
        // (outer=1, d=2, inner=3): column sums and maxima.
        let x = [1.0, 5.0, 3.0, 4.0, 2.0, 6.0];
        let dims = ReduceDims { outer: 1, d: 2, inner: 3 };
        assert_eq!(reduce(ReduceOp::Sum, &x, dims), vec![5.0, 7.0, 9.0]);
        assert_eq!(reduce(ReduceOp::ArgMax, &x, dims), vec![1.0, 0.0, 1.0]);
        assert_eq!(reduce(ReduceOp::Var, &x, dims), vec![4.5, 4.5, 4.5]);
    }

    #[test]
    fn argmax_row_agrees_with_the_one_pass_loop() {
        let mut rng = 12345u32;
        let mut next = || {
            rng = rng.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (rng >> 8) as f32 / (1u32 << 24) as f32
        };
        for len in [0, 1, 15, 16, 17, 63, 64, 65, 200, 1000] {
            for case in 0..6 {
                let mut row: Vec<f32> = (0..len).map(|_| (next() * 8.0).floor() - 4.0).collect();
                if len > 3 {
                    match case {
                        1 => row[len / 2] = f32::NAN,
                        2 => row.iter_mut().for_each(|x| *x = f32::NEG_INFINITY),
                        3 => (row[1], row[len - 1]) = (-0.0, 0.0),
                        4 => row.iter_mut().for_each(|x| *x = if *x > 0.0 { -0.0 } else { 0.0 }),
                        5 => row[len - 1] = f32::INFINITY,
                        _ => {}
                    }
                }
                assert_eq!(argmax_row(&row), argmax(row.iter().copied()), "len {len}, case {case}: {row:?}");
            }
        }
    }

    #[test]
    fn argmax_takes_first_maximum_and_nan() {
        assert_eq!(argmax([1.0, 3.0, 3.0].into_iter()), 1);
        assert_eq!(argmax([1.0, f32::NAN, 3.0].into_iter()), 1);
    }
}
