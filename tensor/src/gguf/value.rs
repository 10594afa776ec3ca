//! GGUF metadata values: the 13 value types, and the key → value map with typed getters.

use crate::error::{Error, Result};
use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

/// A metadata value type, with its id in the file (`gguf_type` in llama.cpp).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GgufValueType {
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    F32,
    Bool,
    String,
    Array,
    U64,
    I64,
    F64,
}

impl GgufValueType {
    /// Every type, in id order (0 to 12).
    pub const ALL: [GgufValueType; 13] = [
        GgufValueType::U8,
        GgufValueType::I8,
        GgufValueType::U16,
        GgufValueType::I16,
        GgufValueType::U32,
        GgufValueType::I32,
        GgufValueType::F32,
        GgufValueType::Bool,
        GgufValueType::String,
        GgufValueType::Array,
        GgufValueType::U64,
        GgufValueType::I64,
        GgufValueType::F64,
    ];

    /// The type's id in the file.
    pub fn id(self) -> u32 {
        GgufValueType::ALL.iter().position(|&t| t == self).unwrap_or(0) as u32
    }

    /// The type with id `id`, if the format defines one.
    pub fn from_id(id: u32) -> Option<GgufValueType> {
        GgufValueType::ALL.get(id as usize).copied()
    }

    /// The fewest bytes a value of this type takes in a file: its width for the numbers, the
    /// u64 length of an empty string, the u32 type + u64 count of an empty array. Counts read
    /// from a file are checked against `count × min_bytes ≤ bytes left` before anything is
    /// allocated for them.
    pub(crate) fn min_bytes(self) -> u64 {
        match self {
            GgufValueType::U8 | GgufValueType::I8 | GgufValueType::Bool => 1,
            GgufValueType::U16 | GgufValueType::I16 => 2,
            GgufValueType::U32 | GgufValueType::I32 | GgufValueType::F32 => 4,
            GgufValueType::U64 | GgufValueType::I64 | GgufValueType::F64 | GgufValueType::String => 8,
            GgufValueType::Array => 12,
        }
    }

    /// The name gguf-py gives the type (`UINT32`, `STRING`, ...), used in messages.
    pub fn name(self) -> &'static str {
        match self {
            GgufValueType::U8 => "UINT8",
            GgufValueType::I8 => "INT8",
            GgufValueType::U16 => "UINT16",
            GgufValueType::I16 => "INT16",
            GgufValueType::U32 => "UINT32",
            GgufValueType::I32 => "INT32",
            GgufValueType::F32 => "FLOAT32",
            GgufValueType::Bool => "BOOL",
            GgufValueType::String => "STRING",
            GgufValueType::Array => "ARRAY",
            GgufValueType::U64 => "UINT64",
            GgufValueType::I64 => "INT64",
            GgufValueType::F64 => "FLOAT64",
        }
    }
}

