//! Round-trip error bounds, errors and panics of `quantize` / `dequantize`. Bit-exactness
//! against llama.cpp is checked by `tests/quant_fixtures.rs` in the deltaw-tests crate.

use super::*;
use crate::rng::Seed;
use crate::{Device, Tensor};

/// Gaussian values, a few blocks of every type's size.
fn normal(n: usize, seed: u64) -> Vec<f32> {
    Tensor::randn(n, Seed(seed), &Device::Cpu).to_vec()
}

fn round_trip(ty: QuantType, x: &[f32]) -> Vec<f32> {
    let q = quantize(ty, x).unwrap();
    assert_eq!(q.len(), ty.bytes_for(x.len()).unwrap());
    let mut y = vec![f32::NAN; x.len()];
    dequantize(ty, &q, &mut y);
    y
}

/// Relative f16 rounding of a stored scale: half an ulp of an 11-bit significand.
const F16_REL: f32 = 1.0 / 2048.0;

#[test]
fn q8_0_and_q4_0_and_q5_0_errors_are_at_most_half_a_step() {
    // d = max / -nmax_neg maps the largest magnitude to the most negative code; the opposite
    // side stops one code short, so a value there may be a whole step off (q4_0: x/d = +8
    // clamps to 7). Every other value is within d/2, plus the scale's f16 rounding times q.
    let x = normal(32 * 64, 1);
    for (ty, levels, top) in
        [(QuantType::Q8_0, 127.0f32, 127.0f32), (QuantType::Q4_0, 8.0, 7.0), (QuantType::Q5_0, 16.0, 15.0)]
    {
        let y = round_trip(ty, &x);
        for (b, (xb, yb)) in x.chunks(32).zip(y.chunks(32)).enumerate() {
            let amax = xb.iter().fold(0.0f32, |a, v| a.max(v.abs()));
            let d = amax / levels;
            for (j, (&xv, &yv)) in xb.iter().zip(yb).enumerate() {
                let step = if (xv / d).abs() > top + 0.5 { d } else { d / 2.0 };
                let bound = step + levels * d * F16_REL + 1e-7;
                assert!((xv - yv).abs() <= bound, "{ty} block {b} [{j}]: {xv} -> {yv}, bound {bound}");
            }
        }
    }
}

#[test]
fn q4_1_and_q5_1_errors_are_at_most_half_a_step() {
    let x: Vec<f32> = normal(32 * 64, 2).iter().map(|v| v + 0.3).collect();
    for (ty, levels) in [(QuantType::Q4_1, 15.0f32), (QuantType::Q5_1, 31.0)] {
        let y = round_trip(ty, &x);
        for (b, (xb, yb)) in x.chunks(32).zip(y.chunks(32)).enumerate() {
            let min = xb.iter().fold(f32::MAX, |a, &v| a.min(v));
            let max = xb.iter().fold(f32::MIN, |a, &v| a.max(v));
            let d = (max - min) / levels;
            // d/2, plus the f16 rounding of d (times q ≤ levels) and of m.
            let bound = d / 2.0 + levels * d * F16_REL + min.abs() * F16_REL + 1e-6;
            for (j, (&xv, &yv)) in xb.iter().zip(yb).enumerate() {
                assert!((xv - yv).abs() <= bound, "{ty} block {b} [{j}]: {xv} -> {yv}, bound {bound}");
            }
        }
    }
}

#[test]
fn k_quant_round_trips_keep_relative_rms_error_small() {
    // Relative RMS error on Gaussian data: about 2^-bits of the range over sqrt(12), with the
    // 6-bit sub-block scales' rounding on top. Measured on this data: q4_K 0.071, q5_K 0.036, q6_K 0.018.
    let x = normal(256 * 16, 3);
    let rms = |v: &[f32]| (v.iter().map(|a| a * a).sum::<f32>() / v.len() as f32).sqrt();
    for (ty, limit) in [(QuantType::Q4K, 0.10f32), (QuantType::Q5K, 0.05), (QuantType::Q6K, 0.025)] {
        let y = round_trip(ty, &x);
        let err: Vec<f32> = x.iter().zip(&y).map(|(a, b)| a - b).collect();
        let rel = rms(&err) / rms(&x);
        assert!(rel < limit, "{ty}: relative RMS error {rel} ≥ {limit}");
    }
}

#[test]
fn zeros_and_constants_round_trip_exactly_where_the_format_allows() {
    for ty in QuantType::ALL {
        let zeros = vec![0.0f32; ty.block_elems() * 2];
        assert!(round_trip(ty, &zeros).iter().all(|&v| v == 0.0), "{ty}: zeros");
    }
    // A constant block whose scale (value / most negative code) is a power of two, exact in
    // f16, decodes to itself.
    for (ty, v) in [(QuantType::Q8_0, -127.0f32 / 256.0), (QuantType::Q4_0, -0.5), (QuantType::Q5_0, -0.5)] {
        let c = vec![v; 64];
        assert_eq!(round_trip(ty, &c), c, "{ty}: constant block");
    }
}

#[test]
fn quantize_names_the_bad_length_and_the_first_non_finite_index() {
    let e = quantize(QuantType::Q4K, &[0.0; 300]).unwrap_err().to_string();
    assert!(e.contains("q4_K") && e.contains("300") && e.contains("256"), "{e}");
    let mut x = vec![1.0f32; 64];
    x[37] = f32::NAN;
    x[50] = f32::INFINITY;
    let e = quantize(QuantType::Q8_0, &x).unwrap_err().to_string();
    assert!(e.contains("element 37") && e.contains("NaN"), "{e}");
    x[37] = 0.0;
    let e = quantize(QuantType::Q5_1, &x).unwrap_err().to_string();
    assert!(e.contains("element 50") && e.contains("inf"), "{e}");
    assert_eq!(quantize(QuantType::Q6K, &[]).unwrap(), Vec::<u8>::new());
}

#[test]
#[should_panic(expected = "dequantize(q6_K): 209 source bytes for 256 values, expected 210")]
fn dequantize_panics_naming_both_lengths() {
    dequantize(QuantType::Q6K, &[0; 209], &mut [0.0; 256]);
}

#[test]
#[should_panic(expected = "dequantize(q4_0): 33 destination values is not a whole number")]
fn dequantize_panics_on_a_partial_block() {
    dequantize(QuantType::Q4_0, &[0; 18], &mut [0.0; 33]);
}

#[test]
fn parallel_dequantize_equals_the_row_tiles() {
    // More than one rayon task's worth of values, for every type: the split into tasks must
    // not shift a block.
    for ty in QuantType::ALL {
        let (rows, k) = (40, 1024);
        let q = quantize(ty, &normal(rows * k, 4)).unwrap();
        let mut all = vec![0.0f32; rows * k];
        dequantize(ty, &q, &mut all);
        let mut tile = vec![0.0f32; 3 * k];
        for r in (0..rows).step_by(3).filter(|r| r + 3 <= rows) {
            dequantize_rows(ty, &q, k, r..r + 3, &mut tile);
            assert_eq!(tile, all[r * k..(r + 3) * k], "{ty} rows {r}..{}", r + 3);
        }
    }
}

#[test]
#[should_panic(expected = "dequantize_rows(q8_0): rows 2..4")]
fn dequantize_rows_panics_past_the_last_row() {
    dequantize_rows(QuantType::Q8_0, &[0; 34 * 3], 32, 2..4, &mut [0.0; 64]);
}
