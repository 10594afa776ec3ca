//! The integer kernels of every path against the portable one (same bits), and the portable
//! product against the f32 product of the dequantized weights (within the activation
//! quantization bound).

use super::*;
use crate::quant::{dequantize, quantize};

/// A deterministic stream of pseudo-random numbers (xorshift64*).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Roughly normal: a sum of four uniforms, centred, unit variance.
    fn normal(&mut self) -> f32 {
        let u: f32 = (0..4).map(|_| (self.next() >> 40) as f32 / (1u64 << 24) as f32).sum();
        (u - 2.0) * 3f32.sqrt()
    }
}

/// Every path this CPU can run.
fn paths() -> Vec<Path> {
    #[allow(unused_mut)]
    let mut all = vec![Path::Portable];
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            all.push(Path::Avx2);
        }
        let has = |f: &str| match f {
            "avx512f" => std::arch::is_x86_feature_detected!("avx512f"),
            "avx512bw" => std::arch::is_x86_feature_detected!("avx512bw"),
            "avx512vl" => std::arch::is_x86_feature_detected!("avx512vl"),
            "f16c" => std::arch::is_x86_feature_detected!("f16c"),
            _ => std::arch::is_x86_feature_detected!("avx512vnni"),
        };
        if ["avx512f", "avx512bw", "avx512vl", "f16c", "avx512vnni"].into_iter().all(has) {
            all.push(Path::Avx512Vnni);
        }
    }
    all
}

#[test]
fn integer_kernels_agree_exactly_on_extreme_and_random_bytes() {
    let mut rng = Rng(7);
    // Group counts: a tail below one step, exactly one AVX-512 step, steps plus tails.
    for groups in [2, 8, 16, 18, 26, 48, 56, 304] {
        let mut w: Vec<i8> = (0..16 * groups).map(|_| rng.next() as i8).collect();
        let mut x: Vec<i8> = (0..16 * groups).map(|_| ((rng.next() % 255) as i32 - 127) as i8).collect();
        // The largest magnitudes: w = -128 (|w| = 128 after vpsignb) against x = ±127.
        w[..16].fill(-128);
        x[..16].fill(-127);
        let mut want = vec![0i32; groups];
        dot16s_portable(&w, &x, &mut want);
        assert_eq!(want[0], 128 * 127 * 16);
        for p in paths() {
            let mut got = vec![-1i32; groups];
            dot16s(p, &w, &x, &mut got);
            assert_eq!(got, want, "{p:?}, {groups} groups");
        }
    }
}

/// Quantized weights `(n, k)` of type `ty` from normal data, with their dequantized values.
fn weights(ty: QuantType, n: usize, k: usize, seed: u64) -> (Vec<u8>, Vec<f32>) {
    let mut rng = Rng(seed);
    let w: Vec<f32> = (0..n * k).map(|_| rng.normal() * 0.05).collect();
    let q = quantize(ty, &w).unwrap();
    let mut deq = vec![0.0f32; n * k];
    dequantize(ty, &q, &mut deq);
    (q, deq)
}

#[test]
fn every_path_gives_the_portable_bits_for_every_type() {
    // m = 1 with n = 200: decoding's route (`fused_gemv`), split over several tasks.
    for (ty, (n, m)) in QuantType::ALL.into_iter().flat_map(|ty| [(ty, (37, 3)), (ty, (200, 1))]) {
        let k = 3 * 256 + if ty.block_elems() == 32 { 4 * 32 } else { 0 };
        let (w, _) = weights(ty, n, k, 11);
        let mut rng = Rng(12);
        let x: Vec<f32> = (0..m * k).map(|_| rng.normal()).collect();
        let rb = ty.bytes_for(k).unwrap();
        let mut want = vec![0.0f32; m * n];
        int_matmul(Path::Portable, ty, &w, (n, k, rb), &x, m, &mut want);
        for p in paths() {
            let mut got = vec![f32::NAN; m * n];
            int_matmul(p, ty, &w, (n, k, rb), &x, m, &mut got);
            let (gb, wb): (Vec<u32>, Vec<u32>) =
                (got.iter().map(|v| v.to_bits()).collect(), want.iter().map(|v| v.to_bits()).collect());
            assert_eq!(gb, wb, "{ty} on {p:?}, m = {m}");
        }
    }
}

/// The bound on `|x_q · W − x · W|` from quantizing the activations: value `i` moves by at most
/// `dx/2` (its block's scale, half a step), times `|w_i|`; plus f32 rounding of both sums,
/// at most `k · ε` of `Σ |w_i x_i|` each (a loose form of the γ_k bound on a k-term dot).
fn activation_quant_bound(w: &[f32], x: &[f32], block: usize) -> f32 {
    let k = x.len() as f32;
    let mut bound = 0.0f32;
    for (wb, xb) in w.chunks(block).zip(x.chunks(block)) {
        let dx = xb.iter().fold(0.0f32, |m, v| m.max(v.abs())) / 127.0;
        bound += dx / 2.0 * wb.iter().map(|v| v.abs()).sum::<f32>();
    }
    let mag: f32 = w.iter().zip(x).map(|(a, b)| (a * b).abs()).sum();
    bound * 1.0001 + 2.0 * k * f32::EPSILON * mag
}

