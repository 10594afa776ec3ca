//! Backward kernels, the `_backward` halves of the llm.c-style pairs in `nn.rs`, `math.rs` and
//! `index.rs`: softmax, log-softmax, layer norm (from the saved `mean` and `rstd`), both GELUs,
//! cross-entropy with `ignore_index`, and the scatter-adds behind embedding, `index_select`
//! and `gather`. Inputs are contiguous row-major slices; gradients are named `dx`, `dy`,
//! `dweight`, `dbias` as in llm.c.

use super::math::{exp_fast, SQRT_2_OVER_PI};
use rayon::prelude::*;

/// Rows per rayon task: keeps tasks above ~16k elements when rows are short.
fn min_rows(c: usize) -> usize {
    (16_384 / c.max(1)).max(1)
}

/// Softmax backward over rows of length `c`, from the forward's output `y`:
/// `dx_i = y_i · (dy_i - Σ_j dy_j · y_j)` (the Jacobian `diag(y) - y yᵀ` applied to `dy`).
pub fn softmax_backward(y: &[f32], dy: &[f32], c: usize) -> Vec<f32> {
    let mut dx = vec![0.0; y.len()];
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
    let mut dx = vec![0.0; y.len()];
    let rows = dx.par_chunks_mut(c.max(1)).zip(y.par_chunks(c.max(1))).zip(dy.par_chunks(c.max(1)));
    rows.with_min_len(min_rows(c)).for_each(|((dxr, yr), dyr)| {
        let total: f32 = dyr.iter().sum();
        for ((d, &lp), &g) in dxr.iter_mut().zip(yr).zip(dyr) {
            *d = g - lp.exp() * total;
        }
    });
    dx
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
    let mut dx = vec![0.0; x.len()];
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

/// `dx = dy · f'(x)` elementwise, in parallel blocks whose inner loop is plain slice code the
/// compiler can vectorise (`f'` must be branch-free for that).
fn pointwise(x: &[f32], dy: &[f32], derivative: impl Fn(f32) -> f32 + Sync) -> Vec<f32> {
    const BLOCK: usize = 8192;
    let mut dx = vec![0.0; x.len()];
    dx.par_chunks_mut(BLOCK).zip(x.par_chunks(BLOCK).zip(dy.par_chunks(BLOCK))).for_each(|(d, (xs, gs))| {
        for ((o, &v), &g) in d.iter_mut().zip(xs).zip(gs) {
            *o = g * derivative(v);
        }
    });
    dx
}

/// `1 / √(2π)`, the standard normal density at 0.
const INV_SQRT_2PI: f32 = 0.398_942_3;

/// The standard normal CDF `Φ(x)` and density `φ(x)` in f32, sharing one `exp(-x²/2)`.
///
/// `Φ(x) = erfc(-x/√2) / 2`, with `erfc(z) = t · exp(-z² + P(t))`, `t = 1 / (1 + |z|/2)`: the
/// Chebyshev fit of [`math::erfc`](super::math::erfc) (relative error < 1.2e-7), here in f32
/// with the vectorising `exp_fast` (the f64 original costs twice a GEMM of the same rows in a
/// training step). `exp(-z²) = exp(-x²/2)` is also `√(2π) · φ(x)`. For |x| up to ~13, where Φ
/// underflows, rounding `z²` in f32 keeps the relative error of Φ below ~1e-5.
fn normal_cdf_pdf(x: f32) -> (f32, f32) {
    let z = x.abs() * std::f32::consts::FRAC_1_SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -1.265_512_2
        + t * (1.000_023_7
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_204 + t * (1.488_515_9 + t * (-0.822_152_2 + t * 0.170_872_77))))))));
    let gauss = exp_fast(-z * z); // exp(-x²/2)
    let tail = 0.5 * t * gauss * exp_fast(poly); // Φ(-|x|) = erfc(|x|/√2) / 2
    let cdf = if x >= 0.0 { 1.0 - tail } else { tail };
    (cdf, gauss * INV_SQRT_2PI)
}

/// Exact-GELU backward: `d/dx [x · Φ(x)] = Φ(x) + x · φ(x)`; `dx = dy · gelu'(x)`.
pub fn gelu_backward(x: &[f32], dy: &[f32]) -> Vec<f32> {
    pointwise(x, dy, |v| {
        let (cdf, pdf) = normal_cdf_pdf(v);
        cdf + v * pdf
    })
}

/// Tanh-GELU backward. With `u = √(2/π)(x + 0.044715 x³)` and `t = tanh(u)`,
/// `y = x/2 · (1 + t)`, so `dy/dx = (1 + t)/2 + x/2 · (1 - t²) · √(2/π)(1 + 3·0.044715 x²)`.
/// `1 + t` and `1 - t` are formed directly from `e = exp(-2|u|)` (`2/(1 + e)` on the side of
/// u's sign, `2e/(1 + e)` on the other) rather than from `t`: in the tails `t ≈ ±1` and
/// `1 ± t` would cancel to nothing.
pub fn gelu_tanh_backward(x: &[f32], dy: &[f32]) -> Vec<f32> {
    pointwise(x, dy, |v| {
        let u = SQRT_2_OVER_PI * (v + 0.044_715 * v * v * v);
        let e = exp_fast(-2.0 * u.abs());
        let (near, far) = (2.0 / (1.0 + e), 2.0 * e / (1.0 + e));
        let (one_plus_t, one_minus_t) = if u >= 0.0 { (near, far) } else { (far, near) };
        let du = SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044_715 * v * v);
        0.5 * one_plus_t + 0.5 * v * (one_plus_t * one_minus_t) * du
    })
}

