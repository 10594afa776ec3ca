//! aarch64 NEON micro-kernel: an 8×8 tile of C held in 16 q registers (4 floats each).
//!
//! Each k step loads one 8-wide row of the B panel (2 q registers) and the 8 A values of
//! this step (2 q registers), then multiplies B by each A lane in turn with `vfmaq_laneq_f32`
//! (FMA by a vector lane, so no broadcast instruction is needed): 16 FMAs per step.
//! 16 accumulators + 4 operands = 20 of the 32 registers; 16 chains cover the FMA latency.

use super::dispatch::{Kernel, PackB};
use super::pack::pack_panels;
use half::{bf16, f16};
use std::arch::aarch64::*;

const MR: usize = 8;
const NR: usize = 8;

/// Blocks (see `Kernel`): an A panel is 8×256×4 B = 8 KiB, a B block 256×512×4 B = 512 KiB.
pub(crate) const KERNEL: Kernel = Kernel {
    name: "neon 8x8",
    mr: MR,
    nr: NR,
    kc: 256,
    nc: 512,
    tile,
    pack_a: pack_panels::<MR, f32>,
    pack_b: PackB { f32: pack_panels::<NR, f32>, bf16: pack_panels::<NR, bf16>, f16: pack_panels::<NR, f16> },
};

/// One row of the tile: `acc[0] += b_lo · a[L]`, `acc[1] += b_hi · a[L]` for lane L of `a`.
#[inline]
#[target_feature(enable = "neon")]
fn fma_lane<const L: i32>(acc: &mut [float32x4_t; 2], b_lo: float32x4_t, b_hi: float32x4_t, a: float32x4_t) {
    acc[0] = vfmaq_laneq_f32::<L>(acc[0], b_lo, a);
    acc[1] = vfmaq_laneq_f32::<L>(acc[1], b_hi, a);
}

/// The 8×8 tile; contract in [`super::dispatch::TileFn`].
///
/// # Safety
/// As `TileFn`; NEON is part of every aarch64 target.
#[target_feature(enable = "neon")]
unsafe fn tile(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, accumulate: bool) {
    // acc[i][h] holds C[i][4h .. 4h+4].
    let mut acc = [[vdupq_n_f32(0.0); 2]; MR];
    for p in 0..kc {
        // SAFETY: p < kc, so b[p*NR .. p*NR+8] and a[p*MR .. p*MR+8] are in the panels.
        let (b_lo, b_hi, a_lo, a_hi) = unsafe {
            let (b_row, a_row) = (b.add(p * NR), a.add(p * MR));
            (vld1q_f32(b_row), vld1q_f32(b_row.add(4)), vld1q_f32(a_row), vld1q_f32(a_row.add(4)))
        };
        // Rows 0..4 use the lanes of a_lo, rows 4..8 those of a_hi.
        fma_lane::<0>(&mut acc[0], b_lo, b_hi, a_lo);
        fma_lane::<1>(&mut acc[1], b_lo, b_hi, a_lo);
        fma_lane::<2>(&mut acc[2], b_lo, b_hi, a_lo);
        fma_lane::<3>(&mut acc[3], b_lo, b_hi, a_lo);
        fma_lane::<0>(&mut acc[4], b_lo, b_hi, a_hi);
        fma_lane::<1>(&mut acc[5], b_lo, b_hi, a_hi);
        fma_lane::<2>(&mut acc[6], b_lo, b_hi, a_hi);
        fma_lane::<3>(&mut acc[7], b_lo, b_hi, a_hi);
    }
    for (i, row) in acc.iter().enumerate() {
        // SAFETY: the caller gives MR rows of NR writable floats spaced ldc apart.
        unsafe {
            let c_row = c.add(i * ldc);
            let (mut lo, mut hi) = (row[0], row[1]);
            if accumulate {
                lo = vaddq_f32(lo, vld1q_f32(c_row));
                hi = vaddq_f32(hi, vld1q_f32(c_row.add(4)));
            }
            vst1q_f32(c_row, lo);
            vst1q_f32(c_row.add(4), hi);
        }
    }
}
