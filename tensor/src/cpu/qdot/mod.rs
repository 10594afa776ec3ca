//! Matrix products whose weights stay block-quantized (llama.cpp's layouts, [`crate::quant`]).
//!
//! `out (m×n) = x (m×k) · Wᵀ` where `W` is `n` rows of `k` values stored as `k / B` blocks per
//! row, row after row (a GGUF weight tensor of shape `[k, n]` in ggml's order, i.e. a Linear
//! weight `(n, k)`). The weights are never widened to a full f32 copy:
//!
//! 1. Each activation row is quantized once per product, per block, as llama.cpp does
//!    (`act.rs`): Q8_0-style blocks of 32 (f32 scale, 32 i8) for Q4_0/Q4_1/Q5_0/Q5_1/Q8_0
//!    weights, Q8_K-style super-blocks of 256 (f32 scale, 256 i8, 16 sums of 16) for
//!    Q4_K/Q5_K/Q6_K, with the 16-value sums that the types with a minimum need.
//! 2. For Q8_0, Q4_0 and Q4_1, the types of the common legacy files, each block is widened in
//!    registers as it is loaded and dotted at once (`fused.rs`: one exact i32 per block, eight
//!    blocks' sums reduced together, scaled as eight f32 lanes). For the other types each weight
//!    row is unpacked into one i8 per value (`blocks.rs`: nibbles, fifth/sixth bits, offsets
//!    removed), then an integer kernel forms `g[t] = Σ w_q·x_q` over every 16 values, exactly in
//!    i32 (`dot16s_portable`; `x86.rs`: AVX2 `vpmaddubsw`, AVX-512 VNNI `vpdpbusd`).
//! 3. The scales combine the integer sums in f32 in one fixed order (`blocks.rs` has the algebra
//!    per type): for the legacy types, block `b`'s term into lane `b mod 8` of eight running
//!    sums, then a fixed tree over the lanes; for the K-quants, blocks in row order into one
//!    accumulator. The integer sums are exact and every path keeps that order, so **every SIMD
//!    path gives the same bits as the portable one**.
//!
//! The path follows `DELTAW_SIMD` ([`crate::cpu::simd::simd_level`]): `avx512` runs the VNNI
//! kernel when the CPU has AVX-512 VNNI (else the AVX2 one), `avx2` the AVX2 kernel,
//! `portable` (and `neon`) the plain-Rust reference. [`qdot_path_name`] says which runs.
//!
//! **Error.** Quantizing the activations adds, per block of activation scale `dx`, at most
//! `dx / 2` per value, so `|out − x·Wᵀ| ≤ Σ_blocks (dx/2) Σ_{i∈block} |w_i|` beyond f32
//! rounding (W the dequantized weights). `tests.rs` checks exactly that bound (and
//! that errors reach >1% of it, so it is not vacuous). Per value that is at most `amax/254`,
//! 0.4% of the block's largest activation; the errors of different values are independent and
//! partly cancel, and the weight quantization error itself (Q4_0 ~5–10%) is far larger.
//!
//! **Versus widening in registers.** [`quant_matmul_dequant`] dequantizes each tile of weight
//! rows to f32 in cache (`crate::quant::dequantize_rows`) and runs the f32 gemv (no activation
//! error). `benches/quant_gemv.rs` on the 2-core shared build machine (AVX-512 VNNI path, load
//! 1–3, figures noisy ±20%), GiB/s of weights, against a parallel read of 13.7 GiB/s:
//!
//! | shape k→n  | Q4_0 int | Q4_0 f32 | Q8_0 int | Q8_0 f32 | Q4_K int | Q6_K int |
//! |------------|---------:|---------:|---------:|---------:|---------:|---------:|
//! | 768→3072   | 4.6 | 0.96 | 2.1 | 1.8 | 4.8 | 6.7 |
//! | 768→50257  | 4.3 | 0.96 | 3.2 | 3.3 | 5.8 | 9.8 |
//! | 4864→896   | 6.3 | 0.98 | 3.2 | 2.2 | 5.7 | 9.6 |
//! | 896→151936 | 3.7 | 0.96 | 2.4 | 3.5 | –   | –   |
//!
//! Q4_0's integer route is 4–6× faster than widening (the f32 route is bound by the scalar
//! dequantizer, ~1 GiB/s); for Q8_0 the two are about even (its widening is cheap), and the
//! integer route is kept for one code path. Fraction of the read roofline: Q6_K ~70%, Q4_K
//! ~40%, Q4_0 30–45%, Q8_0 ~20%: the unpack into an i8 buffer and the second pass over it cost
//! compute that fused kernels (llama.cpp's) do not spend.
//!
//! **Decode against llama.cpp** (`benches/compare_quant_decode.sh`, Qwen2.5-0.5B shape, the same
//! GGUF file on both sides, 2 threads). 2026-12-05, load ~1.7: Q8_0 16.6 vs 27.1 tokens/s
//! (0.61×), Q4_0 20.2 vs 37.7 (0.53×), with the unpack-then-dot route for every type.
//! 2026-12-06, on a faster machine of the same kind (AMD EPYC), load 1.1–1.9:
//! - The unpack route gave Q8_0 38.1 and Q4_0 40.7 tokens/s.
//! - The fused kernels (`fused.rs`) gave 52.1 and 64.0 (1.37× and 1.57×), against llama.cpp's
//!   66.3 and 128.5 (0.79× and 0.50×).
//! - `perf` then put a quarter of the decode time in the kernel's scheduler: each of the ~170
//!   parallel products of a token handed its work to rayon's pool from the outside and slept
//!   until it was done.
//! - Running each step on a worker of the pool (`crate::cpu::on_pool`, as
//!   `CausalLm::generate` does) took them to 66.1 and 80.0 tokens/s. In the same sitting
//!   (`benches/compare_all.sh`) llama.cpp ran 62.6 and 117.7: **1.06× and 0.68×**.
//! - llama.cpp's Q4_0 kernel scales eight lanes per block instead of forming an exact
//!   per-block sum first, which is what is left between the two.
//!
//! 2026-12-07, same machine: Q4_0 on 512-bit registers (`fused_zmm.rs`, two blocks per
//! `vpdpbusd`), one activation row dotted in a few long runs per thread (`fused_gemv`: the
//! 64-row tasks made the Qwen head 2,374 tasks with a vector each), and the step's idle
//! workers kept awake (`crate::cpu::on_pool_spinning`): Q4_0 87 → 109 tokens/s, Q8_0 63 →
//! 68–79. In one sitting (`benches/compare_all.sh`, 01:51 UTC) llama.cpp ran 114.7 and 60.0:
//! **0.95× and 1.14×** (GPT-2: Q4_0 1.33×, Q8_0 1.44×). At 109 tokens/s the Q4_0 decode reads
//! its 278 MB of weights at 30 GB/s, 69% of the copy bandwidth `examples/roofline` measured
//! that hour (43.7 GB/s read + written). What is left is compute: llama.cpp repacks Q4_0 at
//! load into blocks of eight interleaved rows (its CPU "repack" buffer type), so one register
//! holds eight rows' values and one `vcvtph2ps` their eight scales, with no horizontal sums;
//! deltaw keeps the GGUF layout, which QLoRA's backward, the GPU upload and the GGUF writer
//! read as it is.
//!
//! Later the same day: the 512-bit kernel by quads of blocks against activations arranged once
//! per product (`fused_zmm.rs`), its eight scales gathered by one word permutation, the
//! quantizing compiled for the SIMD level, and q/k/v and gate/up in one pass each over a row
//! quantized once ([`gemv_many`]): Q4_0 113–123 → 135–143 tokens/s, against llama.cpp's
//! 124–141 in the same rounds (`benches/compare_quant_decode.sh`: median ratio 1.01, the
//! rounds 0.99–1.03), still in the GGUF layout.
//!
//! **m > 1.** [`quant_matmul`] quantizes each activation row once and unpacks each weight row
//! once for all `m` rows. From [`DEQUANT_GEMM_MIN_M`] rows on, widening a tile of weight rows
//! to f32 and running the packed [`crate::cpu::gemm::sgemm`] is faster (its FMA throughput
//! beats the per-row integer path once the unpack is amortised), and that is what runs.
//! Measured (bench group `quant_matmul`, Q4_0, 896→4864, idle machine): integer vs sgemm
//! route 0.46 vs 1.93 ms at m = 2, 1.59 vs 2.05 ms at m = 8, 3.05 vs 2.46 ms at m = 16,
//! 12.1 vs 3.9 ms at m = 64; the crossover lies between 8 and 16.

