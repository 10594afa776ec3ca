//! Block quantization on a real weight matrix: one block decoded by hand, the error of every
//! type, and why decoding is bound by memory bandwidth. The figures of
//! docs/guide/13-quantization.md come from this program.
//!
//! 1. **One block by hand.** The first block of the weights in Q8_0, Q4_0 and Q4_K, decoded
//!    from its bytes with the formulas of the chapter (`x = d·q`, `x = d·(q − 8)`,
//!    `x = (d·sc)·q − dmin·m`), must equal `quant::dequantize` bit for bit.
//! 2. **The error of each type** on the matrix: RMS error over the weights' RMS, largest
//!    absolute error, bits per weight (`8 · bytes / values`); and the error of one product
//!    `y = W·x` (x Gaussian) on the two routes of `cpu::qdot`: the weights dequantized to f32,
//!    or the activations quantized per block too and integer dot products (decode's route).
//! 3. **Bandwidth.** A memcpy of a 256 MiB buffer (and a parallel read of it), then the bytes
//!    one decoded token reads for GPT-2 124M and Qwen2.5-0.5B in f32, bf16, Q8_0 and Q4_0,
//!    and the tokens/s that bandwidth allows at most.
//! 4. **One decode product** at GPT-2's head shape in f32, Q8_0, Q4_0 and Q4_K, on each
//!    route: time and GB/s of weights, against that bandwidth.
//!
//! The weights: `encoder.layer.0.intermediate.dense.weight` (1536×384) and
//! `encoder.layer.0.output.dense.weight` (384×1536) of sentence-transformers'
//! all-MiniLM-L6-v2, read from `~/.cache/deltaw/all-MiniLM-L6-v2/model.safetensors` or the
//! file given as the first argument (further arguments: tensor names). Without the default
//! file, two Gaussian matrices of the same shapes stand in, and the output says so.
//!
//! Run with `cargo run --release -p deltaw-tensor --example quant_error [-- FILE [TENSOR..]]`
//! (a few seconds once built). Exit status 1 when a check fails.

use deltaw_tensor::cpu::gemm::{sgemm, MatRef};
use deltaw_tensor::cpu::qdot::{qdot_path_name, quant_matmul_dequant, quant_matmul_int};
use deltaw_tensor::quant::kquants::scale_min_k4;
use deltaw_tensor::quant::{dequantize, quantize, QuantType};
use deltaw_tensor::{safetensors, Device, Seed, Tensor};
use rayon::prelude::*;
use std::path::PathBuf;
use std::time::Instant;

const DEFAULT_TENSORS: [&str; 2] = ["encoder.layer.0.intermediate.dense.weight", "encoder.layer.0.output.dense.weight"];

/// The types whose quantizer deltaw has, from fewest bits per weight to most.
const TYPES: [QuantType; 8] = [
    QuantType::Q4_0,
    QuantType::Q4K,
    QuantType::Q4_1,
    QuantType::Q5_0,
    QuantType::Q5K,
    QuantType::Q5_1,
    QuantType::Q6K,
    QuantType::Q8_0,
];

/// A named row-major `(rows, cols)` matrix.
struct Matrix {
    name: String,
    rows: usize,
    cols: usize,
    data: Vec<f32>,
}

