//! Block quantization against llama.cpp, bit for bit: `dequantize` of every type on the blocks
//! in `fixtures/quant/dequantize.safetensors`, and `quantize` of every type on the inputs in
//! `fixtures/quant/quantize.safetensors` (both made by `fixtures/quant.py` from llama.cpp's C
//! reference functions, cross-checked with the `gguf` package). Exact equality, no tolerance:
//! the reference and deltaw evaluate the same f32 operations in the same order.

use std::path::PathBuf;

use deltaw_tensor::quant::{dequantize, dequantize_rows, quantize};
use deltaw_tensor::QuantType;
use safetensors::{Dtype, SafeTensors};

/// The bytes of fixture file `quant/<name>`.
fn read(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/quant").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn u8s(st: &SafeTensors, key: &str) -> Vec<u8> {
    let t = st.tensor(key).unwrap_or_else(|e| panic!("{key}: {e}"));
    assert_eq!(t.dtype(), Dtype::U8, "{key}");
    t.data().to_vec()
}

fn f32s(st: &SafeTensors, key: &str) -> Vec<f32> {
    let t = st.tensor(key).unwrap_or_else(|e| panic!("{key}: {e}"));
    assert_eq!(t.dtype(), Dtype::F32, "{key}");
    t.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

/// Same bits, or both NaN.
fn same(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// Every mismatch of `got` against `want`, as "type block b element e: got vs want".
fn value_mismatches(ty: QuantType, got: &[f32], want: &[f32]) -> Vec<String> {
    let be = ty.block_elems();
    (0..want.len())
        .filter(|&i| !same(got[i], want[i]))
        .map(|i| format!("{ty} block {} element {}: got {:e}, llama.cpp {:e}", i / be, i % be, got[i], want[i]))
        .collect()
}

#[test]
fn dequantize_matches_llama_cpp_bit_for_bit_on_every_type() {
    let file = read("dequantize.safetensors");
    let st = SafeTensors::deserialize(&file).expect("dequantize.safetensors");
    let mut failures = Vec::new();
    for ty in QuantType::ALL {
        let blocks = u8s(&st, &format!("{}.blocks", ty.name()));
        let want = f32s(&st, &format!("{}.values", ty.name()));
        assert!(blocks.len() / ty.block_bytes() >= 8, "{ty}: too few fixture blocks");
        let mut got = vec![f32::NAN; want.len()];
        dequantize(ty, &blocks, &mut got);
        failures.extend(value_mismatches(ty, &got, &want));
        // The tile path, one block-row at a time, gives the same values.
        let k = ty.block_elems();
        for r in 0..want.len() / k {
            let mut row = vec![f32::NAN; k];
            dequantize_rows(ty, &blocks, k, r..r + 1, &mut row);
            failures.extend(
                value_mismatches(ty, &row, &want[r * k..(r + 1) * k]).into_iter().map(|m| format!("rows: {m}")),
            );
        }
    }
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures[..failures.len().min(20)].join("\n"));
}

#[test]
fn quantize_matches_llama_cpp_reference_byte_for_byte() {
    let file = read("quantize.safetensors");
    let st = SafeTensors::deserialize(&file).expect("quantize.safetensors");
    let mut failures = Vec::new();
    for ty in QuantType::ALL {
        let input = f32s(&st, if ty.block_elems() == 256 { "k.input" } else { "small.input" });
        let want = u8s(&st, &format!("{}.bytes", ty.name()));
        let got = quantize(ty, &input).unwrap_or_else(|e| panic!("{ty}: {e}"));
        assert_eq!(got.len(), want.len(), "{ty}: byte count");
        let bb = ty.block_bytes();
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            if g != w {
                failures.push(format!("{ty} block {} byte {}: got {g:#04x}, llama.cpp {w:#04x}", i / bb, i % bb));
            }
        }
    }
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures[..failures.len().min(30)].join("\n"));
}

#[test]
fn quantize_then_dequantize_matches_llama_cpp_values() {
    // The reference bytes decode to the same values deltaw's own bytes decode to: a check
    // that a byte mismatch above would be a real numerical difference, not padding.
    let file = read("quantize.safetensors");
    let st = SafeTensors::deserialize(&file).expect("quantize.safetensors");
    for ty in QuantType::ALL {
        let input = f32s(&st, if ty.block_elems() == 256 { "k.input" } else { "small.input" });
        let want = u8s(&st, &format!("{}.bytes", ty.name()));
        let mut a = vec![0.0f32; input.len()];
        let mut b = vec![0.0f32; input.len()];
        dequantize(ty, &want, &mut a);
        dequantize(ty, &quantize(ty, &input).unwrap(), &mut b);
        let bad = value_mismatches(ty, &b, &a);
        assert!(bad.is_empty(), "{}", bad[..bad.len().min(10)].join("\n"));
    }
}
