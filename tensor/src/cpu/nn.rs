//! Row-wise neural-network kernels over contiguous `(rows, C)` data, parallel over rows, each
//! forward above its backward as llm.c pairs them: softmax, log-softmax, layer norm (the
//! forward saves `mean` and `rstd` for the backward) and cross-entropy with `ignore_index`.
//! Gradients are named `dx`, `dy`, `dweight`, `dbias`.

use super::math::exp_fast;
use super::pool;
use super::reduce::{sum, sum_map};
use super::simd::vectorized;
use rayon::prelude::*;

/// Rows per rayon task: keeps tasks above ~16k elements when rows are short.
fn min_rows(c: usize) -> usize {
    (16_384 / c.max(1)).max(1)
}

/// `y = exp(x - max) / Σ exp(x - max)` for each row of length `c`. Subtracting the row max
/// makes every exponent ≤ 0, so nothing overflows; a row of all -inf gives NaN, as PyTorch.
///
/// Each pass over a row (max, exponentials, sum, scale) is its own [`vectorized`] call:
/// measured, one function holding all four loops came out three times slower, its
/// exponential loop no longer vectorised as well as it does alone.
pub fn softmax_forward(x: &[f32], c: usize) -> Vec<f32> {
    let mut y = pool::take(x.len());
    y.par_chunks_mut(c).zip(x.par_chunks(c)).with_min_len(min_rows(c)).for_each(|(yr, xr)| {
        let max = vectorized(|| row_max(xr));
        vectorized(|| exp_shifted(yr, xr, max));
        let inv = 1.0 / vectorized(|| sum(yr));
        vectorized(|| yr.iter_mut().for_each(|o| *o *= inv));
    });
    y
}

/// [`softmax_forward`] of one row in place, with the same passes and so the same bits.
pub fn softmax_row_in_place(row: &mut [f32]) {
    let max = vectorized(|| row_max(row));
    vectorized(|| row.iter_mut().for_each(|v| *v = exp_fast(*v - max)));
    let inv = 1.0 / vectorized(|| sum(row));
    vectorized(|| row.iter_mut().for_each(|o| *o *= inv));
}

/// `y = exp(x - max)` elementwise over one row.
#[inline(always)]
fn exp_shifted(yr: &mut [f32], xr: &[f32], max: f32) {
    for (o, &v) in yr.iter_mut().zip(xr) {
        *o = exp_fast(v - max);
    }
}

/// `y = (x - max) - log Σ exp(x - max)` for each row: log-softmax without forming the
/// (underflowing) probabilities. Passes are separate [`vectorized`] calls, as in softmax.
pub fn log_softmax_forward(x: &[f32], c: usize) -> Vec<f32> {
    let mut y = pool::take(x.len());
    y.par_chunks_mut(c).zip(x.par_chunks(c)).with_min_len(min_rows(c)).for_each(|(yr, xr)| {
        // (x - max) - lse, not x - (max + lse): x - max is exact for the large entries, and
        // adding lse to a large max first would round away its low bits.
        let max = vectorized(|| row_max(xr));
        let lse = vectorized(|| log_sum_exp_shifted(xr, max));
        vectorized(|| yr.iter_mut().zip(xr).for_each(|(o, &v)| *o = (v - max) - lse));
    });
    y
}

/// Largest element, with 16 running maxima so the loop vectorises (a single `fold` is a
/// serial dependency chain). NaNs are ignored, as `f32::max` does; a NaN input still makes the
/// softmax row NaN through `exp(NaN - max)`.
#[inline(always)]
pub fn row_max(xs: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 16];
    let chunks = xs.chunks_exact(16);
    let tail = chunks.remainder().iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a = a.max(x);
        }
    }
    acc.iter().copied().fold(tail, f32::max)
}

/// `log Σ exp(x)` over one row, shifted by its max so that huge logits cannot overflow: the
/// cross-entropy's, forward and backward alike.
fn log_sum_exp(row: &[f32]) -> f32 {
    let max = vectorized(|| row_max(row));
    max + vectorized(|| log_sum_exp_shifted(row, max))
}

/// `log Σ exp(x - max)` for the row's `max`.
#[inline(always)]
pub fn log_sum_exp_shifted(xs: &[f32], max: f32) -> f32 {
    let mut acc = [0.0f32; 16];
    let chunks = xs.chunks_exact(16);
    let tail: f32 = chunks.remainder().iter().map(|&v| exp_fast(v - max)).sum();
    for ch in chunks {
        for (a, &v) in acc.iter_mut().zip(ch) {
            *a += exp_fast(v - max);
        }
    }
    (acc.iter().sum::<f32>() + tail).ln()
}