mod act;
mod blocks;
mod fused;
#[cfg(target_arch = "x86_64")]
mod fused_zmm;
mod many;
#[cfg(test)]
mod tests;
#[cfg(target_arch = "x86_64")]
mod x86;

use crate::cpu::gemm::{sgemm, MatRef};
#[cfg(target_arch = "x86_64")]
use crate::cpu::simd::SimdLevel;
use crate::cpu::simd::{simd_level, vectorized};
use crate::quant::{dequantize_rows, QuantType};
use act::ActBlocks;
pub use many::{gemv_many, GemvPart};
use rayon::prelude::*;

/// From this many activation rows on, [`quant_matmul`] widens weight tiles and runs `sgemm`
/// (the measured crossover lies between 8 and 16 rows, see the module docs).
pub const DEQUANT_GEMM_MIN_M: usize = 16;

/// Weight rows per rayon task (and per widened tile on the `sgemm` route).
const ROWS_PER_TASK: usize = 64;

/// Which integer kernel runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Path {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512Vnni,
}

fn path() -> Path {
    #[cfg(target_arch = "x86_64")]
    match simd_level() {
        // (F16C and AVX-512BW/VL too, which the VNNI kernels use: every CPU with VNNI has
        // them, but a virtual machine may hide one.)
        SimdLevel::Avx512
            if std::arch::is_x86_feature_detected!("avx512vnni")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512vl")
                && std::arch::is_x86_feature_detected!("f16c") =>
        {
            return Path::Avx512Vnni
        }
        SimdLevel::Avx512 | SimdLevel::Avx2 => return Path::Avx2,
        SimdLevel::Portable | SimdLevel::Neon => {}
    }
    let _ = simd_level;
    Path::Portable
}

