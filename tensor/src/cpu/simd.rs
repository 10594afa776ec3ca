//! Runtime-chosen vector width for the auto-vectorised kernels.
//!
//! The crate is compiled for the baseline target (SSE2 on x86-64), so the compiler's
//! auto-vectorised loops use 4-wide registers. [`vectorized`] runs a closure inside a function
//! compiled with AVX-512F (16 lanes) or AVX2+FMA (8 lanes) enabled when the CPU has them, so
//! the loops inlined into it use the wider registers. Compute-heavy loops such as softmax's
//! `exp_fast` gain most; memory-bound ones are limited by bandwidth either way. LLVM does not contract `a * b + c` into an FMA without fast-math, so
//! results are bit-identical either way. (The GEMM has its own hand-written kernels.)

#[cfg(target_arch = "x86_64")]
use std::sync::OnceLock;

/// The widest vector extension this CPU has, checked once.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy, PartialEq, Eq)]
enum Width {
    Avx512,
    Avx2,
    Baseline,
}

#[cfg(target_arch = "x86_64")]
fn width() -> Width {
    static DETECTED: OnceLock<Width> = OnceLock::new();
    *DETECTED.get_or_init(|| {
        if is_x86_feature_detected!("avx512f") {
            Width::Avx512
        } else if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            Width::Avx2
        } else {
            Width::Baseline
        }
    })
}

/// Runs `f`, compiled for AVX-512F or AVX2+FMA when the CPU supports them. Keep `f` to tight
/// loops over slices: what is inlined into it gets the wider registers.
#[inline]
pub fn vectorized<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    match width() {
        // SAFETY: `width()` checked that the CPU supports the enabled features.
        Width::Avx512 => return unsafe { run_avx512(f) },
        // SAFETY: as above.
        Width::Avx2 => return unsafe { run_avx2_fma(f) },
        Width::Baseline => {}
    }
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn run_avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn run_avx2_fma<R>(f: impl FnOnce() -> R) -> R {
    f()
}
