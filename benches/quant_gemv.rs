//! Decode-step matrix–vector products with block-quantized weights (`cpu::qdot`), against the
//! machine's memory bandwidth.
//!
//! `quant_gemv/<type>/<route>/<k>x<n>`: `out (n) = W (n×k) · x (k)` for Q8_0, Q4_0, Q4_K and
//! Q6_K weights at GPT-2 124M's shapes (768→768, 768→3072, 3072→768, the 768→50257 LM head)
//! and Qwen2.5-0.5B's (896→896, 896→4864, 4864→896, 896→151936). The K-quants need k to be a
//! multiple of 256, which 896 is not (llama.cpp stores those Qwen tensors in another type),
//! so they run the GPT-2 shapes and 4864→896 only. Routes:
//! - `int`: the default, activations quantized per block and integer dot products on the
//!   `DELTAW_SIMD` path (`qdot_path_name` is printed at the start);
//! - `f32`: for Q8_0 and Q4_0, each tile of weight rows dequantized to f32 in cache and
//!   multiplied by the f32 activations (`quant_matmul_dequant`), the alternative the module
//!   docs compare with.
//!
//! Throughput is in bytes of weights read, so criterion's bytes/s divided by the
//! `bandwidth/read` figure is the fraction of the roofline reached: a gemv reads each weight
//! byte once and every other operand is tiny. `bandwidth/copy` is a parallel memcpy of the
//! same size (bytes counted once, as read; the copy also writes as much).
//!
//! Weights are one quantized 64-row tile repeated (values do not change the speed), so the
//! largest matrices (up to 144 MB of Q8_0) are made in a moment.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput};
use deltaw_benches::filled;
use deltaw_tensor::cpu::qdot::{gemv, qdot_path_name, quant_matmul_dequant, quant_matmul_int};
use deltaw_tensor::quant::{quantize, QuantType};
use rayon::prelude::*;
use std::hint::black_box;
use std::time::Duration;

/// (k, n): input and output features.
const SHAPES: [(usize, usize); 8] =
    [(768, 768), (768, 3072), (3072, 768), (768, 50257), (896, 896), (896, 4864), (4864, 896), (896, 151936)];

/// Bytes streamed by the bandwidth probes: well beyond the last-level cache.
const PROBE_BYTES: usize = 256 << 20;

fn weights(ty: QuantType, n: usize, k: usize) -> Vec<u8> {
    let tile = quantize(ty, &filled(64 * k, 3)).expect("k is a whole number of blocks");
    let row = ty.bytes_for(k).unwrap();
    (0..n).flat_map(|j| tile[(j % 64) * row..(j % 64 + 1) * row].iter().copied()).collect()
}

fn bench_bandwidth(crit: &mut Criterion) {
    let src: Vec<u64> = (0..PROBE_BYTES / 8).map(|i| i as u64).collect();
    let mut dst = vec![0u64; PROBE_BYTES / 8];
    let mut group = crit.benchmark_group("bandwidth");
    group.sampling_mode(SamplingMode::Flat).sample_size(10).measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Bytes(PROBE_BYTES as u64));
    let chunk = 1 << 17;
    group.bench_function("read", |b| {
        b.iter(|| {
            let s: u64 = src.par_chunks(chunk).map(|c| c.iter().fold(0u64, |a, &v| a ^ v)).reduce(|| 0, |a, b| a ^ b);
            black_box(s)
        })
    });
    group.bench_function("copy", |b| {
        b.iter(|| {
            dst.par_chunks_mut(chunk).zip(src.par_chunks(chunk)).for_each(|(d, s)| d.copy_from_slice(s));
            black_box(&mut dst);
        })
    });
    group.finish();
}

fn bench_gemv(crit: &mut Criterion) {
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    eprintln!("qdot path: {}, cores: {cores}", qdot_path_name());
    let mut group = crit.benchmark_group("quant_gemv");
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    group.warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    for ty in [QuantType::Q8_0, QuantType::Q4_0, QuantType::Q4K, QuantType::Q6K] {
        for (k, n) in SHAPES {
            if k % ty.block_elems() != 0 {
                continue;
            }
            let w = weights(ty, n, k);
            let x = filled(k, 4);
            let mut out = vec![0.0f32; n];
            group.throughput(Throughput::Bytes(w.len() as u64));
            let id = format!("{k}x{n}");
            group.bench_function(BenchmarkId::new(format!("{}/int", ty.name()), &id), |b| {
                b.iter(|| {
                    gemv(ty, &w, n, k, &x, &mut out);
                    black_box(&mut out);
                })
            });
            if matches!(ty, QuantType::Q8_0 | QuantType::Q4_0) {
                group.bench_function(BenchmarkId::new(format!("{}/f32", ty.name()), &id), |b| {
                    b.iter(|| {
                        quant_matmul_dequant(ty, &w, n, k, &x, 1, &mut out);
                        black_box(&mut out);
                    })
                });
            }
        }
    }
    group.finish();
}

/// `quant_matmul/<type>/<route>/<m>`: m activation rows against Qwen2.5-0.5B's 896→4864
/// projection, on the integer route and the widen-a-tile-then-`sgemm` route, to place
/// `DEQUANT_GEMM_MIN_M`. Throughput in multiply-adds.
fn bench_matmul(crit: &mut Criterion) {
    let (k, n) = (896, 4864);
    let mut group = crit.benchmark_group("quant_matmul");
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    group.warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    for ty in [QuantType::Q8_0, QuantType::Q4_0] {
        let w = weights(ty, n, k);
        for m in [2, 4, 8, 16, 32, 64] {
            let x = filled(m * k, 5);
            let mut out = vec![0.0f32; m * n];
            group.throughput(Throughput::Elements((m * n * k) as u64));
            group.bench_function(BenchmarkId::new(format!("{}/int", ty.name()), m), |b| {
                b.iter(|| {
                    quant_matmul_int(ty, &w, n, k, &x, m, &mut out);
                    black_box(&mut out);
                })
            });
            group.bench_function(BenchmarkId::new(format!("{}/f32", ty.name()), m), |b| {
                b.iter(|| {
                    quant_matmul_dequant(ty, &w, n, k, &x, m, &mut out);
                    black_box(&mut out);
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_bandwidth, bench_gemv, bench_matmul);
criterion_main!(benches);