/// The integer kernel the products use here: "portable", "avx2" or "avx512-vnni".
///
/// ```
/// let name = deltaw_tensor::cpu::qdot::qdot_path_name();
/// assert!(["portable", "avx2", "avx512-vnni"].contains(&name));
/// ```
pub fn qdot_path_name() -> &'static str {
    match path() {
        Path::Portable => "portable",
        #[cfg(target_arch = "x86_64")]
        Path::Avx2 => "avx2",
        #[cfg(target_arch = "x86_64")]
        Path::Avx512Vnni => "avx512-vnni",
    }
}

/// `g[t] = Σ_{i in 16t..16t+16} w[i] · x[i]`, exact in i32: the reference integer kernel.
pub(crate) fn dot16s_portable(w: &[i8], x: &[i8], g: &mut [i32]) {
    for ((g, w), x) in g.iter_mut().zip(w.chunks_exact(16)).zip(x.chunks_exact(16)) {
        *g = w.iter().zip(x).map(|(&a, &b)| a as i32 * b as i32).sum();
    }
}

fn dot16s(path: Path, w: &[i8], x: &[i8], g: &mut [i32]) {
    match path {
        Path::Portable => dot16s_portable(w, x, g),
        // SAFETY: `path()` picks Avx2 only on a CPU with AVX2 (SimdLevel::Avx2 or wider); the
        // lengths match (both `k`, `g` is k/16), and activations are in -127..=127 (act.rs).
        #[cfg(target_arch = "x86_64")]
        Path::Avx2 => unsafe { x86::dot16s_avx2(w, x, g) },
        // SAFETY: as above, with AVX-512F and VNNI detected by `path()`.
        #[cfg(target_arch = "x86_64")]
        Path::Avx512Vnni => unsafe { x86::dot16s_avx512_vnni(w, x, g) },
    }
}

#[track_caller]
#[allow(clippy::too_many_arguments)] // the entry points' operands and sizes, checked together
fn check(name: &str, ty: QuantType, w: &[u8], n: usize, k: usize, x: &[f32], m: usize, out: &[f32]) -> usize {
    let Some(row_bytes) = ty.bytes_for(k) else {
        panic!("{name}({ty}): k = {k} is not a whole number of {}-value blocks", ty.block_elems())
    };
    assert_eq!(
        w.len(),
        n * row_bytes,
        "{name}({ty}): n = {n} rows of k = {k} need {} weight bytes, got {}",
        n * row_bytes,
        w.len()
    );
    assert_eq!(x.len(), m * k, "{name}({ty}): x must hold m = {m} rows of k = {k} values, got {}", x.len());
    assert_eq!(out.len(), m * n, "{name}({ty}): out must hold m = {m} rows of n = {n} values, got {}", out.len());
    row_bytes
}

