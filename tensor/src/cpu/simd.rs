//! Which SIMD path the CPU kernels take: detected once, overridable with `DELTAW_SIMD`.
//!
//! One level, [`simd_level`], governs three things: the width the auto-vectorised loops get
//! from [`vectorized`], the GEMM micro-kernel (`gemm/dispatch.rs`), and through it the
//! matrix–vector path. `DELTAW_SIMD=portable|avx2|avx512|neon` forces a level so that every
//! path can be tested on a CPU that has them all (`tensor/tests/simd_paths.rs`; CI runs the op
//! fixture suite again with `portable`). `DELTAW_GEMM_KERNEL`, if also set, still picks the
//! GEMM kernel alone.
//!
//! **An override the CPU cannot honour is never an error.** An unknown value, or a level the
//! CPU lacks, prints one warning on stderr and the detected level runs instead (capped at the
//! requested one, so `avx512` on an AVX2 machine runs AVX2). Results never depend on the
//! setting beyond rounding, so a wrong value costs speed, not correctness; the warning says so.
//!
//! **The vector width of the plain loops.** The crate is compiled for the baseline target
//! (SSE2 on x86-64), so the compiler's auto-vectorised loops use 4-wide registers.
//! [`vectorized`] runs a closure inside a function compiled with AVX-512F (16 lanes) or
//! AVX2+FMA (8 lanes) enabled, so the loops inlined into it use the wider registers.
//! Compute-heavy loops such as softmax's `exp_fast` gain most; memory-bound ones are limited
//! by bandwidth either way. LLVM does not contract `a * b + c` into an FMA without
//! fast-math, and our reductions fix their order with 16 explicit partial sums, so results
//! are bit-identical at every width. (The GEMM has its own hand-written kernels, which are
//! not: an FMA rounds once where the portable kernel rounds twice.)

use std::sync::OnceLock;

/// A family of vector instructions the CPU kernels can be run with, narrowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SimdLevel {
    /// The compile-time baseline (SSE2 on x86-64) and the portable GEMM kernel.
    Portable,
    /// AArch64's Advanced SIMD: the NEON GEMM kernel (plain loops are baseline there).
    Neon,
    /// AVX2 and FMA (x86-64).
    Avx2,
    /// AVX-512F, with AVX2 and FMA (x86-64).
    Avx512,
}

impl SimdLevel {
    /// The name `DELTAW_SIMD` takes: `portable`, `neon`, `avx2` or `avx512`.
    pub fn name(self) -> &'static str {
        match self {
            SimdLevel::Portable => "portable",
            SimdLevel::Neon => "neon",
            SimdLevel::Avx2 => "avx2",
            SimdLevel::Avx512 => "avx512",
        }
    }

    /// The level a `DELTAW_SIMD` value names, if any (case and surrounding space ignored).
    ///
    /// ```
    /// use deltaw_tensor::cpu::simd::SimdLevel;
    /// assert_eq!(SimdLevel::parse(" AVX2 "), Some(SimdLevel::Avx2));
    /// assert_eq!(SimdLevel::parse("sse9"), None);
    /// ```
    pub fn parse(value: &str) -> Option<SimdLevel> {
        let all = [SimdLevel::Portable, SimdLevel::Neon, SimdLevel::Avx2, SimdLevel::Avx512];
        all.into_iter().find(|l| l.name().eq_ignore_ascii_case(value.trim()))
    }
}

/// Every level this CPU can run, narrowest first; `Portable` is always there.
///
/// ```
/// use deltaw_tensor::cpu::simd::{supported_levels, SimdLevel};
/// assert_eq!(supported_levels()[0], SimdLevel::Portable);
/// ```
pub fn supported_levels() -> Vec<SimdLevel> {
    let mut levels = vec![SimdLevel::Portable];
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        if has!("avx2") && has!("fma") {
            levels.push(SimdLevel::Avx2);
            if has!("avx512f") {
                levels.push(SimdLevel::Avx512);
            }
        }
    }
    #[cfg(target_arch = "aarch64")]
    if std::arch::is_aarch64_feature_detected!("neon") {
        levels.push(SimdLevel::Neon);
    }
    levels
}

/// The level the kernels use: `DELTAW_SIMD` if set and supported, else the widest the CPU
/// has. Read once per process; an unusable value is reported on stderr (see the module docs).
///
/// ```
/// use deltaw_tensor::cpu::simd::{simd_level, supported_levels};
/// assert!(supported_levels().contains(&simd_level()));
/// ```
pub fn simd_level() -> SimdLevel {
    static LEVEL: OnceLock<SimdLevel> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        let value = std::env::var("DELTAW_SIMD").ok();
        let (level, warning) = choose(value.as_deref(), &supported_levels());
        if let Some(w) = warning {
            eprintln!("deltaw: {w}");
        }
        level
    })
}

