//! The 32-value block formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0): one block to 32 f32 and back.
//!
//! Every block starts with its little-endian f16 scale `d` (and, for the `_1` types, an f16
//! offset `m`). Element `j` of a block is `j` in `0..16` for the low nibble of byte `j` of
//! `qs` and `j + 16` for its high nibble: the two halves of the block, not neighbours, share
//! a byte. The 5-bit types keep the fifth bit of element `j` in bit `j` of the u32 `qh`.
//!
//! ```text
//! Q4_0 (18 bytes)  | d: f16 | qs[16]: lo nibble = q[j] + 8, hi nibble = q[j+16] + 8 |
//!                    value = d · q,           q in -8..=7
//! Q4_1 (20 bytes)  | d: f16 | m: f16 | qs[16]: lo = q[j], hi = q[j+16] |
//!                    value = d · q + m,       q in 0..=15
//! Q5_0 (22 bytes)  | d: f16 | qh: u32 (bit j = bit 4 of element j) | qs[16] as Q4_1 |
//!                    value = d · (q - 16),    stored q in 0..=31
//! Q5_1 (24 bytes)  | d: f16 | m: f16 | qh: u32 | qs[16] |
//!                    value = d · q + m,       q in 0..=31
//! Q8_0 (34 bytes)  | d: f16 | qs[32]: i8 |
//!                    value = d · q,           q in -128..=127 (the quantizer writes -127..=127)
//! ```
//!
//! The products are written as llama.cpp's C reference evaluates them in f32, operand by
//! operand (`q as f32 * d`, then `+ m`, never fused), so the results are bit-identical.

use super::f16_at;

/// Values per block of every type in this file.
pub(crate) const QK: usize = 32;

/// Q4_0: `d · (nibble - 8)`.
pub(crate) fn dequantize_q4_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let qs = &b[2..18];
    let (lo, hi) = y.split_at_mut(QK / 2);
    for j in 0..QK / 2 {
        lo[j] = ((qs[j] & 0x0F) as i32 - 8) as f32 * d;
        hi[j] = ((qs[j] >> 4) as i32 - 8) as f32 * d;
    }
}

/// Q4_1: `d · nibble + m`.
pub(crate) fn dequantize_q4_1(b: &[u8], y: &mut [f32]) {
    let (d, m) = (f16_at(b, 0), f16_at(b, 2));
    let qs = &b[4..20];
    let (lo, hi) = y.split_at_mut(QK / 2);
    for j in 0..QK / 2 {
        lo[j] = (qs[j] & 0x0F) as f32 * d + m;
        hi[j] = (qs[j] >> 4) as f32 * d + m;
    }
}

/// The fifth bits of a 5-bit block, as `0` or `16` per element.
fn high_bits(qh: u32) -> [u8; QK] {
    let mut h = [0u8; QK];
    for (j, h) in h.iter_mut().enumerate() {
        *h = (((qh >> j) & 1) << 4) as u8;
    }
    h
}

/// Q5_0: `d · (q - 16)` with `q` = nibble | fifth bit.
pub(crate) fn dequantize_q5_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let h = high_bits(u32::from_le_bytes([b[2], b[3], b[4], b[5]]));
    let qs = &b[6..22];
    let (lo, hi) = y.split_at_mut(QK / 2);
    for j in 0..QK / 2 {
        lo[j] = (((qs[j] & 0x0F) | h[j]) as i32 - 16) as f32 * d;
        hi[j] = (((qs[j] >> 4) | h[j + 16]) as i32 - 16) as f32 * d;
    }
}

/// Q5_1: `d · q + m` with `q` = nibble | fifth bit.
pub(crate) fn dequantize_q5_1(b: &[u8], y: &mut [f32]) {
    let (d, m) = (f16_at(b, 0), f16_at(b, 2));
    let h = high_bits(u32::from_le_bytes([b[4], b[5], b[6], b[7]]));
    let qs = &b[8..24];
    let (lo, hi) = y.split_at_mut(QK / 2);
    for j in 0..QK / 2 {
        lo[j] = ((qs[j] & 0x0F) | h[j]) as f32 * d + m;
        hi[j] = ((qs[j] >> 4) | h[j + 16]) as f32 * d + m;
    }
}

/// Q8_0: `d · q`.
pub(crate) fn dequantize_q8_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    for (y, &q) in y.iter_mut().zip(&b[2..34]) {
        *y = q as i8 as f32 * d;
    }
}

/// `(int8_t)x` for an f32 `x` as llama.cpp's x86-64 build evaluates it: truncate toward zero
/// to i32 (`cvttss2si`, which gives `i32::MIN` for NaN and out-of-range values), then keep the
/// low byte. C leaves out-of-range conversions undefined; this is what the reference does.
/// Rust's saturating `as i8` differs once a scale's reciprocal overflows to infinity (inputs
/// of magnitude below about 1e-37).
#[inline(always)]
pub(crate) fn c_f32_to_i8(x: f32) -> i8 {
    let i = if (-2147483648.0..2147483648.0).contains(&x) { x as i32 } else { i32::MIN };
    i as i8
}

