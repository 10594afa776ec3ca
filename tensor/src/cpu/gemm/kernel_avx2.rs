//! AVX2+FMA micro-kernel: a 6×16 tile of C held in 12 ymm registers.
//!
//! Each k step loads one 16-wide row of the B panel (2 ymm), broadcasts each of the 6 A
//! values, and issues 12 FMAs. With 16 ymm registers, 12 accumulators + 2 B vectors + 1
//! broadcast is the largest tile that fits; 12 independent FMA chains cover the 4-5 cycle
//! latency at 2 FMAs per cycle, and 12 FMAs (6 cycles) face only 8 loads (4 cycles).

use super::dispatch::{Kernel, PackB};
use super::pack_x86::pack_panels_avx2;
use half::{bf16, f16};
use std::arch::x86_64::*;

const MR: usize = 6;
const NR: usize = 16;

/// Blocks (see `Kernel`): the A panel (6×512×4 B = 12 KiB) stays in L1 while each B panel
/// (16×512×4 B = 32 KiB) streams through; the B panels one A panel meets in a row
/// (512×256×4 B = 512 KiB) fit in a 1 MiB L2 (a 256 KiB L2 makes this slower, not wrong).
pub(crate) const KERNEL: Kernel = Kernel {
    name: "avx2+fma 6x16",
    mr: MR,
    nr: NR,
    kc: 512,
    nc: 256,
    tile,
    pack_a: pack_panels_avx2::<MR, f32>,
    pack_b: PackB {
        f32: pack_panels_avx2::<NR, f32>,
        bf16: pack_panels_avx2::<NR, bf16>,
        f16: pack_panels_avx2::<NR, f16>,
    },
};

/// The 6×16 tile; contract in [`super::dispatch::TileFn`].
///
/// # Safety
/// As `TileFn`; the CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
unsafe fn tile(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, accumulate: bool) {
    // acc[i][h] holds C[i][8h .. 8h+8].
    let mut acc = [[_mm256_setzero_ps(); 2]; MR];
    for p in 0..kc {
        // SAFETY: p < kc, so b[p*NR .. p*NR+16] and a[p*MR .. p*MR+6] are in the panels.
        let (b0, b1, a_row) = unsafe {
            let b_row = b.add(p * NR);
            (_mm256_loadu_ps(b_row), _mm256_loadu_ps(b_row.add(8)), a.add(p * MR))
        };
        for (i, row) in acc.iter_mut().enumerate() {
            // SAFETY: i < MR, inside this depth step of the A panel.
            let ai = _mm256_set1_ps(unsafe { *a_row.add(i) });
            row[0] = _mm256_fmadd_ps(ai, b0, row[0]);
            row[1] = _mm256_fmadd_ps(ai, b1, row[1]);
        }
    }
    for (i, row) in acc.iter().enumerate() {
        // SAFETY: the caller gives MR rows of NR writable floats spaced ldc apart.
        unsafe {
            let c_row = c.add(i * ldc);
            let (mut lo, mut hi) = (row[0], row[1]);
            if accumulate {
                lo = _mm256_add_ps(lo, _mm256_loadu_ps(c_row));
                hi = _mm256_add_ps(hi, _mm256_loadu_ps(c_row.add(8)));
            }
            _mm256_storeu_ps(c_row, lo);
            _mm256_storeu_ps(c_row.add(8), hi);
        }
    }
}
