//! Memory-bound op throughput: softmax, layer_norm and an elementwise add over 8 M f32 (a
//! `(8192, 1024)` tensor), beside a parallel copy of the same size measured in the same run.
//!
//! Every bench declares `Throughput::Bytes` as its compulsory traffic: each input read once
//! plus each output written once. Re-reads of a row that is still in cache and the
//! write-allocate reads of the output are not counted, as in STREAM. Criterion then reports
//! GB/s, and an op's GB/s divided by `copy`'s is how close it runs to the machine's copy
//! bandwidth (the target is at least half).
//!
//! The ops return new tensors, so each call also pays for fresh output pages (a 32 MiB
//! allocation is mmap'ed and faulted in on first write). `copy` reuses its destination, the
//! peak the hardware allows; `copy_fresh` allocates its destination every time, the peak an
//! op that returns a new buffer can reach.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use deltaw_tensor::{Device, Seed, Tensor};
use rayon::prelude::*;
use std::hint::black_box;
use std::time::Duration;

/// Rows and row length of every operand: 8 M floats, 32 MiB, far beyond any cache.
const ROWS: usize = 8192;
const C: usize = 1024;
const N: usize = ROWS * C;
const F32: u64 = std::mem::size_of::<f32>() as u64;

/// Elements per rayon task for the copies: 256 KiB, large enough to amortise scheduling.
const CHUNK: usize = 1 << 16;

/// A parallel `copy_from_slice` of `src` into `dst`.
fn parallel_copy(dst: &mut [f32], src: &[f32]) {
    dst.par_chunks_mut(CHUNK).zip(src.par_chunks(CHUNK)).for_each(|(d, s)| d.copy_from_slice(s));
}

/// Copy baselines. Traffic: read N floats, write N floats.
fn bench_copies(group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    let src: Vec<f32> = (0..N).map(|i| i as f32).collect();
    let mut dst = vec![0.0f32; N];
    group.throughput(Throughput::Bytes(2 * N as u64 * F32));
    group.bench_function("copy", |bench| bench.iter(|| parallel_copy(black_box(&mut dst), black_box(&src))));
    group.bench_function("copy_fresh", |bench| {
        bench.iter(|| {
            let mut fresh = vec![0.0f32; N];
            parallel_copy(&mut fresh, black_box(&src));
            fresh
        })
    });
}

/// The ops. Traffic per call:
/// - softmax over the last dim: read x, write y (2·N floats);
/// - layer_norm: read x, write y (2·N), plus weight and bias (2·C) and the saved per-row mean
///   and rstd (2·ROWS) that `layer_norm` computes too;
/// - add of two tensors: read a and b, write the sum (3·N).
fn bench_ops(group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    let dev = Device::Cpu;
    let x = Tensor::randn((ROWS, C), Seed(1), &dev); // (ROWS, C)
    let y = Tensor::randn((ROWS, C), Seed(2), &dev); // (ROWS, C)
    let weight = Tensor::randn(C, Seed(3), &dev); // (C,)
    let bias = Tensor::randn(C, Seed(4), &dev); // (C,)

    group.throughput(Throughput::Bytes(2 * N as u64 * F32));
    group.bench_function("softmax", |bench| bench.iter(|| black_box(&x).softmax(-1)));

    group.throughput(Throughput::Bytes((2 * N + 2 * C + 2 * ROWS) as u64 * F32));
    group.bench_function("layer_norm", |bench| bench.iter(|| black_box(&x).layer_norm(&weight, &bias, 1e-5)));

    group.throughput(Throughput::Bytes(3 * N as u64 * F32));
    group.bench_function("add", |bench| bench.iter(|| black_box(&x).add(black_box(&y))));
}

fn bench_memory_bound(crit: &mut Criterion) {
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    eprintln!("ops over {ROWS}x{C} f32 ({} MiB per tensor), cores: {cores}", N * 4 / (1 << 20));
    let mut group = crit.benchmark_group("ops");
    // Each call moves 64-96 MiB (milliseconds): 10 samples over 4 s give a stable mean while
    // the whole bench stays well under a minute.
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(4));
    bench_copies(&mut group);
    bench_ops(&mut group);
    group.finish();
}

criterion_group!(benches, bench_memory_bound);
criterion_main!(benches);