/// The reciprocal the reference scales by: `1 / d`, or 0 for a zero scale.
#[inline(always)]
fn inverse(d: f32) -> f32 {
    if d != 0.0 {
        1.0 / d
    } else {
        0.0
    }
}

/// The value of largest magnitude (the first one, on ties), signed: the symmetric types map
/// it to their most negative code so the other side gets one code more of resolution.
fn signed_absmax(x: &[f32]) -> f32 {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    max
}

/// `(min, max)` of a block, as the reference's `v < min` / `v > max` scan.
fn min_max(x: &[f32]) -> (f32, f32) {
    let (mut min, mut max) = (f32::MAX, -f32::MAX);
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

fn put_f16(b: &mut [u8], at: usize, v: f32) {
    b[at..at + 2].copy_from_slice(&half::f16::from_f32(v).to_le_bytes());
}

/// Q4_0 (`quantize_row_q4_0_ref`): `d = max / -8`, `q = min(15, trunc(x / d + 8.5))`.
pub(crate) fn quantize_q4_0(x: &[f32], b: &mut [u8]) {
    let d = signed_absmax(x) / -8.0;
    let id = inverse(d);
    put_f16(b, 0, d);
    for j in 0..QK / 2 {
        let q0 = (c_f32_to_i8(x[j] * id + 8.5) as i32).min(15) as u8;
        let q1 = (c_f32_to_i8(x[j + 16] * id + 8.5) as i32).min(15) as u8;
        b[2 + j] = q0 | (q1 << 4);
    }
}

/// Q4_1 (`quantize_row_q4_1_ref`): `d = (max - min) / 15`, `m = min`,
/// `q = min(15, trunc((x - min) / d + 0.5))`.
pub(crate) fn quantize_q4_1(x: &[f32], b: &mut [u8]) {
    let (min, max) = min_max(x);
    let d = (max - min) / 15.0;
    let id = inverse(d);
    put_f16(b, 0, d);
    put_f16(b, 2, min);
    for j in 0..QK / 2 {
        let q0 = (c_f32_to_i8((x[j] - min) * id + 0.5) as i32).min(15) as u8;
        let q1 = (c_f32_to_i8((x[j + 16] - min) * id + 0.5) as i32).min(15) as u8;
        b[4 + j] = q0 | (q1 << 4);
    }
}

/// Q5_0 (`quantize_row_q5_0_ref`): `d = max / -16`, `q = min(31, trunc(x / d + 16.5))`.
pub(crate) fn quantize_q5_0(x: &[f32], b: &mut [u8]) {
    let d = signed_absmax(x) / -16.0;
    let id = inverse(d);
    put_f16(b, 0, d);
    let mut qh = 0u32;
    for j in 0..QK / 2 {
        let q0 = (c_f32_to_i8(x[j] * id + 16.5) as i32).min(31) as u8;
        let q1 = (c_f32_to_i8(x[j + 16] * id + 16.5) as i32).min(31) as u8;
        b[6 + j] = (q0 & 0x0F) | ((q1 & 0x0F) << 4);
        qh |= (((q0 & 0x10) >> 4) as u32) << j;
        qh |= (((q1 & 0x10) >> 4) as u32) << (j + 16);
    }
    b[2..6].copy_from_slice(&qh.to_le_bytes());
}

/// Q5_1 (`quantize_row_q5_1_ref`): `d = (max - min) / 31`, `m = min`,
/// `q = trunc((x - min) / d + 0.5)` (no clamp in the reference: 31 is the largest it reaches).
pub(crate) fn quantize_q5_1(x: &[f32], b: &mut [u8]) {
    let (min, max) = min_max(x);
    let d = (max - min) / 31.0;
    let id = inverse(d);
    put_f16(b, 0, d);
    put_f16(b, 2, min);
    let mut qh = 0u32;
    for j in 0..QK / 2 {
        let q0 = c_f32_to_i8((x[j] - min) * id + 0.5) as u8;
        let q1 = c_f32_to_i8((x[j + 16] - min) * id + 0.5) as u8;
        b[8 + j] = (q0 & 0x0F) | ((q1 & 0x0F) << 4);
        qh |= (((q0 & 0x10) >> 4) as u32) << j;
        qh |= (((q1 & 0x10) >> 4) as u32) << (j + 16);
    }
    b[4..8].copy_from_slice(&qh.to_le_bytes());
}

/// Q8_0 (`quantize_row_q8_0_ref`): `d = amax / 127`, `q = round(x / d)` (half away from 0).
pub(crate) fn quantize_q8_0(x: &[f32], b: &mut [u8]) {
    let amax = x.iter().fold(0.0f32, |a, &v| if a > v.abs() { a } else { v.abs() });
    let d = amax / 127.0;
    let id = inverse(d);
    put_f16(b, 0, d);
    for (q, &v) in b[2..34].iter_mut().zip(x) {
        *q = c_f32_to_i8((v * id).round()) as u8;
    }
}