impl fmt::Display for GgufValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One metadata value. An array records its element type, so an empty array keeps it and a
/// file written back is the file read; its items all have that type (the reader reads them so,
/// and the writer checks it).
#[derive(Clone, Debug, PartialEq)]
pub enum GgufValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    Array(GgufValueType, Vec<GgufValue>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl GgufValue {
    /// The value's type.
    pub fn value_type(&self) -> GgufValueType {
        match self {
            GgufValue::U8(_) => GgufValueType::U8,
            GgufValue::I8(_) => GgufValueType::I8,
            GgufValue::U16(_) => GgufValueType::U16,
            GgufValue::I16(_) => GgufValueType::I16,
            GgufValue::U32(_) => GgufValueType::U32,
            GgufValue::I32(_) => GgufValueType::I32,
            GgufValue::F32(_) => GgufValueType::F32,
            GgufValue::Bool(_) => GgufValueType::Bool,
            GgufValue::String(_) => GgufValueType::String,
            GgufValue::Array(..) => GgufValueType::Array,
            GgufValue::U64(_) => GgufValueType::U64,
            GgufValue::I64(_) => GgufValueType::I64,
            GgufValue::F64(_) => GgufValueType::F64,
        }
    }

    /// The value as an unsigned integer, when it is an integer of any width that is not
    /// negative (converters disagree on whether a count is UINT32, INT32 or UINT64).
    pub fn as_uint(&self) -> Option<u64> {
        match *self {
            GgufValue::U8(v) => Some(v.into()),
            GgufValue::U16(v) => Some(v.into()),
            GgufValue::U32(v) => Some(v.into()),
            GgufValue::U64(v) => Some(v),
            GgufValue::I8(v) => u64::try_from(v).ok(),
            GgufValue::I16(v) => u64::try_from(v).ok(),
            GgufValue::I32(v) => u64::try_from(v).ok(),
            GgufValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as an f64, when it is a number of any type (integers convert exactly up to 2^53).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            GgufValue::F32(v) => Some(v.into()),
            GgufValue::F64(v) => Some(v),
            GgufValue::I64(v) => Some(v as f64),
            _ => self.as_uint().map(|v| v as f64).or_else(|| self.as_i64().map(|v| v as f64)),
        }
    }

    fn as_i64(&self) -> Option<i64> {
        match *self {
            GgufValue::I8(v) => Some(v.into()),
            GgufValue::I16(v) => Some(v.into()),
            GgufValue::I32(v) => Some(v.into()),
            GgufValue::I64(v) => Some(v),
            _ => None,
        }
    }

    /// `ARRAY[STRING]`, `ARRAY[FLOAT32]`, or the type name: how messages spell a type.
    pub fn type_name(&self) -> String {
        match self {
            GgufValue::Array(t, _) => format!("ARRAY[{t}]"),
            other => other.value_type().name().into(),
        }
    }
}

/// The metadata of a GGUF file: key → value, in file order, with typed getters whose errors
/// name the file, the key, the type wanted and the type found.
#[derive(Clone, Debug, Default)]
pub struct GgufMetadata {
    pub(crate) path: PathBuf,
    pub(crate) entries: Vec<(String, GgufValue)>,
    pub(crate) index: HashMap<String, usize>,
}

impl GgufMetadata {
    /// Metadata from `entries` (for the writer's tests and for building files); `path` is
    /// used in messages. A repeated key is an error.
    pub fn from_entries(path: impl Into<PathBuf>, entries: Vec<(String, GgufValue)>) -> Result<GgufMetadata> {
        let mut m = GgufMetadata { path: path.into(), entries: Vec::new(), index: HashMap::new() };
        for (k, v) in entries {
            m.insert(k, v)?;
        }
        Ok(m)
    }

    pub(crate) fn insert(&mut self, key: String, value: GgufValue) -> Result<()> {
        if self.index.contains_key(&key) {
            return Err(Error::Gguf {
                path: self.path.clone(),
                message: format!("metadata key '{key}' appears twice"),
            });
        }
        self.index.insert(key.clone(), self.entries.len());
        self.entries.push((key, value));
        Ok(())
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.index.get(key).map(|&i| &self.entries[i].1)
    }

    /// Every key and value, in file order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &GgufValue)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there is no key.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn require(&self, key: &str) -> Result<&GgufValue> {
        self.get(key)
            .ok_or_else(|| Error::Gguf { path: self.path.clone(), message: format!("no metadata key '{key}'") })
    }

    fn wrong_type(&self, key: &str, expected: &str, found: &GgufValue) -> Error {
        let found = found.type_name();
        Error::Gguf { path: self.path.clone(), message: format!("metadata '{key}' is {found}, expected {expected}") }
    }

    /// The value of `key` picked by `pick`, or an error naming the key, `expected` and the
    /// type found.
    fn typed<T>(&self, key: &str, expected: &str, pick: impl Fn(&GgufValue) -> Option<T>) -> Result<T> {
        let v = self.require(key)?;
        pick(v).ok_or_else(|| self.wrong_type(key, expected, v))
    }

    /// The UINT8 value of `key`; an error naming the key and both types when it is missing or of another type.
    pub fn get_u8(&self, key: &str) -> Result<u8> {
        self.typed(key, "UINT8", |v| if let GgufValue::U8(x) = v { Some(*x) } else { None })
    }

    /// The INT8 value of `key`.
    pub fn get_i8(&self, key: &str) -> Result<i8> {
        self.typed(key, "INT8", |v| if let GgufValue::I8(x) = v { Some(*x) } else { None })
    }

    /// The UINT16 value of `key`.
    pub fn get_u16(&self, key: &str) -> Result<u16> {
        self.typed(key, "UINT16", |v| if let GgufValue::U16(x) = v { Some(*x) } else { None })
    }

    /// The INT16 value of `key`.
    pub fn get_i16(&self, key: &str) -> Result<i16> {
        self.typed(key, "INT16", |v| if let GgufValue::I16(x) = v { Some(*x) } else { None })
    }

    /// The UINT32 value of `key` (e.g. `llama.block_count`).
    pub fn get_u32(&self, key: &str) -> Result<u32> {
        self.typed(key, "UINT32", |v| if let GgufValue::U32(x) = v { Some(*x) } else { None })
    }

    /// The INT32 value of `key`.
    pub fn get_i32(&self, key: &str) -> Result<i32> {
        self.typed(key, "INT32", |v| if let GgufValue::I32(x) = v { Some(*x) } else { None })
    }

    /// The UINT64 value of `key`.
    pub fn get_u64(&self, key: &str) -> Result<u64> {
        self.typed(key, "UINT64", |v| if let GgufValue::U64(x) = v { Some(*x) } else { None })
    }

    /// The INT64 value of `key`.
    pub fn get_i64(&self, key: &str) -> Result<i64> {
        self.typed(key, "INT64", |v| if let GgufValue::I64(x) = v { Some(*x) } else { None })
    }

    /// The FLOAT32 value of `key` (e.g. `llama.attention.layer_norm_rms_epsilon`).
    pub fn get_f32(&self, key: &str) -> Result<f32> {
        self.typed(key, "FLOAT32", |v| if let GgufValue::F32(x) = v { Some(*x) } else { None })
    }

    /// The FLOAT64 value of `key`.
    pub fn get_f64(&self, key: &str) -> Result<f64> {
        self.typed(key, "FLOAT64", |v| if let GgufValue::F64(x) = v { Some(*x) } else { None })
    }

    /// The BOOL value of `key`.
    pub fn get_bool(&self, key: &str) -> Result<bool> {
        self.typed(key, "BOOL", |v| if let GgufValue::Bool(x) = v { Some(*x) } else { None })
    }

    /// The STRING value of `key`.
    pub fn get_str(&self, key: &str) -> Result<&str> {
        match self.require(key)? {
            GgufValue::String(s) => Ok(s),
            other => Err(self.wrong_type(key, "STRING", other)),
        }
    }

    /// An integer of any type and width that is not negative, as u64: for counts and sizes,
    /// which converters write as UINT32, INT32 or UINT64.
    pub fn get_uint(&self, key: &str) -> Result<u64> {
        let v = self.require(key)?;
        v.as_uint().ok_or_else(|| self.wrong_type(key, "a non-negative integer", v))
    }

    /// The items of the ARRAY value of `key`, and their type.
    pub fn get_array(&self, key: &str) -> Result<(GgufValueType, &[GgufValue])> {
        match self.require(key)? {
            GgufValue::Array(t, items) => Ok((*t, items)),
            other => Err(self.wrong_type(key, "ARRAY", other)),
        }
    }

    /// The `ARRAY[STRING]` value of `key` (e.g. `tokenizer.ggml.tokens`).
    pub fn get_str_array(&self, key: &str) -> Result<Vec<&str>> {
        let v = self.require(key)?;
        match v {
            GgufValue::Array(GgufValueType::String, items) => Ok(items
                .iter()
                .filter_map(|i| if let GgufValue::String(s) = i { Some(s.as_str()) } else { None })
                .collect()),
            other => Err(self.wrong_type(key, "ARRAY[STRING]", other)),
        }
    }

    /// The `ARRAY[FLOAT32]` value of `key` (e.g. `tokenizer.ggml.scores`).
    pub fn get_f32_array(&self, key: &str) -> Result<Vec<f32>> {
        match self.require(key)? {
            GgufValue::Array(GgufValueType::F32, items) => {
                Ok(items.iter().filter_map(|i| if let GgufValue::F32(x) = i { Some(*x) } else { None }).collect())
            }
            other => Err(self.wrong_type(key, "ARRAY[FLOAT32]", other)),
        }
    }

    /// The `ARRAY[INT32]` value of `key` (e.g. `tokenizer.ggml.token_type`).
    pub fn get_i32_array(&self, key: &str) -> Result<Vec<i32>> {
        match self.require(key)? {
            GgufValue::Array(GgufValueType::I32, items) => {
                Ok(items.iter().filter_map(|i| if let GgufValue::I32(x) = i { Some(*x) } else { None }).collect())
            }
            other => Err(self.wrong_type(key, "ARRAY[INT32]", other)),
        }
    }
}
