//! The fused AdamW update: one pass over a parameter reading `p, g, m, v` and writing the new
//! `p, m, v`, instead of a dozen whole-tensor passes through separate ops. For GPT-2 124M that
//! is the difference between ~2.5 s and ~0.3 s per optimizer step on a 2-core machine: the
//! update is bound by memory traffic, and each separate op re-reads and re-writes 0.5 GB.

use super::pool;
use crate::kinds::AdamWScalars;
use rayon::prelude::*;

/// Per element, in exactly the order (and so with exactly the rounding) of the composite
/// tensor-op version: `p ← p·decay`; `m ← m + (g - m)(1 - β1)`; `v ← v·β2 + (g(1 - β2))·g`;
/// `p ← p + (m·step_size) / (√v / √(1 - β2ᵗ) + eps)`.
pub fn adamw(p: &[f32], g: &[f32], m: &[f32], v: &[f32], s: AdamWScalars) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let n = p.len();
    let (mut p2, mut m2, mut v2) = (pool::take(n), pool::take(n), pool::take(n));
    p2.par_chunks_mut(BLOCK).zip(m2.par_chunks_mut(BLOCK)).zip(v2.par_chunks_mut(BLOCK)).enumerate().for_each(
        |(b, ((po, mo), vo))| {
            let r = b * BLOCK..(b * BLOCK + po.len());
            let (p, g, m, v) = (&p[r.clone()], &g[r.clone()], &m[r.clone()], &v[r]);
            for i in 0..po.len() {
                (po[i], mo[i], vo[i]) = element(p[i], g[i], m[i], v[i], &s);
            }
        },
    );
    (p2, m2, v2)
}

/// [`adamw`] writing the new `p, m, v` over the old ones: the same bits, and no new memory
/// (a 124 M-parameter step would otherwise take 1.5 GB of fresh pages from the OS).
pub fn adamw_in_place(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], s: AdamWScalars) {
    p.par_chunks_mut(BLOCK)
        .zip(m.par_chunks_mut(BLOCK))
        .zip(v.par_chunks_mut(BLOCK))
        .zip(g.par_chunks(BLOCK))
        .for_each(|(((p, m), v), g)| {
            for i in 0..p.len() {
                (p[i], m[i], v[i]) = element(p[i], g[i], m[i], v[i], &s);
            }
        });
}

/// Elements per rayon task.
const BLOCK: usize = 16 * 1024;

/// One element's update, returning the new `(p, m, v)`.
#[inline(always)]
fn element(p: f32, g: f32, m: f32, v: f32, s: &AdamWScalars) -> (f32, f32, f32) {
    let x = s.decay.map_or(p, |d| p * d);
    let mi = m + (g - m) * s.one_minus_beta1;
    let vi = v * s.beta2 + (g * s.one_minus_beta2) * g;
    let denom = vi.sqrt() / s.bias2_sqrt + s.eps;
    (x + (mi * s.step_size) / denom, mi, vi)
}
