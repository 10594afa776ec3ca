//! GGUF files: deltaw reads what the Python `gguf` package (0.19.0) writes, exactly, and
//! writes what it writes, byte for byte (fixtures from `tests/fixtures/gguf_files.py`).
//!
//! - every metadata value, tensor info and tensor byte of `all_types_v3.gguf` and
//!   `aligned64_v2.gguf` is what `contents.json` says gguf-py wrote;
//! - reading either file and writing it back with [`GgufWriter`] gives gguf-py's bytes;
//! - the content of `contents.json`'s `deltaw_recipe` written by deltaw is the committed
//!   `deltaw_written.gguf`, which `gguf_files.py --check` reads with gguf-py (so CI needs no
//!   Python: a change of the writer's output fails here). `DELTAW_BLESS=1` rewrites it.
//!
//! Malformed files are in `gguf_errors.rs`.

use deltaw_tensor::gguf::{GgufFile, GgufType, GgufValue, GgufValueType, GgufWriter};
use deltaw_tensor::{DType, Device};
use serde_json::Value;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/gguf").join(name)
}

fn contents() -> Value {
    let text = std::fs::read_to_string(fixture("contents.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("deltaw-gguf-io-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A value of `contents.json`'s schema (floats as bit patterns) as a [`GgufValue`].
fn value(v: &Value) -> GgufValue {
    let ty = v["type"].as_str().unwrap();
    let int = || v["value"].as_i64().unwrap();
    let uint = || v["value"].as_u64().unwrap();
    let bits = || v["bits"].as_u64().unwrap();
    match ty {
        "UINT8" => GgufValue::U8(uint() as u8),
        "INT8" => GgufValue::I8(int() as i8),
        "UINT16" => GgufValue::U16(uint() as u16),
        "INT16" => GgufValue::I16(int() as i16),
        "UINT32" => GgufValue::U32(uint() as u32),
        "INT32" => GgufValue::I32(int() as i32),
        "UINT64" => GgufValue::U64(uint()),
        "INT64" => GgufValue::I64(int()),
        "FLOAT32" => GgufValue::F32(f32::from_bits(bits() as u32)),
        "FLOAT64" => GgufValue::F64(f64::from_bits(bits())),
        "BOOL" => GgufValue::Bool(v["value"].as_bool().unwrap()),
        "STRING" => GgufValue::String(v["value"].as_str().unwrap().into()),
        "ARRAY" => {
            let item = value_type(v["item_type"].as_str().unwrap());
            GgufValue::Array(item, v["items"].as_array().unwrap().iter().map(value).collect())
        }
        other => panic!("unknown type {other}"),
    }
}

fn value_type(name: &str) -> GgufValueType {
    *GgufValueType::ALL.iter().find(|t| t.name() == name).unwrap()
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn shape(t: &Value) -> Vec<usize> {
    t["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect()
}

/// Checks that `file` holds exactly what `desc` (one entry of `contents.json`) says.
fn check_file(file: &GgufFile, desc: &Value) {
    let name = file.path().display().to_string();
    assert_eq!(u64::from(file.version()), desc["version"].as_u64().unwrap(), "{name}");
    assert_eq!(file.alignment(), desc["alignment"].as_u64().unwrap(), "{name}");
    let want: Vec<(String, GgufValue)> = desc["metadata"]
        .as_array()
        .unwrap()
        .iter()
        .map(|kv| (kv[0].as_str().unwrap().to_string(), value(&kv[1])))
        .collect();
    let got: Vec<(String, GgufValue)> = file.metadata().iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    assert_eq!(got, want, "{name}: metadata");
    let tensors = desc["tensors"].as_array().unwrap();
    assert_eq!(file.tensor_infos().len(), tensors.len(), "{name}");
    for (info, t) in file.tensor_infos().iter().zip(tensors) {
        let tname = t["name"].as_str().unwrap();
        assert_eq!(info.name, tname);
        assert_eq!(u64::from(info.ty.ggml_id()), t["type_id"].as_u64().unwrap(), "{tname}");
        assert_eq!(info.shape, shape(t), "{tname}");
        assert_eq!(info.ggml_dims(), info.shape.iter().rev().copied().collect::<Vec<_>>());
        assert_eq!(info.offset, t["offset"].as_u64().unwrap(), "{tname}");
        let bytes = hex(t["hex"].as_str().unwrap());
        assert_eq!(info.n_bytes as usize, bytes.len(), "{tname}");
        assert_eq!(file.read_bytes(tname).unwrap(), bytes, "{tname}");
        if let Some(bits) = t.get("dequant_bits").and_then(|b| b.as_array()) {
            // A quantized tensor keeps its blocks; dequantized, it is gguf-py's values exactly.
            let got = file.tensor(tname, &Device::Cpu).unwrap();
            assert_eq!(got.dtype().quant_type().map(|q| q.ggml_id() as u64), t["type_id"].as_u64(), "{tname}");
            let got_bits: Vec<u64> = got.to_vec().iter().map(|v| u64::from(v.to_bits())).collect();
            let want: Vec<u64> = bits.iter().map(|b| b.as_u64().unwrap()).collect();
            assert_eq!(got_bits, want, "{tname}: dequantized");
        }
    }
}

#[test]
fn reads_gguf_py_files_exactly() {
    let contents = contents();
    for name in ["all_types_v3.gguf", "aligned64_v2.gguf"] {
        let file = GgufFile::open(fixture(name)).unwrap();
        check_file(&file, &contents[name]);
    }
}

#[test]
fn float_tensors_load_with_their_dtype_and_pytorch_shape() {
    let file = GgufFile::open(fixture("all_types_v3.gguf")).unwrap();
    for (name, dtype, dims) in [
        ("f32", DType::F32, vec![2, 3]),
        ("f16", DType::F16, vec![3, 4]),
        ("bf16", DType::BF16, vec![2, 5]),
        ("vec", DType::F32, vec![7]),
        ("four_d", DType::F32, vec![2, 1, 3, 2]),
    ] {
        let t = file.tensor(name, &Device::Cpu).unwrap();
        assert_eq!((t.dtype(), t.dims()), (dtype, dims.as_slice()), "{name}");
    }
    // The stored f32 bytes, decoded by hand, are the tensor's values in row-major order.
    let bytes = file.read_bytes("f32").unwrap();
    let want: Vec<f32> = bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
    assert_eq!(file.tensor("f32", &Device::Cpu).unwrap().to_vec(), want);
    let err = file.tensor("missing", &Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("no tensor 'missing'") && err.contains("all_types_v3.gguf"), "{err}");
}

/// Reads `path` with deltaw and writes its metadata and tensors (float tensors through
/// [`GgufFile::tensor`], quantized ones as bytes) to `out` with [`GgufWriter`].
fn rewrite(path: &std::path::Path, out: &std::path::Path) {
    let file = GgufFile::open(path).unwrap();
    let mut w = GgufWriter::new();
    for (k, v) in file.metadata().iter() {
        w.add_metadata(k, v.clone()).unwrap();
    }
    for info in file.tensor_infos() {
        match info.ty {
            GgufType::Quant(_) => {
                w.add_tensor_bytes(&info.name, info.ty, &info.shape, file.read_bytes(&info.name).unwrap()).unwrap()
            }
            _ => w.add_tensor(&info.name, &file.tensor(&info.name, &Device::Cpu).unwrap()).unwrap(),
        }
    }
    w.write(out).unwrap();
}

#[test]
fn rewriting_gguf_py_files_gives_gguf_py_bytes() {
    let dir = scratch("rewrite");
    for name in ["all_types_v3.gguf", "aligned64_v2.gguf"] {
        let out = dir.join(name);
        rewrite(&fixture(name), &out);
        let mut want = std::fs::read(fixture(name)).unwrap();
        want[4..8].copy_from_slice(&3u32.to_le_bytes()); // deltaw writes version 3
        let got = std::fs::read(&out).unwrap();
        let first = got.iter().zip(&want).position(|(a, b)| a != b);
        assert!(got == want, "{name}: {} vs {} bytes, first difference at {first:?}", got.len(), want.len());
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// `contents.json`'s `deltaw_recipe` as a writer.
fn recipe_writer(recipe: &Value) -> GgufWriter {
    let mut w = GgufWriter::new();
    for kv in recipe["metadata"].as_array().unwrap() {
        w.add_metadata(kv[0].as_str().unwrap(), value(&kv[1])).unwrap();
    }
    for t in recipe["tensors"].as_array().unwrap() {
        let ty = GgufType::from_ggml_id(t["type_id"].as_u64().unwrap() as u32).unwrap();
        w.add_tensor_bytes(t["name"].as_str().unwrap(), ty, &shape(t), hex(t["hex"].as_str().unwrap())).unwrap();
    }
    w
}

#[test]
fn deltaw_written_file_is_the_recipe_and_the_committed_bytes() {
    let contents = contents();
    let recipe = &contents["deltaw_recipe"];
    let dir = scratch("recipe");
    let out = dir.join("deltaw_written.gguf");
    recipe_writer(recipe).write(&out).unwrap();
    let file = GgufFile::open(&out).unwrap();
    let with_offsets = offsets_of(&file, recipe);
    check_file(&file, &with_offsets);
    let (ty, items) = file.metadata().get_array("t.empty_u32s").unwrap();
    assert_eq!((ty, items.len()), (GgufValueType::U32, 0)); // an empty array keeps its type
    let got = std::fs::read(&out).unwrap();
    if std::env::var_os("DELTAW_BLESS").is_some() {
        std::fs::write(fixture("deltaw_written.gguf"), &got).unwrap();
    }
    let committed = std::fs::read(fixture("deltaw_written.gguf")).unwrap();
    assert!(got == committed, "deltaw's writer output changed: check it with gguf_files.py --check, then bless");
    std::fs::remove_dir_all(&dir).ok();
}

/// The recipe with each tensor's offset as `file` has it (the recipe leaves layout to the
/// writer; the committed bytes pin it).
fn offsets_of(file: &GgufFile, recipe: &Value) -> Value {
    let mut v = recipe.clone();
    for t in v["tensors"].as_array_mut().unwrap() {
        let info = file.tensor_info(t["name"].as_str().unwrap()).unwrap();
        t["offset"] = info.offset.into();
    }
    v
}

#[test]
fn typed_getters_name_the_key_and_both_types() {
    let file = GgufFile::open(fixture("all_types_v3.gguf")).unwrap();
    let m = file.metadata();
    assert_eq!(m.get_u32("llama.block_count").unwrap(), 2);
    assert_eq!(m.get_uint("t.u8").unwrap(), 200);
    assert_eq!(m.get_i8("t.i8").unwrap(), -100);
    assert_eq!(m.get_u16("t.u16").unwrap(), 60000);
    assert_eq!(m.get_i16("t.i16").unwrap(), -30000);
    assert_eq!(m.get_i32("t.i32").unwrap(), -2_000_000_000);
    assert_eq!(m.get_u64("t.u64").unwrap(), 18_000_000_000_000_000_000);
    assert_eq!(m.get_i64("t.i64").unwrap(), -9_000_000_000_000_000_000);
    assert_eq!(m.get_f32("t.f32").unwrap(), 1e-5);
    assert_eq!(m.get_f64("t.f64").unwrap(), 0.1);
    assert!(m.get_bool("t.bool").unwrap());
    assert_eq!(m.get_u8("t.u8").unwrap(), 200);
    assert_eq!(m.get_str("general.architecture").unwrap(), "llama");
    assert_eq!(m.get_str_array("tokenizer.ggml.tokens").unwrap(), ["<s>", "a", "▁b", "<0x0A>"]);
    assert_eq!(m.get_f32_array("tokenizer.ggml.scores").unwrap(), [0.0, -1.5, -2.25, 3.0e-7]);
    assert_eq!(m.get_i32_array("tokenizer.ggml.token_type").unwrap(), [3, 1, 1, 6]);
    let err = m.get_u32("t.i32").unwrap_err().to_string();
    assert!(err.contains("all_types_v3.gguf") && err.contains("'t.i32'") && err.contains("INT32"), "{err}");
    assert!(err.contains("expected UINT32"), "{err}");
    let err = m.get_str_array("tokenizer.ggml.scores").unwrap_err().to_string();
    assert!(err.contains("ARRAY[FLOAT32]") && err.contains("expected ARRAY[STRING]"), "{err}");
    let err = m.get_uint("t.i64").unwrap_err().to_string();
    assert!(err.contains("non-negative integer"), "{err}");
    let err = m.get_f32("llama.context_length").unwrap_err().to_string();
    assert!(err.contains("no metadata key 'llama.context_length'"), "{err}");
}

#[test]
fn every_truncation_is_an_error_until_the_last_tensor_is_whole() {
    let bytes = std::fs::read(fixture("all_types_v3.gguf")).unwrap();
    let file = GgufFile::open(fixture("all_types_v3.gguf")).unwrap();
    let end = file.tensor_infos().iter().map(|t| file.data_start() + t.offset + t.n_bytes).max().unwrap();
    let dir = scratch("truncate");
    let path = dir.join("t.gguf");
    for len in 0..bytes.len() {
        std::fs::write(&path, &bytes[..len]).unwrap();
        let opened = GgufFile::open(&path);
        if (len as u64) < end {
            let err = opened.expect_err(&format!("{len} bytes")).to_string();
            assert!(err.contains("t.gguf"), "{len} bytes: {err}");
        } else {
            opened.unwrap_or_else(|e| panic!("{len} bytes (only padding cut): {e}"));
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}
