//! The 256-value super-block formats (Q4_K, Q5_K, Q6_K): layouts, scale packing, dequantize.
//!
//! ```text
//! Q4_K (144 bytes) | d: f16 | dmin: f16 | scales[12] | qs[128] |
//! Q5_K (176 bytes) | d: f16 | dmin: f16 | scales[12] | qh[32] | qs[128] |
//!   8 sub-blocks of 32; sub-block s has a 6-bit scale sc[s] and a 6-bit min mn[s]:
//!   value = (d · sc[s]) · q - (dmin · mn[s]),  q in 0..=15 (Q4_K) or 0..=31 (Q5_K)
//!
//!   scales[12], 6 bits each, packed:            bits 7..6          bits 5..0
//!     bytes 0..4   (s = 0..3)  sc[s]            high 2 bits of sc[s+4] | sc[s]
//!     bytes 4..8   (s = 0..3)  mn[s]            high 2 bits of mn[s+4] | mn[s]
//!     bytes 8..12  (s = 4..7)  lo nibble = low 4 bits of sc[s], hi nibble = low 4 bits of mn[s]
//!
//!   qs: 4 chunks of 32 bytes; chunk c holds sub-block 2c in its low nibbles and sub-block
//!   2c+1 in its high nibbles (element l of each sub-block in byte l of the chunk).
//!   qh (Q5_K): bit 2c of qh[l] is the fifth bit of element l of sub-block 2c, bit 2c+1 that
//!   of sub-block 2c+1.
//!
//! Q6_K (210 bytes) | ql[128] | qh[64] | scales[16]: i8 | d: f16 |
//!   16 sub-blocks of 16: value = (d · scales[s]) · (q - 32),  q in 0..=63
//!   two halves of 128 values; half h uses ql[64h..64h+64], qh[32h..32h+32], and for l in 0..32:
//!     element l      : lo nibble of ql[l]      | bits 1..0 of qh[l] << 4
//!     element l + 32 : lo nibble of ql[l + 32] | bits 3..2 of qh[l] << 4
//!     element l + 64 : hi nibble of ql[l]      | bits 5..4 of qh[l] << 4
//!     element l + 96 : hi nibble of ql[l + 32] | bits 7..6 of qh[l] << 4
//! ```
//!
//! As in llama.cpp, the per-sub-block factors `d · sc` and `dmin · mn` are rounded to f32
//! first, then multiplied by `q`; the final subtraction is not fused.

use super::f16_at;

/// Values per super-block.
pub const QK_K: usize = 256;

/// Sub-block `j`'s 6-bit `(scale, min)` from the 12 packed `scales` bytes of a Q4_K or Q5_K
/// block (see the module doc), as llama.cpp's `get_scale_min_k4`.
///
/// ```
/// use deltaw_tensor::quant::kquants::scale_min_k4;
/// // Sub-block 5: low nibbles in byte 9, high two bits in the top of bytes 1 (scale) and 5 (min).
/// let mut s = [0u8; 12];
/// s[9] = 0x2A; // scale low 4 bits 0xA, min low 4 bits 0x2
/// s[1] = 0b11 << 6; // scale bits 5..4
/// s[5] = 0b01 << 6; // min bits 5..4
/// assert_eq!(scale_min_k4(5, &s), (0x3A, 0x12));
/// ```
///
/// # Panics
/// If `j ≥ 8` or `q` is shorter than 12 bytes.
pub fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        ((q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
    }
}

/// Writes 6-bit `(scale, min)` pairs into the 12-byte packing [`scale_min_k4`] reads.
pub(crate) fn pack_scale_min_k4(ls: &[u8; 8], lm: &[u8; 8]) -> [u8; 12] {
    let mut s = [0u8; 12];
    for j in 0..8 {
        if j < 4 {
            s[j] = ls[j];
            s[j + 4] = lm[j];
        } else {
            s[j + 4] = (ls[j] & 0x0F) | ((lm[j] & 0x0F) << 4);
            s[j - 4] |= (ls[j] >> 4) << 6;
            s[j] |= (lm[j] >> 4) << 6;
        }
    }
    s
}

/// Q4_K: 8 sub-blocks of 32, `d1 · q - m1`.
pub(crate) fn dequantize_q4_k(b: &[u8], y: &mut [f32]) {
    let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
    let scales = &b[4..16];
    let qs = &b[16..144];
    for c in 0..4 {
        let q = &qs[32 * c..32 * c + 32];
        let (sc0, m0) = scale_min_k4(2 * c, scales);
        let (sc1, m1) = scale_min_k4(2 * c + 1, scales);
        let (d0, mn0) = (d * sc0 as f32, dmin * m0 as f32);
        let (d1, mn1) = (d * sc1 as f32, dmin * m1 as f32);
        let (lo, hi) = y[64 * c..64 * c + 64].split_at_mut(32);
        for l in 0..32 {
            lo[l] = d0 * (q[l] & 0x0F) as f32 - mn0;
            hi[l] = d1 * (q[l] >> 4) as f32 - mn1;
        }
    }
}

/// Q5_K: as Q4_K with a fifth bit per value from `qh`.
pub(crate) fn dequantize_q5_k(b: &[u8], y: &mut [f32]) {
    let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
    let scales = &b[4..16];
    let qh = &b[16..48];
    let qs = &b[48..176];
    for c in 0..4 {
        let q = &qs[32 * c..32 * c + 32];
        let (sc0, m0) = scale_min_k4(2 * c, scales);
        let (sc1, m1) = scale_min_k4(2 * c + 1, scales);
        let (d0, mn0) = (d * sc0 as f32, dmin * m0 as f32);
        let (d1, mn1) = (d * sc1 as f32, dmin * m1 as f32);
        let (lo, hi) = y[64 * c..64 * c + 64].split_at_mut(32);
        for l in 0..32 {
            let h0 = ((qh[l] >> (2 * c)) & 1) << 4;
            let h1 = ((qh[l] >> (2 * c + 1)) & 1) << 4;
            lo[l] = d0 * ((q[l] & 0x0F) | h0) as f32 - mn0;
            hi[l] = d1 * ((q[l] >> 4) | h1) as f32 - mn1;
        }
    }
}

/// Q6_K: 16 sub-blocks of 16, `(d · scale) · (q - 32)`.
pub(crate) fn dequantize_q6_k(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 208);
    for h in 0..2 {
        let ql = &b[64 * h..64 * h + 64];
        let qh = &b[128 + 32 * h..128 + 32 * h + 32];
        let sc = &b[192 + 8 * h..192 + 8 * h + 8];
        let y = &mut y[128 * h..128 * h + 128];
        // The scale of element l of each quarter: sub-block l / 16 of that quarter.
        let ds: [f32; 8] = std::array::from_fn(|s| d * sc[s] as i8 as f32);
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 0x0F) | ((qh[l] & 3) << 4)) as i32 - 32;
            let q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
            let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
            y[l] = ds[is] * q1 as f32;
            y[l + 32] = ds[is + 2] * q2 as f32;
            y[l + 64] = ds[is + 4] * q3 as f32;
            y[l + 96] = ds[is + 6] * q4 as f32;
        }
    }
}