/// Softmax backward over rows of length `c`, from the forward's output `y`:
/// `dx_i = y_i · (dy_i - Σ_j dy_j · y_j)` (the Jacobian `diag(y) - y yᵀ` applied to `dy`).
pub fn softmax_backward(y: &[f32], dy: &[f32], c: usize) -> Vec<f32> {
    let mut dx = pool::take(y.len()); // every element written
    let rows = dx.par_chunks_mut(c.max(1)).zip(y.par_chunks(c.max(1))).zip(dy.par_chunks(c.max(1)));
    rows.with_min_len(min_rows(c)).for_each(|((dxr, yr), dyr)| {
        let dot: f32 = yr.iter().zip(dyr).map(|(&p, &g)| p * g).sum();
        for ((d, &p), &g) in dxr.iter_mut().zip(yr).zip(dyr) {
            *d = p * (g - dot);
        }
    });
    dx
}

/// Log-softmax backward over rows of length `c`, from the forward's output `y = log p`:
/// `dx_i = dy_i - p_i · Σ_j dy_j` with `p_i = exp(y_i)`.
pub fn log_softmax_backward(y: &[f32], dy: &[f32], c: usize) -> Vec<f32> {
    let mut dx = pool::take(y.len()); // every element written
    let rows = dx.par_chunks_mut(c.max(1)).zip(y.par_chunks(c.max(1))).zip(dy.par_chunks(c.max(1)));
    rows.with_min_len(min_rows(c)).for_each(|((dxr, yr), dyr)| {
        let total: f32 = dyr.iter().sum();
        for ((d, &lp), &g) in dxr.iter_mut().zip(yr).zip(dyr) {
            *d = g - lp.exp() * total;
        }
    });
    dx
}

/// Layer norm's outputs: `y`, and per row `mean` and `rstd = 1 / sqrt(var + eps)`.
pub struct LayerNormOut {
    pub y: Vec<f32>,
    pub mean: Vec<f32>,
    pub rstd: Vec<f32>,
}

/// `y = (x - mean) · rstd · weight + bias` over rows of length `c`, with the biased variance
/// `var = Σ (x - mean)² / c` computed in a second pass over the row (stable for large means).
pub fn layer_norm_forward(x: &[f32], weight: &[f32], bias: &[f32], c: usize, eps: f32) -> LayerNormOut {
    let rows = x.len() / c.max(1);
    let mut out = LayerNormOut { y: pool::take(x.len()), mean: vec![0.0; rows], rstd: vec![0.0; rows] };
    let stats = out.mean.par_iter_mut().zip(out.rstd.par_iter_mut());
    out.y.par_chunks_mut(c).zip(x.par_chunks(c)).zip(stats).with_min_len(min_rows(c)).for_each(|((yr, xr), (m, r))| {
        (*m, *r) = layer_norm_row(yr, xr, weight, bias, eps);
    });
    out
}

/// One row of layer norm; returns `(mean, rstd)`. One [`vectorized`] call per pass.
fn layer_norm_row(yr: &mut [f32], xr: &[f32], weight: &[f32], bias: &[f32], eps: f32) -> (f32, f32) {
    let c = xr.len() as f32;
    let mean = vectorized(|| sum(xr)) / c;
    let var = vectorized(|| sum_map(xr, |v| (v - mean) * (v - mean))) / c;
    let rstd = 1.0 / (var + eps).sqrt();
    vectorized(|| {
        for (((o, &v), &w), &b) in yr.iter_mut().zip(xr).zip(weight).zip(bias) {
            *o = (v - mean) * rstd * w + b;
        }
    });
    (mean, rstd)
}

/// Layer norm's input and parameter gradients.
pub struct LayerNormGrads {
    pub dx: Vec<f32>,
    pub dweight: Vec<f32>,
    pub dbias: Vec<f32>,
}

