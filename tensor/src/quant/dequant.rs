//! Dequantize: quantized blocks to f32, for a whole tensor (in parallel) or a tile of rows.

use std::ops::Range;

use rayon::prelude::*;

use super::{kquants, legacy, QuantType};

/// Values per rayon task: large enough that a task outweighs its scheduling (≈ 16 KiB of
/// Q4_0 bytes in, 64 KiB of f32 out), small enough to spread a 4096-wide row over cores.
const PAR_CHUNK_ELEMS: usize = 1 << 14;

/// The function that decodes one block of `ty` (`block_bytes()` in, `block_elems()` out).
fn block_fn(ty: QuantType) -> fn(&[u8], &mut [f32]) {
    match ty {
        QuantType::Q4_0 => legacy::dequantize_q4_0,
        QuantType::Q4_1 => legacy::dequantize_q4_1,
        QuantType::Q5_0 => legacy::dequantize_q5_0,
        QuantType::Q5_1 => legacy::dequantize_q5_1,
        QuantType::Q8_0 => legacy::dequantize_q8_0,
        QuantType::Q4K => kquants::dequantize_q4_k,
        QuantType::Q5K => kquants::dequantize_q5_k,
        QuantType::Q6K => kquants::dequantize_q6_k,
    }
}

/// Panics unless `src` holds exactly the blocks of `n` values of `ty`.
#[track_caller]
fn check_lengths(op: &str, ty: QuantType, src: usize, n: usize) {
    match ty.bytes_for(n) {
        Some(bytes) if bytes == src => {}
        Some(bytes) => panic!(
            "{op}({ty}): {src} source bytes for {n} values, expected {bytes} ({} blocks of {} bytes)",
            n / ty.block_elems(),
            ty.block_bytes()
        ),
        None => panic!(
            "{op}({ty}): {n} destination values is not a whole number of {}-value blocks ({src} source bytes)",
            ty.block_elems()
        ),
    }
}

/// Decodes the blocks of `src` into `dst` on this thread, block by block.
fn dequantize_serial(ty: QuantType, src: &[u8], dst: &mut [f32]) {
    let f = block_fn(ty);
    for (b, y) in src.chunks_exact(ty.block_bytes()).zip(dst.chunks_exact_mut(ty.block_elems())) {
        f(b, y);
    }
}

/// Decodes `dst.len()` values of type `ty` from their blocks in `src`, exactly as llama.cpp's
/// `dequantize_row_*` does (bit for bit: same f32 operations in the same order).
///
/// Large inputs are split over rayon's pool in runs of whole blocks; the result does not
/// depend on the thread count.
///
/// # Panics
/// If `dst.len()` is not a whole number of blocks, or `src.len()` is not exactly those
/// blocks' bytes. Validate data from outside (a file's byte count) before calling.
///
/// ```
/// use deltaw_tensor::quant::{dequantize, QuantType};
/// // One Q8_0 block: f16 scale 0.5 (0x3800), then 32 signed bytes.
/// let mut block = vec![0x00, 0x38];
/// block.extend((0..32).map(|i| (i as i8 - 16) as u8));
/// let mut x = vec![0.0f32; 32];
/// dequantize(QuantType::Q8_0, &block, &mut x);
/// assert_eq!((x[0], x[31]), (-8.0, 7.5));
/// ```
#[track_caller]
pub fn dequantize(ty: QuantType, src: &[u8], dst: &mut [f32]) {
    check_lengths("dequantize", ty, src.len(), dst.len());
    if dst.len() <= PAR_CHUNK_ELEMS {
        return dequantize_serial(ty, src, dst);
    }
    // PAR_CHUNK_ELEMS is a multiple of 256, so every task holds whole blocks of any type.
    let chunk_bytes = PAR_CHUNK_ELEMS / ty.block_elems() * ty.block_bytes();
    src.par_chunks(chunk_bytes).zip(dst.par_chunks_mut(PAR_CHUNK_ELEMS)).for_each(|(b, y)| dequantize_serial(ty, b, y));
}

/// Decodes rows `rows` of a row-major `(n, k)` matrix of type `ty` whose bytes are `src`
/// (all `n` rows) into `dst` (`rows.len() · k` values), on the calling thread: the tile
/// step of a GEMM that keeps its weights quantized and widens one panel at a time.
///
/// # Panics
/// If `k` is not a whole number of blocks, `src` is not a whole number of `k`-value rows,
/// `rows` runs past the last row, or `dst.len() != rows.len() · k`.
///
/// ```
/// use deltaw_tensor::quant::{dequantize_rows, quantize, QuantType};
/// let w: Vec<f32> = (0..3 * 64).map(|i| i as f32 / 10.0).collect(); // (3, 64)
/// let q = quantize(QuantType::Q8_0, &w)?;
/// let mut tile = vec![0.0f32; 64];
/// dequantize_rows(QuantType::Q8_0, &q, 64, 1..2, &mut tile); // row 1 only
/// assert!((tile[0] - 6.4).abs() < 0.05);
/// # Ok::<(), deltaw_tensor::Error>(())
/// ```
#[track_caller]
pub fn dequantize_rows(ty: QuantType, src: &[u8], k: usize, rows: Range<usize>, dst: &mut [f32]) {
    let Some(row_bytes) = ty.bytes_for(k) else {
        panic!("dequantize_rows({ty}): row length {k} is not a whole number of {}-value blocks", ty.block_elems())
    };
    assert!(
        row_bytes > 0
            && src.len().is_multiple_of(row_bytes)
            && rows.start <= rows.end
            && rows.end <= src.len() / row_bytes,
        "dequantize_rows({ty}): rows {rows:?} of {} bytes each do not fit {} source bytes",
        row_bytes,
        src.len()
    );
    assert_eq!(
        dst.len(),
        rows.len() * k,
        "dequantize_rows({ty}): destination holds {} values, rows {rows:?} of {k} need {}",
        dst.len(),
        rows.len() * k
    );
    dequantize_serial(ty, &src[rows.start * row_bytes..rows.end * row_bytes], dst);
}
