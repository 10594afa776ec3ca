//! Activations quantized per block, as the integer dot products need them.
//!
//! A row of `k` f32 activations becomes `k` i8 values `q` and one f32 scale `d` per block of
//! [`ActBlocks::block`] values (32 for the legacy weight types, Q8_0's layout; 256 for the
//! K-quants, Q8_K's): `d = amax / 127`, `q = round(x / d)`, so `|x - d·q| ≤ d / 2` and every
//! `q` lies in `-127..=127` (never -128: the SIMD kernels rely on it, see `x86.rs`).
//! Alongside, the sum of the `q` of every 16 values (`sums16`, Q8_K's `bsums`), which the
//! types with a minimum or offset (Q4_1, Q5_1, Q4_K, Q5_K) multiply by it.
//!
//! Kept in separate arrays (not llama.cpp's interleaved `block_q8_0`) because the kernels
//! read the `q` of a whole row as one contiguous run.

/// A quantized activation row (see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ActBlocks {
    /// Values per scale: 32 or 256.
    pub block: usize,
    /// `k` quantized values.
    pub q: Vec<i8>,
    /// One scale per block.
    pub d: Vec<f32>,
    /// `Σ q` over each run of 16 values (`k / 16` entries).
    pub sums16: Vec<i32>,
    /// `Σ q` over each run of 32 values (`k / 32` entries): a legacy block's, contiguous so
    /// that a SIMD kernel loads eight at once.
    pub sums32: Vec<i32>,
    /// For 32-value blocks, `q` rearranged by quads of blocks for the 512-bit Q4_0 kernel
    /// (`fused_zmm.rs`): per quad, the first 16 values of each of its four blocks, then their
    /// last 16 (128 bytes), zeros past the last block up to a whole quad. Empty otherwise.
    pub quads: Vec<i8>,
}

impl ActBlocks {
    /// Quantizes `x` (a whole number of `block`-value blocks) with one scale per block.
    pub(crate) fn quantize(x: &[f32], block: usize) -> ActBlocks {
        debug_assert!(block.is_multiple_of(16) && x.len().is_multiple_of(block));
        let mut q = vec![0i8; x.len()];
        let mut d = Vec::with_capacity(x.len() / block);
        let mut sums16 = vec![0i32; x.len() / 16];
        // Compiled for the SIMD level: the rounding then is a few vector instructions (x86's
        // lowering of `round`, trunc(v + copysign(pred(0.5), v)), exact) instead of a libm
        // call per value, and the sums are vector adds. Quantizing a decoding step's
        // activations was 5% of a Q4_0 step's samples, on the leading thread while the
        // helpers wait. Same bits either way. (A function, not a closure through
        // `simd::vectorized`: the closure was compiled apart, for the baseline.)
        quantize_blocks(x, block, &mut q, &mut d, &mut sums16);
        let sums32 = sums16.chunks_exact(2).map(|p| p[0] + p[1]).collect();
        let quads = if block == 32 { quads(&q) } else { Vec::new() };
        ActBlocks { block, q, d, sums16, sums32, quads }
    }

    /// `Σ q` over the 32 values of legacy block `b` (two 16-value sums).
    #[inline]
    pub(crate) fn sum32(&self, b: usize) -> i32 {
        self.sums32[b]
    }
}

/// [`ActBlocks::quads`] of 32-value blocks `q`.
fn quads(q: &[i8]) -> Vec<i8> {
    let mut out = vec![0i8; q.len().div_ceil(128) * 128];
    for (quad, dst) in q.chunks(128).zip(out.chunks_exact_mut(128)) {
        for (j, block) in quad.chunks_exact(32).enumerate() {
            dst[16 * j..16 * j + 16].copy_from_slice(&block[..16]);
            dst[64 + 16 * j..64 + 16 * j + 16].copy_from_slice(&block[16..]);
        }
    }
    out
}

crate::cpu::simd::multiversion! {
    /// Every block of `x` into `q`, its scale pushed onto `d`, and each run of 16 `q`'s sum
    /// into `sums16`, compiled for the SIMD level.
    fn quantize_blocks(x: &[f32], block: usize, q: &mut [i8], d: &mut Vec<f32>, sums16: &mut [i32]) {
        let blocks = x.chunks_exact(block).zip(q.chunks_exact_mut(block));
        for ((xb, qb), sb) in blocks.zip(sums16.chunks_exact_mut(block / 16)) {
            d.push(quantize_block(xb, qb));
            for (s, run) in sb.iter_mut().zip(qb.chunks_exact(16)) {
                *s = run.iter().map(|&v| v as i32).sum();
            }
        }
    }
}

/// One block: its scale `amax / 127`, and `q = round(x / scale)` into `qb`.
#[inline(always)]
fn quantize_block(xb: &[f32], qb: &mut [i8]) -> f32 {
    // Sixteen running maxima (a block is whole runs of 16), so the loop vectorizes; `max`
    // is exact and ignores NaN in any order, so the lanes give the one fold's value.
    let mut lanes = [0.0f32; 16];
    for run in xb.chunks_exact(16) {
        for (m, v) in lanes.iter_mut().zip(run) {
            *m = m.max(v.abs());
        }
    }
    // Halving, so the last step is vector maxima too (not a scalar chain of 16).
    let mut width = 16;
    while width > 1 {
        width /= 2;
        for i in 0..width {
            lanes[i] = lanes[i].max(lanes[i + width]);
        }
    }
    let amax = lanes[0];
    let scale = amax / 127.0;
    let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
    for (qv, &xv) in qb.iter_mut().zip(xb) {
        // |x · inv| ≤ 127 up to rounding of `inv`; the clamp keeps -128 out regardless.
        *qv = (xv * inv).round().clamp(-127.0, 127.0) as i8;
    }
    scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_error_is_within_half_a_step_and_q_avoids_minus_128() {
        let x: Vec<f32> = (0..512).map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.013).collect();
        for block in [32, 256] {
            let a = ActBlocks::quantize(&x, block);
            for (i, &v) in x.iter().enumerate() {
                let d = a.d[i / block];
                assert!((v - d * a.q[i] as f32).abs() <= d / 2.0 * 1.0001, "block {block}, i {i}");
                assert!(a.q[i] != -128);
            }
            let s: i32 = a.q[16..32].iter().map(|&v| v as i32).sum();
            assert_eq!(a.sums16[1], s);
        }
    }

    #[test]
    fn an_all_zero_block_has_scale_zero_and_zero_values() {
        let a = ActBlocks::quantize(&[0.0; 32], 32);
        assert_eq!((a.d[0], a.q.iter().all(|&v| v == 0)), (0.0, true));
    }
}