#[test]
fn portable_matches_the_dequantized_product_within_the_activation_bound() {
    for ty in QuantType::ALL {
        for (n, k, m) in [(5, 256, 1), (70, 512, 2), (9, 1024, 5)] {
            let (w, deq) = weights(ty, n, k, 21);
            let mut rng = Rng(22);
            // Some rows span several decades so per-block scales matter.
            let x: Vec<f32> = (0..m * k).map(|i| rng.normal() * if i % 97 < 3 { 30.0 } else { 1.0 }).collect();
            let mut got = vec![0.0f32; m * n];
            int_matmul(Path::Portable, ty, &w, (n, k, ty.bytes_for(k).unwrap()), &x, m, &mut got);
            let mut worst = 0.0f32;
            for i in 0..m {
                for j in 0..n {
                    let (wr, xr) = (&deq[j * k..(j + 1) * k], &x[i * k..(i + 1) * k]);
                    let exact: f64 = wr.iter().zip(xr).map(|(&a, &b)| a as f64 * b as f64).sum();
                    let err = (got[i * n + j] as f64 - exact).abs() as f32;
                    let bound = activation_quant_bound(wr, xr, ty.block_elems());
                    assert!(err <= bound, "{ty} ({m}x{k}·{k}x{n}) [{i},{j}]: |err| {err} > bound {bound}");
                    worst = worst.max(err / bound);
                }
            }
            // A bound that is never approached would not test much: the error is a real share.
            assert!(worst > 0.01, "{ty}: worst error is only {worst} of the bound");
        }
    }
}

#[test]
fn the_sgemm_route_equals_sgemm_on_the_dequantized_weights_for_every_m() {
    for ty in [QuantType::Q4_0, QuantType::Q6K] {
        let (n, k) = (130, 256);
        let (w, deq) = weights(ty, n, k, 31);
        for m in [1, 3, DEQUANT_GEMM_MIN_M + 1] {
            let x: Vec<f32> = (0..m * k).map(|i| ((i * 13 % 29) as f32 - 14.0) / 7.0).collect();
            let mut got = vec![0.0f32; m * n];
            quant_matmul_dequant(ty, &w, n, k, &x, m, &mut got);
            for i in 0..m {
                for j in 0..n {
                    let exact: f64 = (0..k).map(|p| deq[j * k + p] as f64 * x[i * k + p] as f64).sum();
                    let mag: f64 = (0..k).map(|p| (deq[j * k + p] as f64 * x[i * k + p] as f64).abs()).sum();
                    let tol = 2.0 * k as f64 * f32::EPSILON as f64 * mag;
                    assert!((got[i * n + j] as f64 - exact).abs() <= tol, "{ty} m={m} [{i},{j}]");
                }
            }
            let mut via_int = vec![0.0f32; m * n];
            quant_matmul(ty, &w, n, k, &x, m, &mut via_int);
            if m >= DEQUANT_GEMM_MIN_M {
                assert_eq!(via_int, got, "quant_matmul takes the sgemm route from DEQUANT_GEMM_MIN_M rows");
            }
        }
    }
}

#[test]
#[should_panic(expected = "k = 48 is not a whole number of 32-value blocks")]
fn a_partial_block_is_named() {
    quant_matmul(QuantType::Q8_0, &[], 1, 48, &[0.0; 48], 1, &mut [0.0]);
}

#[test]
#[should_panic(expected = "n = 2 rows of k = 32 need 68 weight bytes, got 34")]
fn a_short_weight_buffer_is_named() {
    quant_matmul(QuantType::Q8_0, &[0; 34], 2, 32, &[0.0; 32], 1, &mut [0.0; 2]);
}

#[test]
fn empty_sizes_are_fine() {
    quant_matmul(QuantType::Q4K, &[], 0, 256, &[0.0; 256], 1, &mut []);
    let mut out = [1.0f32; 2];
    quant_matmul(QuantType::Q4_0, &[], 2, 0, &[], 1, &mut out);
    assert_eq!(out, [0.0, 0.0]);
}

#[test]
fn fused_rows_equal_the_unpack_route_bit_for_bit_on_every_path() {
    let mut rng = Rng(41);
    for ty in [QuantType::Q8_0, QuantType::Q4_0, QuantType::Q4_1] {
        // Block counts: below one 8-block step, exactly one, steps plus a tail (896 = 28 · 32).
        // Odd tails leave the 512-bit Q4_0 kernel (fused_zmm.rs) a pair with one block.
        for nb in [1, 2, 3, 7, 8, 9, 13, 28, 30] {
            let mut row: Vec<u8> = (0..nb * ty.block_bytes()).map(|_| rng.next() as u8).collect();
            // Scales from a narrow exponent range (random bytes would give infinities and NaNs
            // whose sums compare unequal), one block with w = -128 against x = -127 for Q8_0.
            for (i, b) in row.chunks_exact_mut(ty.block_bytes()).enumerate() {
                // Every third scale subnormal (exponent bits 0): the widenings must agree there too.
                b[1] = if i % 3 == 2 { b[1] & 0x83 } else { 0x20 | (b[1] & 0x8F) };
                if ty == QuantType::Q4_1 {
                    b[3] = 0x20 | (b[3] & 0x8F);
                }
            }
            if ty == QuantType::Q8_0 {
                row[2..34].fill(0x80);
            }
            let x: Vec<f32> = (0..nb * 32).map(|i| if i < 32 { -1.0 } else { rng.normal() }).collect();
            let act = act::ActBlocks::quantize(&x, 32);
            let mut wq = vec![0i8; nb * 32];
            blocks::unpack_row(ty, &row, &mut wq);
            let mut g = vec![0i32; nb * 2];
            dot16s_portable(&wq, &act.q, &mut g);
            if ty == QuantType::Q8_0 {
                assert_eq!(g[0] + g[1], 128 * 127 * 32);
            }
            let want = blocks::combine_legacy(ty, &row, &act, |b| g[2 * b] + g[2 * b + 1]);
            assert!(want.is_finite() && want != 0.0);
            for p in paths() {
                let got = fused::row_dot(p, ty, &row, &act);
                assert_eq!(got.to_bits(), want.to_bits(), "{ty} on {p:?}, {nb} blocks: {got} vs {want}");
            }
        }
    }
}
