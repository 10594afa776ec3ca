//! Storage: the flat buffer behind one or more tensors. One enum, one `match` per kernel call,
//! so nothing above this crate is generic over a backend or an element type.

use crate::dtype::{DType, Element};
use crate::quant::QuantType;
use crate::Device;
use half::{bf16, f16};

/// A host buffer of one element type.
#[derive(Clone, Debug)]
pub enum CpuStorage {
    F32(Vec<f32>),
    F16(Vec<f16>),
    BF16(Vec<bf16>),
    I32(Vec<i32>),
    /// Whole blocks of `ty` (see [`crate::quant`]), rows one after another.
    Quant {
        ty: QuantType,
        bytes: Vec<u8>,
    },
}

impl CpuStorage {
    pub fn dtype(&self) -> DType {
        match self {
            CpuStorage::F32(_) => DType::F32,
            CpuStorage::F16(_) => DType::F16,
            CpuStorage::BF16(_) => DType::BF16,
            CpuStorage::I32(_) => DType::I32,
            CpuStorage::Quant { ty, .. } => DType::Quant(*ty),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            CpuStorage::F32(v) => v.len(),
            CpuStorage::F16(v) => v.len(),
            CpuStorage::BF16(v) => v.len(),
            CpuStorage::I32(v) => v.len(),
            CpuStorage::Quant { ty, bytes } => bytes.len() / ty.block_bytes() * ty.block_elems(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The buffer as `&[T]` when `T` is its element type.
    pub fn as_slice<T: Element>(&self) -> Option<&[T]> {
        (T::DTYPE == self.dtype()).then(|| bytemuck::cast_slice(self.as_bytes()))
    }

    /// The raw little-endian bytes (for safetensors and device uploads).
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            CpuStorage::F32(v) => bytemuck::cast_slice(v),
            CpuStorage::F16(v) => bytemuck::cast_slice(v),
            CpuStorage::BF16(v) => bytemuck::cast_slice(v),
            CpuStorage::I32(v) => bytemuck::cast_slice(v),
            CpuStorage::Quant { bytes, .. } => bytes,
        }
    }
}

/// Large f32 buffers go back to [`crate::cpu::pool`] for the next op's output.
impl Drop for CpuStorage {
    fn drop(&mut self) {
        if let CpuStorage::F32(v) = self {
            crate::cpu::pool::give_back(std::mem::take(v));
        }
    }
}

/// Wraps a typed vector in the matching storage variant.
pub trait IntoStorage: Element {
    fn into_storage(data: Vec<Self>) -> CpuStorage;
}

impl IntoStorage for f32 {
    fn into_storage(data: Vec<Self>) -> CpuStorage {
        CpuStorage::F32(data)
    }
}

impl IntoStorage for f16 {
    fn into_storage(data: Vec<Self>) -> CpuStorage {
        CpuStorage::F16(data)
    }
}

impl IntoStorage for bf16 {
    fn into_storage(data: Vec<Self>) -> CpuStorage {
        CpuStorage::BF16(data)
    }
}

impl IntoStorage for i32 {
    fn into_storage(data: Vec<Self>) -> CpuStorage {
        CpuStorage::I32(data)
    }
}

/// A buffer on some device: what each op matches on to pick its backend.
#[derive(Debug)]
pub(crate) enum Storage {
    Cpu(CpuStorage),
    #[cfg(feature = "gpu")]
    Gpu(GpuStorage),
}

impl Storage {
    pub(crate) fn device(&self) -> Device {
        match self {
            Storage::Cpu(_) => Device::Cpu,
            #[cfg(feature = "gpu")]
            Storage::Gpu(s) => Device::Gpu(s.ctx.clone()),
        }
    }

    pub(crate) fn dtype(&self) -> DType {
        match self {
            Storage::Cpu(s) => s.dtype(),
            #[cfg(feature = "gpu")]
            Storage::Gpu(s) => s.dtype,
        }
    }
}

/// A device buffer and the context that owns it. f32 and i32 take one 32-bit word per
/// element; f16 and bf16 are packed two per word (element `2w` in the low half of word `w`),
/// the byte layout of a host `[f16]`, so uploads and read-backs copy bytes unchanged; quantized
/// blocks keep their host bytes too (padded to a whole word at the end).
#[cfg(feature = "gpu")]
#[derive(Clone, Debug)]
pub(crate) struct GpuStorage {
    pub(crate) ctx: crate::gpu::GpuContext,
    pub(crate) buffer: crate::gpu::GpuBuffer,
    pub(crate) dtype: DType,
    /// Elements held (the buffer may be larger: the pool rounds sizes up).
    pub(crate) len: usize,
}

#[cfg(feature = "gpu")]
impl GpuStorage {
    /// Uploads the little-endian bytes of `len` elements of `dtype`.
    pub(crate) fn upload(
        ctx: &crate::gpu::GpuContext,
        bytes: &[u8],
        dtype: DType,
        len: usize,
    ) -> Result<GpuStorage, crate::gpu::GpuError> {
        debug_assert_eq!(bytes.len(), dtype.bytes_for(len));
        let buffer = ctx.upload(bytes)?;
        Ok(GpuStorage { ctx: ctx.clone(), buffer, dtype, len })
    }

    /// Copies the first `len` elements back into host memory (waits for the queue).
    pub(crate) fn download(&self, len: usize) -> Result<CpuStorage, crate::gpu::GpuError> {
        assert!(len <= self.len, "download of {len} elements from a buffer of {}", self.len);
        Ok(match self.dtype {
            DType::F32 => CpuStorage::F32(self.ctx.read_back(&self.buffer, len)?),
            DType::I32 => CpuStorage::I32(self.ctx.read_back(&self.buffer, len)?),
            DType::F16 => CpuStorage::F16(self.ctx.read_back(&self.buffer, len)?),
            DType::BF16 => CpuStorage::BF16(self.ctx.read_back(&self.buffer, len)?),
            DType::Quant(ty) => {
                let whole = len.next_multiple_of(ty.block_elems()).min(self.len);
                CpuStorage::Quant { ty, bytes: self.ctx.read_back(&self.buffer, self.dtype.bytes_for(whole))? }
            }
        })
    }
}
