//! Reading and writing named tensors in the safetensors format (Hugging Face checkpoints).
//!
//! F32, F16 and BF16 load as themselves; I64 (PyTorch's index type) loads as I32, checked so
//! that no index changes; F64 loads as F32 rounded to nearest (as `tensor.float()` does), a
//! finite value past the f32 range being an error rather than a silent ±inf. Writes are atomic: a temp file in the
//! same folder, fsync, then rename, so a crash never leaves a half-written checkpoint.

use crate::error::{Error, Result};
use crate::storage::CpuStorage;
use crate::{DType, Device, Tensor};
use half::{bf16, f16};
use safetensors::tensor::{Dtype as StDtype, TensorView};
use safetensors::SafeTensors;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Named tensors, sorted by name.
pub type TensorMap = BTreeMap<String, Tensor>;

/// Loads every tensor of a `.safetensors` file.
///
/// # Errors
/// When the file cannot be read or parsed, or a tensor has a dtype deltaw cannot hold; the
/// message names the file and the tensor.
pub fn load(path: impl AsRef<Path>, device: &Device) -> Result<TensorMap> {
    Ok(load_with_metadata(path, device)?.0)
}

/// [`load`], plus the file's free-form `__metadata__` string map.
///
/// The file is read tensor by tensor straight into each tensor's buffer, so loading holds the
/// weights once, not the file's bytes beside the decoded tensors.
pub fn load_with_metadata(path: impl AsRef<Path>, device: &Device) -> Result<(TensorMap, HashMap<String, String>)> {
    crate::safetensors_stream::load(path.as_ref(), device, &mut |_, t| Ok(t))
}

/// [`load`], passing each tensor through `map(name, tensor)` as soon as it is read (on the
/// CPU, in its stored dtype) and before the next one is: a loader that converts as it reads
/// (quantizes a frozen base, say) holds only the converted weights plus one tensor as read.
///
/// ```no_run
/// use deltaw_tensor::{safetensors, DType, Device, QuantType};
/// // Every matrix as Q8_0 (rows of whole 32-value blocks), the rest as stored.
/// let weights = safetensors::load_mapped("model.safetensors", &Device::Cpu, &mut |_, t| {
///     if t.rank() == 2 && t.dims()[1] % 32 == 0 { t.to_dtype(DType::Quant(QuantType::Q8_0)) } else { Ok(t) }
/// })?;
/// # Ok::<(), deltaw_tensor::Error>(())
/// ```
///
/// # Errors
/// As [`load`], and whatever `map` returns.
pub fn load_mapped(
    path: impl AsRef<Path>,
    device: &Device,
    map: &mut dyn FnMut(&str, Tensor) -> Result<Tensor>,
) -> Result<TensorMap> {
    Ok(crate::safetensors_stream::load(path.as_ref(), device, map)?.0)
}

pub use crate::safetensors_stream::{read_header, Header, HeaderEntry};

/// Parses safetensors `bytes`; `path` is only used in error messages.
pub fn load_from_bytes(bytes: &[u8], path: &Path, device: &Device) -> Result<(TensorMap, HashMap<String, String>)> {
    let bad = |e: safetensors::SafeTensorError| Error::Safetensors { path: path.into(), message: e.to_string() };
    let (header_len, header) = SafeTensors::read_metadata(bytes).map_err(bad)?;
    let header_json = &bytes[8..8 + header_len]; // read_metadata checked that it is there
    crate::safetensors_stream::check_unique_keys(header_json)
        .map_err(|message| Error::Safetensors { path: path.into(), message })?;
    let metadata = header.metadata().clone().unwrap_or_default();
    let file = SafeTensors::deserialize(bytes).map_err(bad)?;
    let mut tensors = TensorMap::new();
    for (name, view) in file.iter() {
        let storage = decode(&view, path, name)?;
        let tensor = Tensor::from_cpu(storage, view.shape()).to_device(device)?;
        tensors.insert(name.to_string(), tensor);
    }
    Ok((tensors, metadata))
}

/// Converts one stored tensor to our storage, little-endian and possibly unaligned.
fn decode(view: &TensorView<'_>, path: &Path, name: &str) -> Result<CpuStorage> {
    let data = view.data();
    Ok(match view.dtype() {
        StDtype::F32 => CpuStorage::F32(read_le(data)),
        StDtype::F16 => CpuStorage::F16(read_le(data)),
        StDtype::BF16 => CpuStorage::BF16(read_le(data)),
        StDtype::I32 => CpuStorage::I32(read_le(data)),
        StDtype::F64 => decode_wide(data, "F64", path, name)?,
        StDtype::I64 => decode_wide(data, "I64", path, name)?,
        other => {
            return Err(Error::UnsupportedDType { path: path.into(), tensor: name.into(), dtype: format!("{other:?}") })
        }
    })
}

