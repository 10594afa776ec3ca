//! Block-quantized weights on the GPU (`quant.wgsl`): dequantize rows, gather rows of blocks,
//! and `y = x · Wᵀ` reading the blocks in place.
//!
//! A quantized buffer holds the host's block bytes unchanged (llama.cpp's layouts, see
//! [`crate::quant`]), four to a u32 word, the last word zero-padded. The kernels read bytes at
//! any offset out of those words, so rows of 18- or 34-byte blocks need no realignment.

use deltaw_shaders::params::QuantParams;
use deltaw_shaders::Kernel;

use super::context::GpuContext;
use super::error::GpuError;
use super::launch::{fold_grid, u32_arg, Grid};
use super::pool::GpuBuffer;
use crate::quant::QuantType;

/// Where the rows of a quantized weight lie in its buffer: row `j` (of whole blocks of `ty`)
/// starts at byte `base + j · row_stride`.
#[derive(Clone, Copy, Debug)]
pub struct QuantRows {
    pub ty: QuantType,
    /// Byte offset of row 0 (a block boundary).
    pub base: usize,
    /// Bytes from one row to the next (whole blocks).
    pub row_stride: usize,
}

/// Rows of x up to which [`quant_matmul`] runs the gemv kernel (one workgroup per weight row,
/// W decoded once for all rows of x); `quant.wgsl`'s `GEMV_ROWS`.
pub const GEMV_MAX_ROWS: usize = 8;

/// The kernel's parameters for `w`, with the entry point's sizes.
fn params(w: QuantRows, rows: usize, n: usize, k: usize) -> QuantParams {
    let code = QuantType::ALL.iter().position(|&t| t == w.ty).expect("every type is in ALL");
    QuantParams {
        ty: code as u32,
        block_bytes: w.ty.block_bytes() as u32,
        block_elems: w.ty.block_elems() as u32,
        rows: u32_arg(rows, "rows"),
        n: u32_arg(n, "n"),
        k: u32_arg(k, "k"),
        w_base: u32_arg(w.base, "weight byte offset"),
        w_row_stride: u32_arg(w.row_stride, "weight row stride in bytes"),
    }
}

/// f32 `(rows, len)`: the values of weight rows `0..rows`, each `len` values (whole blocks),
/// decoded with the CPU's f32 operations ([`crate::quant::dequantize`]): `d · q` (Q8_0,
/// Q4_0, Q5_0), `d · q + m` (Q4_1, Q5_1), `(d · sc) · q - dmin · mn` (Q4_K, Q5_K),
/// `(d · sc) · q` (Q6_K). One invocation per 8 values.
pub fn dequantize(
    ctx: &GpuContext,
    w: &GpuBuffer,
    rows_of: QuantRows,
    rows: usize,
    len: usize,
) -> Result<GpuBuffer, GpuError> {
    let y = ctx.alloc((rows * len * 4) as u64)?;
    let groups = u32_arg(rows * len / 8, "values / 8");
    let params = params(rows_of, rows, len, 0);
    ctx.run(Kernel::QuantDequantize, &params, &[(1, w), (3, &y)], Grid::per_element(groups))?;
    Ok(y)
}

/// Rows of bytes picked by `index` (i32, `k` entries, each in `0..n`): the source viewed as
/// `(outer, n)` rows of `row_bytes` bytes from byte `base`, the output `(outer, k)` such rows
/// back to back (`outer · k · row_bytes` bytes, the last word zero-padded). `index_select` of
/// whole rows of blocks, and with one row and index `[0]`, a byte copy from any offset.
pub fn quant_gather_rows(
    ctx: &GpuContext,
    w: &GpuBuffer,
    base: usize,
    (outer, n, row_bytes): (usize, usize, usize),
    index: &GpuBuffer,
    k: usize,
) -> Result<GpuBuffer, GpuError> {
    let total = outer * k * row_bytes;
    let out = ctx.alloc(total.next_multiple_of(4).max(4) as u64)?;
    // Bytes are moved, not decoded: the block type plays no part.
    let params = QuantParams {
        rows: u32_arg(outer * k, "output rows"),
        n: u32_arg(n, "n"),
        k: u32_arg(k, "index count"),
        w_base: u32_arg(base, "byte offset"),
        w_row_stride: u32_arg(row_bytes, "row bytes"),
        ..Default::default()
    };
    let words = u32_arg(total.div_ceil(4), "output words");
    ctx.run(Kernel::QuantGatherRows, &params, &[(1, w), (4, index), (5, &out)], Grid::per_element(words))?;
    Ok(out)
}

/// `y (m, n) = x (m, k) · Wᵀ` with `x` dense f32 and W `n` quantized rows of `k` values
/// (`k` a multiple of the block size), accumulated in f32: `y[i, j] = Σ_p x[i, p] · W[j, p]`
/// with `W[j, p]` decoded as [`dequantize`] decodes it.
///
/// Up to [`GEMV_MAX_ROWS`] rows run `quant_gemv`: one workgroup of 64 per weight row, each
/// invocation taking every 64th group of 8 values of the row, decoding it once into registers
/// and multiplying it into every row of x; a tree in workgroup memory sums the 64 partial
/// dots. More rows run `quant_matmul`: 64×64 tiles of y as `matmul.wgsl`, with W decoded into
/// workgroup memory 32 values of K at a time.
pub fn quant_matmul(
    ctx: &GpuContext,
    x: &GpuBuffer,
    w: &GpuBuffer,
    rows_of: QuantRows,
    (m, n, k): (usize, usize, usize),
) -> Result<GpuBuffer, GpuError> {
    assert!(k.is_multiple_of(rows_of.ty.block_elems()), "quant_matmul: k = {k} cuts {} blocks", rows_of.ty);
    let y = ctx.alloc((m * n * 4).max(4) as u64)?;
    let params = params(rows_of, m, n, k);
    let buffers = [(1, w), (2, x), (3, &y)];
    if m <= GEMV_MAX_ROWS {
        let (gx, gy) = fold_grid(u32_arg(n, "n"));
        ctx.run(Kernel::QuantGemv, &params, &buffers, Grid::Xyz(gx, gy, 1))?;
    } else {
        let grid = Grid::Xyz(u32_arg(n.div_ceil(64), "n / 64"), u32_arg(m.div_ceil(64), "m / 64"), 1);
        ctx.run(Kernel::QuantMatmul, &params, &buffers, grid)?;
    }
    Ok(y)
}
