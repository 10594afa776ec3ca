//! Square f32 GEMM throughput: deltaw's `sgemm` against `matrixmultiply::sgemm` in one run.
//!
//! Both multiply the same preallocated n×n matrices (C = A·B, row-major) on all cores
//! (deltaw through rayon's global pool, matrixmultiply through its `threading` feature).
//! The throughput is declared as 2·n³ "elements", one per floating-point operation, so the
//! elements/s that criterion reports are FLOP/s. `benches/compare_sgemm.sh` prints the
//! deltaw / matrixmultiply ratio of the mean times for each n.
//!
//! The `gemv_weight` group is one decode step's projection, `x @ W.t()` with x `(1, K)` and a
//! weight W `(N, K)` stored in f32 or in bf16 (a frozen checkpoint weight kept in its storage
//! dtype), at Qwen2.5-0.5B's MLP shapes (896 → 4864 and 4864 → 896). The gemv streams W once,
//! so it is memory-bound and bf16 should be up to twice as fast; elements are multiply-adds.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput};
use deltaw_benches::filled;
use deltaw_tensor::cpu::gemm::{kernel_name, sgemm, MatRef};
use deltaw_tensor::{DType, Device, Seed, Tensor};
use std::hint::black_box;
use std::time::Duration;

const SIZES: [usize; 4] = [256, 512, 1024, 2048];

/// A contiguous row-major n×n view.
fn row_major(data: &[f32], n: usize) -> MatRef<'_> {
    MatRef { data, offset: 0, row_stride: n, col_stride: 1 }
}

fn bench_sgemm(crit: &mut Criterion) {
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    eprintln!("deltaw kernel: {}, cores: {cores}", kernel_name());
    let mut group = crit.benchmark_group("sgemm");
    // Flat sampling (the same iteration count in every sample): one 2048³ GEMM takes ~0.1 s,
    // and criterion's default linear ramp would need 210 of them for 20 samples.
    group.sampling_mode(SamplingMode::Flat);
    group.warm_up_time(Duration::from_secs(2));
    for n in SIZES {
        let a = filled(n * n, 1);
        let b = filled(n * n, 2);
        let mut c = vec![0.0f32; n * n];
        group.throughput(Throughput::Elements(2 * (n as u64).pow(3)));
        // Fewer samples for the big sizes keep the whole bench to about two minutes.
        group.sample_size(match n {
            ..=512 => 40,
            1024 => 20,
            _ => 10,
        });
        group.measurement_time(Duration::from_secs(if n >= 2048 { 8 } else { 4 }));
        group.bench_with_input(BenchmarkId::new("deltaw", n), &n, |bench, &n| {
            bench.iter(|| {
                sgemm(n, n, n, row_major(&a, n), row_major(&b, n), &mut c, n, false);
                black_box(&mut c);
            })
        });
        group.bench_with_input(BenchmarkId::new("matrixmultiply", n), &n, |bench, &n| {
            let s = n as isize;
            bench.iter(|| {
                // SAFETY: a, b and c are n×n row-major buffers (row stride n, column stride 1)
                // that outlive the call, and c does not alias a or b.
                unsafe {
                    matrixmultiply::sgemm(n, n, n, 1.0, a.as_ptr(), s, 1, b.as_ptr(), s, 1, 0.0, c.as_mut_ptr(), s, 1)
                };
                black_box(&mut c);
            })
        });
    }
    group.finish();
}

fn bench_gemv_weight(crit: &mut Criterion) {
    let mut group = crit.benchmark_group("gemv_weight");
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    for (k, n) in [(896, 4864), (4864, 896)] {
        let x = Tensor::randn((1, k), Seed(1), &Device::Cpu);
        let w32 = Tensor::randn((n, k), Seed(2), &Device::Cpu);
        group.throughput(Throughput::Elements((n * k) as u64));
        for dtype in [DType::F32, DType::BF16, DType::F16] {
            let w = w32.to_dtype(dtype).unwrap();
            group.bench_with_input(BenchmarkId::new(format!("{dtype}"), format!("{k}x{n}")), &w, |bench, w| {
                bench.iter(|| black_box(x.matmul(&w.t())))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_sgemm, bench_gemv_weight);
criterion_main!(benches);
