//! Row kernels of neural networks, each forward above its backward as in the WGSL files:
//! softmax and log-softmax (`softmax.wgsl`), layer norm (`layer_norm.wgsl`) and cross-entropy
//! (`cross_entropy.wgsl`, its forward summed by `reduce.wgsl`). Buffers are contiguous f32
//! (targets i32); gradients are named `dx`, `dy`, `dweight`, `dbias` as in llm.c.

use bytemuck::Pod;
use deltaw_shaders::params::{CrossEntropyParams, LayerNormParams, SoftmaxParams};
use deltaw_shaders::Kernel;

use super::context::GpuContext;
use super::elementwise::binary;
use super::error::GpuError;
use super::launch::{u32_arg, Grid};
use super::pool::GpuBuffer;
use super::reduce::reduce;
use crate::kinds::{BinaryOp, ReduceDims, ReduceOp};
use crate::layout::Layout;

/// Runs a row kernel: one workgroup per row (the kernels rebuild the row from a grid folded
/// into 2-D past 65,535 rows), writing a new `(rows, C)` f32 buffer bound at `out_binding`.
fn rows_kernel<P: Pod>(
    ctx: &GpuContext,
    kernel: Kernel,
    params: &P,
    (rows, c): (u32, u32),
    inputs: &[(u32, &GpuBuffer)],
    out_binding: u32,
) -> Result<GpuBuffer, GpuError> {
    let out = ctx.alloc(u64::from(rows) * u64::from(c) * 4)?;
    let mut buffers = inputs.to_vec();
    buffers.push((out_binding, &out));
    ctx.run(kernel, params, &buffers, Grid::Linear(rows))?;
    Ok(out)
}

/// The `(rows, C)` sizes as the kernels' 32-bit arguments, with their `SoftmaxParams`.
fn softmax_params(rows: usize, c: usize) -> SoftmaxParams {
    SoftmaxParams { rows: u32_arg(rows, "rows"), c: u32_arg(c, "C"), ..Default::default() }
}

/// `y = exp(x - max) / Σ exp(x - max)` over each row of a contiguous `(rows, C)` tensor, as
/// [`crate::cpu::nn::softmax_forward`]. One workgroup per row.
pub fn softmax(ctx: &GpuContext, x: &GpuBuffer, rows: usize, c: usize) -> Result<GpuBuffer, GpuError> {
    let p = softmax_params(rows, c);
    rows_kernel(ctx, Kernel::SoftmaxForward, &p, (p.rows, p.c), &[(1, x)], 2)
}

/// Softmax's input gradient from its output `y` and the upstream `dy`, both contiguous
/// `(rows, C)`: `dx = y · (dy - Σ_C dy · y)` per row, as [`crate::cpu::nn::softmax_backward`].
pub fn softmax_backward(
    ctx: &GpuContext,
    y: &GpuBuffer,
    dy: &GpuBuffer,
    rows: usize,
    c: usize,
) -> Result<GpuBuffer, GpuError> {
    let p = softmax_params(rows, c);
    rows_kernel(ctx, Kernel::SoftmaxBackward, &p, (p.rows, p.c), &[(5, y), (3, dy)], 4)
}

/// `y = (x - max) - log Σ exp(x - max)` per row of `(rows, C)`, as
/// [`crate::cpu::nn::log_softmax_forward`].
pub fn log_softmax(ctx: &GpuContext, x: &GpuBuffer, rows: usize, c: usize) -> Result<GpuBuffer, GpuError> {
    let p = softmax_params(rows, c);
    rows_kernel(ctx, Kernel::LogSoftmaxForward, &p, (p.rows, p.c), &[(1, x)], 2)
}

/// Log-softmax's input gradient from its output `y = log p` and `dy`, both `(rows, C)`:
/// `dx = dy - exp(y) · Σ_C dy`, as [`crate::cpu::nn::log_softmax_backward`].
pub fn log_softmax_backward(
    ctx: &GpuContext,
    y: &GpuBuffer,
    dy: &GpuBuffer,
    rows: usize,
    c: usize,
) -> Result<GpuBuffer, GpuError> {
    let p = softmax_params(rows, c);
    rows_kernel(ctx, Kernel::LogSoftmaxBackward, &p, (p.rows, p.c), &[(5, y), (3, dy)], 4)
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
    let params = LayerNormParams { rows: u32_arg(rows, "rows"), c: u32_arg(c, "C"), eps, _pad: 0 };
    let mean = ctx.alloc(u64::from(params.rows) * 4)?;
    let rstd = ctx.alloc(u64::from(params.rows) * 4)?;
    let inputs = [(1, x), (2, weight), (3, bias), (5, &mean), (6, &rstd)];
    let y = rows_kernel(ctx, Kernel::LayerNormForward, &params, (params.rows, params.c), &inputs, 4)?;
    Ok(GpuLayerNorm { y, mean, rstd })
}

