//! Writing GGUF version 3 files, atomically, in the layout the Python `gguf` package writes.

use super::value::GgufValue;
use super::{align_up, GgufType, ALIGNMENT_KEY, DEFAULT_ALIGNMENT, MAGIC, MAX_DIMS, VERSION};
use crate::error::{Error, Result};
use crate::{DType, Device, Tensor};
use std::collections::HashSet;
use std::io::Write;
use std::path::Path;

/// Builds a GGUF file: metadata in the order added, tensors in the order added.
///
/// The layout is gguf-py's `GGUFWriter`: header, metadata, tensor infos (offsets the running
/// sum of the previous tensors' sizes, each rounded up to the alignment), zero padding to the
/// alignment, then each tensor's bytes followed by zeros up to the alignment. The same content
/// therefore gives the same bytes as gguf-py (checked by `tests/gguf_io.rs` against files it
/// wrote). The alignment is `general.alignment` when that key is added, else 32.
///
/// Tensors are held (as bytes) until [`GgufWriter::write`], which streams them to the file.
#[derive(Debug, Default)]
pub struct GgufWriter {
    metadata: Vec<(String, GgufValue)>,
    keys: HashSet<String>,
    tensors: Vec<Pending>,
    names: HashSet<String>,
}

#[derive(Debug)]
struct Pending {
    name: String,
    ty: GgufType,
    /// Row-major shape; written reversed, as ggml's `ne`.
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

fn invalid(what: &str, message: String) -> Error {
    Error::BadTensor { tensor: what.into(), message }
}

/// A metadata error; no file is named yet, so the message names the writer.
fn bad_key(key: &str, message: String) -> Error {
    Error::Gguf { path: "GgufWriter".into(), message: format!("metadata '{key}': {message}") }
}

impl GgufWriter {
    /// An empty file: no metadata, no tensors.
    pub fn new() -> GgufWriter {
        GgufWriter::default()
    }

    /// Adds metadata `key`. `general.alignment` must be a UINT32 power of two; an array's
    /// items must all have its element type (arrays may nest, and may be empty).
    ///
    /// # Errors
    /// A repeated key, an alignment that is not a power of two, a mixed array.
    pub fn add_metadata(&mut self, key: impl Into<String>, value: GgufValue) -> Result<()> {
        let key = key.into();
        if self.keys.contains(&key) {
            return Err(bad_key(&key, "added twice".into()));
        }
        if key == ALIGNMENT_KEY && !matches!(value, GgufValue::U32(a) if a.is_power_of_two()) {
            return Err(bad_key(&key, format!("must be a UINT32 power of two, not {value:?}")));
        }
        check_array(&key, &value)?;
        self.keys.insert(key.clone());
        self.metadata.push((key, value));
        Ok(())
    }

    /// Adds tensor `name` from its stored bytes: `shape` is row-major (PyTorch), `bytes` are
    /// little-endian values, or rows of blocks for a quant type.
    ///
    /// # Errors
    /// A repeated name; a shape with no dims, more than 4, or a zero dim; a quantized last dim
    /// that is not a whole number of blocks; `bytes` not the size the type and shape need.
    pub fn add_tensor_bytes(&mut self, name: &str, ty: GgufType, shape: &[usize], bytes: Vec<u8>) -> Result<()> {
        if self.names.contains(name) {
            return Err(invalid(name, "tensor added twice".into()));
        }
        if shape.is_empty() || shape.len() > MAX_DIMS || shape.contains(&0) {
            return Err(invalid(name, format!("shape {shape:?}: GGUF needs 1 to {MAX_DIMS} dims, none zero")));
        }
        let numel = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        let need = numel.and_then(|n| ty.bytes_for(n, shape[shape.len() - 1]));
        let need =
            need.ok_or_else(|| invalid(name, format!("shape {shape:?} is not a whole number of {ty} blocks")))?;
        if bytes.len() != need {
            return Err(invalid(name, format!("{ty} {shape:?} needs {need} bytes, got {}", bytes.len())));
        }
        self.names.insert(name.into());
        self.tensors.push(Pending { name: name.into(), ty, shape: shape.to_vec(), bytes });
        Ok(())
    }

    /// Adds tensor `name` from a tensor of dtype F32, F16 or BF16 (any layout, any device;
    /// stored row-major in its own dtype).
    ///
    /// # Errors
    /// An I32 tensor (GGUF weights hold no indices), and [`GgufWriter::add_tensor_bytes`]'s.
    pub fn add_tensor(&mut self, name: &str, t: &Tensor) -> Result<()> {
        let ty = match t.dtype() {
            DType::F32 => GgufType::F32,
            DType::F16 => GgufType::F16,
            DType::BF16 => GgufType::BF16,
            DType::Quant(q) => {
                let message = || format!("a {q} view that cuts its blocks cannot be written");
                let (_, bytes) = t.quant_bytes().ok_or_else(|| invalid(name, message()))?;
                return self.add_tensor_bytes(name, GgufType::Quant(q), t.dims(), bytes.to_vec());
            }
            other => return Err(invalid(name, format!("dtype {other:?} has no GGUF type here"))),
        };
        let c = t.to_device(&Device::Cpu)?.contiguous();
        let start = c.dtype().bytes_for(c.layout().offset());
        let bytes = c.cpu_storage().as_bytes()[start..start + c.dtype().bytes_for(c.numel())].to_vec();
        self.add_tensor_bytes(name, ty, c.dims(), bytes)
    }

    fn alignment(&self) -> u64 {
        let set = self.metadata.iter().find(|(k, _)| k == ALIGNMENT_KEY);
        match set {
            Some((_, GgufValue::U32(a))) => (*a).into(),
            _ => DEFAULT_ALIGNMENT.into(),
        }
    }

