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
    println!("compute peak (the same, one core):              {:8.1} GFLOP/s", fma_peak_gflops(1, lanes));
    if let Some(mhz) = cpu_mhz() {
        // Two FMA units per core (true of AVX2 cores, and of AVX-512 server cores with the
        // second 512-bit unit); each FMA is 2 FLOP per lane. AVX-512 code often runs below
        // the nominal clock, which the measured peak shows.
        let nominal = mhz * 1e-3 * (2 * 2 * lanes * threads) as f64;
        println!("nominal peak ({mhz:.0} MHz × 2 FMA units × {lanes} lanes × 2 × {threads}): {nominal:8.1} GFLOP/s");
    }
    let bandwidth = copy_bandwidth_gbs(threads);
    println!("copy bandwidth (read + write, 128 MiB buffers): {bandwidth:8.1} GB/s");
    println!("ridge point: {:.1} FLOP/byte", peak / bandwidth);
    println!("\n    n  intensity  roofline   sgemm GFLOP/s  % of peak");
    for n in [256, 512, 1024, 2048] {
        // At least 3n² floats move for 2n³ FLOP; the roofline is min(peak, intensity × bandwidth).
        let intensity = 2.0 * (n as f64).powi(3) / (3.0 * 4.0 * (n * n) as f64);
        let roof = peak.min(intensity * bandwidth);
        let gflops = gemm_gflops(n);
        println!("{n:5} {intensity:10.1} {roof:9.1} {gflops:15.1} {:9.1}%", 100.0 * gflops / peak);
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

/// FMA steps per thread and round (12 FMAs each): about 50 ms a round on a 2.5 GHz core.
const FMA_STEPS: usize = 20_000_000;
/// Independent FMA chains per step: FMA latency (4 cycles) × 2 FMA ports needs 8; 12 leaves slack.
const CHAINS: usize = 12;

/// GFLOP/s of `threads` threads each running `CHAINS` independent FMA chains in registers;
/// the best of 8 rounds, so that a round shared with another process does not count.
fn fma_peak_gflops(threads: usize, lanes: usize) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..8 {
        let start = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| fma_loop(lanes, FMA_STEPS));
            }
        });
        best = best.min(start.elapsed().as_secs_f64());
    }
    // CHAINS FMAs × lanes × 2 FLOP per step and thread.
    (threads * FMA_STEPS * CHAINS * lanes * 2) as f64 / best * 1e-9
}

/// Runs `steps` rounds of `CHAINS` independent FMAs at the given width.
fn fma_loop(lanes: usize, steps: usize) {
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
    #[cfg(not(target_arch = "x86_64"))]
    let _ = lanes; // elsewhere there is one width: 4 lanes, as the portable loop uses
    std::hint::black_box(fma_loop_portable(steps));
}

/// `CHAINS` chains of 4-wide multiply-adds, left to the compiler (which may keep fewer
/// chains in registers than asked, so this is a lower bound). A fused `mul_add` on aarch64,
/// where FMA is baseline; elsewhere `x * y + z` as the portable kernel computes it (a
/// `mul_add` without hardware FMA would be a slow library call).
fn fma_loop_portable(steps: usize) -> f32 {
    let mut acc = [[0.0f32; 4]; CHAINS];
    let (x, y) = (std::hint::black_box(1.0f32), std::hint::black_box(1e-6f32));
    for _ in 0..steps {
        for chain in acc.iter_mut() {
            for v in chain.iter_mut() {
                #[cfg(target_arch = "aarch64")]
                {
                    *v = v.mul_add(x, y);
                }
                #[cfg(not(target_arch = "aarch64"))]
                {
                    *v = *v * x + y;
                }
            }
        }
    }
    acc.iter().flatten().sum()
}

/// The x86 loops in assembly: written with intrinsics, LLVM shuffles the 12 accumulators
/// through the stack and measures its own register allocation instead of the FMA units.
#[cfg(target_arch = "x86_64")]
mod simd {
    use std::arch::asm;
    use std::arch::x86_64::*;

