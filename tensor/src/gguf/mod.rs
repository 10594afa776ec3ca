//! Reading and writing GGUF files (llama.cpp's model format), versions 2 and 3.
//!
//! A GGUF file is, all little-endian:
//! ```text
//! "GGUF"  u32 version  u64 tensor_count  u64 kv_count
//! kv_count × (string key, u32 value type, value)          metadata
//! tensor_count × (string name, u32 n_dims, n_dims × u64 ne, u32 ggml type, u64 offset)
//! padding to `general.alignment` (default 32)
//! data section: each tensor at its offset, a multiple of the alignment
//! ```
//! A string is a u64 byte length and UTF-8 bytes; an array is a u32 element type, a u64
//! count and the elements (arrays may nest). Version 1 used u32 counts and lengths and is
//! refused; so are big-endian files (a version that reads as 2 or 3 only byte-swapped).
//!
//! Dimensions are ggml's: `ne[0]` varies fastest, so a PyTorch `(rows, cols)` weight is stored
//! with `ne = [cols, rows]`. [`GgufTensorInfo::shape`] is the row-major (PyTorch) shape, the
//! reverse of `ne`; a quantized tensor's blocks run along its last (row-major) dim.
//!
//! [`GgufFile::open`] parses the header, metadata and tensor infos eagerly, checking every
//! count and length against the bytes left in the file before allocating for it; tensor data
//! is read on demand, one tensor at a time (seek and read), so a multi-GB file is never read
//! whole. [`GgufWriter`] writes version 3 atomically, laid out byte for byte as the Python
//! `gguf` package lays out the same content.
//!
//! ```
//! use deltaw_tensor::gguf::{GgufFile, GgufValue, GgufWriter};
//! use deltaw_tensor::{Device, Tensor};
//! let dir = std::env::temp_dir().join(format!("deltaw-doc-gguf-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let path = dir.join("tiny.gguf");
//! let w = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], (2, 3), &Device::Cpu)?;
//! let mut writer = GgufWriter::new();
//! writer.add_metadata("llama.block_count", GgufValue::U32(2))?;
//! writer.add_tensor("w", &w)?;
//! writer.write(&path)?;
//!
//! let file = GgufFile::open(&path)?;
//! assert_eq!(file.metadata().get_u32("llama.block_count")?, 2);
//! assert!(file.metadata().get_str("llama.block_count").is_err()); // names both types
//! assert_eq!(file.tensor_info("w").unwrap().shape, [2, 3]); // stored as ne = [3, 2]
//! assert_eq!(file.tensor("w", &Device::Cpu)?.to_vec(), w.to_vec());
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod read;
mod value;
mod write;

pub use read::GgufFile;
pub use value::{GgufMetadata, GgufValue, GgufValueType};
pub use write::GgufWriter;

use crate::QuantType;
use std::fmt;

/// The file's first four bytes.
pub const MAGIC: [u8; 4] = *b"GGUF";
/// The version [`GgufWriter`] writes.
pub const VERSION: u32 = 3;
/// The data alignment when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u32 = 32;
/// The metadata key that sets the alignment (a UINT32 power of two).
pub const ALIGNMENT_KEY: &str = "general.alignment";
/// ggml's limit on a tensor's dimensions (`GGML_MAX_DIMS`).
pub const MAX_DIMS: usize = 4;

/// The storage type of a tensor in a GGUF file: the ggml types deltaw reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GgufType {
    F32,
    F16,
    BF16,
    Quant(QuantType),
}

impl GgufType {
    /// The ggml type id (`ggml_type`): F32 0, F16 1, BF16 30, the quant types theirs.
    pub fn ggml_id(self) -> u32 {
        match self {
            GgufType::F32 => 0,
            GgufType::F16 => 1,
            GgufType::BF16 => 30,
            GgufType::Quant(q) => q.ggml_id(),
        }
    }

    /// The type with ggml id `id`, if deltaw reads it.
    pub fn from_ggml_id(id: u32) -> Option<GgufType> {
        match id {
            0 => Some(GgufType::F32),
            1 => Some(GgufType::F16),
            30 => Some(GgufType::BF16),
            _ => QuantType::from_ggml_id(id).map(GgufType::Quant),
        }
    }

    /// Every supported type, for messages: `F32 (0), F16 (1), BF16 (30), q4_0 (2), ...`.
    pub fn supported() -> String {
        let plain = [GgufType::F32, GgufType::F16, GgufType::BF16].into_iter();
        let all = plain.chain(QuantType::ALL.into_iter().map(GgufType::Quant));
        all.map(|t| format!("{t} ({})", t.ggml_id())).collect::<Vec<_>>().join(", ")
    }

    /// Bytes holding `n` values (the last dim being `last`), or `None` when `last` is not a
    /// whole number of blocks or the size overflows.
    pub fn bytes_for(self, n: usize, last: usize) -> Option<usize> {
        match self {
            GgufType::F32 => n.checked_mul(4),
            GgufType::F16 | GgufType::BF16 => n.checked_mul(2),
            GgufType::Quant(q) if last.is_multiple_of(q.block_elems()) => {
                (n / q.block_elems()).checked_mul(q.block_bytes())
            }
            GgufType::Quant(_) => None,
        }
    }
}

impl fmt::Display for GgufType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GgufType::F32 => f.write_str("F32"),
            GgufType::F16 => f.write_str("F16"),
            GgufType::BF16 => f.write_str("BF16"),
            GgufType::Quant(q) => f.write_str(q.name()),
        }
    }
}

/// One tensor's entry in a validated file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GgufTensorInfo {
    pub name: String,
    /// Row-major (PyTorch) shape: the file's `ne` reversed. Every dim is at least 1.
    pub shape: Vec<usize>,
    pub ty: GgufType,
    /// Offset of the first byte from the start of the data section (a multiple of the alignment).
    pub offset: u64,
    /// Bytes the tensor occupies: `numel × 4 or 2`, or whole blocks for a quant type.
    pub n_bytes: u64,
}

impl GgufTensorInfo {
    /// The dims as the file stores them (`ne`: fastest-varying first).
    pub fn ggml_dims(&self) -> Vec<usize> {
        self.shape.iter().rev().copied().collect()
    }

    /// Elements in the tensor.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// `n` rounded up to a multiple of `align` (a power of two), or `None` on overflow.
pub(crate) fn align_up(n: u64, align: u64) -> Option<u64> {
    Some(n.checked_add(align - 1)? & !(align - 1))
}
