//! The Llama family's kernels, each forward above its backward as in the WGSL files: RMSNorm
//! (`rms_norm.wgsl`), rotary embedding (`rope.wgsl`) and SwiGLU (`swiglu.wgsl`). Buffers are
//! contiguous f32; gradients are named `dx`, `dweight`, `dgate`, `dup` as in llm.c.

use deltaw_shaders::params::{RmsNormParams, RopeParams, SwigluParams};
use deltaw_shaders::Kernel;

use super::context::GpuContext;
use super::error::GpuError;
use super::launch::{u32_arg, Grid};
use super::pool::GpuBuffer;

/// RMSNorm's output and what its backward needs.
#[derive(Debug)]
pub struct GpuRmsNorm {
    /// `(rows, C)`.
    pub y: GpuBuffer,
    /// `(rows,)`: `1 / sqrt(mean(x²) + eps)`.
    pub rstd: GpuBuffer,
}

/// RMSNorm over the last dim, as [`crate::cpu::llama::rms_norm_forward`]:
/// `y = (x · rstd) · weight` per row of a contiguous `(rows, C)` `x`, `weight` `(C,)`. One
/// workgroup per row; saves rstd.
pub fn rms_norm(
    ctx: &GpuContext,
    x: &GpuBuffer,
    weight: &GpuBuffer,
    rows: usize,
    c: usize,
    eps: f32,
) -> Result<GpuRmsNorm, GpuError> {
    let params = RmsNormParams { rows: u32_arg(rows, "rows"), c: u32_arg(c, "C"), eps, _pad: 0 };
    let y = ctx.alloc(u64::from(params.rows) * u64::from(params.c) * 4)?;
    let rstd = ctx.alloc(u64::from(params.rows) * 4)?;
    let buffers = [(1, x), (2, weight), (3, &y), (4, &rstd)];
    ctx.run(Kernel::RmsNormForward, &params, &buffers, Grid::Linear(params.rows))?;
    Ok(GpuRmsNorm { y, rstd })
}

/// RMSNorm's input and weight gradients.
#[derive(Debug)]
pub struct GpuRmsNormGrads {
    /// `(rows, C)`.
    pub dx: GpuBuffer,
    /// `(C,)`.
    pub dweight: GpuBuffer,
}

/// RMSNorm backward from the saved per-row `rstd`, as [`crate::cpu::llama::rms_norm_backward`]:
/// with `xhat = x · rstd` and `g = dy · weight`, `dx = rstd · (g − xhat · mean_C(g · xhat))`
/// and `dweight = Σ_rows dy · xhat`. Two dispatches: one workgroup per row for `dx`, one per
/// block of 32 columns for `dweight` (a fixed summation order, so deterministic).
pub fn rms_norm_backward(
    ctx: &GpuContext,
    dy: &GpuBuffer,
    x: &GpuBuffer,
    weight: &GpuBuffer,
    rstd: &GpuBuffer,
    (rows, c): (usize, usize),
) -> Result<GpuRmsNormGrads, GpuError> {
    let params = RmsNormParams { rows: u32_arg(rows, "rows"), c: u32_arg(c, "C"), ..Default::default() };
    let dx = ctx.alloc(u64::from(params.rows) * u64::from(params.c) * 4)?;
    let buffers = [(1, x), (2, weight), (4, rstd), (5, dy), (6, &dx)];
    ctx.run(Kernel::RmsNormBackward, &params, &buffers, Grid::Linear(params.rows))?;
    let dweight = ctx.alloc(u64::from(params.c) * 4)?;
    let buffers = [(1, x), (4, rstd), (5, dy), (7, &dweight)];
    ctx.run(Kernel::RmsNormWeightBackward, &params, &buffers, Grid::Linear(params.c.div_ceil(32)))?;
    Ok(GpuRmsNormGrads { dx, dweight })
}

/// Rotary embedding (rotate-half) of a contiguous `x` `(P, NH, HS)` by `sign · θ`, with the
/// half tables `cos`, `sin` `(P, HS/2)`, as [`crate::cpu::llama::rope`]: `sign = 1` is the
/// forward, `-1` the backward. One invocation per rotated pair.
pub fn rope(
    ctx: &GpuContext,
    x: &GpuBuffer,
    cos: &GpuBuffer,
    sin: &GpuBuffer,
    (positions, nh, hs): (usize, usize, usize),
    sign: f32,
) -> Result<GpuBuffer, GpuError> {
    let pairs = u32_arg(positions * nh * (hs / 2), "pairs");
    let params = RopeParams { pairs, nh: u32_arg(nh, "NH"), hs: u32_arg(hs, "HS"), sign };
    let out = ctx.alloc(u64::from(pairs) * 8)?;
    ctx.run(Kernel::RopeRotate, &params, &[(1, x), (2, cos), (3, sin), (4, &out)], Grid::per_element(pairs))?;
    Ok(out)
}

/// `y = silu(gate) · up` over `n` contiguous elements, as [`crate::cpu::llama::swiglu_forward`].
pub fn swiglu(ctx: &GpuContext, gate: &GpuBuffer, up: &GpuBuffer, n: usize) -> Result<GpuBuffer, GpuError> {
    let params = SwigluParams { numel: u32_arg(n, "numel"), ..Default::default() };
    let y = ctx.alloc(u64::from(params.numel) * 4)?;
    ctx.run(Kernel::SwigluForward, &params, &[(1, gate), (2, up), (3, &y)], Grid::per_element(params.numel))?;
    Ok(y)
}

/// `(dgate, dup)` of SwiGLU over `n` contiguous elements, as
/// [`crate::cpu::llama::swiglu_backward`]: `dgate = dout · up · σ(g) · (1 + g · (1 − σ(g)))`,
/// `dup = dout · silu(g)`.
pub fn swiglu_backward(
    ctx: &GpuContext,
    gate: &GpuBuffer,
    up: &GpuBuffer,
    dout: &GpuBuffer,
    n: usize,
) -> Result<(GpuBuffer, GpuBuffer), GpuError> {
    let params = SwigluParams { numel: u32_arg(n, "numel"), ..Default::default() };
    let dgate = ctx.alloc(u64::from(params.numel) * 4)?;
    let dup = ctx.alloc(u64::from(params.numel) * 4)?;
    let buffers = [(1, gate), (2, up), (4, dout), (5, &dgate), (6, &dup)];
    ctx.run(Kernel::SwigluBackward, &params, &buffers, Grid::per_element(params.numel))?;
    Ok((dgate, dup))
}