/// `out (m×n) = x (m×k) · Wᵀ` for quantized weights `w` (`n` rows of `k` values, row-major
/// blocks of type `ty`) and f32 activations `x`, row-major. See the module docs for the
/// method, the error bound and the paths.
///
/// # Panics
/// If `k` is not a whole number of blocks or a buffer's length does not match the sizes.
///
/// ```
/// use deltaw_tensor::cpu::qdot::quant_matmul;
/// use deltaw_tensor::quant::{quantize, QuantType};
/// let (n, k) = (3, 64);
/// let w: Vec<f32> = (0..n * k).map(|i| (i % 7) as f32 - 3.0).collect();
/// let wq = quantize(QuantType::Q8_0, &w)?;
/// let x = vec![0.5f32; k];
/// let mut out = vec![0.0; n];
/// quant_matmul(QuantType::Q8_0, &wq, n, k, &x, 1, &mut out);
/// let exact: f32 = w[..k].iter().map(|v| v * 0.5).sum();
/// assert!((out[0] - exact).abs() < 1e-3 * exact.abs().max(1.0));
/// # Ok::<(), deltaw_tensor::Error>(())
/// ```
#[track_caller]
pub fn quant_matmul(ty: QuantType, w: &[u8], n: usize, k: usize, x: &[f32], m: usize, out: &mut [f32]) {
    let row_bytes = check("quant_matmul", ty, w, n, k, x, m, out);
    if m == 0 || n == 0 {
        return;
    }
    if m >= DEQUANT_GEMM_MIN_M {
        return dequant_gemm(ty, w, n, k, x, m, out);
    }
    int_matmul(path(), ty, w, (n, k, row_bytes), x, m, out)
}

/// The integer route of [`quant_matmul`] on a given path (sizes checked by the caller).
fn int_matmul(
    path: Path,
    ty: QuantType,
    w: &[u8],
    (n, k, row_bytes): (usize, usize, usize),
    x: &[f32],
    m: usize,
    out: &mut [f32],
) {
    let acts: Vec<ActBlocks> = x.chunks_exact(k.max(1)).map(|r| ActBlocks::quantize(r, ty.block_elems())).collect();
    let acts = if k == 0 { vec![ActBlocks::quantize(&[], ty.block_elems()); m] } else { acts };
    if let ([act], true) = (acts.as_slice(), fused::covers(ty)) {
        return fused_gemv(path, ty, w, row_bytes, act, out);
    }
    // Each task: up to ROWS_PER_TASK weight rows, each unpacked once and dotted with all m
    // activation rows; results land in a task-local (rows × m) block, scattered afterwards.
    let tasks: Vec<(usize, Vec<f32>)> = (0..n.div_ceil(ROWS_PER_TASK))
        .into_par_iter()
        .map(|t| {
            let rows = t * ROWS_PER_TASK..((t + 1) * ROWS_PER_TASK).min(n);
            let mut res = Vec::with_capacity(rows.len() * m);
            if fused::covers(ty) {
                // Dot products straight from the block bytes (fused.rs), no i8 copy of the row.
                for j in rows {
                    let row = &w[j * row_bytes..(j + 1) * row_bytes];
                    res.extend(acts.iter().map(|a| fused::row_dot(path, ty, row, a)));
                }
                return (t * ROWS_PER_TASK, res);
            }
            let mut wq = vec![0i8; k];
            let mut g = vec![0i32; k / 16];
            // The unpack and the f32 combine are plain loops: compiled for the SIMD level's
            // width inside `vectorized` (integer ops and unfused f32 steps: same bits).
            vectorized(|| {
                for j in rows {
                    let row = &w[j * row_bytes..(j + 1) * row_bytes];
                    blocks::unpack_row(ty, row, &mut wq);
                    for a in &acts {
                        dot16s(path, &wq, &a.q, &mut g);
                        res.push(blocks::combine_row(ty, row, a, &g));
                    }
                }
            });
            (t * ROWS_PER_TASK, res)
        })
        .collect();
    for (j0, res) in tasks {
        for (dj, r) in res.chunks_exact(m).enumerate() {
            for (i, &v) in r.iter().enumerate() {
                out[i * n + j0 + dj] = v;
            }
        }
    }
}

/// One activation row (decoding) against the fused kernels: [`many::fused_rows`] with one
/// weight, each task writing its own long run of `out`. With `ROWS_PER_TASK` rows per task,
/// the tied head of the Qwen2.5-0.5B shape (151,936 rows of 504 bytes in Q4_0) was 2,374 tasks
/// of about a microsecond each, every one with a result vector to allocate and scatter.
fn fused_gemv(path: Path, ty: QuantType, w: &[u8], row_bytes: usize, act: &ActBlocks, out: &mut [f32]) {
    many::fused_rows(path, ty, row_bytes, act, vec![(w, out)]);
}

