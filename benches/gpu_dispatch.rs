//! Per-op latency on the GPU: the fixed cost of a launch and of waiting for it (feature `gpu`).
//!
//! All on a 4-element f32 buffer, so the kernels' own work is nil:
//! - `read_back_4`: submit a copy and wait for it, the floor of any round trip;
//! - `relu_4_round_trip`: one `gpu::unary` relu, then read the 4 results back, what a lone
//!   op costs a caller that needs its value;
//! - `relu_4_chain_64`: 64 dependent relus recorded into the pending batch, then one read-back;
//!   its throughput (elements/s = ops/s) is the per-op cost once submits are batched.
//!
//! Without an adapter the bench prints a notice and does nothing.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use deltaw_benches::gpu::open_or_skip;
use deltaw_tensor::gpu::{self, GpuContext};
use deltaw_tensor::{Layout, UnaryOp};
use std::time::Duration;

/// Relus recorded before the read-back in `relu_4_chain_64`; equal to the default
/// `dispatches_per_submit`, so the chain costs one submit plus the read-back's.
const CHAIN: usize = 64;

/// Reads back all 4 elements of `buffer`, panicking if the device fails.
fn read_back_4(ctx: &GpuContext, buffer: &gpu::GpuBuffer) -> Vec<f32> {
    ctx.read_back::<f32>(buffer, 4).expect("gpu read-back")
}

fn bench_gpu_dispatch(crit: &mut Criterion) {
    let Some(ctx) = open_or_skip("gpu_dispatch") else { return };
    let layout = Layout::contiguous(4);
    let x = ctx.upload(&[1.0f32, -2.0, 3.0, -4.0]).expect("gpu upload"); // (4,)

    // Compile the pipeline and fill the pool before timing.
    let y = gpu::unary(&ctx, UnaryOp::Relu, &x, &layout).expect("gpu unary");
    assert_eq!(read_back_4(&ctx, &y), vec![1.0, 0.0, 3.0, 0.0], "gpu_dispatch: relu gave wrong values");

    let mut group = crit.benchmark_group("gpu_dispatch");
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("read_back_4", |bench| bench.iter(|| read_back_4(&ctx, &x)));
    group.bench_function("relu_4_round_trip", |bench| {
        bench.iter(|| {
            let y = gpu::unary(&ctx, UnaryOp::Relu, &x, &layout).expect("gpu unary");
            read_back_4(&ctx, &y)
        })
    });
    group.throughput(Throughput::Elements(CHAIN as u64));
    group.bench_function(format!("relu_4_chain_{CHAIN}"), |bench| {
        bench.iter(|| {
            let mut y = x.clone();
            for _ in 0..CHAIN {
                y = gpu::unary(&ctx, UnaryOp::Relu, &y, &layout).expect("gpu unary");
            }
            read_back_4(&ctx, &y)
        })
    });
    group.finish();
}

criterion_group!(benches, bench_gpu_dispatch);
criterion_main!(benches);
