//! Several matrix–vector products that share their input: decoding's query, key and value
//! projections (three weights, one normed hidden state) and the gated MLP's gate and up.
//!
//! Apart, each product quantizes the same activations again and is its own parallel pass,
//! with its own hand-over to the worker threads and its own wait for the slowest one; the key
//! and value weights of a grouped-query model are small (128 rows at the Qwen2.5-0.5B shape),
//! so their passes are mostly that overhead. Together: one quantization, and one pass whose
//! tasks cover the rows of every weight. Each output is computed exactly as `quant_matmul`
//! computes it alone (same kernel, same activations), so the bits are the same.

use super::{act::ActBlocks, check, fused, path, quant_matmul};
use crate::quant::QuantType;
use rayon::prelude::*;

/// One weight of a [`gemv_many`]: `n` rows of `k` values in blocks of the call's type, and
/// the `n` outputs its product with `x` goes to.
pub struct GemvPart<'a> {
    pub w: &'a [u8],
    pub n: usize,
    pub out: &'a mut [f32],
}

/// Rows per task: long runs (a task's rows are one stream for the prefetcher), a few tasks
/// per thread across all the weights (so a slowed core hands the rest to the others).
fn rows_per_task(total: usize) -> usize {
    total.div_ceil(4 * rayon::current_num_threads()).max(super::ROWS_PER_TASK)
}

/// `out = W · act` for every `(W, out)` part (rows of `row_bytes` bytes, one per output), by
/// the fused kernels in one parallel pass over all the parts' rows; a single task runs inline.
pub(super) fn fused_rows(
    path: super::Path,
    ty: QuantType,
    row_bytes: usize,
    act: &ActBlocks,
    parts: Vec<(&[u8], &mut [f32])>,
) {
    let per_task = rows_per_task(parts.iter().map(|(_, out)| out.len()).sum());
    let mut tasks: Vec<(&[u8], &mut [f32])> = Vec::new();
    for (w, out) in parts {
        // By outputs, not by bytes: rows of k = 0 values are empty and still have an output.
        let runs = out.chunks_mut(per_task).enumerate();
        tasks.extend(runs.map(|(i, o)| (&w[i * per_task * row_bytes..(i * per_task + o.len()) * row_bytes], o)));
    }
    let task = |(w, out): (&[u8], &mut [f32])| {
        for (j, o) in out.iter_mut().enumerate() {
            *o = fused::row_dot(path, ty, &w[j * row_bytes..(j + 1) * row_bytes], act);
        }
    };
    if tasks.len() > 1 {
        tasks.into_par_iter().for_each(task);
    } else {
        tasks.into_iter().for_each(task);
    }
}

/// `part.out = W_part · x` for every part, each as [`quant_matmul`] with one row computes it.
///
/// # Panics
/// If `k` is not a whole number of blocks, or a part's weight or output length does not
/// match its `n` (as `quant_matmul` would).
///
/// ```
/// use deltaw_tensor::cpu::qdot::{gemv_many, quant_matmul, GemvPart};
/// use deltaw_tensor::quant::{quantize, QuantType};
/// let k = 64;
/// let (wa, wb) = (quantize(QuantType::Q4_0, &vec![0.5; 3 * k])?, quantize(QuantType::Q4_0, &vec![-1.0; 2 * k])?);
/// let x = vec![0.25f32; k];
/// let (mut a, mut b) = (vec![0.0; 3], vec![0.0; 2]);
/// gemv_many(QuantType::Q4_0, k, &x, &mut [GemvPart { w: &wa, n: 3, out: &mut a }, GemvPart { w: &wb, n: 2, out: &mut b }]);
/// let mut alone = vec![0.0; 2];
/// quant_matmul(QuantType::Q4_0, &wb, 2, k, &x, 1, &mut alone);
/// assert_eq!(b, alone);
/// # Ok::<(), deltaw_tensor::Error>(())
/// ```
#[track_caller]
pub fn gemv_many(ty: QuantType, k: usize, x: &[f32], parts: &mut [GemvPart<'_>]) {
    for p in parts.iter() {
        check("gemv_many", ty, p.w, p.n, k, x, 1, p.out);
    }
    if k == 0 || !fused::covers(ty) {
        for p in parts.iter_mut() {
            quant_matmul(ty, p.w, p.n, k, x, 1, p.out);
        }
        return;
    }
    let act = ActBlocks::quantize(x, ty.block_elems());
    let row_bytes = ty.bytes_for(k).expect("checked");
    fused_rows(path(), ty, row_bytes, &act, parts.iter_mut().map(|p| (p.w, &mut *p.out)).collect());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::quantize;

    #[test]
    fn each_part_equals_its_product_alone_bit_for_bit() {
        for ty in [QuantType::Q8_0, QuantType::Q4_0, QuantType::Q4_1, QuantType::Q4K] {
            let k = 256;
            let x: Vec<f32> = (0..k).map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.03).collect();
            let sizes = [896, 128, 1, 300];
            let ws: Vec<Vec<u8>> = sizes
                .iter()
                .enumerate()
                .map(|(s, &n)| {
                    let v: Vec<f32> = (0..n * k).map(|i| (((i + 7 * s) * 13 % 29) as f32 - 14.0) * 0.05).collect();
                    quantize(ty, &v).unwrap()
                })
                .collect();
            let mut outs: Vec<Vec<f32>> = sizes.iter().map(|&n| vec![f32::NAN; n]).collect();
            let mut parts: Vec<GemvPart> =
                ws.iter().zip(&sizes).zip(outs.iter_mut()).map(|((w, &n), out)| GemvPart { w, n, out }).collect();
            gemv_many(ty, k, &x, &mut parts);
            for ((w, &n), got) in ws.iter().zip(&sizes).zip(&outs) {
                let mut want = vec![0.0; n];
                quant_matmul(ty, w, n, k, &x, 1, &mut want);
                let same = got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{ty}, n = {n}");
            }
        }
    }

    #[test]
    #[should_panic(expected = "gemv_many(q4_0): n = 3 rows of k = 32 need 54 weight bytes, got 36")]
    fn a_short_weight_is_named() {
        let w = quantize(QuantType::Q4_0, &[1.0; 64]).unwrap();
        gemv_many(QuantType::Q4_0, 32, &[0.0; 32], &mut [GemvPart { w: &w, n: 3, out: &mut [0.0; 3] }]);
    }
}
