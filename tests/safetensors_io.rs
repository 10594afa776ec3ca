//! safetensors reading and writing: round trips in every dtype, atomic writes, and errors
//! that name the file and the tensor.

use deltaw_tensor::{safetensors, DType, Device, Tensor};
use std::path::PathBuf;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("deltaw-st-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A safetensors file by hand: 8-byte header length, JSON header, data.
fn raw_file(header: &str, data: &[u8]) -> Vec<u8> {
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(data);
    bytes
}

#[test]
fn every_dtype_round_trips_with_metadata() {
    let dev = Device::Cpu;
    let dir = temp_dir("roundtrip");
    let path = dir.join("t.safetensors");
    let x = Tensor::from_vec(vec![0.5f32, -1.25, 3.0, 1e-3, 7.0, -2.0], (2, 3), &dev).unwrap();
    let ids = Tensor::from_vec(vec![3i32, -100, 7], 3, &dev).unwrap();
    let tensors = [
        ("f32", x.clone()),
        ("f32_transposed", x.t()),
        ("f16", x.to_dtype(DType::F16).unwrap()),
        ("bf16", x.to_dtype(DType::BF16).unwrap()),
        ("i32", ids.clone()),
    ];
    let meta = [("format".to_string(), "pt".to_string())].into_iter().collect();
    safetensors::save(tensors.iter().map(|(n, t)| (*n, t)), Some(meta), &path).unwrap();
    let (back, meta) = safetensors::load_with_metadata(&path, &dev).unwrap();
    assert_eq!(meta["format"], "pt");
    for (name, t) in &tensors {
        assert_eq!(back[*name].dtype(), t.dtype(), "{name}");
        assert_eq!(back[*name].dims(), t.dims(), "{name}");
        assert_eq!(back[*name].to_vec(), t.to_vec(), "{name}");
    }
    let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().filter_map(|e| e.ok()).collect();
    assert_eq!(leftovers.len(), 1, "the atomic write left a temp file behind");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn i64_loads_as_i32_and_rejects_overflow() {
    let dir = temp_dir("i64");
    let ok = dir.join("ok.safetensors");
    let data: Vec<u8> = [5i64, -100].iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&ok, raw_file(r#"{"ids":{"dtype":"I64","shape":[2],"data_offsets":[0,16]}}"#, &data)).unwrap();
    assert_eq!(safetensors::load(&ok, &Device::Cpu).unwrap()["ids"].to_vec_i32(), vec![5, -100]);

    let big = dir.join("big.safetensors");
    let data: Vec<u8> = [1i64 << 40].iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&big, raw_file(r#"{"ids":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}"#, &data)).unwrap();
    let err = safetensors::load(&big, &Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("tensor 'ids'") && err.contains("big.safetensors"), "{err}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn unsupported_dtype_error_names_file_and_tensor() {
    let dir = temp_dir("u8");
    let path = dir.join("mask.safetensors");
    std::fs::write(&path, raw_file(r#"{"mask":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}"#, &[1, 0])).unwrap();
    let err = safetensors::load(&path, &Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("mask.safetensors") && err.contains("tensor 'mask'") && err.contains("U8"), "{err}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn missing_and_corrupt_files_are_errors_naming_the_file() {
    let dir = temp_dir("bad");
    let missing = dir.join("nope.safetensors");
    let err = safetensors::load(&missing, &Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("nope.safetensors"), "{err}");

    let corrupt = dir.join("corrupt.safetensors");
    std::fs::write(&corrupt, b"this is not a safetensors file").unwrap();
    let err = safetensors::load(&corrupt, &Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("corrupt.safetensors: not a valid safetensors file"), "{err}");

    let truncated = dir.join("truncated.safetensors");
    std::fs::write(&truncated, raw_file(r#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#, &[0; 8]))
        .unwrap();
    let err = safetensors::load(&truncated, &Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("truncated.safetensors"), "{err}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn saving_into_a_missing_folder_fails_cleanly() {
    let path = std::env::temp_dir().join("deltaw-no-such-dir-xyz").join("w.safetensors");
    let err = safetensors::save([("w", &Tensor::ones(2, &Device::Cpu))], None, &path).unwrap_err();
    assert!(err.to_string().contains("w.safetensors"), "{err}");
}

/// The streaming loader (tensor by tensor from the file) gives exactly what decoding the
/// whole file from memory gives, on every committed fixture.
#[test]
fn streaming_load_equals_in_memory_decoding_on_every_fixture() {
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    for name in ["ops.safetensors", "models.safetensors", "lora.safetensors", "tiny_gpt2/model.safetensors"] {
        let path = fixtures.join(name);
        let (streamed, meta) = safetensors::load_with_metadata(&path, &Device::Cpu).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let (decoded, meta2) = safetensors::load_from_bytes(&bytes, &path, &Device::Cpu).unwrap();
        assert_eq!(meta, meta2, "{name}: metadata");
        assert_eq!(streamed.keys().collect::<Vec<_>>(), decoded.keys().collect::<Vec<_>>(), "{name}: keys");
        for (k, t) in &streamed {
            let d = &decoded[k];
            assert_eq!((t.dtype(), t.dims()), (d.dtype(), d.dims()), "{name}/{k}");
            if t.dtype() == DType::I32 {
                assert_eq!(t.to_vec_i32(), d.to_vec_i32(), "{name}/{k}");
            } else {
                let bits = |x: &Tensor| x.to_vec().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(t), bits(d), "{name}/{k}");
            }
        }
    }
}

#[test]
fn a_truncated_file_is_an_error_naming_file_and_tensor() {
    let dir = temp_dir("truncated");
    let path = dir.join("t.safetensors");
    std::fs::write(&path, raw_file(r#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#, &[0u8; 8])).unwrap();
    let err = safetensors::load(&path, &Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("t.safetensors") && err.contains("'w'"), "{err}");
    std::fs::write(&path, raw_file(r#"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}}"#, &[0u8; 16])).unwrap();
    let err = safetensors::load(&path, &Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("16 bytes do not hold 3 F32 values"), "{err}");
}

/// Header values are checked with checked arithmetic and against the file before anything is
/// allocated: a shape whose element count overflows, an offset near `u64::MAX`, offsets that
/// overlap, leave a gap or leave bytes unclaimed are errors naming the file, never a panic or
/// a tensor whose shape disagrees with its storage.
#[test]
fn crafted_headers_are_errors_not_panics() {
    let dir = temp_dir("crafted");
    let path = dir.join("c.safetensors");
    let huge = 1u64 << 32;
    let cases: [(String, usize, &str); 8] = [
        (format!(r#"{{"w":{{"dtype":"F32","shape":[{huge},{huge}],"data_offsets":[0,0]}}}}"#), 0, "overflows"),
        (format!(r#"{{"w":{{"dtype":"F32","shape":[1],"data_offsets":[0,{}]}}}}"#, u64::MAX - 4), 4, "exceed"),
        (r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#.into(), 8, "not contiguous"),
        (
            r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#
                .into(),
            8,
            "not contiguous",
        ),
        (r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#.into(), 12, "unclaimed"),
        (r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}}"#.into(), 8, "exceed"),
        // The same tensor twice, each entry valid alone: parsers differ on which one wins.
        (
            r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#
                .into(),
            4,
            "\"w\" appears twice",
        ),
        (r#"{"w":{"dtype":"F32","dtype":"I32","shape":[1],"data_offsets":[0,4]}}"#.into(), 4, "\"dtype\" appears twice"),
    ];
    for (header, data_len, expected) in cases {
        std::fs::write(&path, raw_file(&header, &vec![0u8; data_len])).unwrap();
        let loaded = std::panic::catch_unwind(|| safetensors::load(&path, &Device::Cpu));
        let err = loaded.unwrap_or_else(|_| panic!("panicked on {header}")).unwrap_err().to_string();
        assert!(err.contains("c.safetensors") && err.contains(expected), "{header}: {err}");
        let header_only = std::panic::catch_unwind(|| safetensors::read_header(&path));
        let err = header_only.unwrap_or_else(|_| panic!("read_header panicked on {header}")).unwrap_err();
        assert!(err.to_string().contains(expected), "{header}: {err}");
        if expected.contains("twice") {
            let bytes = std::fs::read(&path).unwrap();
            let err = safetensors::load_from_bytes(&bytes, &path, &Device::Cpu).unwrap_err().to_string();
            // The safetensors crate refuses a repeated field itself; a repeated tensor is ours.
            assert!(err.contains(expected) || err.contains("duplicate field"), "load_from_bytes, {header}: {err}");
        }
    }
    std::fs::remove_dir_all(dir).ok();
}

/// F64 loads as f32 rounded to nearest; a finite value past the f32 range is an error naming
/// the file and the tensor, not a silent infinity (both loaders).
#[test]
fn f64_loads_rounded_and_refuses_values_past_the_f32_range() {
    let dir = temp_dir("f64");
    let path = dir.join("w.safetensors");
    let header = r#"{"w":{"dtype":"F64","shape":[3],"data_offsets":[0,24]}}"#;
    let data: Vec<u8> = [0.1f64, -2.5, f64::INFINITY].iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&path, raw_file(header, &data)).unwrap();
    assert_eq!(safetensors::load(&path, &Device::Cpu).unwrap()["w"].to_vec(), vec![0.1f32, -2.5, f32::INFINITY]);
    let data: Vec<u8> = [0.1f64, 1e300, 0.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&path, raw_file(header, &data)).unwrap();
    let err = safetensors::load(&path, &Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("w.safetensors") && err.contains("'w'") && err.contains("f32 range"), "{err}");
    let bytes = std::fs::read(&path).unwrap();
    let err = safetensors::load_from_bytes(&bytes, &path, &Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("f32 range"), "{err}");
    std::fs::remove_dir_all(dir).ok();
}
