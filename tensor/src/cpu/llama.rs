//! The Llama family's kernels over contiguous f32 data, each forward above its backward as
//! llm.c pairs them: RMSNorm (the forward saves `rstd` per row), rotary position embedding
//! (Hugging Face's rotate-half convention; the backward is the same rotation by −θ) and the
//! fused SwiGLU `silu(gate) · up`. Rows run in parallel with rayon; nothing is allocated per row.

use super::math::sigmoid;
use super::pool;
use super::reduce::sum_map;
use super::simd::vectorized;
use rayon::prelude::*;

/// Rows per rayon task: keeps tasks above ~16k elements when rows are short.
fn min_rows(c: usize) -> usize {
    (16_384 / c.max(1)).max(1)
}

/// RMSNorm's outputs: `y` `(rows, C)` and per row `rstd = 1 / sqrt(mean(x²) + eps)`.
pub struct RmsNormOut {
    pub y: Vec<f32>,
    pub rstd: Vec<f32>,
}

/// `y = (x · rstd) · weight` over rows of length `c`, with `rstd = 1 / sqrt(Σ x² / c + eps)`,
/// in the order of transformers' `LlamaRMSNorm` computed in f32 (normalise, then scale).
pub fn rms_norm_forward(x: &[f32], weight: &[f32], c: usize, eps: f32) -> RmsNormOut {
    let rows = x.len() / c.max(1);
    let mut out = RmsNormOut { y: pool::take(x.len()), rstd: vec![0.0; rows] };
    let rows_iter = out.y.par_chunks_mut(c.max(1)).zip(x.par_chunks(c.max(1))).zip(out.rstd.par_iter_mut());
    rows_iter.with_min_len(min_rows(c)).for_each(|((yr, xr), r)| {
        let mean_sq = vectorized(|| sum_map(xr, |v| v * v)) / c as f32;
        *r = 1.0 / (mean_sq + eps).sqrt();
        let rstd = *r;
        vectorized(|| yr.iter_mut().zip(xr).zip(weight).for_each(|((o, &v), &w)| *o = (v * rstd) * w));
    });
    out
}

/// RMSNorm's input and weight gradients.
pub struct RmsNormGrads {
    pub dx: Vec<f32>,
    pub dweight: Vec<f32>,
}

/// RMSNorm backward over rows of length `c`, from the saved per-row `rstd`.
///
/// With `xhat = x · rstd` and `g = dy · weight` (the gradient reaching `xhat`), and since
/// `d rstd / dx = -rstd · xhat / c`: `dx = rstd · (g - xhat · mean_C(g · xhat))`,
/// `dweight = Σ_rows dy · xhat`. `dweight` is summed in fixed blocks of rows whose partials are
/// added in block order, so the result does not depend on the number of threads.
pub fn rms_norm_backward(dy: &[f32], x: &[f32], weight: &[f32], rstd: &[f32], c: usize) -> RmsNormGrads {
    let c1 = c.max(1);
    let mut dx = pool::take(x.len()); // every row written
    let block = min_rows(c) * c1; // elements per block of rows
    let partials: Vec<Vec<f32>> = dx
        .par_chunks_mut(block)
        .zip(x.par_chunks(block))
        .zip(dy.par_chunks(block))
        .zip(rstd.par_chunks(block / c1))
        .map(|(((dxb, xb), dyb), rb)| {
            let mut dw = vec![0.0f32; c];
            for (((dxr, xr), dyr), &r) in dxb.chunks_mut(c1).zip(xb.chunks(c1)).zip(dyb.chunks(c1)).zip(rb) {
                rms_norm_row_backward(dxr, xr, dyr, weight, r, &mut dw);
            }
            dw
        })
        .collect();
    let mut dweight = vec![0.0f32; c];
    for dw in &partials {
        dweight.iter_mut().zip(dw).for_each(|(a, b)| *a += b);
    }
    RmsNormGrads { dx, dweight }
}

/// One row of [`rms_norm_backward`]: writes `dx` and adds `dy · xhat` into `dw`.
#[inline(always)]
fn rms_norm_row_backward(dxr: &mut [f32], xr: &[f32], dyr: &[f32], weight: &[f32], r: f32, dw: &mut [f32]) {
    let mut gx = 0.0f32;
    for ((&v, &g), &w) in xr.iter().zip(dyr).zip(weight) {
        gx += g * w * (v * r);
    }
    let gx_mean = gx / xr.len() as f32;
    for ((((d, &v), &g), &w), acc) in dxr.iter_mut().zip(xr).zip(dyr).zip(weight).zip(dw.iter_mut()) {
        let xhat = v * r;
        *d = r * (g * w - xhat * gx_mean);
        *acc += g * xhat;
    }
}