/// Layer norm backward over rows of length `c`, from the saved per-row `mean` and `rstd`.
///
/// With `xhat = (x - mean) · rstd` and `g = dy · weight` (the gradient reaching `xhat`):
/// `dx = rstd · (g - mean(g) - xhat · mean(g · xhat))`, `dweight = Σ_rows dy · xhat`,
/// `dbias = Σ_rows dy`. Rows run in parallel; each task sums its own `dweight` / `dbias`
/// partials, which are added at the end.
pub fn layer_norm_backward(
    dy: &[f32],
    x: &[f32],
    weight: &[f32],
    mean: &[f32],
    rstd: &[f32],
    c: usize,
) -> LayerNormGrads {
    let mut dx = pool::take(x.len()); // every row written
    let rows = dx.par_chunks_mut(c).zip(x.par_chunks(c)).zip(dy.par_chunks(c)).zip(mean.par_iter().zip(rstd));
    let zeros = || (vec![0.0f32; c], vec![0.0f32; c]);
    let (dweight, dbias) = rows
        .with_min_len(min_rows(c))
        .fold(zeros, |(mut dw, mut db), (((dxr, xr), dyr), (&m, &r))| {
            let xhat = |v: f32| (v - m) * r;
            let (mut g_mean, mut gx_mean) = (0.0f32, 0.0f32);
            for ((&v, &g), &w) in xr.iter().zip(dyr).zip(weight) {
                g_mean += g * w;
                gx_mean += g * w * xhat(v);
            }
            (g_mean, gx_mean) = (g_mean / c as f32, gx_mean / c as f32);
            for (i, ((d, &v), &g)) in dxr.iter_mut().zip(xr).zip(dyr).enumerate() {
                *d = r * (g * weight[i] - g_mean - xhat(v) * gx_mean);
                dw[i] += g * xhat(v);
                db[i] += g;
            }
            (dw, db)
        })
        .reduce(zeros, |(mut dw, mut db), (dw2, db2)| {
            dw.iter_mut().zip(&dw2).for_each(|(a, b)| *a += b);
            db.iter_mut().zip(&db2).for_each(|(a, b)| *a += b);
            (dw, db)
        });
    LayerNormGrads { dx, dweight, dbias }
}

/// Mean over rows of `logsumexp(row) - row[target]`, skipping rows whose target is
/// `ignore_index`; `(sum, count)` so the caller divides (0/0 = NaN when all are ignored,
/// as PyTorch).
///
/// # Panics
/// If a target is outside `0..c` and not `ignore_index`.
pub fn cross_entropy_forward(logits: &[f32], targets: &[i32], c: usize, ignore_index: i32) -> (f64, usize) {
    logits
        .par_chunks(c)
        .zip(targets.par_iter())
        .filter(|(_, &t)| t != ignore_index)
        .map(|(row, &t)| {
            assert!(t >= 0 && (t as usize) < c, "cross_entropy: target {t} is out of range for {c} classes");
            ((log_sum_exp(row) - row[t as usize]) as f64, 1)
        })
        .reduce(|| (0.0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
}

/// Mean cross-entropy backward over rows of `logits` (length `c`): for a kept row,
/// `dlogits = (softmax(row) - onehot(target)) · scale`, where the caller passes
/// `scale = dloss / n_valid`; rows whose target is `ignore_index` get zeros.
///
/// # Panics
/// If a kept target is outside `0..c`.
pub fn cross_entropy_backward(logits: &[f32], targets: &[i32], c: usize, ignore_index: i32, scale: f32) -> Vec<f32> {
    // A recycled buffer (the logits' gradient is large: 51 MB for GPT-2 at B=4, T=64): every
    // row is written below, ignored ones with zeros.
    let mut dx = pool::take(logits.len());
    let rows = dx.par_chunks_mut(c).zip(logits.par_chunks(c)).zip(targets.par_iter());
    rows.with_min_len(min_rows(c)).for_each(|((dxr, row), &t)| {
        if t == ignore_index {
            dxr.fill(0.0);
            return;
        }
        assert!(t >= 0 && (t as usize) < c, "cross_entropy_backward: target {t} is out of range for {c} classes");
        // p_i = exp(x_i - lse): one shift, so a row of huge logits cannot overflow. The
        // forward's vectorised log-sum-exp (one libm `exp` per logit made this the slowest op
        // of a LoRA step, at 4% of the bandwidth roof).
        let lse = log_sum_exp(row);
        vectorized(|| {
            for (d, &v) in dxr.iter_mut().zip(row) {
                *d = exp_fast(v - lse) * scale;
            }
        });
        dxr[t as usize] -= scale;
    });
    dx
}

/// Number of targets that are not `ignore_index` (the mean's denominator).
pub fn count_kept(targets: &[i32], ignore_index: i32) -> usize {
    targets.iter().filter(|&&t| t != ignore_index).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_backward_of_uniform_row_centres_the_gradient() {
        // y = (1/2, 1/2): dx = y · (dy - mean(dy)).
        assert_eq!(softmax_backward(&[0.5, 0.5], &[1.0, 3.0], 2), vec![-0.5, 0.5]);
    }

    #[test]
    fn cross_entropy_backward_skips_ignored_rows() {
        let dx = cross_entropy_backward(&[0.0, 0.0, 1.0, 2.0], &[1, -100], 2, -100, 1.0);
        assert_eq!(dx, vec![0.5, -0.5, 0.0, 0.0]);
    }
}