/// Layer norm's input and parameter gradients.
#[derive(Debug)]
pub struct GpuLayerNormGrads {
    /// `(rows, C)`.
    pub dx: GpuBuffer,
    /// `(C,)`.
    pub dweight: GpuBuffer,
    /// `(C,)`.
    pub dbias: GpuBuffer,
}

/// Layer norm backward from the forward's saved per-row `mean` and `rstd` (`(rows,)`, see
/// [`layer_norm`]), as [`crate::cpu::nn::layer_norm_backward`]. `dy` and `x` are `(rows, C)`,
/// `weight` is `(C,)`. With `xhat = (x - mean) · rstd` and `g = dy · weight`:
/// `dx = rstd · (g - mean_C(g) - xhat · mean_C(g · xhat))`, `dweight = Σ_rows dy · xhat`,
/// `dbias = Σ_rows dy`.
///
/// Two dispatches: `layer_norm_backward` (one workgroup per row) for `dx`, and
/// `layer_norm_params_backward` (one workgroup per block of 32 columns, 8 row lanes each) for
/// `dweight` and `dbias`; both sums are in a fixed order, so the results are deterministic.
#[allow(clippy::too_many_arguments)] // the CPU kernel's five inputs, the context and the sizes
pub fn layer_norm_backward(
    ctx: &GpuContext,
    dy: &GpuBuffer,
    x: &GpuBuffer,
    weight: &GpuBuffer,
    mean: &GpuBuffer,
    rstd: &GpuBuffer,
    rows: usize,
    c: usize,
) -> Result<GpuLayerNormGrads, GpuError> {
    let params = LayerNormParams { rows: u32_arg(rows, "rows"), c: u32_arg(c, "C"), ..Default::default() };
    let inputs = [(1, x), (2, weight), (5, mean), (6, rstd), (7, dy)];
    let dx = rows_kernel(ctx, Kernel::LayerNormBackward, &params, (params.rows, params.c), &inputs, 8)?;
    let dweight = ctx.alloc(u64::from(params.c) * 4)?;
    let dbias = ctx.alloc(u64::from(params.c) * 4)?;
    let buffers = [(1, x), (5, mean), (6, rstd), (7, dy), (9, &dweight), (10, &dbias)];
    let blocks = Grid::Linear(params.c.div_ceil(32)); // one workgroup per 32 columns
    ctx.run(Kernel::LayerNormParamsBackward, &params, &buffers, blocks)?;
    Ok(GpuLayerNormGrads { dx, dweight, dbias })
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
    let params = CrossEntropyParams { rows: u32_arg(rows, "rows"), v: u32_arg(v, "V"), ignore_index, _pad: 0 };
    let valid = ctx.alloc(u64::from(params.rows) * 4)?;
    let inputs = [(1, logits), (2, targets), (4, &valid)];
    let loss = rows_kernel(ctx, Kernel::CrossEntropyRows, &params, (params.rows, 1), &inputs, 3)?;
    let all = ReduceDims { outer: 1, d: rows, inner: 1 };
    let total = reduce(ctx, ReduceOp::Sum, &loss, all)?;
    let count = reduce(ctx, ReduceOp::Sum, &valid, all)?;
    let scalar = Layout::contiguous(1);
    binary(ctx, BinaryOp::Div, &total, &scalar, &count, &scalar)
}

/// Gradient of the mean cross-entropy ([`cross_entropy`]) with respect to contiguous
/// `(rows, V)` logits, given i32 `targets` (`(rows,)`) and the one-element upstream gradient
/// `dloss`: `(softmax(row) - onehot(target)) · dloss / n_kept` on kept rows, zeros on rows whose
/// target is `ignore_index`, with `n_kept = max(1, kept rows)`. That is
/// [`crate::cpu::nn::cross_entropy_backward`] with the scale that
/// `Tensor::cross_entropy_backward` passes it, computed on the GPU: nothing is read back.
///
/// Targets must be in `0..V` or equal `ignore_index`: the caller checks them on the host (an
/// out-of-range target gets no `- scale`).
pub fn cross_entropy_backward(
    ctx: &GpuContext,
    logits: &GpuBuffer,
    targets: &GpuBuffer,
    dloss: &GpuBuffer,
    rows: usize,
    v: usize,
    ignore_index: i32,
) -> Result<GpuBuffer, GpuError> {
    let params = CrossEntropyParams { rows: u32_arg(rows, "rows"), v: u32_arg(v, "V"), ignore_index, _pad: 0 };
    let inputs = [(1, logits), (2, targets), (5, dloss)];
    rows_kernel(ctx, Kernel::CrossEntropyBackward, &params, (params.rows, params.v), &inputs, 6)
}