fn main() {
    let mut failures = Vec::new();
    let matrices = match load_matrices() {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    println!("threads: {}, qdot path: {}\n", rayon::current_num_threads(), qdot_path_name());
    decode_first_blocks(&matrices[0], &mut failures);
    for m in &matrices {
        error_table(m, &mut failures);
    }
    let (copy, read) = bandwidth_bound();
    head_gemv(copy, read, &mut failures);
    if failures.is_empty() {
        println!("\nall checks PASS");
    } else {
        for f in &failures {
            println!("FAIL: {f}");
        }
        std::process::exit(1);
    }
}

/// The MiniLM matrices (or those named on the command line), or Gaussian stand-ins when the
/// default file is absent. An explicitly named file that cannot be read is an error.
fn load_matrices() -> Result<Vec<Matrix>, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let names: Vec<String> = match args.len() {
        0 | 1 => DEFAULT_TENSORS.iter().map(|s| s.to_string()).collect(),
        _ => args[1..].to_vec(),
    };
    let path = match args.first() {
        Some(p) => PathBuf::from(p),
        None => {
            let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
            let default = home.join(".cache/deltaw/all-MiniLM-L6-v2/model.safetensors");
            if !default.exists() {
                println!("NOTE: {} not found: using SYNTHETIC Gaussian matrices", default.display());
                println!("      (std 0.04, the shapes of MiniLM's MLP), not real weights.\n");
                return Ok(vec![
                    gaussian("synthetic N(0, 0.04²)", 1536, 384, 1),
                    gaussian("synthetic N(0, 0.04²)", 384, 1536, 2),
                ]);
            }
            default
        }
    };
    println!("weights: {}", path.display());
    let tensors = safetensors::load(&path, &Device::Cpu).map_err(|e| e.to_string())?;
    names
        .iter()
        .map(|name| {
            let t = tensors.get(name).ok_or_else(|| format!("{}: no tensor named {name}", path.display()))?;
            let &[rows, cols] = t.dims() else {
                return Err(format!("{}: {name} has shape {:?}, expected a 2-D weight", path.display(), t.dims()));
            };
            Ok(Matrix { name: name.clone(), rows, cols, data: t.to_vec() })
        })
        .collect()
}

fn gaussian(name: &str, rows: usize, cols: usize, seed: u64) -> Matrix {
    let data = Tensor::randn((rows, cols), Seed(seed), &Device::Cpu).to_vec().iter().map(|v| 0.04 * v).collect();
    Matrix { name: name.to_string(), rows, cols, data }
}