    /// Writes the file to `path` atomically (a temp file beside it, fsync, rename).
    ///
    /// # Errors
    /// An I/O error naming the path.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<()> {
        crate::atomic::write_with(path.as_ref(), |w| self.write_to(w))
    }

    fn write_to(&self, w: &mut dyn Write) -> std::io::Result<()> {
        let align = self.alignment();
        let mut head = Vec::new();
        head.extend_from_slice(&MAGIC);
        head.extend_from_slice(&VERSION.to_le_bytes());
        head.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        head.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (key, value) in &self.metadata {
            put_string(&mut head, key);
            head.extend_from_slice(&value.value_type().id().to_le_bytes());
            put_value(&mut head, value);
        }
        let mut offset = 0u64;
        for t in &self.tensors {
            put_string(&mut head, &t.name);
            head.extend_from_slice(&(t.shape.len() as u32).to_le_bytes());
            for &d in t.shape.iter().rev() {
                head.extend_from_slice(&(d as u64).to_le_bytes());
            }
            head.extend_from_slice(&t.ty.ggml_id().to_le_bytes());
            head.extend_from_slice(&offset.to_le_bytes());
            offset += padded(t.bytes.len() as u64, align);
        }
        let head_len = head.len() as u64;
        head.resize(padded(head_len, align) as usize, 0);
        w.write_all(&head)?;
        let zeros = vec![0u8; align as usize];
        for t in &self.tensors {
            w.write_all(&t.bytes)?;
            let pad = padded(t.bytes.len() as u64, align) - t.bytes.len() as u64;
            w.write_all(&zeros[..pad as usize])?;
        }
        Ok(())
    }
}

/// `n` rounded up to `align` (sizes here come from data in memory, so no overflow).
fn padded(n: u64, align: u64) -> u64 {
    align_up(n, align).unwrap_or(n)
}

/// Every item of an array (at any depth) has the array's element type.
fn check_array(key: &str, value: &GgufValue) -> Result<()> {
    if let GgufValue::Array(ty, items) = value {
        if let Some(bad) = items.iter().find(|i| i.value_type() != *ty) {
            return Err(bad_key(key, format!("an ARRAY[{ty}] holds a {}", bad.type_name())));
        }
        items.iter().try_for_each(|i| check_array(key, i))?;
    }
    Ok(())
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// A value's bytes, without its type id (an array's items carry none either).
fn put_value(out: &mut Vec<u8>, value: &GgufValue) {
    match value {
        GgufValue::U8(v) => out.push(*v),
        GgufValue::I8(v) => out.extend_from_slice(&v.to_le_bytes()),
        GgufValue::U16(v) => out.extend_from_slice(&v.to_le_bytes()),
        GgufValue::I16(v) => out.extend_from_slice(&v.to_le_bytes()),
        GgufValue::U32(v) => out.extend_from_slice(&v.to_le_bytes()),
        GgufValue::I32(v) => out.extend_from_slice(&v.to_le_bytes()),
        GgufValue::F32(v) => out.extend_from_slice(&v.to_le_bytes()),
        GgufValue::Bool(v) => out.push(u8::from(*v)),
        GgufValue::String(s) => put_string(out, s),
        GgufValue::Array(ty, items) => {
            out.extend_from_slice(&ty.id().to_le_bytes());
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            items.iter().for_each(|i| put_value(out, i));
        }
        GgufValue::U64(v) => out.extend_from_slice(&v.to_le_bytes()),
        GgufValue::I64(v) => out.extend_from_slice(&v.to_le_bytes()),
        GgufValue::F64(v) => out.extend_from_slice(&v.to_le_bytes()),
    }
}

/// Type ids are checked against the value types here so a new variant cannot be written
/// with a stale id.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::GgufValueType;

    #[test]
    fn value_type_ids_are_ggufs() {
        let ids: Vec<u32> = GgufValueType::ALL.iter().map(|t| t.id()).collect();
        assert_eq!(ids, (0..13).collect::<Vec<u32>>());
        assert_eq!(GgufValueType::from_id(9), Some(GgufValueType::Array));
        assert_eq!(GgufValueType::from_id(13), None);
    }

    #[test]
    fn mixed_arrays_and_bad_alignment_are_refused() {
        let mut w = GgufWriter::new();
        let mixed = GgufValue::Array(GgufValueType::U8, vec![GgufValue::U8(1), GgufValue::I8(2)]);
        assert!(w.add_metadata("a", mixed).is_err());
        assert!(w.add_metadata(ALIGNMENT_KEY, GgufValue::U32(24)).is_err());
        assert!(w.add_metadata(ALIGNMENT_KEY, GgufValue::U64(64)).is_err());
        w.add_metadata(ALIGNMENT_KEY, GgufValue::U32(64)).unwrap();
        assert!(w.add_metadata(ALIGNMENT_KEY, GgufValue::U32(64)).is_err());
        assert_eq!(w.alignment(), 64);
    }

    #[test]
    fn tensor_sizes_are_checked() {
        let mut w = GgufWriter::new();
        let q = GgufType::Quant(crate::QuantType::Q8_0);
        assert!(w.add_tensor_bytes("a", q, &[2, 33], vec![0; 68]).is_err());
        assert!(w.add_tensor_bytes("a", q, &[2, 32], vec![0; 67]).is_err());
        assert!(w.add_tensor_bytes("a", GgufType::F32, &[0, 4], vec![]).is_err());
        assert!(w.add_tensor_bytes("a", GgufType::F32, &[1, 1, 1, 1, 1], vec![0; 4]).is_err());
        w.add_tensor_bytes("a", q, &[2, 32], vec![0; 68]).unwrap();
        assert!(w.add_tensor_bytes("a", GgufType::F32, &[1], vec![0; 4]).is_err());
    }
}
