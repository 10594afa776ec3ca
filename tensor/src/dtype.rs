//! Element types. Compute is f32; f16 and bf16 are storage types (checkpoints, GPU kernels),
//! i32 holds indices (token ids, targets, argmax results), and the block-quantized types
//! ([`QuantType`]) hold frozen weights in llama.cpp's layouts.

use crate::quant::QuantType;
use half::{bf16, f16};
use std::fmt;

/// The element type of a tensor's storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F16,
    BF16,
    I32,
    /// Blocks of small integers with per-block scales (a weight read from GGUF or quantized
    /// for QLoRA): matmul reads it as the right operand, `to_dtype` converts it, views keep
    /// it; other ops want `to_dtype(DType::F32)` first.
    Quant(QuantType),
}

impl DType {
    /// Bytes per element.
    ///
    /// # Panics
    /// For a quantized type, whose elements have no whole byte size: use
    /// [`DType::bytes_for`].
    #[track_caller]
    pub fn size_in_bytes(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 => 2,
            DType::Quant(t) => panic!("size_in_bytes: {t} stores blocks, not elements; use bytes_for"),
        }
    }

    /// Bytes that hold `n` elements; for a quantized type, the whole blocks they need.
    pub fn bytes_for(self, n: usize) -> usize {
        match self {
            DType::Quant(t) => n.div_ceil(t.block_elems()) * t.block_bytes(),
            _ => n * self.size_in_bytes(),
        }
    }

    /// The block type, for a quantized dtype.
    pub fn quant_type(self) -> Option<QuantType> {
        match self {
            DType::Quant(t) => Some(t),
            _ => None,
        }
    }

    /// The name PyTorch prints (`float32`, `float16`, `bfloat16`, `int32`); PyTorch has no
    /// block-quantized types, so those give llama.cpp's name (`q4_K`).
    pub fn torch_name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::F16 => "float16",
            DType::BF16 => "bfloat16",
            DType::I32 => "int32",
            DType::Quant(t) => t.name(),
        }
    }

    pub fn is_float(self) -> bool {
        !matches!(self, DType::I32)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::I32 => "i32",
            DType::Quant(t) => t.name(),
        };
        f.write_str(name)
    }
}

/// A Rust type that can be a tensor element, with its [`DType`] and an f32 view for printing
/// and conversion.
pub trait Element: Copy + Send + Sync + 'static + fmt::Debug + bytemuck::Pod {
    const DTYPE: DType;
    fn to_f32(self) -> f32;
    fn from_f32(value: f32) -> Self;
}

impl Element for f32 {
    const DTYPE: DType = DType::F32;
    fn to_f32(self) -> f32 {
        self
    }
    fn from_f32(value: f32) -> Self {
        value
    }
}

impl Element for f16 {
    const DTYPE: DType = DType::F16;
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
    fn from_f32(value: f32) -> Self {
        f16::from_f32(value)
    }
}

impl Element for bf16 {
    const DTYPE: DType = DType::BF16;
    fn to_f32(self) -> f32 {
        bf16::to_f32(self)
    }
    fn from_f32(value: f32) -> Self {
        bf16::from_f32(value)
    }
}

impl Element for i32 {
    const DTYPE: DType = DType::I32;
    fn to_f32(self) -> f32 {
        self as f32
    }
    /// Truncates toward zero; callers that must not lose information check first.
    fn from_f32(value: f32) -> Self {
        value as i32
    }
}
