//! Parsing and validating a GGUF file's header, metadata and tensor infos; reading tensors.

use super::value::{GgufMetadata, GgufValue, GgufValueType};
use super::{align_up, GgufTensorInfo, GgufType, ALIGNMENT_KEY, DEFAULT_ALIGNMENT, MAGIC, MAX_DIMS};
use crate::error::{Error, Result};
use crate::safetensors_stream::read_direct;
use crate::storage::CpuStorage;
use crate::{Device, Tensor};
use half::{bf16, f16};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// How deep arrays may nest in metadata (real files nest at most once).
const MAX_DEPTH: usize = 8;
/// The most array items in all of a file's metadata together: 16 Mi, far over the largest
/// vocabularies (tokens + merges of a 256k vocabulary are under 1 Mi), and a bound on the
/// memory a file can make the parser hold (32 bytes an item), which a count checked only
/// against a multi-GB file's length would not be.
const MAX_ITEMS: u64 = 1 << 24;
/// The longest string accepted: 16 MiB (chat templates, the longest strings in real files,
/// are a few KB), so a length in a multi-GB file cannot claim gigabytes of tensor data.
const MAX_STRING: u64 = 1 << 24;

/// A GGUF file opened for reading: metadata and tensor infos parsed and checked, tensor data
/// read on demand by [`GgufFile::read_bytes`] and [`GgufFile::tensor`].
#[derive(Debug)]
pub struct GgufFile {
    path: PathBuf,
    version: u32,
    alignment: u64,
    data_start: u64,
    metadata: GgufMetadata,
    tensors: Vec<GgufTensorInfo>,
    index: HashMap<String, usize>,
    file: Mutex<File>,
}

