//! AVX-512F micro-kernel: a 12×32 tile of C held in 24 zmm registers.
//!
//! Each k step loads one 32-wide row of the B panel (2 zmm), broadcasts each of the 12 A
//! values in turn, and issues 24 FMAs. Why 12×32:
//! - registers: 24 accumulators + 2 B vectors + 1 broadcast = 27 of the 32 zmm;
//! - FMA latency (4 cycles) × throughput (2 per cycle) needs ≥ 8 independent chains: 24;
//! - ports: 24 FMAs take 12 cycles on the two FMA units, against 14 loads (2 B + 12
//!   broadcasts) on the two load ports, so loads never bound the loop, unlike a 16×16 tile
//!   (16 FMAs against 17 loads);
//! - the 32 columns are two full vectors of a row of the row-major C, and n is usually a
//!   multiple of 32 in LLM shapes (768, 1024, 2304, 3072), so edge tiles are rare.

use super::dispatch::Kernel;
use std::arch::x86_64::*;

const MR: usize = 12;
const NR: usize = 32;

/// Blocks (see `Kernel`): an A panel is 12×384×4 B = 18 KiB of the 32 KiB L1; a packed B
/// block is 384×512×4 B = 768 KiB of the 1 MiB L2.
pub(crate) const KERNEL: Kernel = Kernel {
    name: "avx512f 12x32",
    mr: MR,
    nr: NR,
    kc: 384,
    nc: 512,
    mc: 20 * MR,
    tile,
};

/// The 12×32 tile; contract in [`super::dispatch::TileFn`].
///
/// # Safety
/// As `TileFn`; the CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
unsafe fn tile(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, accumulate: bool) {
    // acc[i][h] holds C[i][16h .. 16h+16].
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    for p in 0..kc {
        // SAFETY: p < kc, so b[p*NR .. p*NR+32] and a[p*MR .. p*MR+12] are in the panels.
        let (b0, b1, a_row) = unsafe {
            let b_row = b.add(p * NR);
            (_mm512_loadu_ps(b_row), _mm512_loadu_ps(b_row.add(16)), a.add(p * MR))
        };
        for (i, row) in acc.iter_mut().enumerate() {
            // SAFETY: i < MR, inside this depth step of the A panel.
            let ai = _mm512_set1_ps(unsafe { *a_row.add(i) });
            row[0] = _mm512_fmadd_ps(ai, b0, row[0]);
            row[1] = _mm512_fmadd_ps(ai, b1, row[1]);
        }
    }
    for (i, row) in acc.iter().enumerate() {
        // SAFETY: the caller gives MR rows of NR writable floats spaced ldc apart.
        unsafe {
            let c_row = c.add(i * ldc);
            let (mut lo, mut hi) = (row[0], row[1]);
            if accumulate {
                lo = _mm512_add_ps(lo, _mm512_loadu_ps(c_row));
                hi = _mm512_add_ps(hi, _mm512_loadu_ps(c_row.add(16)));
            }
            _mm512_storeu_ps(c_row, lo);
            _mm512_storeu_ps(c_row.add(16), hi);
        }
    }
}
