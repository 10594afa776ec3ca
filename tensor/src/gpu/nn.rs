//! Row kernels of neural networks: softmax, log-softmax, layer norm (`softmax.wgsl`,
//! `layer_norm.wgsl`) and cross-entropy (`loss.wgsl` then `reduce.wgsl`).

use deltaw_shaders::params::{CrossEntropyParams, LayerNormParams, SoftmaxParams};
use deltaw_shaders::Kernel;

use super::context::GpuContext;
use super::elementwise::binary;
use super::error::GpuError;
use super::launch::{fold_grid, u32_arg, Grid, Launch};
use super::pool::GpuBuffer;
use super::reduce::reduce;
use crate::cpu::elementwise::BinaryOp;
use crate::cpu::reduce::{ReduceDims, ReduceOp};
use crate::layout::Layout;

/// One workgroup per row: the grid of `rows` workgroups, folded into 2-D past 65,535.
fn row_grid(rows: u32) -> Grid {
    let (x, y) = fold_grid(rows);
    Grid::Xyz(x, y, 1)
}

fn softmax_like(ctx: &GpuContext, kernel: Kernel, x: &GpuBuffer, rows: usize, c: usize) -> Result<GpuBuffer, GpuError> {
    let rows = u32_arg(rows, "rows");
    let c = u32_arg(c, "C");
    let y = ctx.alloc(u64::from(rows) * u64::from(c) * 4)?;
    let params = SoftmaxParams { rows, c, ..Default::default() };
    let buffers = [(1, x), (2, &y)];
    ctx.launch(&Launch { kernel, params: bytemuck::bytes_of(&params), buffers: &buffers, grid: row_grid(rows) })?;
    Ok(y)
}

/// `y = exp(x - max) / Σ exp(x - max)` over each row of a contiguous `(rows, C)` tensor, as
/// [`crate::cpu::nn::softmax_forward`]. One workgroup per row.
pub fn softmax(ctx: &GpuContext, x: &GpuBuffer, rows: usize, c: usize) -> Result<GpuBuffer, GpuError> {
    softmax_like(ctx, Kernel::SoftmaxForward, x, rows, c)
}

/// `y = (x - max) - log Σ exp(x - max)` per row of `(rows, C)`, as
/// [`crate::cpu::nn::log_softmax_forward`].
pub fn log_softmax(ctx: &GpuContext, x: &GpuBuffer, rows: usize, c: usize) -> Result<GpuBuffer, GpuError> {
    softmax_like(ctx, Kernel::LogSoftmaxForward, x, rows, c)
}

/// Layer norm's output and what its backward needs.
#[derive(Debug)]
pub struct GpuLayerNorm {
    /// `(rows, C)`.
    pub y: GpuBuffer,
    /// `(rows,)`.
    pub mean: GpuBuffer,
    /// `(rows,)`: `1 / sqrt(var + eps)`.
    pub rstd: GpuBuffer,
}

/// Layer normalisation over the last dim, as [`crate::cpu::nn::layer_norm_forward`]:
/// `y = (x - mean) · rstd · weight + bias` with the biased variance, per row of a contiguous
/// `(rows, C)` `x`; `weight` and `bias` are `(C,)`. One workgroup per row; saves mean and rstd.
pub fn layer_norm(
    ctx: &GpuContext,
    x: &GpuBuffer,
    weight: &GpuBuffer,
    bias: &GpuBuffer,
    rows: usize,
    c: usize,
    eps: f32,
) -> Result<GpuLayerNorm, GpuError> {
    let rows = u32_arg(rows, "rows");
    let c = u32_arg(c, "C");
    let y = ctx.alloc(u64::from(rows) * u64::from(c) * 4)?;
    let mean = ctx.alloc(u64::from(rows) * 4)?;
    let rstd = ctx.alloc(u64::from(rows) * 4)?;
    let params = LayerNormParams { rows, c, eps, _pad: 0 };
    let buffers = [(1, x), (2, weight), (3, bias), (4, &y), (5, &mean), (6, &rstd)];
    ctx.launch(&Launch {
        kernel: Kernel::LayerNormForward,
        params: bytemuck::bytes_of(&params),
        buffers: &buffers,
        grid: row_grid(rows),
    })?;
    Ok(GpuLayerNorm { y, mean, rstd })
}

/// Mean cross-entropy of contiguous `(rows, V)` logits against i32 `targets` (`(rows,)`),
/// skipping rows whose target is `ignore_index` (NaN when all are), as PyTorch and
/// [`crate::cpu::nn::cross_entropy_forward`]. Returns a one-element f32 buffer.
///
/// Dispatches `cross_entropy_rows` (per-row loss and valid flag), two row sums and a division:
/// nothing is read back. Targets must be in `0..V` or equal `ignore_index`: the caller checks
/// them on the host (an out-of-range target reads an unspecified logit).
pub fn cross_entropy(
    ctx: &GpuContext,
    logits: &GpuBuffer,
    targets: &GpuBuffer,
    rows: usize,
    v: usize,
    ignore_index: i32,
) -> Result<GpuBuffer, GpuError> {
    let rows32 = u32_arg(rows, "rows");
    let loss = ctx.alloc(u64::from(rows32) * 4)?;
    let valid = ctx.alloc(u64::from(rows32) * 4)?;
    let params = CrossEntropyParams { rows: rows32, v: u32_arg(v, "V"), ignore_index, _pad: 0 };
    let buffers = [(1, logits), (2, targets), (3, &loss), (4, &valid)];
    ctx.launch(&Launch {
        kernel: Kernel::CrossEntropyRows,
        params: bytemuck::bytes_of(&params),
        buffers: &buffers,
        grid: row_grid(rows32),
    })?;
    let all = ReduceDims { outer: 1, d: rows, inner: 1 };
    let total = reduce(ctx, ReduceOp::Sum, &loss, all)?;
    let count = reduce(ctx, ReduceOp::Sum, &valid, all)?;
    let scalar = Layout::contiguous(1);
    binary(ctx, BinaryOp::Div, &total, &scalar, &count, &scalar)
}