/// The level for a `DELTAW_SIMD` value on a CPU with `supported` levels (narrowest first),
/// and the warning to print when the value cannot be honoured.
fn choose(value: Option<&str>, supported: &[SimdLevel]) -> (SimdLevel, Option<String>) {
    let widest = *supported.last().expect("Portable is always supported");
    let Some(value) = value else { return (widest, None) };
    match SimdLevel::parse(value) {
        Some(wanted) if supported.contains(&wanted) => (wanted, None),
        Some(wanted) => {
            let below = supported.iter().copied().filter(|&l| l <= wanted).max().unwrap_or(SimdLevel::Portable);
            let msg = format!(
                "DELTAW_SIMD={value}: this CPU lacks {}; running {} instead (results are the same up to rounding)",
                wanted.name(),
                below.name()
            );
            (below, Some(msg))
        }
        None => {
            let msg = format!(
                "DELTAW_SIMD={value} is not one of portable, avx2, avx512, neon; running {} (detected)",
                widest.name()
            );
            (widest, Some(msg))
        }
    }
}

/// Defines a function whose body is compiled three times (AVX-512F, AVX2+FMA, the baseline)
/// and runs at the level [`simd_level`] picks: [`vectorized`] for loops too big for a closure
/// to be inlined into its wider copy (a closure compiled apart runs at the baseline width).
///
/// ```ignore
/// multiversion! {
///     /// `y = 2x`.
///     fn double(x: &[f32], y: &mut [f32]) {
///         y.iter_mut().zip(x).for_each(|(y, x)| *y = 2.0 * x);
///     }
/// }
/// ```
macro_rules! multiversion {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$m])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                use $crate::cpu::simd::{simd_level, SimdLevel};
                #[target_feature(enable = "avx512f,avx2,fma")]
                fn avx512($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                match simd_level() {
                    // SAFETY: `simd_level` only returns levels found on this CPU.
                    SimdLevel::Avx512 => return unsafe { avx512($($arg),*) },
                    // SAFETY: as above.
                    SimdLevel::Avx2 => return unsafe { avx2($($arg),*) },
                    SimdLevel::Portable | SimdLevel::Neon => {}
                }
            }
            body($($arg),*)
        }
    };
}
pub(crate) use multiversion;

/// Runs `f`, compiled for AVX-512F or AVX2+FMA when [`simd_level`] allows them. Keep `f` to
/// tight loops over slices: what is inlined into it gets the wider registers.
#[inline]
pub fn vectorized<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    match simd_level() {
        // SAFETY: `simd_level` only returns levels `supported_levels` found on this CPU.
        SimdLevel::Avx512 => return unsafe { run_avx512(f) },
        // SAFETY: as above.
        SimdLevel::Avx2 => return unsafe { run_avx2_fma(f) },
        SimdLevel::Portable | SimdLevel::Neon => {}
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

#[cfg(test)]
mod tests {
    use super::*;
    use SimdLevel::*;

    #[test]
    fn unset_picks_the_widest_supported_level() {
        assert_eq!(choose(None, &[Portable, Avx2, Avx512]), (Avx512, None));
        assert_eq!(choose(None, &[Portable]), (Portable, None));
    }

    #[test]
    fn a_supported_override_is_taken_silently() {
        assert_eq!(choose(Some("portable"), &[Portable, Avx2, Avx512]), (Portable, None));
        assert_eq!(choose(Some("Avx2"), &[Portable, Avx2, Avx512]), (Avx2, None));
    }

    #[test]
    fn a_missing_level_falls_back_below_it_with_a_warning() {
        let (level, warning) = choose(Some("avx512"), &[Portable, Avx2]);
        assert_eq!(level, Avx2);
        assert!(warning.unwrap().contains("lacks avx512"));
        let (level, warning) = choose(Some("neon"), &[Portable, Avx2, Avx512]);
        assert_eq!(level, Portable, "neon is narrower than avx2 in the order, so nothing wider runs");
        assert!(warning.is_some());
    }

    #[test]
    fn an_unknown_value_warns_and_runs_the_detected_level() {
        let (level, warning) = choose(Some("sse9"), &[Portable, Avx2]);
        assert_eq!(level, Avx2);
        assert!(warning.unwrap().contains("DELTAW_SIMD=sse9 is not one of"));
    }
}