/// Mean cross-entropy backward over rows of `logits` (length `c`): for a kept row,
/// `dlogits = (softmax(row) - onehot(target)) · scale`, where the caller passes
/// `scale = dloss / n_valid`; rows whose target is `ignore_index` get zeros.
///
/// # Panics
/// If a kept target is outside `0..c`.
pub fn cross_entropy_backward(logits: &[f32], targets: &[i32], c: usize, ignore_index: i32, scale: f32) -> Vec<f32> {
    let mut dx = vec![0.0; logits.len()];
    let rows = dx.par_chunks_mut(c).zip(logits.par_chunks(c)).zip(targets.par_iter());
    rows.with_min_len(min_rows(c)).for_each(|((dxr, row), &t)| {
        if t == ignore_index {
            return;
        }
        assert!(t >= 0 && (t as usize) < c, "cross_entropy_backward: target {t} is out of range for {c} classes");
        // p_i = exp(x_i - lse): one shift, so a row of huge logits cannot overflow.
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let lse = max + row.iter().map(|&v| (v - max).exp()).sum::<f32>().ln();
        for (d, &v) in dxr.iter_mut().zip(row) {
            *d = (v - lse).exp() * scale;
        }
        dxr[t as usize] -= scale;
    });
    dx
}

/// Number of targets that are not `ignore_index` (the mean's denominator).
pub fn count_kept(targets: &[i32], ignore_index: i32) -> usize {
    targets.iter().filter(|&&t| t != ignore_index).count()
}

/// `out[o, index[j], :] += src[o, j, :]` into `out` viewed as `(outer, d, inner)`, with `src`
/// of shape `(outer, k, inner)`, `k = index.len()`: the backward of `index_select` and of
/// embedding lookup. Repeated indices accumulate. Deterministic and parallel: the source rows
/// are bucketed by destination first, then each destination row sums its sources in order.
///
/// # Panics
/// If an index is outside `0..d`.
pub fn index_add(out: &mut [f32], (_outer, d, inner): (usize, usize, usize), index: &[i32], src: &[f32]) {
    for &i in index {
        assert!(i >= 0 && (i as usize) < d, "index_add: index {i} is out of range for a dim of size {d}");
    }
    // CSR buckets: sources of destination r are order[start[r]..start[r + 1]].
    let mut start = vec![0usize; d + 1];
    index.iter().for_each(|&i| start[i as usize + 1] += 1);
    (0..d).for_each(|r| start[r + 1] += start[r]);
    let mut fill = start.clone();
    let mut order = vec![0usize; index.len()];
    for (j, &i) in index.iter().enumerate() {
        order[fill[i as usize]] = j;
        fill[i as usize] += 1;
    }
    let k = index.len();
    let rows_per_task = (4096 / inner.max(1)).max(1);
    out.par_chunks_mut(inner.max(1)).enumerate().with_min_len(rows_per_task).for_each(|(row, dst)| {
        let (o, r) = (row / d, row % d); // row o·d + r of the (outer, d, inner) output
        for &j in &order[start[r]..start[r + 1]] {
            let s = (o * k + j) * inner; // row o·k + j of the (outer, k, inner) source
            dst.iter_mut().zip(&src[s..s + inner]).for_each(|(a, &b)| *a += b);
        }
    });
}

/// `out[.., index[.., j, ..], ..] += src[.., j, ..]` along `dim`, as `torch.scatter_add`: the
/// backward of `gather`. `index` and `src` share `index_dims`; `out` has `out_dims`. Sequential:
/// two elements may land on the same destination, and gather's index tensors are small.
///
/// # Panics
/// If an index is outside `0..out_dims[dim]`.
pub fn scatter_add(out: &mut [f32], out_dims: &[usize], dim: usize, index: &[i32], index_dims: &[usize], src: &[f32]) {
    let mut out_strides = vec![1; out_dims.len()];
    for d in (0..out_dims.len().saturating_sub(1)).rev() {
        out_strides[d] = out_strides[d + 1] * out_dims[d + 1];
    }
    for (flat, (&i, &v)) in index.iter().zip(src).enumerate() {
        let (mut rem, mut dst) = (flat, 0);
        for d in (0..index_dims.len()).rev() {
            let coord = rem % index_dims[d];
            rem /= index_dims[d];
            let at = if d == dim { i } else { coord as i32 };
            assert!(
                at >= 0 && (at as usize) < out_dims[d],
                "scatter_add: index {at} is out of range for dim {d} of size {}",
                out_dims[d]
            );
            dst += at as usize * out_strides[d];
        }
        out[dst] += v;
    }
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
    fn index_add_accumulates_repeated_indices() {
        let mut out = vec![0.0; 3 * 2];
        index_add(&mut out, (1, 3, 2), &[2, 0, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(out, vec![3.0, 4.0, 0.0, 0.0, 6.0, 8.0]);
    }

    #[test]
    fn cross_entropy_backward_skips_ignored_rows() {
        let dx = cross_entropy_backward(&[0.0, 0.0, 1.0, 2.0], &[1, -100], 2, -100, 1.0);
        assert_eq!(dx, vec![0.5, -0.5, 0.0, 0.0]);
    }
}