impl GgufFile {
    /// Opens and validates `path`: header, every metadata value, every tensor info (known
    /// type, 1 to 4 dims each at least 1, element count and byte size without overflow, a
    /// quantized last dim a whole number of blocks, an aligned offset whose bytes lie in the
    /// file and overlap no other tensor's). Tensor data is not read.
    ///
    /// # Errors
    /// When the file cannot be read or any of the above fails; the message names the file
    /// and the field (key, tensor) at fault.
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|source| Error::Io { path: path.into(), source })?;
        let len = file.metadata().map_err(|source| Error::Io { path: path.into(), source })?.len();
        let mut p = Parser { r: BufReader::new(file), pos: 0, len, path, items: 0 };
        let version = p.header()?;
        let tensor_count = p.u64("tensor count")?;
        let kv_count = p.u64("metadata count")?;
        // A key-value takes at least 13 bytes (8 key length, 4 type, 1 value); a tensor info 24.
        p.check_count(kv_count, 13, "metadata count")?;
        p.check_count(tensor_count, 24, "tensor count")?;
        let mut metadata = GgufMetadata { path: path.into(), ..GgufMetadata::default() };
        for i in 0..kv_count {
            let key = p.string(&format!("metadata key #{i}"))?;
            let ty = p.value_type(&key)?;
            let value = p.value(ty, &key, 0)?;
            metadata.insert(key, value)?;
        }
        let alignment = alignment(&metadata, path)?;
        let mut tensors = Vec::new();
        let mut index = HashMap::new();
        for i in 0..tensor_count {
            let info = p.tensor_info(i, alignment)?;
            if index.insert(info.name.clone(), tensors.len()).is_some() {
                return Err(p.bad(format!("tensor '{}' appears twice", info.name)));
            }
            tensors.push(info);
        }
        let data_start = align_up(p.pos, alignment).ok_or_else(|| p.bad("data section offset overflows".into()))?;
        check_extents(&tensors, len.saturating_sub(data_start)).map_err(|m| p.bad(m))?;
        let file = Mutex::new(p.r.into_inner());
        Ok(GgufFile { path: path.into(), version, alignment, data_start, metadata, tensors, index, file })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The format version: 2 or 3.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The data alignment (`general.alignment`, default 32).
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Offset of the data section from the start of the file.
    pub fn data_start(&self) -> u64 {
        self.data_start
    }

    /// The metadata, with typed getters.
    pub fn metadata(&self) -> &GgufMetadata {
        &self.metadata
    }

    /// Every tensor's info, in file order.
    pub fn tensor_infos(&self) -> &[GgufTensorInfo] {
        &self.tensors
    }

    /// The info of tensor `name`, if the file has it.
    pub fn tensor_info(&self, name: &str) -> Option<&GgufTensorInfo> {
        self.index.get(name).map(|&i| &self.tensors[i])
    }

    fn require(&self, name: &str) -> Result<&GgufTensorInfo> {
        let missing = || Error::Gguf { path: self.path.clone(), message: format!("no tensor '{name}'") };
        self.tensor_info(name).ok_or_else(missing)
    }

    /// The stored bytes of tensor `name` (its `n_bytes`, little-endian, blocks as llama.cpp
    /// lays them out), read from the file now.
    pub fn read_bytes(&self, name: &str) -> Result<Vec<u8>> {
        let info = self.require(name)?;
        let mut bytes: Vec<u8> = crate::cpu::huge::zeroed(info.n_bytes as usize); // size checked by open
        self.at(info)?.read_exact(&mut bytes).map_err(|source| Error::Io { path: self.path.clone(), source })?;
        Ok(bytes)
    }

    /// The file, locked and positioned at the first byte of `info`'s data.
    fn at(&self, info: &GgufTensorInfo) -> Result<MutexGuard<'_, File>> {
        let mut file = self.file.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let start = self.data_start + info.offset; // within the file: checked by open
        file.seek(SeekFrom::Start(start)).map_err(|source| Error::Io { path: self.path.clone(), source })?;
        Ok(file)
    }

    /// Tensor `name` on `device`, with the row-major shape of its info: F32, F16 and BF16 as
    /// themselves, read straight into the tensor's buffer; a block-quantized one as
    /// [`DType::Quant`](crate::DType::Quant) holding the file's blocks.
    ///
    /// # Errors
    /// When the file cannot be read, or a quantized tensor is asked for on a GPU (see
    /// [`Tensor::to_device`]).
    pub fn tensor(&self, name: &str, device: &Device) -> Result<Tensor> {
        let info = self.require(name)?;
        let n = info.numel();
        let io = |source| Error::Io { path: self.path.clone(), source };
        let storage = match info.ty {
            GgufType::F32 => CpuStorage::F32(read_direct::<f32>(&mut *self.at(info)?, n).map_err(io)?),
            GgufType::F16 => CpuStorage::F16(read_direct::<f16>(&mut *self.at(info)?, n).map_err(io)?),
            GgufType::BF16 => CpuStorage::BF16(read_direct::<bf16>(&mut *self.at(info)?, n).map_err(io)?),
            GgufType::Quant(q) => return Tensor::from_quant(q, info.shape.clone(), self.read_bytes(name)?, device),
        };
        Tensor::from_cpu(storage, info.shape.clone()).to_device(device)
    }
}

/// `general.alignment`: absent → 32; otherwise a UINT32 power of two.
fn alignment(metadata: &GgufMetadata, path: &Path) -> Result<u64> {
    let Some(v) = metadata.get(ALIGNMENT_KEY) else { return Ok(DEFAULT_ALIGNMENT.into()) };
    match v {
        GgufValue::U32(a) if a.is_power_of_two() => Ok((*a).into()),
        other => Err(Error::Gguf {
            path: path.into(),
            message: format!("{ALIGNMENT_KEY} must be a UINT32 power of two, found {} {other:?}", other.type_name()),
        }),
    }
}

/// Each tensor's bytes lie within the `data_len` bytes of the data section, and no two
/// tensors' bytes overlap (gaps, such as alignment padding, are allowed).
fn check_extents(tensors: &[GgufTensorInfo], data_len: u64) -> std::result::Result<(), String> {
    let mut by_offset: Vec<&GgufTensorInfo> = tensors.iter().collect();
    by_offset.sort_by_key(|t| t.offset);
    let mut end_of_previous: Option<(&str, u64)> = None;
    for t in by_offset {
        let end = t.offset.checked_add(t.n_bytes).filter(|&e| e <= data_len).ok_or_else(|| {
            format!(
                "tensor '{}': bytes [{}, +{}) are past the {data_len}-byte data section",
                t.name, t.offset, t.n_bytes
            )
        })?;
        if let Some((prev, prev_end)) = end_of_previous {
            if t.offset < prev_end {
                return Err(format!(
                    "tensor '{}' at offset {} overlaps tensor '{prev}' (ends at {prev_end})",
                    t.name, t.offset
                ));
            }
        }
        end_of_previous = Some((&t.name, end));
    }
    Ok(())
}

