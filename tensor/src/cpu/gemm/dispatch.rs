//! Which micro-kernel runs: that of the SIMD level (`DELTAW_SIMD`, see `cpu/simd.rs`), or the
//! one `DELTAW_GEMM_KERNEL` names.

use super::{MatRef, Widen};
use crate::cpu::simd::{simd_level, SimdLevel};
use half::{bf16, f16};
use std::any::Any;
use std::sync::OnceLock;

/// A micro-kernel computes one MR×NR tile of C from packed panels:
///
/// `C[i*ldc + j] (+)= Σ_{p < kc} a[p*MR + i] · b[p*NR + j]` for i < MR, j < NR,
/// adding to C when `accumulate` is true and overwriting it (without reading) otherwise.
///
/// # Safety
/// `kc ≥ 1`; `a` must be valid for reading `kc*MR` floats and `b` for `kc*NR` floats (the
/// kernels use unaligned loads, so 64-byte alignment of `b` only saves time); `c` must be
/// valid for reading and writing MR rows of NR floats spaced `ldc` apart, not aliased by
/// anything else during the call; and the CPU must support the kernel's instruction set
/// (guaranteed for kernels from [`available`]).
pub(crate) type TileFn = unsafe fn(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, accumulate: bool);

/// Packs rows `i0..i0+rows` × depth `p0..p0+kc` of a source with elements `T` into f32
/// panels of the kernel's width, as `pack::pack_panels` (args: source, i0, rows, p0, kc,
/// destination).
///
/// # Safety
/// The CPU must support the kernel's instruction set (the x86 packers use AVX2).
pub(crate) type PackFn<T = f32> = unsafe fn(MatRef<'_, T>, (usize, usize), (usize, usize), &mut [f32]);

/// B's packer for each element type B may have (A is always f32).
#[derive(Clone, Copy, Debug)]
pub(crate) struct PackB {
    pub f32: PackFn,
    pub bf16: PackFn<bf16>,
    pub f16: PackFn<f16>,
}

impl PackB {
    /// The packer for B's element type `T`.
    pub(crate) fn of<T: Widen>(&self) -> PackFn<T> {
        let all: [&dyn Any; 3] = [&self.f32, &self.bf16, &self.f16];
        let found = all.iter().find_map(|f| f.downcast_ref::<PackFn<T>>());
        *found.expect("Widen is implemented for f32, bf16 and f16 only")
    }
}

/// The largest MR·NR of any kernel: edge tiles are computed into a local array this big.
pub(crate) const MAX_TILE: usize = 12 * 32;

/// A micro-kernel with its register tile (MR×NR) and the cache blocks sized for it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Kernel {
    /// "isa MRxNR", as `kernel_name` reports it.
    pub name: &'static str,
    /// Rows of the register tile of C, i.e. the height of a packed A panel.
    pub mr: usize,
    /// Columns of the register tile of C, i.e. the width of a packed B panel.
    pub nr: usize,
    /// Most depth of one packed slice: an MR×KC A panel must fit in L1 beside streaming B.
    pub kc: usize,
    /// Columns of B whose panels are swept together: KC×NC floats must fit in L2.
    pub nc: usize,
    /// The micro-kernel.
    pub tile: TileFn,
    /// `pack_panels::<MR>`, for A.
    pub pack_a: PackFn,
    /// `pack_panels::<NR, T>`, for B through its transpose, per element type of B.
    pub pack_b: PackB,
}

/// The kernel `sgemm` uses: `DELTAW_GEMM_KERNEL` if set and supported, else the one of the
/// SIMD level ([`simd_level`]: `DELTAW_SIMD` or the widest the CPU has).
pub(crate) fn selected() -> &'static Kernel {
    static SELECTED: OnceLock<Kernel> = OnceLock::new();
    SELECTED.get_or_init(|| {
        let all = available();
        let of_level = for_level(&all, simd_level());
        let wanted = std::env::var("DELTAW_GEMM_KERNEL").ok();
        let forced = wanted.as_deref().and_then(|w| all.iter().find(|k| k.name.starts_with(w)));
        if let (Some(w), None) = (&wanted, forced) {
            eprintln!("deltaw: DELTAW_GEMM_KERNEL={w} is not supported here; using {}", of_level.name);
        }
        *forced.unwrap_or(of_level)
    })
}

/// The kernel of a SIMD level among `all` (from [`available`], which holds one per level the
/// CPU supports, so the portable fallback is only for a level without a kernel).
pub(crate) fn for_level(all: &[Kernel], level: SimdLevel) -> &Kernel {
    let prefix = match level {
        SimdLevel::Avx512 => "avx512f",
        SimdLevel::Avx2 => "avx2",
        SimdLevel::Neon => "neon",
        SimdLevel::Portable => "portable",
    };
    let portable = all.last().expect("the portable kernel is always available");
    all.iter().find(|k| k.name.starts_with(prefix)).unwrap_or(portable)
}

/// Every kernel this CPU can run, fastest first; the portable one is always last.
pub(crate) fn available() -> Vec<Kernel> {
    let mut all = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        // The AVX-512 kernel packs with AVX2 (every AVX-512 CPU has it; checked anyway).
        let avx2 = std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma");
        if avx2 && std::arch::is_x86_feature_detected!("avx512f") {
            all.push(super::kernel_avx512::KERNEL);
        }
        if avx2 {
            all.push(super::kernel_avx2::KERNEL);
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        if std::arch::is_aarch64_feature_detected!("neon") {
            all.push(super::kernel_neon::KERNEL);
        }
    }
    all.push(super::kernel_portable::KERNEL);
    for k in &all {
        assert!(k.mr * k.nr <= MAX_TILE, "gemm kernel {} tile exceeds MAX_TILE", k.name);
    }
    all
}
