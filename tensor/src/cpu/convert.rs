//! Element type conversion. f32 → f16/bf16 rounds to nearest-even (overflow gives ±inf, as
//! PyTorch); anything → i32 must be an exact integer in range or it is an error.

use crate::dtype::{DType, Element};
use crate::error::{Error, Result};
use crate::storage::CpuStorage;
use half::{bf16, f16};
use rayon::prelude::*;
use std::ops::Range;

/// Converts `src[range]` to `to`.
pub fn convert(src: &CpuStorage, range: Range<usize>, to: DType) -> Result<CpuStorage> {
    let as_f32: Vec<f32> = match src {
        CpuStorage::F32(v) => v[range].to_vec(),
        CpuStorage::F16(v) => v[range].par_iter().map(|x| x.to_f32()).collect(),
        CpuStorage::BF16(v) => v[range].par_iter().map(|x| x.to_f32()).collect(),
        CpuStorage::I32(v) if to.quant_type().is_none() => return Ok(from_i32(&v[range], to)),
        CpuStorage::I32(v) => v[range].iter().map(|&x| x as f32).collect(),
        CpuStorage::Quant { ty, bytes } => dequantize_range(*ty, bytes, range),
    };
    Ok(match to {
        DType::F32 => CpuStorage::F32(as_f32),
        DType::F16 => CpuStorage::F16(as_f32.par_iter().map(|&x| f16::from_f32(x)).collect()),
        DType::BF16 => CpuStorage::BF16(as_f32.par_iter().map(|&x| bf16::from_f32(x)).collect()),
        DType::I32 => CpuStorage::I32(to_i32(&as_f32)?),
        DType::Quant(ty) => CpuStorage::Quant { ty, bytes: crate::quant::quantize(ty, &as_f32)? },
    })
}

fn from_i32(v: &[i32], to: DType) -> CpuStorage {
    match to {
        DType::F32 => CpuStorage::F32(v.iter().map(|&x| x as f32).collect()),
        DType::F16 => CpuStorage::F16(v.iter().map(|&x| f16::from_f32(x as f32)).collect()),
        DType::BF16 => CpuStorage::BF16(v.iter().map(|&x| bf16::from_f32(x as f32)).collect()),
        DType::I32 => CpuStorage::I32(v.to_vec()),
        DType::Quant(_) => unreachable!("convert widens i32 to f32 before quantizing"),
    }
}

/// The elements `range` of quantized `bytes`, dequantized.
///
/// # Panics
/// When `range` does not start and end on block boundaries (a view that cuts blocks, such as
/// a narrow of the last dim, is converted from a whole-block range by its caller).
#[track_caller]
fn dequantize_range(ty: crate::QuantType, bytes: &[u8], range: Range<usize>) -> Vec<f32> {
    let b = ty.block_elems();
    assert!(
        range.start.is_multiple_of(b) && range.end.is_multiple_of(b),
        "to_dtype: elements {range:?} of a {ty} buffer do not start and end on its {b}-element blocks"
    );
    let bytes = &bytes[range.start / b * ty.block_bytes()..range.end / b * ty.block_bytes()];
    let mut out = vec![0.0f32; range.len()];
    crate::quant::dequantize(ty, bytes, &mut out);
    out
}

/// f32 → i32, refusing fractions, NaN and values outside i32's range.
fn to_i32(v: &[f32]) -> Result<Vec<i32>> {
    v.iter()
        .enumerate()
        .map(|(index, &x)| {
            let exact = x.fract() == 0.0 && x >= i32::MIN as f32 && x < i32::MAX as f32;
            if exact {
                Ok(i32::from_f32(x))
            } else {
                Err(Error::Conversion { to: "i32".into(), index, value: x as f64 })
            }
        })
        .collect()
}