/// Rotary embedding in the rotate-half convention over contiguous `x` `(B·T, NH, HS)` with the
/// half tables `cos`, `sin` `(B·T, HS/2)`. For each head, with `x1 = x[..HS/2]`,
/// `x2 = x[HS/2..]` and `s = sign · sin`:
/// `out1 = x1·cos − x2·s`, `out2 = x2·cos + x1·s`. `sign = 1` is the forward (rotation by θ);
/// `sign = −1` the backward (rotation by −θ, the transpose of the rotation).
pub fn rope(x: &[f32], cos: &[f32], sin: &[f32], nh: usize, hs: usize, sign: f32) -> Vec<f32> {
    let half = hs / 2;
    let row = (nh * hs).max(1); // one (b, t) position: NH heads of HS
    let mut out = pool::take(x.len());
    let positions = out.par_chunks_mut(row).zip(x.par_chunks(row)).zip(cos.par_chunks(half.max(1)));
    positions.zip(sin.par_chunks(half.max(1))).with_min_len(min_rows(row)).for_each(|(((or, xr), cr), sr)| {
        for (oh, xh) in or.chunks_mut(hs).zip(xr.chunks(hs)) {
            let (o1, o2) = oh.split_at_mut(half);
            let (x1, x2) = xh.split_at(half);
            for i in 0..half {
                let (c, s) = (cr[i], sign * sr[i]);
                o1[i] = x1[i] * c - x2[i] * s;
                o2[i] = x2[i] * c + x1[i] * s;
            }
        }
    });
    out
}

/// `y = silu(gate) · up = gate · σ(gate) · up`, elementwise.
pub fn swiglu_forward(gate: &[f32], up: &[f32]) -> Vec<f32> {
    let mut y = pool::take(gate.len());
    let chunks = y.par_chunks_mut(16_384).zip(gate.par_chunks(16_384)).zip(up.par_chunks(16_384));
    chunks.for_each(|((yc, gc), uc)| swiglu_run(gc, uc, yc));
    y
}

crate::cpu::simd::multiversion! {
    /// [`swiglu_forward`] over one run, compiled for the SIMD level: a decoding step's SwiGLU
    /// (4,864 values a layer at the Qwen2.5-0.5B shape) runs on one thread while the others
    /// wait, and at the baseline's four lanes it took about 8 µs.
    fn swiglu_run(gate: &[f32], up: &[f32], y: &mut [f32]) {
        for ((o, &g), &u) in y.iter_mut().zip(gate).zip(up) {
            *o = g * sigmoid(g) * u;
        }
    }
}

/// SwiGLU backward: with `σ = σ(gate)`, `dgate = dout · up · σ · (1 + gate · (1 − σ))`
/// (silu's derivative) and `dup = dout · silu(gate)`.
pub fn swiglu_backward(gate: &[f32], up: &[f32], dout: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let (mut dgate, mut dup) = (pool::take(gate.len()), pool::take(gate.len())); // all written
    let outs = dgate.par_chunks_mut(16_384).zip(dup.par_chunks_mut(16_384));
    let ins = gate.par_chunks(16_384).zip(up.par_chunks(16_384)).zip(dout.par_chunks(16_384));
    outs.zip(ins).for_each(|((dgc, duc), ((gc, uc), dc))| {
        for ((((dg, du), &g), &u), &d) in dgc.iter_mut().zip(duc.iter_mut()).zip(gc).zip(uc).zip(dc) {
            let s = sigmoid(g);
            *dg = d * u * s * (1.0 + g * (1.0 - s));
            *du = d * g * s;
        }
    });
    (dgate, dup)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rope_backward_undoes_the_forward() {
        // A rotation's inverse is its transpose: rope(-θ) ∘ rope(θ) = identity.
        let x: Vec<f32> = (0..16).map(|i| (i as f32 * 0.37).sin()).collect();
        let (cos, sin) = ([0.6f32, 0.8], [0.8f32, -0.6]); // cos² + sin² = 1
        let (cos, sin) = ([cos, cos].concat(), [sin, sin].concat()); // 2 positions
        let there = rope(&x, &cos, &sin, 2, 4, 1.0);
        let back = rope(&there, &cos, &sin, 2, 4, -1.0);
        for (a, b) in back.iter().zip(&x) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }

    #[test]
    fn rms_norm_of_a_constant_row_is_the_weight() {
        let o = rms_norm_forward(&[3.0; 4], &[1.0, 2.0, 3.0, 4.0], 4, 0.0);
        assert_eq!(o.y, vec![1.0, 2.0, 3.0, 4.0]);
        assert_eq!(o.rstd, vec![1.0 / 3.0]);
    }
}
