//! Where deltaw's GEMM stands against what this machine can do: a roofline.
//!
//! The roofline model bounds the speed of a kernel by two roofs: the compute peak (FLOP/s)
//! and the memory bandwidth (bytes/s) times the kernel's arithmetic intensity (FLOP per byte
//! moved). Attainable FLOP/s = min(peak, intensity × bandwidth). The intensity at which
//! both roofs meet is the ridge point; a kernel above it is compute-bound. An n×n GEMM does
//! 2n³ FLOP on 3n² floats, so its intensity grows with n and it should run near the compute
//! peak: the percentage printed beside each size is how close it gets.
//!
//! Measured here: the compute peak with a register-only FMA loop on all cores, at the SIMD
//! width of the chosen micro-kernel; the nominal peak from /proc/cpuinfo's clock (when
//! present); the copy bandwidth of a buffer far larger than the caches; and sgemm itself,
//! whose result is checked against a naive loop (exit status 1 on FAIL).
//!
//! Run with `cargo run --release --example roofline` (about 10 s).

use deltaw_tensor::cpu::gemm::{kernel_name, sgemm, MatRef};
use std::time::Instant;

fn main() {
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    let kernel = kernel_name();
    println!("micro-kernel: {kernel}, threads: {threads} (rayon: {})", rayon::current_num_threads());
    let lanes = simd_lanes(kernel);
    let peak = fma_peak_gflops(threads, lanes);
    println!("compute peak (FMA loop, {lanes} f32 lanes, all cores): {peak:8.1} GFLOP/s");
    if let Some(mhz) = cpu_mhz() {
        // Two FMA units per core (true of AVX2 and AVX-512 server cores with both ports
        // enabled); each FMA is 2 FLOP per lane.
        let nominal = mhz * 1e-3 * (2 * 2 * lanes * threads) as f64;
        println!("nominal peak ({mhz:.0} MHz × 2 FMA units × {lanes} lanes × 2 × {threads}): {nominal:8.1} GFLOP/s");
    }
    let bandwidth = copy_bandwidth_gbs(threads);
    println!("copy bandwidth (read + write, 128 MiB buffers): {bandwidth:8.1} GB/s");
    println!("ridge point: {:.1} FLOP/byte", peak / bandwidth);
    println!("\n    n   GFLOP/s  % of peak  intensity (FLOP/byte)");
    for n in [256, 512, 1024, 2048] {
        let gflops = gemm_gflops(n);
        let intensity = 2.0 * (n as f64).powi(3) / (3.0 * 4.0 * (n * n) as f64);
        println!("{n:5} {gflops:9.1} {:9.1}% {intensity:12.1}", 100.0 * gflops / peak);
    }
    let ok = check_against_naive();
    println!("\nsgemm vs naive loop (301×257×263, transposed B, accumulate): {}", if ok { "PASS" } else { "FAIL" });
    if !ok {
        std::process::exit(1);
    }
}

/// f32 lanes of one vector register at the kernel's SIMD level.
fn simd_lanes(kernel: &str) -> usize {
    match kernel.split(' ').next() {
        Some("avx512f") => 16,
        Some("avx2+fma") => 8,
        Some("neon") => 4,
        _ => 4,
    }
}

/// The clock of the first core in /proc/cpuinfo, in MHz (Linux only; the current clock).
fn cpu_mhz() -> Option<f64> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("cpu MHz"))?;
    line.split(':').nth(1)?.trim().parse().ok()
}

/// FMA iterations per thread: 2·10⁸ × 16 accumulators keeps each run about a second.
const FMA_STEPS: usize = 100_000_000;

/// GFLOP/s of `threads` threads each running independent FMA chains in registers.
fn fma_peak_gflops(threads: usize, lanes: usize) -> f64 {
    let start = Instant::now();
    let sink: f32 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads).map(|_| s.spawn(|| fma_loop(lanes, FMA_STEPS))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    let seconds = start.elapsed().as_secs_f64();
    std::hint::black_box(sink);
    // 16 accumulators × lanes × 2 FLOP per step and thread.
    (threads * FMA_STEPS * 16 * lanes * 2) as f64 / seconds * 1e-9
}

/// Runs `steps` rounds of 16 independent FMAs at the given width; returns a value that
/// depends on all of them so the loop cannot be removed.
fn fma_loop(lanes: usize, steps: usize) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if lanes == 16 && std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: AVX-512F was just detected.
            return unsafe { simd::fma_loop_avx512(steps) };
        }
        if lanes == 8 && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: FMA (and so AVX) was just detected.
            return unsafe { simd::fma_loop_avx2(steps) };
        }
    }
    fma_loop_portable(steps)
}

