//! Quantize: f32 values to blocks, byte-identical to llama.cpp's reference quantizers.

use rayon::prelude::*;

use super::{kquant_ref, legacy, QuantType};
use crate::{Error, Result};

/// Blocks per rayon task (each block is quantized independently of the others).
const PAR_BLOCKS: usize = 64;

/// The function that quantizes one block of `ty` (`block_elems()` in, `block_bytes()` out).
fn block_fn(ty: QuantType) -> fn(&[f32], &mut [u8]) {
    match ty {
        QuantType::Q4_0 => legacy::quantize_q4_0,
        QuantType::Q4_1 => legacy::quantize_q4_1,
        QuantType::Q5_0 => legacy::quantize_q5_0,
        QuantType::Q5_1 => legacy::quantize_q5_1,
        QuantType::Q8_0 => legacy::quantize_q8_0,
        QuantType::Q4K => kquant_ref::quantize_q4_k,
        QuantType::Q5K => kquant_ref::quantize_q5_k,
        QuantType::Q6K => kquant_ref::quantize_q6_k,
    }
}

/// Quantizes `src` (any number of rows laid end to end) to blocks of `ty`, byte for byte as
/// llama.cpp's `quantize_row_*_ref` (what `ggml_quantize_chunk` and `llama-quantize` use
/// without an importance matrix, and what the Python `gguf` package mirrors).
///
/// Every block is fitted on its own values only, so rows need no separate treatment. The
/// blocks are quantized in parallel; the bytes do not depend on the thread count.
///
/// # Errors
/// [`Error::Quantize`] when `src.len()` is not a whole number of blocks, or when `src` holds a
/// NaN or an infinity (naming the first one's index): the reference would write garbage.
///
/// ```
/// use deltaw_tensor::quant::{dequantize, quantize, QuantType};
/// let x: Vec<f32> = (0..256).map(|i| (i as f32 * 0.37).sin()).collect();
/// let q = quantize(QuantType::Q4K, &x)?;
/// assert_eq!(q.len(), 144);
/// let mut y = vec![0.0f32; 256];
/// dequantize(QuantType::Q4K, &q, &mut y);
/// assert!(x.iter().zip(&y).all(|(a, b)| (a - b).abs() < 0.1));
/// assert!(quantize(QuantType::Q8_0, &[1.0; 31]).is_err()); // not a whole block
/// # Ok::<(), deltaw_tensor::Error>(())
/// ```
pub fn quantize(ty: QuantType, src: &[f32]) -> Result<Vec<u8>> {
    let Some(bytes) = ty.bytes_for(src.len()) else {
        return Err(Error::Quantize {
            ty: ty.name().into(),
            message: format!("{} values is not a whole number of {}-value blocks", src.len(), ty.block_elems()),
        });
    };
    if let Some(i) = src.iter().position(|v| !v.is_finite()) {
        return Err(Error::Quantize { ty: ty.name().into(), message: format!("element {i} is {}", src[i]) });
    }
    let mut out = vec![0u8; bytes];
    let f = block_fn(ty);
    let (be, bb) = (ty.block_elems(), ty.block_bytes());
    out.par_chunks_mut(PAR_BLOCKS * bb).zip(src.par_chunks(PAR_BLOCKS * be)).for_each(|(o, x)| {
        for (o, x) in o.chunks_exact_mut(bb).zip(x.chunks_exact(be)) {
            f(x, o);
        }
    });
    Ok(out)
}
