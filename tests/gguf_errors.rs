//! Malformed GGUF files: each is an error whose message names the file and the field at
//! fault, never a panic or an allocation sized by an unchecked number. The files are built
//! field by field ([`Spec`]), so each case breaks exactly one thing in an otherwise valid file.

use deltaw_tensor::gguf::GgufFile;
use std::path::PathBuf;

const U32: u32 = 4;
const I32: u32 = 5;
const BOOL: u32 = 7;
const STRING: u32 = 8;
const ARRAY: u32 = 9;
const U64: u32 = 10;
const F32_TYPE: u32 = 0;
const Q8_0: u32 = 8;

/// A GGUF file's fields, written in order by [`Spec::bytes`].
#[derive(Clone)]
struct Spec {
    magic: [u8; 4],
    version: u32,
    /// Counts written in the header instead of the real ones.
    counts: Option<(u64, u64)>,
    /// Key bytes, then the value's type id and bytes.
    kvs: Vec<(Vec<u8>, Vec<u8>)>,
    /// Name, ne (fastest first), ggml type, offset.
    tensors: Vec<(String, Vec<u64>, u32, u64)>,
    align: usize,
    data: usize,
}

fn le32(v: u32) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

fn le64(v: u64) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

fn string(s: &[u8]) -> Vec<u8> {
    [le64(s.len() as u64), s.to_vec()].concat()
}

/// A key-value: `key`, type `ty`, then `value`'s bytes.
fn kv(key: &str, ty: u32, value: Vec<u8>) -> (Vec<u8>, Vec<u8>) {
    (key.as_bytes().to_vec(), [le32(ty), value].concat())
}

