//! Square f32 GEMM throughput on the GPU at one size (default 4096), for `benches/gpu_device.sh`:
//!
//! ```text
//! cargo run --release -p deltaw-benches --features gpu --example sgemm_gpu_rate -- 4096
//! ```
//!
//! Uploads two n×n matrices once, checks C[0, 0] against the host, runs three untimed products
//! (pipeline compiled, C's buffers pooled), then times seven, each waited for
//! ([`deltaw_benches::gpu::wait`]: the queue drained, not only the submission), and prints one
//! JSON line with the best and the median GFLOP/s (2n³ / seconds), the f16-storage kernel's
//! best where the adapter has SHADER_F16, and the adapter's name. The card's FP32 peak is not
//! something wgpu reports; `gpu_device.sh` divides by it.

use deltaw_benches::filled;
use deltaw_benches::gpu::{open_or_skip, wait};
use deltaw_tensor::gpu::{self, GpuBuffer, GpuContext, MatmulArgs};
use std::time::Instant;

/// Seconds of each of 7 timed products, sorted, after the warm-up and the C[0, 0] check.
fn time(ctx: &GpuContext, f16: bool, a: &GpuBuffer, b: &GpuBuffer, host: (&[f32], &[f32]), n: usize) -> Vec<f64> {
    let args = MatmulArgs { m: n, n, k: n, a_strides: (n, 1), b_strides: (n, 1), batch_offsets: vec![(0, 0)] };
    let run = || if f16 { gpu::matmul_f16(ctx, a, b, &args) } else { gpu::matmul(ctx, a, b, &args) };
    let c = run().expect("gpu matmul");
    let got = ctx.read_back::<f32>(&c, 1).expect("gpu read-back")[0];
    let products = (0..n).map(|p| host.0[p] * host.1[p * n]);
    let (want, scale): (f32, f32) = (products.clone().sum(), products.map(f32::abs).sum());
    let tol = if f16 { 2e-3 } else { 1e-5 };
    assert!((got - want).abs() <= tol * scale, "n={n} f16={f16}: C[0, 0] = {got}, host says {want}");
    for _ in 0..3 {
        drop(run().expect("gpu matmul"));
        wait(ctx);
    }
    let mut secs: Vec<f64> = (0..7)
        .map(|_| {
            let start = Instant::now();
            drop(run().expect("gpu matmul"));
            wait(ctx);
            start.elapsed().as_secs_f64()
        })
        .collect();
    secs.sort_by(f64::total_cmp);
    secs
}

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(4096);
    let Some(ctx) = open_or_skip("sgemm_gpu_rate") else { std::process::exit(2) };
    let (host_a, host_b) = (filled(n * n, 1), filled(n * n, 2));
    let a = ctx.upload(&host_a).expect("gpu upload");
    let b = ctx.upload(&host_b).expect("gpu upload");
    let flop = 2.0 * (n as f64).powi(3);
    let secs = time(&ctx, false, &a, &b, (&host_a, &host_b), n);
    let f16_best = ctx.has_f16().then(|| {
        let a16 = gpu::f32_to_f16(&ctx, &a, n * n).expect("gpu f32_to_f16");
        let b16 = gpu::f32_to_f16(&ctx, &b, n * n).expect("gpu f32_to_f16");
        flop / time(&ctx, true, &a16, &b16, (&host_a, &host_b), n)[0] / 1e9
    });
    println!(
        "{{\"impl\": \"deltaw\", \"n\": {n}, \"gflops_best\": {:.1}, \"gflops_median\": {:.1}, \"f16_gflops_best\": {}, \"adapter\": {:?}, \"software\": {}}}",
        flop / secs[0] / 1e9,
        flop / secs[3] / 1e9,
        f16_best.map_or("null".to_string(), |g| format!("{g:.1}")),
        ctx.adapter_name(),
        ctx.is_software()
    );
}
