//! Block-quantized weights in llama.cpp's byte layouts (the layouts GGUF files store).
//!
//! A quantized row of `k` values is `k / BLOCK` blocks laid end to end; each block holds one
//! or two f16 scales and `BLOCK` small integers (4, 5, 6 or 8 bits). The value of element `i`
//! of a block is `d · q[i]` (Q8_0, Q4_0, Q5_0, where Q4_0 / Q5_0 store `q + 8` / `q + 16`
//! unsigned) or `d · q[i] + m` (Q4_1, Q5_1). The K-quants group 256 values in a super-block
//! of 8 or 16 sub-blocks, each with its own 6- or 8-bit scale (and minimum) multiplied by the
//! super-block's f16 scales.
//!
//! | type | values / block | bytes / block | bits / value |
//! |------|---------------:|--------------:|-------------:|
//! | Q4_0 | 32  | 18  | 4.5    |
//! | Q4_1 | 32  | 20  | 5.0    |
//! | Q5_0 | 32  | 22  | 5.5    |
//! | Q5_1 | 32  | 24  | 6.0    |
//! | Q8_0 | 32  | 34  | 8.5    |
//! | Q4_K | 256 | 144 | 4.5    |
//! | Q5_K | 256 | 176 | 5.5    |
//! | Q6_K | 256 | 210 | 6.5625 |
//!
//! A tensor stored in one of these types ([`crate::DType::Quant`]) is a weight: its last dim
//! is a whole number of blocks, and the bytes are its rows' blocks in row-major order.

use std::fmt;

mod dequant;
mod kquant_ref;
pub mod kquants;
pub mod legacy;
mod quantize;
#[cfg(test)]
mod round_trip_tests;

pub use dequant::{dequantize, dequantize_rows};
pub use quantize::quantize;

/// The little-endian f16 at byte `at` of a block, widened to f32 (exactly).
#[inline(always)]
fn f16_at(b: &[u8], at: usize) -> f32 {
    half::f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

/// A block-quantized storage type, named as llama.cpp names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QuantType {
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q4K,
    Q5K,
    Q6K,
}

impl QuantType {
    /// Every type, in GGUF type-id order.
    pub const ALL: [QuantType; 8] = [
        QuantType::Q4_0,
        QuantType::Q4_1,
        QuantType::Q5_0,
        QuantType::Q5_1,
        QuantType::Q8_0,
        QuantType::Q4K,
        QuantType::Q5K,
        QuantType::Q6K,
    ];

    /// Values per block: 32, or 256 for the K-quants.
    pub const fn block_elems(self) -> usize {
        match self {
            QuantType::Q4_0 | QuantType::Q4_1 | QuantType::Q5_0 | QuantType::Q5_1 | QuantType::Q8_0 => 32,
            QuantType::Q4K | QuantType::Q5K | QuantType::Q6K => 256,
        }
    }

    /// Bytes per block.
    pub const fn block_bytes(self) -> usize {
        match self {
            QuantType::Q4_0 => 18,
            QuantType::Q4_1 => 20,
            QuantType::Q5_0 => 22,
            QuantType::Q5_1 => 24,
            QuantType::Q8_0 => 34,
            QuantType::Q4K => 144,
            QuantType::Q5K => 176,
            QuantType::Q6K => 210,
        }
    }

    /// Bytes that hold `n` values, or `None` when `n` is not a whole number of blocks.
    pub fn bytes_for(self, n: usize) -> Option<usize> {
        n.is_multiple_of(self.block_elems()).then(|| n / self.block_elems() * self.block_bytes())
    }

    /// The type's id in GGUF files (`ggml_type`).
    pub const fn ggml_id(self) -> u32 {
        match self {
            QuantType::Q4_0 => 2,
            QuantType::Q4_1 => 3,
            QuantType::Q5_0 => 6,
            QuantType::Q5_1 => 7,
            QuantType::Q8_0 => 8,
            QuantType::Q4K => 12,
            QuantType::Q5K => 13,
            QuantType::Q6K => 14,
        }
    }

    /// The type with GGUF id `id`, if deltaw reads it.
    pub fn from_ggml_id(id: u32) -> Option<QuantType> {
        QuantType::ALL.into_iter().find(|t| t.ggml_id() == id)
    }

    /// llama.cpp's name: `q4_0`, `q4_1`, `q5_0`, `q5_1`, `q8_0`, `q4_K`, `q5_K`, `q6_K`.
    pub const fn name(self) -> &'static str {
        match self {
            QuantType::Q4_0 => "q4_0",
            QuantType::Q4_1 => "q4_1",
            QuantType::Q5_0 => "q5_0",
            QuantType::Q5_1 => "q5_1",
            QuantType::Q8_0 => "q8_0",
            QuantType::Q4K => "q4_K",
            QuantType::Q5K => "q5_K",
            QuantType::Q6K => "q6_K",
        }
    }

    /// The type named `name` (as [`QuantType::name`], case-insensitive).
    pub fn from_name(name: &str) -> Option<QuantType> {
        QuantType::ALL.into_iter().find(|t| t.name().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for QuantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_ggml() {
        // ggml's GGML_QUANT_SIZES, as printed by the Python `gguf` package 0.19.0.
        let ggml = [
            (2, 32, 18),
            (3, 32, 20),
            (6, 32, 22),
            (7, 32, 24),
            (8, 32, 34),
            (12, 256, 144),
            (13, 256, 176),
            (14, 256, 210),
        ];
        for (t, (id, elems, bytes)) in QuantType::ALL.into_iter().zip(ggml) {
            assert_eq!((t.ggml_id(), t.block_elems(), t.block_bytes()), (id, elems, bytes), "{t}");
            assert_eq!(QuantType::from_ggml_id(id), Some(t));
            assert_eq!(QuantType::from_name(&t.name().to_uppercase()), Some(t));
        }
        assert_eq!(QuantType::Q4K.bytes_for(512), Some(288));
        assert_eq!(QuantType::Q8_0.bytes_for(33), None);
        assert_eq!(QuantType::from_ggml_id(9), None); // Q8_1: not a storage type here
    }
}
