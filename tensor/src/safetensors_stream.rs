//! Loading a `.safetensors` file tensor by tensor, straight into each tensor's own buffer.
//!
//! Reading the whole file into memory first and decoding from there holds every weight twice
//! at the peak (GPT-2 124M: 2.0× its 498 MB). Here the header is parsed on its own and each
//! tensor's bytes are read from the file directly into its final `Vec` (the element types are
//! plain little-endian data), so the peak is the weights once, plus one small header.

use crate::error::{Error, Result};
use crate::storage::CpuStorage;
use crate::{Device, Tensor};
use half::{bf16, f16};
use serde_json::Value;
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// The largest header accepted (the format's own limit is 100 MB).
const MAX_HEADER: u64 = 100_000_000;

/// One tensor's entry in a validated header: its bytes are `[start, end)` of the data section.
#[derive(Clone, Debug)]
pub struct HeaderEntry {
    pub name: String,
    /// The stored dtype as the file spells it (`"F32"`, `"BF16"`, `"U8"`, ...).
    pub dtype: String,
    pub shape: Vec<usize>,
    pub start: u64,
    pub end: u64,
}

impl HeaderEntry {
    /// Elements in the tensor (the product of its shape, checked when the header was read).
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// A safetensors header checked against its file, as the `safetensors` crate checks it: every
/// size with checked arithmetic, each tensor's bytes equal to `numel × dtype size`, and the
/// tensors tiling the data section exactly (sorted by offset, no gap, no overlap, nothing left
/// over), so no later step can read past the file or allocate from an unchecked number.
#[derive(Clone, Debug)]
pub struct Header {
    /// Sorted by `start`, so reading them in order reads the file front to back.
    pub tensors: Vec<HeaderEntry>,
    pub metadata: HashMap<String, String>,
    /// Offset of the data section in the file: 8 + the header's length.
    pub data_start: u64,
}

/// Reads and validates only the header of a `.safetensors` file (the tensor data is not read).
///
/// # Errors
/// When the file cannot be read, the header is not the format's JSON, or a size or offset in it
/// does not fit the file; the message names the file and the tensor.
pub fn read_header(path: &Path) -> Result<Header> {
    let mut file = File::open(path).map_err(|source| Error::Io { path: path.into(), source })?;
    read_header_from(&mut file, path)
}

fn read_header_from(file: &mut File, path: &Path) -> Result<Header> {
    let io = |source| Error::Io { path: path.into(), source };
    let bad = |message: String| Error::Safetensors { path: path.into(), message };
    let file_len = file.metadata().map_err(io)?.len();
    let mut len = [0u8; 8];
    file.read_exact(&mut len).map_err(|_| bad("shorter than the 8-byte header length".into()))?;
    let header_len = u64::from_le_bytes(len);
    if header_len > MAX_HEADER || header_len > file_len.saturating_sub(8) {
        return Err(bad(format!("header length {header_len} does not fit a file of {file_len} bytes")));
    }
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header).map_err(io)?;
    check_unique_keys(&header).map_err(bad)?;
    let header: Value = serde_json::from_slice(&header).map_err(|e| bad(format!("header is not JSON: {e}")))?;
    let (mut tensors, metadata) = parse_header(&header).map_err(bad)?;
    let data_start = 8 + header_len;
    tensors.sort_by_key(|e| (e.start, e.end));
    check_offsets(&tensors, file_len - data_start).map_err(bad)?;
    Ok(Header { tensors, metadata, data_start })
}

/// The checks the `safetensors` crate makes on offsets: each tensor's `[start, end)` lies in
/// the `data_len` bytes of the data section, begins where the previous one ended, and holds
/// exactly `numel × size` bytes; the last one ends at the end of the file.
fn check_offsets(tensors: &[HeaderEntry], data_len: u64) -> std::result::Result<(), String> {
    let mut cursor = 0u64;
    for e in tensors {
        let name = &e.name;
        if e.start > e.end || e.end > data_len {
            return Err(format!(
                "tensor '{name}': data offsets [{}, {}) exceed the {data_len} data bytes",
                e.start, e.end
            ));
        }
        if e.start != cursor {
            return Err(format!(
                "tensor '{name}': data offsets not contiguous (starts at {}, expected {cursor})",
                e.start
            ));
        }
        let size = dtype_size(&e.dtype).ok_or(format!("tensor '{name}': unknown dtype {}", e.dtype))?;
        let numel = e.shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        let numel = numel.ok_or(format!("tensor '{name}': element count of shape {:?} overflows", e.shape))?;
        let held = e.end - e.start;
        if numel.checked_mul(size).map(|b| b as u64) != Some(held) {
            return Err(format!("tensor '{name}': {held} bytes do not hold {numel} {} values", e.dtype));
        }
        cursor = e.end;
    }
    if cursor != data_len {
        return Err(format!("{} of the {data_len} data bytes are unclaimed by any tensor", data_len - cursor));
    }
    Ok(())
}

/// Bytes per element of each dtype the format defines.
fn dtype_size(dtype: &str) -> Option<usize> {
    Some(match dtype {
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" => 1,
        "I16" | "U16" | "F16" | "BF16" => 2,
        "I32" | "U32" | "F32" => 4,
        "I64" | "U64" | "F64" => 8,
        _ => return None,
    })
}

