//! Each weight type's two per-row steps around the integer dot product:
//! - [`unpack_row`]: the row's small integers, one i8 per value in the order the values have
//!   when dequantized (so value `i` meets activation `i`), with any fixed offset removed where
//!   the type has one (Q4_0 stores `q + 8`, Q5_0 `q + 16`, Q6_K `q + 32`);
//! - [`combine_row`]: the f32 result from the integer sums `g` of every 16 products
//!   (`g[t] = Σ_{i in 16t..16t+16} w_q[i] · x_q[i]`, exact in i32), the weight's scales read
//!   from its block headers and the activation's scales and 16-value sums.
//!
//! The algebra, per block with activation scale `dx` and values `x_q` (`x ≈ dx · x_q`):
//! - Q8_0, Q4_0, Q5_0 (`w = dw · q`): `Σ w·x ≈ (dw·dx) · Σ q·x_q`;
//! - Q4_1, Q5_1 (`w = dw · q + m`): `(dw·dx) · Σ q·x_q + m · (dx · Σ x_q)`;
//! - Q4_K, Q5_K (sub-block `j` of 32: `w = d·sc_j·q − dmin·mn_j`):
//!   `(dx·d) · Σ_j sc_j Σ q·x_q − (dx·dmin) · Σ_j mn_j Σ x_q`, both inner sums integers;
//! - Q6_K (sub-block `t` of 16: `w = d·sc_t·q`, `q` in −32..=31): `(dx·d) · Σ_t sc_t g[t]`.
//!
//! The float steps run in one fixed order on every SIMD path, so all paths give the same bits:
//! for the legacy types, block `b`'s term into lane `b mod 8` of eight running sums, then
//! [`reduce8`]'s tree (the order of `super::fused`'s 8-lane accumulator); for the K-quants,
//! blocks in row order into one accumulator (the SIMD kernels there only compute `g`).
//! Layouts: see `crate::quant` (legacy.rs and kquants.rs document every byte).

use super::act::ActBlocks;
use crate::quant::QuantType;

/// The little-endian f16 at `b[at..at + 2]`, widened exactly, in plain integer and float
/// operations (no per-call feature check, unlike `half`'s F16C path; it inlines and
/// vectorises): the f16's exponent and mantissa bits shifted into an f32's place give the
/// value · 2⁻¹¹², which a multiply by 2¹¹² (exact, a power of two) restores, subnormals
/// included; infinities and NaNs keep an all-ones exponent.
#[inline(always)]
fn f16_at(b: &[u8], at: usize) -> f32 {
    let h = u16::from_le_bytes([b[at], b[at + 1]]) as u32;
    let sign = (h & 0x8000) << 16;
    let bits = (h & 0x7fff) << 13;
    let mag = if h & 0x7c00 == 0x7c00 {
        bits | 0x7f80_0000
    } else {
        (f32::from_bits(bits) * f32::from_bits(0x7780_0000)).to_bits()
    };
    f32::from_bits(sign | mag)
}

/// Sub-block `j`'s 6-bit (scale, min) of a Q4_K / Q5_K super-block's 12 packed bytes.
#[inline(always)]
fn scale_min(j: usize, s: &[u8]) -> (i32, i32) {
    let (sc, mn) = if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        ((s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4), (s[j + 4] >> 4) | ((s[j] >> 6) << 4))
    };
    (sc as i32, mn as i32)
}

/// Writes the i8 values of one row (`out.len()` values, `row` its blocks' bytes). The type is
/// matched once per row, so each arm's loop over blocks is straight-line code the compiler
/// can vectorise.
#[inline(always)]
pub(crate) fn unpack_row(ty: QuantType, row: &[u8], out: &mut [i8]) {
    let (bb, be) = (ty.block_bytes(), ty.block_elems());
    let blocks = row.chunks_exact(bb).zip(out.chunks_exact_mut(be));
    match ty {
        // The bytes are the i8 values already: one 32-byte copy per block (a loop of `as i8`
        // compiled to a byte-at-a-time copy, which made Q8_0 slower than f32).
        QuantType::Q8_0 => blocks.for_each(|(b, y)| y.copy_from_slice(bytemuck::cast_slice(&b[2..34]))),
        QuantType::Q4_0 => blocks.for_each(|(b, y)| nibbles(&b[2..18], [0; 32], -8, y)),
        QuantType::Q4_1 => blocks.for_each(|(b, y)| nibbles(&b[4..20], [0; 32], 0, y)),
        QuantType::Q5_0 => blocks.for_each(|(b, y)| nibbles(&b[6..22], fifth_bits(&b[2..6]), -16, y)),
        QuantType::Q5_1 => blocks.for_each(|(b, y)| nibbles(&b[8..24], fifth_bits(&b[4..8]), 0, y)),
        QuantType::Q4K => blocks.for_each(|(b, y)| k_nibbles(&b[16..144], None, y)),
        QuantType::Q5K => blocks.for_each(|(b, y)| k_nibbles(&b[48..176], Some(&b[16..48]), y)),
        QuantType::Q6K => blocks.for_each(|(b, y)| q6k(b, y)),
    }
}

/// The fifth bit of each value of a 5-bit legacy block, as 0 or 16.
#[inline(always)]
fn fifth_bits(qh: &[u8]) -> [u8; 32] {
    let qh = u32::from_le_bytes([qh[0], qh[1], qh[2], qh[3]]);
    std::array::from_fn(|j| (((qh >> j) & 1) << 4) as u8)
}

