//! Square f32 GEMM throughput for `benches/compare_all.sh`, one JSON line per size, set beside
//! PyTorch's `torch.mm` (MKL) from `benches/sgemm_torch.py` in the same sitting:
//!
//! ```text
//! cargo run --release -p deltaw-benches --example sgemm_rate -- 1024 2048
//! ```
//!
//! Each size (default 1024 and 2048) multiplies two preallocated n×n row-major matrices on all
//! cores: one warm-up product, then the best of seven timed ones (the least disturbed on a
//! shared machine; the peer reports the same statistic). The criterion bench `sgemm` is the
//! careful measurement against matrixmultiply; this is the quick same-sitting figure.

use deltaw_benches::filled;
use deltaw_tensor::cpu::gemm::{kernel_name, sgemm, MatRef};
use std::time::Instant;

fn main() {
    let sizes: Vec<usize> = std::env::args().skip(1).filter_map(|s| s.parse().ok()).collect();
    let sizes = if sizes.is_empty() { vec![1024, 2048] } else { sizes };
    for n in sizes {
        let (a, b) = (filled(n * n, 1), filled(n * n, 2));
        let mut c = vec![0.0f32; n * n];
        let view = |d| MatRef { data: d, offset: 0, row_stride: n, col_stride: 1 };
        let mut best = f64::INFINITY;
        for round in 0..8 {
            let start = Instant::now();
            sgemm(n, n, n, view(&a), view(&b), &mut c, n, false);
            if round > 0 {
                best = best.min(start.elapsed().as_secs_f64());
            }
        }
        std::hint::black_box(&c);
        let gflops = 2.0 * (n as f64).powi(3) / best / 1e9;
        println!(
            "{{\"impl\": \"deltaw\", \"n\": {n}, \"best_seconds\": {best:.5}, \"gflops\": {gflops:.1}, \"kernel\": \"{}\"}}",
            kernel_name()
        );
    }
}