/// A cursor over the file that knows how many bytes are left, so every length can be
/// checked before it is used.
struct Parser<'a> {
    r: BufReader<File>,
    pos: u64,
    len: u64,
    path: &'a Path,
    /// Array items read so far (bounded by [`MAX_ITEMS`]).
    items: u64,
}

impl Parser<'_> {
    fn bad(&self, message: String) -> Error {
        Error::Gguf { path: self.path.into(), message }
    }

    fn left(&self) -> u64 {
        self.len.saturating_sub(self.pos)
    }

    fn bytes<const N: usize>(&mut self, field: &str) -> Result<[u8; N]> {
        let mut b = [0u8; N];
        if (N as u64) > self.left() {
            return Err(self.bad(format!(
                "truncated: {field} at byte {} needs {N} bytes, {} left",
                self.pos,
                self.left()
            )));
        }
        self.r.read_exact(&mut b).map_err(|source| Error::Io { path: self.path.into(), source })?;
        self.pos += N as u64;
        Ok(b)
    }

    fn u32(&mut self, field: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.bytes(field)?))
    }

    fn u64(&mut self, field: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.bytes(field)?))
    }

    /// `count` things of at least `min` bytes each must fit in the bytes left.
    fn check_count(&self, count: u64, min: u64, field: &str) -> Result<()> {
        if count.checked_mul(min).is_none_or(|b| b > self.left()) {
            let left = self.left();
            return Err(self.bad(format!("{field} {count} cannot fit in the {left} bytes left (at byte {})", self.pos)));
        }
        Ok(())
    }

    /// Magic and version; refuses version 1 and big-endian files.
    fn header(&mut self) -> Result<u32> {
        let magic: [u8; 4] = self.bytes("magic")?;
        if magic != MAGIC {
            return Err(self.bad(format!("magic is {magic:?}, not \"GGUF\"")));
        }
        let version = self.u32("version")?;
        match version {
            2 | 3 => Ok(version),
            1 => Err(self.bad("version 1 (u32 counts) is not supported; re-convert with a current llama.cpp".into())),
            v if matches!(v.swap_bytes(), 2 | 3) => {
                Err(self.bad(format!("big-endian GGUF (version {}) is not supported", v.swap_bytes())))
            }
            v => Err(self.bad(format!("version {v} is not supported (2 and 3 are)"))),
        }
    }

    /// A u64 length and that many bytes of UTF-8.
    fn string(&mut self, field: &str) -> Result<String> {
        let n = self.u64(field)?;
        self.check_count(n, 1, &format!("{field}: string length"))?;
        if n > MAX_STRING {
            return Err(self.bad(format!("{field}: string length {n} is over the {MAX_STRING}-byte limit")));
        }
        let mut b = vec![0u8; n as usize];
        self.r.read_exact(&mut b).map_err(|source| Error::Io { path: self.path.into(), source })?;
        self.pos += n;
        String::from_utf8(b).map_err(|e| self.bad(format!("{field}: string is not UTF-8 ({e})")))
    }

    fn value_type(&mut self, field: &str) -> Result<GgufValueType> {
        let id = self.u32(field)?;
        GgufValueType::from_id(id).ok_or_else(|| self.bad(format!("'{field}': unknown metadata value type {id}")))
    }

    /// One value of type `ty` (of key `key`, at array depth `depth`).
    fn value(&mut self, ty: GgufValueType, key: &str, depth: usize) -> Result<GgufValue> {
        Ok(match ty {
            GgufValueType::U8 => GgufValue::U8(u8::from_le_bytes(self.bytes(key)?)),
            GgufValueType::I8 => GgufValue::I8(i8::from_le_bytes(self.bytes(key)?)),
            GgufValueType::U16 => GgufValue::U16(u16::from_le_bytes(self.bytes(key)?)),
            GgufValueType::I16 => GgufValue::I16(i16::from_le_bytes(self.bytes(key)?)),
            GgufValueType::U32 => GgufValue::U32(self.u32(key)?),
            GgufValueType::I32 => GgufValue::I32(i32::from_le_bytes(self.bytes(key)?)),
            GgufValueType::F32 => GgufValue::F32(f32::from_le_bytes(self.bytes(key)?)),
            GgufValueType::U64 => GgufValue::U64(self.u64(key)?),
            GgufValueType::I64 => GgufValue::I64(i64::from_le_bytes(self.bytes(key)?)),
            GgufValueType::F64 => GgufValue::F64(f64::from_le_bytes(self.bytes(key)?)),
            GgufValueType::Bool => match self.bytes::<1>(key)?[0] {
                b @ (0 | 1) => GgufValue::Bool(b == 1),
                b => return Err(self.bad(format!("'{key}': BOOL byte is {b}, not 0 or 1"))),
            },
            GgufValueType::String => GgufValue::String(self.string(&format!("'{key}'"))?),
            GgufValueType::Array => self.array(key, depth)?,
        })
    }

    fn array(&mut self, key: &str, depth: usize) -> Result<GgufValue> {
        if depth >= MAX_DEPTH {
            return Err(self.bad(format!("'{key}': arrays nest deeper than {MAX_DEPTH}")));
        }
        let ty = self.value_type(key)?;
        let count = self.u64(key)?;
        self.check_count(count, ty.min_bytes(), &format!("'{key}': array length"))?;
        self.items = self.items.saturating_add(count);
        if self.items > MAX_ITEMS {
            return Err(self.bad(format!("'{key}': metadata arrays hold over {MAX_ITEMS} items in all")));
        }
        let mut items = Vec::with_capacity(count as usize);
        for _ in 0..count {
            items.push(self.value(ty, key, depth + 1)?);
        }
        Ok(GgufValue::Array(ty, items))
    }

    /// Tensor info number `i`: name, dims, type, offset, validated (but not yet against the
    /// data section's length, which is known only once every info has been read).
    fn tensor_info(&mut self, i: u64, alignment: u64) -> Result<GgufTensorInfo> {
        let name = self.string(&format!("tensor #{i} name"))?;
        let n_dims = self.u32(&format!("tensor '{name}' n_dims"))?;
        if n_dims == 0 || n_dims as usize > MAX_DIMS {
            return Err(self.bad(format!("tensor '{name}': {n_dims} dims (1 to {MAX_DIMS} allowed)")));
        }
        let mut ne = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            ne.push(self.u64(&format!("tensor '{name}' dims"))?);
        }
        let id = self.u32(&format!("tensor '{name}' type"))?;
        let offset = self.u64(&format!("tensor '{name}' offset"))?;
        let ty = GgufType::from_ggml_id(id).ok_or_else(|| {
            self.bad(format!("tensor '{name}': ggml type {id} is not supported (supported: {})", GgufType::supported()))
        })?;
        let shape = checked_shape(&ne).map_err(|m| self.bad(format!("tensor '{name}': {m}")))?;
        let numel: usize = shape.iter().product(); // checked by checked_shape
        let n_bytes = ty.bytes_for(numel, shape[shape.len() - 1]).ok_or_else(|| {
            self.bad(format!("tensor '{name}': ne[0] = {} is not a whole number of {ty} blocks", ne[0]))
        })?;
        if !offset.is_multiple_of(alignment) {
            return Err(
                self.bad(format!("tensor '{name}': offset {offset} is not a multiple of the alignment {alignment}"))
            );
        }
        Ok(GgufTensorInfo { name, shape, ty, offset, n_bytes: n_bytes as u64 })
    }
}

/// `ne` reversed into a row-major shape: every dim at least 1, the product (and 4 × it, the
/// widest element's bytes) fitting in usize.
fn checked_shape(ne: &[u64]) -> std::result::Result<Vec<usize>, String> {
    if ne.contains(&0) {
        return Err(format!("dims {ne:?} contain a zero"));
    }
    let shape: Vec<usize> = ne
        .iter()
        .rev()
        .map(|&d| usize::try_from(d).map_err(|_| ()))
        .collect::<std::result::Result<_, _>>()
        .map_err(|()| format!("dims {ne:?} do not fit in usize"))?;
    let numel = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    if numel.and_then(|n| n.checked_mul(4)).is_none() {
        return Err(format!("dims {ne:?}: element count overflows"));
    }
    Ok(shape)
}