/// A legacy block: value `j < 16` is the low nibble of byte `j`, value `j + 16` its high one.
#[inline(always)]
fn nibbles(qs: &[u8], high: [u8; 32], offset: i8, y: &mut [i8]) {
    let (lo, hi) = y.split_at_mut(16);
    for j in 0..16 {
        lo[j] = ((qs[j] & 0x0F) | high[j]) as i8 + offset;
        hi[j] = ((qs[j] >> 4) | high[j + 16]) as i8 + offset;
    }
}

/// Q4_K / Q5_K: chunk `c` of 32 bytes holds sub-block `2c` (low nibbles) and `2c+1` (high).
#[inline(always)]
fn k_nibbles(qs: &[u8], qh: Option<&[u8]>, y: &mut [i8]) {
    for c in 0..4 {
        let q = &qs[32 * c..32 * c + 32];
        let (lo, hi) = y[64 * c..64 * c + 64].split_at_mut(32);
        for l in 0..32 {
            let (h0, h1) = match qh {
                Some(qh) => (((qh[l] >> (2 * c)) & 1) << 4, ((qh[l] >> (2 * c + 1)) & 1) << 4),
                None => (0, 0),
            };
            lo[l] = ((q[l] & 0x0F) | h0) as i8;
            hi[l] = ((q[l] >> 4) | h1) as i8;
        }
    }
}

/// Q6_K: two halves of 128 values, four quarters of 32 from `ql`'s nibbles and `qh`'s bit pairs.
#[inline(always)]
fn q6k(b: &[u8], y: &mut [i8]) {
    for h in 0..2 {
        let ql = &b[64 * h..64 * h + 64];
        let qh = &b[128 + 32 * h..128 + 32 * h + 32];
        let y = &mut y[128 * h..128 * h + 128];
        for l in 0..32 {
            y[l] = ((ql[l] & 0x0F) | ((qh[l] & 3) << 4)) as i8 - 32;
            y[l + 32] = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) as i8 - 32;
            y[l + 64] = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8 - 32;
            y[l + 96] = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8 - 32;
        }
    }
}

/// A legacy-type row's dot product from each block's integer sum `isum(b)` (`Σ w_q · x_q` over
/// its 32 values), whichever kernel formed the sums (the unpack route's `g` or
/// `super::fused`). The blocks' terms go into eight running sums, block `b` into lane `b mod 8`,
/// which [`reduce8`] adds in a fixed tree: the order a SIMD kernel with one 8-lane
/// accumulator keeps (`fused.rs`), so every path gives the same bits while no path waits on
/// one scalar add per block.
#[inline(always)]
pub(crate) fn combine_legacy(ty: QuantType, row: &[u8], act: &ActBlocks, isum: impl Fn(usize) -> i32) -> f32 {
    let mut lanes = [0.0f32; 8];
    for (i, b) in row.chunks_exact(ty.block_bytes()).enumerate() {
        lanes[i % 8] += legacy_term(ty, b, act, i, isum(i));
    }
    reduce8(lanes)
}

/// Block `i`'s term: `(dw·dx)·isum`, plus `m·(dx·Σ x_q)` for the types with a minimum.
#[inline(always)]
pub(crate) fn legacy_term(ty: QuantType, b: &[u8], act: &ActBlocks, i: usize, isum: i32) -> f32 {
    let dx = act.d[i];
    let t = (f16_at(b, 0) * dx) * isum as f32;
    match ty {
        QuantType::Q4_1 | QuantType::Q5_1 => t + f16_at(b, 2) * (dx * act.sum32(i) as f32),
        _ => t,
    }
}

/// `((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7))`: the one order every path sums lanes in.
#[inline(always)]
pub(crate) fn reduce8(l: [f32; 8]) -> f32 {
    ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]))
}

/// The row's dot product from its 16-value integer sums `g` (see the module docs).
#[inline(always)]
pub(crate) fn combine_row(ty: QuantType, row: &[u8], act: &ActBlocks, g: &[i32]) -> f32 {
    let blocks = row.chunks_exact(ty.block_bytes()).enumerate();
    let mut acc = 0.0f32;
    match ty {
        QuantType::Q8_0 | QuantType::Q4_0 | QuantType::Q5_0 | QuantType::Q4_1 | QuantType::Q5_1 => {
            return combine_legacy(ty, row, act, |i| g[2 * i] + g[2 * i + 1]);
        }
        QuantType::Q4K | QuantType::Q5K => blocks.for_each(|(i, b)| {
            let (g, s) = (&g[16 * i..16 * i + 16], &act.sums16[16 * i..16 * i + 16]);
            let (mut isc, mut imn) = (0i32, 0i32);
            for j in 0..8 {
                let (sc, mn) = scale_min(j, &b[4..16]);
                isc += sc * (g[2 * j] + g[2 * j + 1]);
                imn += mn * (s[2 * j] + s[2 * j + 1]);
            }
            let dx = act.d[i];
            acc += (dx * f16_at(b, 0)) * isc as f32 - (dx * f16_at(b, 2)) * imn as f32;
        }),
        QuantType::Q6K => blocks.for_each(|(i, b)| {
            let g = &g[16 * i..16 * i + 16];
            let isum: i32 = (0..16).map(|t| b[192 + t] as i8 as i32 * g[t]).sum();
            acc += (act.d[i] * f16_at(b, 208)) * isum as f32;
        }),
    }
    acc
}

#[cfg(test)]
mod tests {
    #[test]
    fn f16_at_widens_every_f16_as_half_does() {
        for h in 0..=u16::MAX {
            let want = half::f16::from_bits(h).to_f32();
            let got = super::f16_at(&h.to_le_bytes(), 0);
            assert!(got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()), "{h:#06x}: {got} vs {want}");
        }
    }
}