/// The little-endian f16 at `b[at..at + 2]`.
fn f16_le(b: &[u8], at: usize) -> f32 {
    half::f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

/// Part 1: the first block of Q8_0, Q4_0 and Q4_K decoded from its bytes by the chapter's
/// formulas, compared bit for bit with `dequantize`.
fn decode_first_blocks(m: &Matrix, failures: &mut Vec<String>) {
    println!("== 1. The first block of {}, decoded by hand ==", m.name);
    let x = &m.data[..256];
    let show = |v: &[f32]| v.iter().map(|v| format!("{v:+.5}")).collect::<Vec<_>>().join(" ");
    println!("x[0..4] = {}   x[16] = {:+.5}   x[32] = {:+.5}", show(&x[..4]), x[16], x[32]);

    let b = quantize(QuantType::Q8_0, &x[..32]).expect("32 finite values");
    let d = f16_le(&b, 0);
    let by_hand: Vec<f32> = (0..32).map(|i| b[2 + i] as i8 as f32 * d).collect();
    println!(
        "Q8_0: bytes 0..2 = {:02x} {:02x} → d = {d:.6e}; q[0..4] = {:?}",
        b[0],
        b[1],
        &b[2..6].iter().map(|&q| q as i8).collect::<Vec<_>>()
    );
    println!("      x = d·q: {}", show(&by_hand[..4]));
    same_bits(QuantType::Q8_0, &b, &by_hand, failures);

    let b = quantize(QuantType::Q4_0, &x[..32]).expect("32 finite values");
    let d = f16_le(&b, 0);
    let by_hand: Vec<f32> = (0..32)
        .map(|i| {
            let byte = b[2 + i % 16];
            let nibble = if i < 16 { byte & 0x0F } else { byte >> 4 };
            (nibble as i32 - 8) as f32 * d
        })
        .collect();
    println!(
        "Q4_0: d = {d:.6e}; byte 2 = {:02x}: low nibble {} → x[0] = d·({}−8) = {:+.5}, high nibble {} → x[16] = {:+.5}",
        b[2],
        b[2] & 15,
        b[2] & 15,
        by_hand[0],
        b[2] >> 4,
        by_hand[16]
    );
    same_bits(QuantType::Q4_0, &b, &by_hand, failures);

    decode_q4k_by_hand(x, failures);
}

/// The Q4_K part of [`decode_first_blocks`]: the 6-bit scales and mins unpacked as the
/// chapter draws them (and as `scale_min_k4` does), then `(d·sc)·q − dmin·m`.
fn decode_q4k_by_hand(x: &[f32], failures: &mut Vec<String>) {
    let b = quantize(QuantType::Q4K, x).expect("256 finite values");
    let (d, dmin, s) = (f16_le(&b, 0), f16_le(&b, 2), &b[4..16]);
    let unpack = |j: usize| -> (u8, u8) {
        if j < 4 {
            (s[j] & 63, s[j + 4] & 63)
        } else {
            ((s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4), (s[j + 4] >> 4) | ((s[j] >> 6) << 4))
        }
    };
    let sm: Vec<(u8, u8)> = (0..8).map(unpack).collect();
    if (0..8).any(|j| sm[j] != scale_min_k4(j, s)) {
        failures.push("Q4_K: the drawn 6-bit unpacking differs from scale_min_k4".into());
    }
    let by_hand: Vec<f32> = (0..256)
        .map(|i| {
            let (sub, l) = (i / 32, i % 32); // sub-block and element in it
            let byte = b[16 + 32 * (sub / 2) + l]; // chunk sub/2 holds sub-blocks 2c, 2c+1
            let q = if sub % 2 == 0 { byte & 0x0F } else { byte >> 4 };
            let (sc, mn) = sm[sub];
            (d * sc as f32) * q as f32 - dmin * mn as f32
        })
        .collect();
    println!("Q4_K: d = {d:.6e}, dmin = {dmin:.6e}; scales[12] = {:02x?}", s);
    println!("      (sc, m) of the 8 sub-blocks: {:?}", sm);
    println!(
        "      qs[0] = {:02x}: low nibble {} → x[0] = (d·{})·{} − dmin·{} = {:+.5}; high nibble {} → x[32] = {:+.5}",
        b[16],
        b[16] & 15,
        sm[0].0,
        b[16] & 15,
        sm[0].1,
        by_hand[0],
        b[16] >> 4,
        by_hand[32]
    );
    same_bits(QuantType::Q4K, &b, &by_hand, failures);
}

fn same_bits(ty: QuantType, block: &[u8], by_hand: &[f32], failures: &mut Vec<String>) {
    let mut lib = vec![0.0f32; by_hand.len()];
    dequantize(ty, block, &mut lib);
    let same = lib.iter().zip(by_hand).all(|(a, b)| a.to_bits() == b.to_bits());
    println!("      by hand == dequantize, bit for bit: {}", if same { "PASS" } else { "FAIL" });
    if !same {
        failures.push(format!("{ty}: the hand decode differs from dequantize"));
    }
}

/// One type's figures on one matrix.
struct Row {
    ty: QuantType,
    bits: f64,
    rel_rms: f64,
    max_abs: f64,
    y_deq: f64,
    y_int: f64,
    /// The largest `|y_int − y_deq|` over its bound `Σ_blocks (dx/2) Σ_block |w|`.
    act_vs_bound: f64,
}

/// Part 2: error of every type on `m`, and of the product `y = W·x` on both routes.
fn error_table(m: &Matrix, failures: &mut Vec<String>) {
    let (n, k) = (m.rows, m.cols);
    let rms = (m.data.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / m.data.len() as f64).sqrt();
    let amax = m.data.iter().fold(0.0f32, |a, v| a.max(v.abs()));
    println!("\n== 2. Error on {} ({n}×{k}), RMS {rms:.5}, max |w| {amax:.4} ==", m.name);
    println!("y = W·x for x ~ N(0, 1) of {k} values; y errors are RMS(y − y_exact) / RMS(y_exact), y_exact in f64");
    println!("type  bits/w  RMS err / RMS w  max |err|   y err (W deq)  y err (W, x int8)  |y_int − y_deq| / bound");
    let x = Tensor::randn(k, Seed(7), &Device::Cpu).to_vec();
    let exact: Vec<f64> =
        m.data.par_chunks(k).map(|row| row.iter().zip(&x).map(|(&w, &x)| w as f64 * x as f64).sum()).collect();
    let mut rows = Vec::new();
    for ty in TYPES {
        if !k.is_multiple_of(ty.block_elems()) {
            println!(
                "{:<5} rows of {k} are not whole {}-value blocks (export_gguf stores such a matrix in f16)",
                ty.name(),
                ty.block_elems()
            );
            continue;
        }
        let q = quantize(ty, &m.data).expect("finite values");
        let mut w = vec![0.0f32; m.data.len()];
        dequantize(ty, &q, &mut w);
        let err2: f64 = m.data.iter().zip(&w).map(|(&a, &b)| (a as f64 - b as f64).powi(2)).sum();
        let max_abs = m.data.iter().zip(&w).map(|(&a, &b)| (a - b).abs() as f64).fold(0.0, f64::max);
        let (mut y_deq, mut y_int) = (vec![0.0f32; n], vec![0.0f32; n]);
        quant_matmul_dequant(ty, &q, n, k, &x, 1, &mut y_deq);
        quant_matmul_int(ty, &q, n, k, &x, 1, &mut y_int);
        let row = Row {
            ty,
            bits: 8.0 * q.len() as f64 / m.data.len() as f64,
            rel_rms: (err2 / m.data.len() as f64).sqrt() / rms,
            max_abs,
            y_deq: rel_rms_error(&y_deq, &exact),
            y_int: rel_rms_error(&y_int, &exact),
            act_vs_bound: activation_error_vs_bound(&w, k, &x, &y_int, &y_deq, ty.block_elems()),
        };
        println!(
            "{:<5} {:6.4} {:14.3}% {:12.3e} {:13.3}% {:17.3}% {:24.3}",
            ty.name(),
            row.bits,
            100.0 * row.rel_rms,
            row.max_abs,
            100.0 * row.y_deq,
            100.0 * row.y_int,
            row.act_vs_bound
        );
        rows.push(row);
    }
    check_table(&m.name, &rows, failures);
}

/// The worst ratio, over the outputs, of what quantizing the activations changed
/// (`|y_int − y_deq|`) to the bound of `cpu/qdot/mod.rs`: per activation block of scale
/// `dx = amax / 127`, each value moves by at most `dx / 2`, so an output moves by at most
/// `Σ_blocks (dx/2) · Σ_{i∈block} |w_i|` (w dequantized). Below 1 unless the bound is wrong;
/// the f32 sums of the two routes differ by rounding, allowed for with `1e-5 · Σ |w·x|`.
fn activation_error_vs_bound(w: &[f32], k: usize, x: &[f32], y_int: &[f32], y_deq: &[f32], block: usize) -> f64 {
    let dx: Vec<f64> = x.chunks(block).map(|b| b.iter().fold(0.0f32, |a, v| a.max(v.abs())) as f64 / 127.0).collect();
    w.chunks(k)
        .zip(y_int.iter().zip(y_deq))
        .map(|(row, (&yi, &yd))| {
            let bound: f64 =
                row.chunks(block).zip(&dx).map(|(b, d)| d / 2.0 * b.iter().map(|v| v.abs() as f64).sum::<f64>()).sum();
            let rounding: f64 = 1e-5 * row.iter().zip(x).map(|(a, b)| (a * b).abs() as f64).sum::<f64>();
            (yi as f64 - yd as f64).abs() / (bound + rounding)
        })
        .fold(0.0, f64::max)
}

fn rel_rms_error(y: &[f32], exact: &[f64]) -> f64 {
    let e2: f64 = y.iter().zip(exact).map(|(&a, &b)| (a as f64 - b).powi(2)).sum();
    let r2: f64 = exact.iter().map(|b| b * b).sum();
    (e2 / r2).sqrt()
}

/// The claims the chapter makes about the table: bits per weight as the block sizes say; more
/// bits, less error within each family; quantizing the activations stays within its bound.
fn check_table(name: &str, rows: &[Row], failures: &mut Vec<String>) {
    let get = |ty: QuantType| rows.iter().find(|r| r.ty == ty);
    for r in rows {
        let bits = 8.0 * r.ty.block_bytes() as f64 / r.ty.block_elems() as f64;
        if (r.bits - bits).abs() > 1e-12 {
            failures.push(format!("{name}: {} has {} bits per weight, its block says {bits}", r.ty, r.bits));
        }
        if r.act_vs_bound > 1.0 {
            failures
                .push(format!("{name}: {}: int8 activations moved an output {}× their bound", r.ty, r.act_vs_bound));
        }
    }
    let chains: [&[QuantType]; 3] = [
        &[QuantType::Q4_0, QuantType::Q5_0, QuantType::Q8_0],
        &[QuantType::Q4_1, QuantType::Q5_1, QuantType::Q8_0],
        &[QuantType::Q4K, QuantType::Q5K, QuantType::Q6K, QuantType::Q8_0],
    ];
    for chain in chains {
        let errs: Vec<(QuantType, f64)> = chain.iter().filter_map(|&t| get(t).map(|r| (t, r.rel_rms))).collect();
        for pair in errs.windows(2) {
            if pair[1].1 >= pair[0].1 {
                failures
                    .push(format!("{name}: {} ({}) is not below {} ({})", pair[1].0, pair[1].1, pair[0].0, pair[0].1));
            }
        }
    }
}

/// A model's weights as one decoded token reads them: the matrices (which a quantized file
/// stores in the block type) and the small vectors (biases, norms; kept in f32).
struct ModelSize {
    name: &'static str,
    matrices: usize,
    small: usize,
}

/// GPT-2 124M: 12 blocks of c_attn 768×2304, attn c_proj 768², c_fc 768×3072, mlp c_proj
/// 3072×768 (9,984 bias and norm values each), ln_f, and the tied head wte 50257×768, read
/// whole for the logits. One row each of wte and wpe (the token's embedding) is left out.
const GPT2: ModelSize = ModelSize {
    name: "GPT-2 124M",
    matrices: 12 * (768 * 2304 + 768 * 768 + 2 * 768 * 3072) + 50257 * 768,
    small: 12 * 9984 + 2 * 768,
};

/// Qwen2.5-0.5B: 24 layers of q 896², k and v 896×128, o 896², gate and up 896×4864, down
/// 4864×896 (q/k/v biases 1,152 and two RMSNorms 1,792 each), the final norm, and the tied
/// head 151936×896.
const QWEN: ModelSize = ModelSize {
    name: "Qwen2.5-0.5B",
    matrices: 24 * (2 * 896 * 896 + 2 * 896 * 128 + 3 * 896 * 4864) + 151936 * 896,
    small: 24 * (1152 + 1792) + 896,
};

/// Part 3: memcpy and read bandwidth, then bytes per token and the tokens/s they allow.
/// Returns the best memcpy (bytes read + written per second) and the parallel read, in GB/s.
fn bandwidth_bound() -> (f64, f64) {
    const BYTES: usize = 256 << 20;
    let src: Vec<u64> = (0..BYTES as u64 / 8).collect();
    let mut dst = vec![0u64; BYTES / 8];
    let chunk = 1 << 17; // u64s: 1 MiB per rayon task
    let one = best_of(5, || dst.copy_from_slice(&src));
    let all =
        best_of(5, || dst.par_chunks_mut(chunk).zip(src.par_chunks(chunk)).for_each(|(d, s)| d.copy_from_slice(s)));
    let read = best_of(5, || {
        std::hint::black_box(src.par_chunks(chunk).map(|c| c.iter().fold(0, |a, &v| a ^ v)).reduce(|| 0, |a, b| a ^ b));
    });
    std::hint::black_box(&dst);
    let gbs = |secs: f64| BYTES as f64 / secs * 1e-9;
    println!("\n== 3. Bandwidth and the decode bound ==");
    println!(
        "memcpy of 256 MiB, one thread:  {:6.2} GB/s copied ({:6.2} GB/s read + written)",
        gbs(one),
        2.0 * gbs(one)
    );
    println!(
        "memcpy of 256 MiB, all threads: {:6.2} GB/s copied ({:6.2} GB/s read + written)",
        gbs(all),
        2.0 * gbs(all)
    );
    println!("parallel read of 256 MiB:       {:6.2} GB/s", gbs(read));
    // The better of the two copies (on a shared machine either may lose its core for a
    // while), counting every byte moved: read and written. A decode product only reads, so
    // this is the most traffic it could hope for: an upper bound, not a forecast.
    let bw = 2.0 * gbs(one.min(all));
    println!(
        "\nOne token reads every weight once. Bound = {bw:.2} GB/s (best memcpy, read + written) / bytes per token:"
    );
    println!("model          dtype  bytes/weight  MB/token  tokens/s at most");
    for model in [GPT2, QWEN] {
        for (dtype, per) in [("f32", 4.0), ("bf16", 2.0), ("q8_0", 34.0 / 32.0), ("q4_0", 18.0 / 32.0)] {
            let bytes = model.matrices as f64 * per + model.small as f64 * 4.0;
            println!("{:<14} {dtype:<6} {per:12.4} {:9.1} {:17.1}", model.name, bytes * 1e-6, bw * 1e9 / bytes);
        }
    }
    println!(
        "(weights per token: GPT-2 {} + {} small, Qwen2.5-0.5B {} + {} small)",
        GPT2.matrices, GPT2.small, QWEN.matrices, QWEN.small
    );
    (bw, gbs(read))
}

/// Part 4: one decode product at GPT-2's head shape, `logits (50257) = wte (50257×768) · x`,
/// with the weights in f32 (the GEMM's gemv), Q8_0 and Q4_0 (both routes of `cpu::qdot`)
/// and Q4_K: milliseconds, and GB/s of weights against the bandwidths of part 3. The
/// weights are one 64-row tile of Gaussian values repeated (values do not change the speed).
fn head_gemv(copy: f64, read: f64, failures: &mut Vec<String>) {
    let (n, k) = (50257, 768);
    let tile = Tensor::randn((64, k), Seed(3), &Device::Cpu).to_vec();
    let w32: Vec<f32> = (0..n).flat_map(|j| tile[(j % 64) * k..(j % 64 + 1) * k].iter().copied()).collect();
    let x = Tensor::randn(k, Seed(4), &Device::Cpu).to_vec();
    let mut y = vec![0.0f32; n];
    println!("\n== 4. One decode product at GPT-2's head shape (768 → 50257), best of 10 ==");
    println!("weights  route                  bytes (MB)      ms   GB/s  of memcpy  of read");
    let report = |name: &str, route: &str, bytes: usize, secs: f64| {
        let gbs = bytes as f64 / secs * 1e-9;
        println!(
            "{name:<8} {route:<22} {:10.1} {:7.2} {gbs:6.2} {:9.0}% {:7.0}%",
            bytes as f64 * 1e-6,
            secs * 1e3,
            100.0 * gbs / copy,
            100.0 * gbs / read
        );
        secs
    };
    let a = MatRef { data: &x, offset: 0, row_stride: k, col_stride: 1 };
    let b = MatRef { data: &w32, offset: 0, row_stride: 1, col_stride: k }; // Wᵀ, read in place
    let f32_secs = report("f32", "gemm (gemv)", 4 * n * k, best_of(10, || sgemm(1, n, k, a, b, &mut y, n, false)));
    let mut q4_0_secs = f64::MAX;
    for ty in [QuantType::Q8_0, QuantType::Q4_0, QuantType::Q4K] {
        let tile_q = quantize(ty, &tile).expect("finite values");
        let row = ty.bytes_for(k).expect("768 is whole blocks of 32 and of 256");
        let w: Vec<u8> = (0..n).flat_map(|j| tile_q[(j % 64) * row..(j % 64 + 1) * row].iter().copied()).collect();
        let secs = best_of(10, || quant_matmul_int(ty, &w, n, k, &x, 1, &mut y));
        report(ty.name(), "int8 dot products", w.len(), secs);
        if ty == QuantType::Q4_0 {
            q4_0_secs = secs;
        }
        if ty != QuantType::Q4K {
            report(
                ty.name(),
                "dequantize tile + f32",
                w.len(),
                best_of(10, || quant_matmul_dequant(ty, &w, n, k, &x, 1, &mut y)),
            );
        }
    }
    // Q4_0 reads 7.1× fewer bytes than f32: the product must take less time, or the
    // quantized route has stopped being worth its error.
    if q4_0_secs >= f32_secs {
        failures.push(format!("the Q4_0 head product ({q4_0_secs} s) is not faster than f32 ({f32_secs} s)"));
    }
}

/// The shortest of `reps` runs of `f`, in seconds.
fn best_of(reps: usize, mut f: impl FnMut()) -> f64 {
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::MAX, f64::min)
}
