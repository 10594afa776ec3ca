//! Fused scaled dot-product attention, forward and backward, one head at a time.
//!
//! For one query head, with `Q` `(T, HS)`, `K` and `V` `(S, HS)`, a mask `M` `(T, S)` (nonzero where
//! query `i` may not see key `j`) and `scale = 1/√HS`:
//!
//! ```text
//! forward:   Sᵢⱼ = scale · Qᵢ·Kⱼ, or -∞ where Mᵢⱼ ≠ 0
//!            P = softmax(S) row by row            (T, S)   saved for the backward
//!            O = P · V                            (T, HS)
//! backward:  dV = Pᵀ · dO                         (S, HS)
//!            dP = dO · Vᵀ                         (T, S)
//!            dS = P ⊙ (dP − rowsum(dP ⊙ P))      (T, S)   softmax's backward; 0 where masked
//!            dQ = scale · dS · K                  (T, HS)
//!            dK = scale · dSᵀ · Q                 (S, HS)
//! ```
//!
//! Grouped-query attention: with `NH` query heads and `NKV` key/value heads (`G = NH / NKV`),
//! query head `h` reads key/value head `h / G`, as transformers' `repeat_kv` lays them out. K and
//! V are never copied: the forward maps the head index, and the backward sums `dK`, `dV` over the
//! `G` query heads of a group in head order, one task per key/value head, so the sums are
//! deterministic. `NKV = NH` is plain multi-head attention.
//!
//! "Fused" here means one pass per head with the `(T, S)` block in a buffer of its own, rather
//! than five tensor ops each streaming the whole `(B, NH, T, S)` tensor through memory. Heads
//! run in parallel; each product is the packed [`sgemm`] reading `Q`, `K`, `V` and `dO` in place
//! through their strides (the heads of a `(B, T, NH, HS)` projection need no copy). The steps
//! are the same as the unfused ops' in the same order, so the results are the same bits.

use super::gemm::{sequential, sgemm, MatRef};
use super::nn::softmax_row_in_place;
use super::pool;
use super::simd::vectorized;
use crate::layout::Layout;
use rayon::prelude::*;

/// Sizes: `heads = B·NH` pairs `(b, h)`, `nh` query heads per batch row, `nkv` key/value heads
/// (dividing `nh`), `t` queries, `s` keys, `hs` the head size.
#[derive(Clone, Copy, Debug)]
pub struct AttentionDims {
    pub b: usize,
    pub nh: usize,
    pub nkv: usize,
    pub t: usize,
    pub s: usize,
    pub hs: usize,
}

impl AttentionDims {
    /// Query heads per key/value head, `G = NH / NKV` (0 when there are no heads).
    pub fn group(&self) -> usize {
        self.nh / self.nkv.max(1)
    }
}

/// A rank-4 operand `(B, NH, rows, cols)` read through its layout.
#[derive(Clone, Copy)]
pub struct Operand<'a> {
    pub data: &'a [f32],
    pub layout: &'a Layout,
}

impl<'a> Operand<'a> {
    /// Head `(b, h)` as a matrix (rows along dim 2, columns along dim 3).
    fn head(&self, b: usize, h: usize) -> MatRef<'a> {
        let st = self.layout.strides();
        MatRef {
            data: self.data,
            offset: self.layout.offset() + b * st[0] + h * st[1],
            row_stride: st[2],
            col_stride: st[3],
        }
    }
}

/// `(O, P)`: the output `(B, NH, T, HS)` and the probabilities `(B, NH, T, S)`, both
/// contiguous. `mask` is already broadcast to `(B, NH, T, S)` (stride 0 on broadcast dims).
pub fn attention_forward(
    q: Operand<'_>,
    k: Operand<'_>,
    v: Operand<'_>,
    mask: Operand<'_>,
    d: AttentionDims,
    scale: f32,
) -> (Vec<f32>, Vec<f32>) {
    let AttentionDims { nh, t, s, hs, .. } = d;
    let group = d.group(); // query heads per key/value head
    let mut out = pool::take(d.b * nh * t * hs);
    let mut probs = pool::take(d.b * nh * t * s);
    let heads = out.par_chunks_mut((t * hs).max(1)).zip(probs.par_chunks_mut((t * s).max(1))).enumerate();
    // Heads run in parallel, so each head's products stay on its thread (`sequential`).
    heads.for_each(|(head, (o, p))| {
        sequential(|| {
            let (b, h) = (head / nh, head % nh);
            if s == 0 || hs == 0 {
                o.fill(0.0);
                p.fill(f32::NAN); // softmax over no keys, as the unfused ops give
                return;
            }
            sgemm(t, s, hs, q.head(b, h), k.head(b, h / group).t(), p, s, false);
            scale_and_mask(p, mask.head(b, h), s, scale);
            p.chunks_mut(s).for_each(softmax_row_in_place);
            let probs_head = MatRef { data: p, offset: 0, row_stride: s, col_stride: 1 };
            sgemm(t, hs, s, probs_head, v.head(b, h / group), o, hs, false);
        })
    });
    (out, probs)
}