impl Spec {
    /// A valid file: one UINT32 key, one F32 tensor of shape (2, 32) (ne [32, 2]).
    fn valid() -> Spec {
        Spec {
            magic: *b"GGUF",
            version: 3,
            counts: None,
            kvs: vec![kv("llama.block_count", U32, le32(2))],
            tensors: vec![("w".into(), vec![32, 2], F32_TYPE, 0)],
            align: 32,
            data: 256,
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = self.magic.to_vec();
        out.extend(le32(self.version));
        let (nt, nkv) = self.counts.unwrap_or((self.tensors.len() as u64, self.kvs.len() as u64));
        out.extend(le64(nt));
        out.extend(le64(nkv));
        for (key, value) in &self.kvs {
            out.extend(string(key));
            out.extend(value);
        }
        for (name, ne, ty, offset) in &self.tensors {
            out.extend(string(name.as_bytes()));
            out.extend(le32(ne.len() as u32));
            ne.iter().for_each(|&d| out.extend(le64(d)));
            out.extend(le32(*ty));
            out.extend(le64(*offset));
        }
        out.resize(out.len().div_ceil(self.align) * self.align, 0);
        out.resize(out.len() + self.data, 0);
        out
    }
}

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("deltaw-gguf-errors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Opens `bytes` as a file named `case.gguf`; returns the error message.
fn open_err(case: &str, bytes: &[u8]) -> String {
    let path = scratch().join(format!("{case}.gguf"));
    std::fs::write(&path, bytes).unwrap();
    let err = GgufFile::open(&path).map(|_| ()).expect_err(case).to_string();
    std::fs::remove_file(&path).ok();
    assert!(err.contains(&format!("{case}.gguf")), "{case}: the message does not name the file: {err}");
    if std::env::var_os("DELTAW_SHOW").is_some() {
        eprintln!("{case}: {err}");
    }
    err
}

/// Every fragment of `wanted` is in the error of the file `edit` makes from [`Spec::valid`].
fn expect(case: &str, edit: impl FnOnce(&mut Spec), wanted: &[&str]) {
    let mut spec = Spec::valid();
    edit(&mut spec);
    let err = open_err(case, &spec.bytes());
    for w in wanted {
        assert!(err.contains(w), "{case}: '{w}' not in: {err}");
    }
}

#[test]
fn the_valid_spec_opens() {
    let path = scratch().join("valid.gguf");
    std::fs::write(&path, Spec::valid().bytes()).unwrap();
    let file = GgufFile::open(&path).unwrap();
    assert_eq!(file.tensor_info("w").unwrap().shape, [2, 32]);
    assert_eq!(file.metadata().get_u32("llama.block_count").unwrap(), 2);
    std::fs::remove_file(&path).ok();
}

#[test]
fn headers_other_than_little_endian_v2_v3_are_refused() {
    expect("magic", |s| s.magic = *b"GGML", &["magic"]);
    expect("v1", |s| s.version = 1, &["version 1", "not supported"]);
    expect("v4", |s| s.version = 4, &["version 4"]);
    let mut big = Spec::valid().bytes();
    big[4..8].copy_from_slice(&3u32.to_be_bytes());
    let err = open_err("big_endian", &big);
    assert!(err.contains("big-endian"), "{err}");
    open_err("empty", b"");
    open_err("short", b"GGUF\x03\x00");
}

#[test]
fn absurd_counts_and_lengths_are_refused() {
    expect("tensor_count", |s| s.counts = Some((1 << 50, 1)), &["tensor count 1125899906842624", "bytes left"]);
    expect("kv_count", |s| s.counts = Some((1, u64::MAX)), &["metadata count"]);
    let mut spec = Spec::valid();
    let mut bytes = spec.bytes();
    bytes[24..32].copy_from_slice(&u64::MAX.to_le_bytes()); // the first key's length
    let err = open_err("key_length_huge", &bytes);
    assert!(err.contains("metadata key #0: string length"), "{err}");
    spec.kvs.push(kv("t.s", STRING, le64(1 << 40)));
    let err = open_err("string_length", &spec.bytes());
    assert!(err.contains("'t.s': string length 1099511627776 cannot fit"), "{err}");
    expect(
        "array_length",
        |s| s.kvs.push(kv("t.a", ARRAY, [le32(U32), le64(1 << 61)].concat())),
        &["'t.a'", "array length"],
    );
    expect(
        "array_of_arrays",
        |s| s.kvs.push(kv("t.a", ARRAY, [le32(ARRAY), le64(u64::MAX / 12)].concat())),
        &["array length"],
    );
    let deep = (0..9).flat_map(|_| [le32(ARRAY), le64(1)].concat()).chain([le32(U32), le64(0)].concat()).collect();
    expect("deep", |s| s.kvs.push(kv("t.deep", ARRAY, deep)), &["'t.deep'", "nest deeper"]);
}

#[test]
fn bad_metadata_is_refused_naming_the_key() {
    expect("value_type", |s| s.kvs.push(kv("t.x", 13, vec![0; 8])), &["'t.x'", "unknown metadata value type 13"]);
    expect("bool", |s| s.kvs.push(kv("t.b", BOOL, vec![2])), &["'t.b'", "BOOL byte is 2"]);
    expect(
        "duplicate_key",
        |s| s.kvs.push(kv("llama.block_count", U32, le32(3))),
        &["'llama.block_count' appears twice"],
    );
    expect(
        "utf8_key",
        |s| s.kvs.push((vec![0xff, 0xfe], [le32(U32), le32(1)].concat())),
        &["metadata key #1", "UTF-8"],
    );
    expect("utf8_value", |s| s.kvs.push(kv("t.s", STRING, string(b"\xc3"))), &["'t.s'", "UTF-8"]);
    expect(
        "alignment_24",
        |s| s.kvs.push(kv("general.alignment", U32, le32(24))),
        &["general.alignment", "power of two"],
    );
    expect("alignment_zero", |s| s.kvs.push(kv("general.alignment", U32, le32(0))), &["power of two"]);
    expect("alignment_u64", |s| s.kvs.push(kv("general.alignment", U64, le64(32))), &["general.alignment", "UINT64"]);
    expect("truncated_value", |s| s.kvs.push(kv("t.i", I32, vec![1, 2])), &[]);
}

#[test]
fn impossible_tensors_are_refused_naming_the_tensor() {
    let supported = ["'w'", "ggml type 9 is not supported", "F32 (0)", "BF16 (30)", "q4_K (12)", "q6_K (14)"];
    expect("unknown_type", |s| s.tensors[0].2 = 9, &supported);
    expect("zero_dim", |s| s.tensors[0].1 = vec![32, 0], &["'w'", "zero"]);
    expect("no_dims", |s| s.tensors[0].1 = vec![], &["'w'", "0 dims"]);
    expect("five_dims", |s| s.tensors[0].1 = vec![1; 5], &["'w'", "5 dims"]);
    expect("overflow", |s| s.tensors[0].1 = vec![1 << 32, 1 << 32, 1 << 32], &["'w'", "overflows"]);
    expect(
        "partial_block",
        |s| (s.tensors[0].1, s.tensors[0].2) = (vec![33, 2], Q8_0),
        &["'w'", "ne[0] = 33", "q8_0 blocks"],
    );
    expect("misaligned", |s| s.tensors[0].3 = 4, &["'w'", "offset 4", "alignment 32"]);
    expect("past_the_end", |s| s.tensors[0].3 = 1 << 40, &["'w'", "past the 256-byte data section"]);
    expect("offset_overflow", |s| s.tensors[0].3 = u64::MAX - 31, &["'w'", "past the"]);
    expect("no_data", |s| s.data = 255, &["'w'", "past the 255-byte"]);
    let two = |s: &mut Spec| {
        s.tensors.push(("v".into(), vec![8], F32_TYPE, 224));
        s.data = 256;
    };
    expect("overlap", two, &["'v' at offset 224 overlaps tensor 'w'"]);
    expect("duplicate_tensor", |s| s.tensors.push(("w".into(), vec![1], F32_TYPE, 0)), &["tensor 'w' appears twice"]);
    expect("truncated_info", |s| s.counts = Some((2, 1)), &[]);
}