/// Loads every tensor, passing each (on the CPU, as stored) through `map` before it moves to
/// `device` and the next one is read.
pub(crate) fn load(
    path: &Path,
    device: &Device,
    map: &mut dyn FnMut(&str, Tensor) -> Result<Tensor>,
) -> Result<(super::safetensors::TensorMap, HashMap<String, String>)> {
    let io = |source| Error::Io { path: path.into(), source };
    let mut file = File::open(path).map_err(io)?;
    let header = read_header_from(&mut file, path)?;
    let mut tensors = super::safetensors::TensorMap::new();
    for e in header.tensors {
        file.seek(SeekFrom::Start(header.data_start + e.start)).map_err(io)?;
        let storage = read_storage(&mut file, &e, path)?;
        let tensor = map(&e.name, Tensor::from_cpu(storage, e.shape.clone()))?.to_device(device)?;
        tensors.insert(e.name, tensor);
    }
    Ok((tensors, header.metadata))
}

fn parse_header(header: &Value) -> std::result::Result<(Vec<HeaderEntry>, HashMap<String, String>), String> {
    let object = header.as_object().ok_or("header is not a JSON object")?;
    let mut entries = Vec::new();
    let mut metadata = HashMap::new();
    for (name, info) in object {
        if name == "__metadata__" {
            for (k, v) in info.as_object().ok_or("__metadata__ is not an object")? {
                metadata.insert(k.clone(), v.as_str().ok_or("__metadata__ values must be strings")?.to_string());
            }
            continue;
        }
        let field = |f: &str| info.get(f).ok_or(format!("tensor '{name}' has no '{f}'"));
        let dtype = field("dtype")?.as_str().ok_or(format!("tensor '{name}': dtype is not a string"))?;
        let ints = |v: &Value| -> Option<Vec<u64>> { v.as_array()?.iter().map(Value::as_u64).collect() };
        let shape = ints(field("shape")?).ok_or(format!("tensor '{name}': bad shape"))?;
        let offsets = ints(field("data_offsets")?).filter(|o| o.len() == 2);
        let offsets = offsets.ok_or(format!("tensor '{name}': bad data_offsets"))?;
        let shape = shape.into_iter().map(usize::try_from).collect::<std::result::Result<_, _>>();
        let shape = shape.map_err(|_| format!("tensor '{name}': a dimension does not fit in usize"))?;
        let entry = HeaderEntry { name: name.clone(), dtype: dtype.into(), shape, start: offsets[0], end: offsets[1] };
        entries.push(entry);
    }
    Ok((entries, metadata))
}

/// Reads `bytes` bytes of tensor `e` into its storage: directly into the typed buffer for the
/// dtypes we hold as stored, through a staging buffer for the two we narrow (F64, I64).
/// The sizes were checked by [`read_header`]: `bytes` is `numel × size`, within the file.
fn read_storage(file: &mut File, e: &HeaderEntry, path: &Path) -> Result<CpuStorage> {
    if !matches!(e.dtype.as_str(), "F64" | "I64" | "F32" | "I32" | "F16" | "BF16") {
        return Err(Error::UnsupportedDType { path: path.into(), tensor: e.name.clone(), dtype: e.dtype.clone() });
    }
    let (numel, bytes) = (e.numel(), (e.end - e.start) as usize);
    let io = |source| Error::Io { path: path.into(), source };
    Ok(match e.dtype.as_str() {
        "F32" => CpuStorage::F32(read_direct(file, numel).map_err(io)?),
        "I32" => CpuStorage::I32(read_direct(file, numel).map_err(io)?),
        "F16" => CpuStorage::F16(read_direct::<f16>(file, numel).map_err(io)?),
        "BF16" => CpuStorage::BF16(read_direct::<bf16>(file, numel).map_err(io)?),
        _ => {
            let mut staging = vec![0u8; bytes];
            file.read_exact(&mut staging).map_err(io)?;
            super::safetensors::decode_wide(&staging, &e.dtype, path, &e.name)?
        }
    })
}

/// `n` little-endian values read straight into a `Vec<T>`'s memory.
pub(crate) fn read_direct<T: bytemuck::Pod + bytemuck::Zeroable>(file: &mut File, n: usize) -> std::io::Result<Vec<T>> {
    let mut values: Vec<T> = crate::cpu::huge::zeroed(n);
    file.read_exact(bytemuck::cast_slice_mut(&mut values))?;
    if cfg!(target_endian = "big") {
        for v in &mut values {
            bytemuck::bytes_of_mut(v).reverse();
        }
    }
    Ok(values)
}

/// Refuses JSON in which an object names a key twice. JSON parsers disagree on which value
/// wins (serde_json and Python keep the last, others the first), so a header with a repeated
/// tensor name or field could mean one thing here and another elsewhere.
pub(crate) fn check_unique_keys(json: &[u8]) -> std::result::Result<(), String> {
    use serde::Deserialize;
    let mut de = serde_json::Deserializer::from_slice(json);
    UniqueKeys::deserialize(&mut de).map_err(|e| format!("header is not valid: {e}"))?;
    de.end().map_err(|e| format!("header is not JSON: {e}"))
}

/// Deserialises any JSON, failing on a repeated key in any object (see [`check_unique_keys`]).
struct UniqueKeys;

impl<'de> serde::Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(UniqueKeysVisitor)
    }
}

struct UniqueKeysVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueKeysVisitor {
    type Value = UniqueKeys;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, _: bool) -> std::result::Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_i64<E>(self, _: i64) -> std::result::Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_u64<E>(self, _: u64) -> std::result::Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_f64<E>(self, _: f64) -> std::result::Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_str<E>(self, _: &str) -> std::result::Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_unit<E>(self) -> std::result::Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<UniqueKeys, A::Error> {
        while seq.next_element::<UniqueKeys>()?.is_some() {}
        Ok(UniqueKeys)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> std::result::Result<UniqueKeys, A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            map.next_value::<UniqueKeys>()?;
            if !seen.insert(key.clone()) {
                return Err(serde::de::Error::custom(format!("key \"{key}\" appears twice")));
            }
        }
        Ok(UniqueKeys)
    }
}