/// 16 independent chains of 4-wide `mul_add`, which compiles to FMA where the target has it.
fn fma_loop_portable(steps: usize) -> f32 {
    let mut acc = [[0.0f32; 4]; 16];
    let (x, y) = (std::hint::black_box(0.999_99f32), std::hint::black_box(1e-6f32));
    for _ in 0..steps {
        for chain in acc.iter_mut() {
            for v in chain.iter_mut() {
                *v = v.mul_add(x, y);
            }
        }
    }
    acc.iter().flatten().sum()
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use std::arch::x86_64::*;

    /// 16 zmm accumulators: FMA latency 4 × 2 ports needs 8; 16 leaves slack.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn fma_loop_avx512(steps: usize) -> f32 {
        let (x, y) = (_mm512_set1_ps(0.999_99), _mm512_set1_ps(1e-6));
        let mut acc = [_mm512_setzero_ps(); 16];
        for _ in 0..steps {
            for v in acc.iter_mut() {
                *v = _mm512_fmadd_ps(*v, x, y);
            }
        }
        acc.iter().map(|&v| _mm512_reduce_add_ps(v)).sum()
    }

    /// 16 ymm registers: 12 accumulators plus the two operands; the loop runs 16 FMAs per
    /// step as 12 + 4 so the FLOP count matches the other loops.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn fma_loop_avx2(steps: usize) -> f32 {
        let (x, y) = (_mm256_set1_ps(0.999_99), _mm256_set1_ps(1e-6));
        let mut acc = [_mm256_setzero_ps(); 12];
        for _ in 0..steps {
            for v in acc.iter_mut() {
                *v = _mm256_fmadd_ps(*v, x, y);
            }
            for v in acc[..4].iter_mut() {
                *v = _mm256_fmadd_ps(*v, x, y);
            }
        }
        let mut lanes = [0.0f32; 8];
        let total = acc.iter().fold(_mm256_setzero_ps(), |s, &v| _mm256_add_ps(s, v));
        // SAFETY: `lanes` holds the 8 floats of one ymm register.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), total) };
        lanes.iter().sum()
    }
}

/// Copy bandwidth in GB/s (bytes read + bytes written) with `threads` threads each copying
/// its share of a 128 MiB buffer, far beyond any cache; best of 5 passes.
fn copy_bandwidth_gbs(threads: usize) -> f64 {
    let len = 32 << 20; // floats: 128 MiB per buffer
    let src = vec![1.0f32; len];
    let mut dst = vec![0.0f32; len];
    let chunk = len.div_ceil(threads);
    let mut best = f64::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        std::thread::scope(|s| {
            for (d, src) in dst.chunks_mut(chunk).zip(src.chunks(chunk)) {
                s.spawn(move || d.copy_from_slice(src));
            }
        });
        best = best.min(start.elapsed().as_secs_f64());
    }
    std::hint::black_box(&dst);
    (2 * 4 * len) as f64 / best * 1e-9
}

/// A contiguous row-major view with row stride `ld`.
fn row_major(data: &[f32], ld: usize) -> MatRef<'_> {
    MatRef { data, offset: 0, row_stride: ld, col_stride: 1 }
}

/// Best GFLOP/s of sgemm on n×n matrices over a few runs of ~0.3 s.
fn gemm_gflops(n: usize) -> f64 {
    let a: Vec<f32> = (0..n * n).map(|i| (i % 13) as f32 * 0.1 - 0.6).collect();
    let b: Vec<f32> = (0..n * n).map(|i| (i % 7) as f32 * 0.1 - 0.3).collect();
    let mut c = vec![0.0f32; n * n];
    let flop = 2.0 * (n as f64).powi(3);
    let reps = ((3e10 / flop) as usize).clamp(1, 200);
    let mut best = f64::MAX;
    for _ in 0..4 {
        let start = Instant::now();
        for _ in 0..reps {
            sgemm(n, n, n, row_major(&a, n), row_major(&b, n), &mut c, n, false);
        }
        best = best.min(start.elapsed().as_secs_f64() / reps as f64);
    }
    flop / best * 1e-9
}

/// One odd-sized GEMM with a transposed B and accumulation, against an f64 triple loop,
/// with the tolerance of the unit tests: 4(k+2)·ε·(|c0| + Σ|a||b|) per element.
fn check_against_naive() -> bool {
    let (m, n, k) = (301, 257, 263);
    let a: Vec<f32> = (0..m * k).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
    let bt: Vec<f32> = (0..n * k).map(|i| ((i * 104_729) % 997) as f32 / 498.5 - 1.0).collect();
    let c0: Vec<f32> = (0..m * n).map(|i| (i % 11) as f32 - 5.0).collect();
    let mut c = c0.clone();
    // B (k×n) stored transposed: B[p][j] = bt[j*k + p].
    let b = MatRef { data: &bt, offset: 0, row_stride: 1, col_stride: k };
    sgemm(m, n, k, row_major(&a, k), b, &mut c, n, true);
    (0..m * n).all(|idx| {
        let (i, j) = (idx / n, idx % n);
        let (mut exact, mut scale) = (c0[idx] as f64, c0[idx].abs() as f64);
        for p in 0..k {
            let prod = a[i * k + p] as f64 * bt[j * k + p] as f64;
            exact += prod;
            scale += prod.abs();
        }
        (c[idx] as f64 - exact).abs() <= 4.0 * (k + 2) as f64 * f32::EPSILON as f64 * scale
    })
}