/// [`quant_matmul`]'s integer route for any `m` (activations quantized per block), which
/// `quant_matmul` itself takes below [`DEQUANT_GEMM_MIN_M`] rows; for benchmarks and tests.
///
/// # Panics
/// As [`quant_matmul`].
#[track_caller]
pub fn quant_matmul_int(ty: QuantType, w: &[u8], n: usize, k: usize, x: &[f32], m: usize, out: &mut [f32]) {
    let row_bytes = check("quant_matmul_int", ty, w, n, k, x, m, out);
    if m > 0 && n > 0 {
        int_matmul(path(), ty, w, (n, k, row_bytes), x, m, out)
    }
}

/// [`quant_matmul`] with one activation row: `out (n) = W · x`.
///
/// ```
/// use deltaw_tensor::cpu::qdot::gemv;
/// use deltaw_tensor::quant::{quantize, QuantType};
/// let w = quantize(QuantType::Q4_0, &vec![1.0f32; 2 * 32])?; // (2, 32), all ones
/// let mut out = [0.0; 2];
/// gemv(QuantType::Q4_0, &w, 2, 32, &vec![0.25; 32], &mut out);
/// assert!((out[1] - 8.0).abs() < 0.05);
/// # Ok::<(), deltaw_tensor::Error>(())
/// ```
#[track_caller]
pub fn gemv(ty: QuantType, w: &[u8], n: usize, k: usize, x: &[f32], out: &mut [f32]) {
    quant_matmul(ty, w, n, k, x, 1, out)
}

/// The comparison route: each tile of `ROWS_PER_TASK` weight rows is dequantized to f32
/// (helper `crate::quant::dequantize_rows`) and multiplied by the f32 activations with
/// [`sgemm`] (its gemv for m = 1). No activation quantization error; the f32 multiply-adds
/// are those of `sgemm` on the dequantized weights, bit for bit.
///
/// # Panics
/// As [`quant_matmul`].
///
/// ```
/// use deltaw_tensor::cpu::qdot::quant_matmul_dequant;
/// use deltaw_tensor::quant::{quantize, QuantType};
/// let w = quantize(QuantType::Q8_0, &vec![2.0f32; 32])?;
/// let mut out = [0.0];
/// quant_matmul_dequant(QuantType::Q8_0, &w, 1, 32, &vec![1.0; 32], 1, &mut out);
/// assert!((out[0] - 64.0).abs() < 0.05); // 2.0 is stored as 127 · f16(2/127)
/// # Ok::<(), deltaw_tensor::Error>(())
/// ```
#[track_caller]
pub fn quant_matmul_dequant(ty: QuantType, w: &[u8], n: usize, k: usize, x: &[f32], m: usize, out: &mut [f32]) {
    check("quant_matmul_dequant", ty, w, n, k, x, m, out);
    if m == 0 || n == 0 {
        return;
    }
    dequant_gemm(ty, w, n, k, x, m, out)
}

fn dequant_gemm(ty: QuantType, w: &[u8], n: usize, k: usize, x: &[f32], m: usize, out: &mut [f32]) {
    let tiles: Vec<(usize, Vec<f32>)> = (0..n.div_ceil(ROWS_PER_TASK))
        .into_par_iter()
        .map(|t| {
            let rows = t * ROWS_PER_TASK..((t + 1) * ROWS_PER_TASK).min(n);
            let nr = rows.len();
            let mut tile = vec![0.0f32; nr * k];
            dequantize_rows(ty, w, k, rows, &mut tile);
            let mut c = vec![0.0f32; m * nr];
            let a = MatRef { data: x, offset: 0, row_stride: k, col_stride: 1 };
            // B (k × nr) is the tile seen transposed: element (p, j) at tile[j·k + p].
            let b = MatRef { data: &tile, offset: 0, row_stride: 1, col_stride: k };
            sgemm(m, nr, k, a, b, &mut c, nr, false);
            (t * ROWS_PER_TASK, c)
        })
        .collect();
    for (j0, c) in tiles {
        let nr = c.len() / m;
        for i in 0..m {
            out[i * n + j0..i * n + j0 + nr].copy_from_slice(&c[i * nr..(i + 1) * nr]);
        }
    }
}