/// F64 → F32 (rounded; a finite value that would become ±inf is an error) and I64 → I32
/// (checked: an index that does not fit is an error, not a wrap).
pub(crate) fn decode_wide(data: &[u8], dtype: &str, path: &Path, name: &str) -> Result<CpuStorage> {
    if dtype == "F64" {
        let wide = read_le::<f64>(data);
        let narrow: Vec<f32> = wide.iter().map(|&x| x as f32).collect();
        if let Some(i) = wide.iter().zip(&narrow).position(|(w, n)| w.is_finite() && n.is_infinite()) {
            return Err(Error::BadTensor {
                tensor: name.into(),
                message: format!("{}: F64 value {} at index {i} is past the f32 range", path.display(), wide[i]),
            });
        }
        return Ok(CpuStorage::F32(narrow));
    }
    let wide = read_le::<i64>(data);
    let narrow = wide.iter().map(|&x| i32::try_from(x)).collect::<std::result::Result<Vec<_>, _>>();
    Ok(CpuStorage::I32(narrow.map_err(|_| Error::BadTensor {
        tensor: name.into(),
        message: format!("{}: an I64 value does not fit in i32", path.display()),
    })?))
}

/// Copies bytes into a typed vector (the file gives no alignment guarantee for a cast).
fn read_le<T: bytemuck::Pod>(bytes: &[u8]) -> Vec<T> {
    bytes.chunks_exact(std::mem::size_of::<T>()).map(bytemuck::pod_read_unaligned).collect()
}

/// A tensor ready to be written: dtype, shape, and its row-major bytes.
struct Entry {
    dtype: StDtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl safetensors::View for &Entry {
    fn dtype(&self) -> StDtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

/// The row-major bytes of `t`, read back first when it lives on a GPU.
fn entry(name: &str, t: &Tensor) -> Result<Entry> {
    let c = t.to_device(&crate::Device::Cpu)?.contiguous();
    let width = c.dtype().size_in_bytes();
    let start = c.layout().offset() * width;
    let bytes = c.cpu_storage().as_bytes()[start..start + c.numel() * width].to_vec();
    let dtype = match c.dtype() {
        DType::F32 => StDtype::F32,
        DType::F16 => StDtype::F16,
        DType::BF16 => StDtype::BF16,
        DType::I32 => StDtype::I32,
        DType::Quant(ty) => {
            return Err(Error::BadTensor {
                tensor: name.to_string(),
                message: format!("{ty} blocks have no safetensors dtype: write GGUF, or to_dtype(F32) first"),
            })
        }
    };
    Ok(Entry { dtype, shape: c.dims().to_vec(), bytes })
}

/// Writes named tensors (any layout; stored row-major in their own dtype) with optional
/// `__metadata__`, atomically.
///
/// ```
/// use deltaw_tensor::{safetensors, Device, Tensor};
/// let dir = std::env::temp_dir().join(format!("deltaw-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("w.safetensors");
/// let w = Tensor::ones((2, 3), &Device::Cpu);
/// safetensors::save([("w", &w)], None, &path)?;
/// assert_eq!(safetensors::load(&path, &Device::Cpu)?["w"].to_vec(), w.to_vec());
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn save<'a, S: AsRef<str>>(
    tensors: impl IntoIterator<Item = (S, &'a Tensor)>,
    metadata: Option<HashMap<String, String>>,
    path: impl AsRef<Path>,
) -> Result<()> {
    let path = path.as_ref();
    let entries: Vec<(String, Entry)> =
        tensors.into_iter().map(|(n, t)| Ok((n.as_ref().to_string(), entry(n.as_ref(), t)?))).collect::<Result<_>>()?;
    let views = entries.iter().map(|(n, e)| (n.as_str(), e));
    let bytes = safetensors::serialize(views, metadata)
        .map_err(|e| Error::Safetensors { path: path.into(), message: e.to_string() })?;
    write_atomic(path, &bytes)
}

/// Writes `bytes` to `path` atomically (temp file, fsync, rename): [`crate::atomic::write_file`],
/// kept under this name for the callers that save checkpoint files.
pub use crate::atomic::write_file as write_atomic;

/// Element type helpers used by tests and loaders that want a specific dtype.
pub fn f16_from_f32(values: &[f32]) -> Vec<f16> {
    values.iter().map(|&v| f16::from_f32(v)).collect()
}

/// See [`f16_from_f32`].
pub fn bf16_from_f32(values: &[f32]) -> Vec<bf16> {
    values.iter().map(|&v| bf16::from_f32(v)).collect()
}
