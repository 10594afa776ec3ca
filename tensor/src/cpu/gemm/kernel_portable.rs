//! Portable micro-kernel: plain Rust over a 4×8 tile, left for the compiler to vectorise.
//!
//! The tile is a local `[[f32; 8]; 4]` and every loop bound is a constant, so LLVM keeps it
//! in registers (eight 4-wide SSE2 registers on baseline x86-64) and turns each row update
//! into vector multiply-adds. Rust never fuses `a * b + c` into an FMA by itself, so this
//! kernel rounds twice per step; the tolerance of the tests allows for it.

use super::dispatch::{Kernel, PackB};
use super::pack::pack_panels;
use half::{bf16, f16};

const MR: usize = 4;
const NR: usize = 8;

/// Blocks (see `Kernel`), sized as for the AVX2 kernel: the A panel and one B panel row
/// are small, so a deep slice keeps C traffic low.
pub(crate) const KERNEL: Kernel = Kernel {
    name: "portable 4x8",
    mr: MR,
    nr: NR,
    kc: 512,
    nc: 256,
    tile,
    pack_a: pack_panels::<MR, f32>,
    pack_b: PackB { f32: pack_panels::<NR, f32>, bf16: pack_panels::<NR, bf16>, f16: pack_panels::<NR, f16> },
};

/// The 4×8 tile; contract in [`super::dispatch::TileFn`].
///
/// # Safety
/// As `TileFn` (any CPU).
unsafe fn tile(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, accumulate: bool) {
    // SAFETY: the caller guarantees kc*MR readable floats at a and kc*NR at b.
    let (a, b) = unsafe { (std::slice::from_raw_parts(a, kc * MR), std::slice::from_raw_parts(b, kc * NR)) };
    let acc = tile_sum(a, b);
    for (i, acc_row) in acc.iter().enumerate() {
        // SAFETY: the caller gives MR rows of NR floats spaced ldc apart, owned by this call.
        let c_row = unsafe { std::slice::from_raw_parts_mut(c.add(i * ldc), NR) };
        for (c, &x) in c_row.iter_mut().zip(acc_row) {
            *c = if accumulate { *c + x } else { x };
        }
    }
}

/// `Σ_p a[p*MR + i] · b[p*NR + j]` for the packed panels `a` (kc×MR) and `b` (kc×NR).
fn tile_sum(a: &[f32], b: &[f32]) -> [[f32; NR]; MR] {
    let mut acc = [[0.0f32; NR]; MR];
    for (a_p, b_p) in a.chunks_exact(MR).zip(b.chunks_exact(NR)) {
        for (acc_row, &ai) in acc.iter_mut().zip(a_p) {
            for (acc_ij, &bj) in acc_row.iter_mut().zip(b_p) {
                *acc_ij += ai * bj;
            }
        }
    }
    acc
}