    /// 12 chains `acc = acc·1 + 1e-6` on zmm0..zmm11 (growing slowly: no denormals, no overflow).
    #[target_feature(enable = "avx512f")]
    pub unsafe fn fma_loop_avx512(steps: usize) {
        let (x, y) = (_mm512_set1_ps(1.0), _mm512_set1_ps(1e-6));
        // SAFETY: registers only (nomem, nostack); every register written is declared.
        unsafe {
            asm!(
                "vxorps xmm0, xmm0, xmm0", "vxorps xmm1, xmm1, xmm1", "vxorps xmm2, xmm2, xmm2",
                "vxorps xmm3, xmm3, xmm3", "vxorps xmm4, xmm4, xmm4", "vxorps xmm5, xmm5, xmm5",
                "vxorps xmm6, xmm6, xmm6", "vxorps xmm7, xmm7, xmm7", "vxorps xmm8, xmm8, xmm8",
                "vxorps xmm9, xmm9, xmm9", "vxorps xmm10, xmm10, xmm10", "vxorps xmm11, xmm11, xmm11",
                "2:",
                "vfmadd231ps zmm0, {x}, {y}", "vfmadd231ps zmm1, {x}, {y}", "vfmadd231ps zmm2, {x}, {y}",
                "vfmadd231ps zmm3, {x}, {y}", "vfmadd231ps zmm4, {x}, {y}", "vfmadd231ps zmm5, {x}, {y}",
                "vfmadd231ps zmm6, {x}, {y}", "vfmadd231ps zmm7, {x}, {y}", "vfmadd231ps zmm8, {x}, {y}",
                "vfmadd231ps zmm9, {x}, {y}", "vfmadd231ps zmm10, {x}, {y}", "vfmadd231ps zmm11, {x}, {y}",
                "dec {n}",
                "jnz 2b",
                n = inout(reg) steps => _, x = in(zmm_reg) x, y = in(zmm_reg) y,
                out("zmm0") _, out("zmm1") _, out("zmm2") _, out("zmm3") _, out("zmm4") _, out("zmm5") _,
                out("zmm6") _, out("zmm7") _, out("zmm8") _, out("zmm9") _, out("zmm10") _, out("zmm11") _,
                options(nomem, nostack),
            )
        };
    }

    /// The same 12 chains on ymm0..ymm11.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn fma_loop_avx2(steps: usize) {
        let (x, y) = (_mm256_set1_ps(1.0), _mm256_set1_ps(1e-6));
        // SAFETY: registers only (nomem, nostack); every register written is declared.
        unsafe {
            asm!(
                "vxorps xmm0, xmm0, xmm0", "vxorps xmm1, xmm1, xmm1", "vxorps xmm2, xmm2, xmm2",
                "vxorps xmm3, xmm3, xmm3", "vxorps xmm4, xmm4, xmm4", "vxorps xmm5, xmm5, xmm5",
                "vxorps xmm6, xmm6, xmm6", "vxorps xmm7, xmm7, xmm7", "vxorps xmm8, xmm8, xmm8",
                "vxorps xmm9, xmm9, xmm9", "vxorps xmm10, xmm10, xmm10", "vxorps xmm11, xmm11, xmm11",
                "2:",
                "vfmadd231ps ymm0, {x}, {y}", "vfmadd231ps ymm1, {x}, {y}", "vfmadd231ps ymm2, {x}, {y}",
                "vfmadd231ps ymm3, {x}, {y}", "vfmadd231ps ymm4, {x}, {y}", "vfmadd231ps ymm5, {x}, {y}",
                "vfmadd231ps ymm6, {x}, {y}", "vfmadd231ps ymm7, {x}, {y}", "vfmadd231ps ymm8, {x}, {y}",
                "vfmadd231ps ymm9, {x}, {y}", "vfmadd231ps ymm10, {x}, {y}", "vfmadd231ps ymm11, {x}, {y}",
                "dec {n}",
                "jnz 2b",
                n = inout(reg) steps => _, x = in(ymm_reg) x, y = in(ymm_reg) y,
                out("ymm0") _, out("ymm1") _, out("ymm2") _, out("ymm3") _, out("ymm4") _, out("ymm5") _,
                out("ymm6") _, out("ymm7") _, out("ymm8") _, out("ymm9") _, out("ymm10") _, out("ymm11") _,
                options(nomem, nostack),
            )
        };
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
