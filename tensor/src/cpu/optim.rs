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
    const BLOCK: usize = 16 * 1024;
    let n = p.len();
    let (mut p2, mut m2, mut v2) = (pool::take(n), pool::take(n), pool::take(n));
    p2.par_chunks_mut(BLOCK).zip(m2.par_chunks_mut(BLOCK)).zip(v2.par_chunks_mut(BLOCK)).enumerate().for_each(
        |(b, ((po, mo), vo))| {
            let r = b * BLOCK..(b * BLOCK + po.len());
            let (p, g, m, v) = (&p[r.clone()], &g[r.clone()], &m[r.clone()], &v[r]);
            for i in 0..po.len() {
                let x = s.decay.map_or(p[i], |d| p[i] * d);
                let mi = m[i] + (g[i] - m[i]) * s.one_minus_beta1;
                let vi = v[i] * s.beta2 + (g[i] * s.one_minus_beta2) * g[i];
                let denom = vi.sqrt() / s.bias2_sqrt + s.eps;
                po[i] = x + (mi * s.step_size) / denom;
                mo[i] = mi;
                vo[i] = vi;
            }
        },
    );
    (p2, m2, v2)
}
