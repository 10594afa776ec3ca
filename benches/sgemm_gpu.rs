//! Square GEMM throughput on the GPU: `gpu::matmul` (f32) and `gpu::matmul_f16` (f16 storage,
//! f32 accumulation) for n = 256..2048 (feature `gpu`).
//!
//! A and B are uploaded once per size (and converted to f16 once, on the GPU); each iteration
//! records one matmul, waits for the queue (a 1-element read-back, see `deltaw_benches::gpu`)
//! and drops C, so the pool hands the same buffers back. The throughput is declared as 2·n³
//! "elements", one per floating-point operation, so criterion's elements/s are FLOP/s.
//! `benches/compare_sgemm_gpu.sh` puts them beside PyTorch CUDA.
//!
//! Sizes above `DELTAW_BENCH_MAX_N` are skipped; unset, the cap is 512 on a CPU adapter
//! (lavapipe) and none on a GPU. Without an adapter the bench prints a notice and does nothing.

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion, SamplingMode, Throughput};
use deltaw_benches::filled;
use deltaw_benches::gpu::{max_n, open_or_skip, wait, MAX_N_VAR};
use deltaw_tensor::gpu::{self, GpuBuffer, GpuContext, GpuError, MatmulArgs};
use std::time::Duration;

const SIZES: [usize; 4] = [256, 512, 1024, 2048];

/// `gpu::matmul` or `gpu::matmul_f16`.
type MatmulFn = fn(&GpuContext, &GpuBuffer, &GpuBuffer, &MatmulArgs) -> Result<GpuBuffer, GpuError>;

/// One kernel under test and the operands it reads, already on the GPU.
struct Variant<'a> {
    /// The criterion function name: `f32` or `f16`.
    name: &'static str,
    matmul: MatmulFn,
    a: &'a GpuBuffer,
    b: &'a GpuBuffer,
    /// Tolerance of the spot check, relative to `Σ|a·b|` (f16 rounds each input by 2⁻¹¹).
    tol: f32,
}

/// `C = A · B` for contiguous row-major n×n matrices, one batch.
fn square_args(n: usize) -> MatmulArgs {
    MatmulArgs { m: n, n, k: n, a_strides: (n, 1), b_strides: (n, 1), batch_offsets: vec![(0, 0)] }
}

/// Untimed: compiles the pipeline, checks C[0, 0] against the host (a broken kernel would make
/// the figures meaningless) and runs a few products so that the pool holds C's buffers.
///
/// # Panics
/// If the kernel fails or C[0, 0] is off by more than `variant.tol · Σ|a·b|`.
fn warm_up(ctx: &GpuContext, variant: &Variant<'_>, host_a: &[f32], host_b: &[f32], n: usize) {
    let args = square_args(n);
    let c = (variant.matmul)(ctx, variant.a, variant.b, &args).expect("gpu matmul");
    let got = ctx.read_back::<f32>(&c, 1).expect("gpu read-back")[0];
    // C[0, 0] = Σ_p A[0, p] · B[p, 0]: row 0 of A, column 0 of B (stride n).
    let products = (0..n).map(|p| host_a[p] * host_b[p * n]);
    let expected: f32 = products.clone().sum();
    let scale: f32 = products.map(f32::abs).sum();
    assert!(
        (got - expected).abs() <= variant.tol * scale,
        "sgemm_gpu {} n={n}: C[0, 0] = {got}, host says {expected} (tolerance {} · {scale})",
        variant.name,
        variant.tol
    );
    for _ in 0..3 {
        let c = (variant.matmul)(ctx, variant.a, variant.b, &args).expect("gpu matmul");
        drop(c);
        wait(ctx);
    }
}

/// Times one variant at size n, then says on stderr if the timed loop allocated buffers
/// (it should only reuse pooled ones).
fn bench_variant(group: &mut BenchmarkGroup<'_, WallTime>, ctx: &GpuContext, variant: &Variant<'_>, n: usize) {
    let args = square_args(n);
    let created_before = ctx.pool_stats().buffers_created;
    group.bench_with_input(BenchmarkId::new(variant.name, n), &n, |bench, _| {
        bench.iter(|| {
            let c = (variant.matmul)(ctx, variant.a, variant.b, &args).expect("gpu matmul");
            drop(c);
            wait(ctx);
            // C is dropped here and goes back to the pool.
        })
    });
    let created = ctx.pool_stats().buffers_created - created_before;
    if created > 0 {
        eprintln!("sgemm_gpu {} n={n}: {created} buffers created while timing (expected 0)", variant.name);
    }
}

fn bench_sgemm_gpu(crit: &mut Criterion) {
    let Some(ctx) = open_or_skip("sgemm_gpu") else { return };
    let cpu_adapter = ctx.is_software();
    let max_n = max_n(&ctx);
    let sizes: Vec<usize> = SIZES.into_iter().filter(|&n| n <= max_n).collect();
    eprintln!("sgemm_gpu: software adapter {cpu_adapter}, sizes {sizes:?} (cap {max_n}; set {MAX_N_VAR} to change)");
    if sizes.is_empty() {
        return;
    }
    let mut group = crit.benchmark_group("sgemm_gpu");
    // Flat sampling: the same iteration count in every sample, so a 0.3 s product on lavapipe
    // needs 10 of them, not the 55 of criterion's linear ramp.
    group.sampling_mode(SamplingMode::Flat);
    group.warm_up_time(Duration::from_secs(1));
    for n in sizes {
        let host_a = filled(n * n, 1); // (n, n)
        let host_b = filled(n * n, 2); // (n, n)
        let a = ctx.upload(&host_a).expect("gpu upload");
        let b = ctx.upload(&host_b).expect("gpu upload");
        group.throughput(Throughput::Elements(2 * (n as u64).pow(3)));
        group.sample_size(if cpu_adapter || n >= 1024 { 10 } else { 30 });
        group.measurement_time(Duration::from_secs(if n >= 1024 { 5 } else { 3 }));
        let f32_variant = Variant { name: "f32", matmul: gpu::matmul, a: &a, b: &b, tol: 1e-5 };
        warm_up(&ctx, &f32_variant, &host_a, &host_b, n);
        bench_variant(&mut group, &ctx, &f32_variant, n);
        if ctx.has_f16() {
            // f16 copies of A and B, two elements per word; converted once, outside the timing.
            let a16 = gpu::f32_to_f16(&ctx, &a, n * n).expect("gpu f32_to_f16");
            let b16 = gpu::f32_to_f16(&ctx, &b, n * n).expect("gpu f32_to_f16");
            let f16_variant = Variant { name: "f16", matmul: gpu::matmul_f16, a: &a16, b: &b16, tol: 2e-3 };
            warm_up(&ctx, &f16_variant, &host_a, &host_b, n);
            bench_variant(&mut group, &ctx, &f16_variant, n);
        }
    }
    group.finish();
}

criterion_group!(benches, bench_sgemm_gpu);
criterion_main!(benches);