/// `Sᵢⱼ = scale · Sᵢⱼ`, or -∞ where the mask is nonzero, over the `(T, S)` rows of `p`. A mask
/// row with unit column stride (a padding or causal mask, broadcast over heads and queries with
/// stride 0) is read as a slice, so the select vectorises; any other layout element by element.
fn scale_and_mask(p: &mut [f32], m: MatRef<'_>, s: usize, scale: f32) {
    let pick = |x: f32, masked: bool| if masked { f32::NEG_INFINITY } else { x * scale };
    vectorized(|| {
        for (i, row) in p.chunks_mut(s).enumerate() {
            if m.col_stride == 1 {
                let start = m.offset + i * m.row_stride;
                for (x, &mk) in row.iter_mut().zip(&m.data[start..start + s]) {
                    *x = pick(*x, mk != 0.0);
                }
            } else {
                for (j, x) in row.iter_mut().enumerate() {
                    *x = pick(*x, m.at(i, j) != 0.0);
                }
            }
        }
    });
}

/// `(dQ, dK, dV)`, contiguous `(B, NH, T, HS)`, `(B, NKV, S, HS)`, `(B, NKV, S, HS)`, from the
/// saved probabilities `probs` (contiguous `(B, NH, T, S)`) and the output gradient `dout`.
/// One task per key/value head `(b, j)`: its `G` query heads run in order, each adding its
/// `dK`, `dV` terms to the group's (the first writes, the rest accumulate).
pub fn attention_backward(
    q: Operand<'_>,
    k: Operand<'_>,
    v: Operand<'_>,
    probs: &[f32],
    dout: Operand<'_>,
    d: AttentionDims,
    scale: f32,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let AttentionDims { nh, nkv, t, s, hs, .. } = d;
    let group = d.group();
    let mut dq = pool::take_zeroed(d.b * nh * t * hs);
    let mut dk = pool::take_zeroed(d.b * nkv * s * hs);
    let mut dv = pool::take_zeroed(d.b * nkv * s * hs);
    if t * s * hs * nkv == 0 {
        return (dq, dk, dv);
    }
    let grads = dq.par_chunks_mut(group * t * hs).zip(dk.par_chunks_mut(s * hs)).zip(dv.par_chunks_mut(s * hs));
    grads.enumerate().for_each(|(kv_head, ((dq_group, dk), dv))| {
        sequential(|| {
            let (b, j) = (kv_head / nkv, kv_head % nkv);
            let mut ds = vec![0.0; t * s];
            for (g, dq) in dq_group.chunks_mut(t * hs).enumerate() {
                let h = j * group + g;
                let head = b * nh + h;
                let p = &probs[head * t * s..(head + 1) * t * s];
                let p_head = MatRef { data: p, offset: 0, row_stride: s, col_stride: 1 };
                let d_o = dout.head(b, h);
                sgemm(s, hs, t, p_head.t(), d_o, dv, hs, g > 0);
                sgemm(t, s, hs, d_o, v.head(b, j).t(), &mut ds, s, false);
                softmax_backward_in_place(&mut ds, p, s, scale);
                let ds_head = MatRef { data: &ds, offset: 0, row_stride: s, col_stride: 1 };
                sgemm(t, hs, s, ds_head, k.head(b, j), dq, hs, false);
                sgemm(s, hs, t, ds_head.t(), q.head(b, h), dk, hs, g > 0);
            }
        })
    });
    (dq, dk, dv)
}

/// `dS = scale · P ⊙ (dP − rowsum(dP ⊙ P))` in place over `(T, S)` rows, `ds` holding `dP`.
fn softmax_backward_in_place(ds: &mut [f32], p: &[f32], s: usize, scale: f32) {
    for (dsr, pr) in ds.chunks_mut(s).zip(p.chunks(s)) {
        let dot: f32 = pr.iter().zip(dsr.iter()).map(|(&p, &g)| p * g).sum();
        for (g, &p) in dsr.iter_mut().zip(pr) {
            *g = p * (*g - dot) * scale;
        }
    }
}
