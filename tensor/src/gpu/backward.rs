//! Backward kernels on the GPU, mirroring [`crate::cpu::backward`]: softmax, log-softmax, layer
//! norm, both GELUs and cross-entropy (`backward.wgsl`), and the scatter-adds behind embedding,
//! `index_select` and `gather` (`scatter.wgsl`). Buffers are contiguous f32 (indices i32);
//! gradients are named `dx`, `dy`, `dweight`, `dbias` as in llm.c.

use deltaw_shaders::params::{BackwardParams, ScatterParams};
use deltaw_shaders::Kernel;

use super::context::GpuContext;
use super::elementwise::copy_strided;
use super::error::GpuError;
use super::launch::{u32_arg, Grid, Launch};
use super::pool::GpuBuffer;
use crate::layout::Layout;

/// Dispatches a `backward.wgsl` row kernel (one workgroup per row; `Grid::Linear` folds past
/// 65,535 rows as the kernels expect) reading `inputs` and writing a new `(rows, C)` `dx`.
fn rows_backward(
    ctx: &GpuContext,
    kernel: Kernel,
    params: BackwardParams,
    inputs: &[(u32, &GpuBuffer)],
) -> Result<GpuBuffer, GpuError> {
    let dx = ctx.alloc(u64::from(params.rows) * u64::from(params.c) * 4)?;
    let mut buffers = inputs.to_vec();
    buffers.push((4, &dx));
    ctx.launch(&Launch {
        kernel,
        params: bytemuck::bytes_of(&params),
        buffers: &buffers,
        grid: Grid::Linear(params.rows),
    })?;
    Ok(dx)
}

/// Softmax's input gradient from its output `y` and the upstream `dy`, both contiguous
/// `(rows, C)`: `dx = y · (dy - Σ_C dy · y)` per row, as [`crate::cpu::backward::softmax_backward`].
pub fn softmax_backward(
    ctx: &GpuContext,
    y: &GpuBuffer,
    dy: &GpuBuffer,
    rows: usize,
    c: usize,
) -> Result<GpuBuffer, GpuError> {
    let params = BackwardParams { rows: u32_arg(rows, "rows"), c: u32_arg(c, "C"), ..Default::default() };
    rows_backward(ctx, Kernel::SoftmaxBackward, params, &[(2, y), (3, dy)])
}

/// Log-softmax's input gradient from its output `y = log p` and `dy`, both `(rows, C)`:
/// `dx = dy - exp(y) · Σ_C dy`, as [`crate::cpu::backward::log_softmax_backward`].
pub fn log_softmax_backward(
    ctx: &GpuContext,
    y: &GpuBuffer,
    dy: &GpuBuffer,
    rows: usize,
    c: usize,
) -> Result<GpuBuffer, GpuError> {
    let params = BackwardParams { rows: u32_arg(rows, "rows"), c: u32_arg(c, "C"), ..Default::default() };
    rows_backward(ctx, Kernel::LogSoftmaxBackward, params, &[(2, y), (3, dy)])
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
/// [`super::layer_norm`]), as [`crate::cpu::backward::layer_norm_backward`]. `dy` and `x` are
/// `(rows, C)`, `weight` is `(C,)`. With `xhat = (x - mean) · rstd` and `g = dy · weight`:
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
    let params = BackwardParams { rows: u32_arg(rows, "rows"), c: u32_arg(c, "C"), ..Default::default() };
    let inputs = [(1, x), (3, dy), (5, weight), (6, mean), (7, rstd)];
    let dx = rows_backward(ctx, Kernel::LayerNormBackward, params, &inputs)?;
    let dweight = ctx.alloc(u64::from(params.c) * 4)?;
    let dbias = ctx.alloc(u64::from(params.c) * 4)?;
    let buffers = [(1, x), (3, dy), (6, mean), (7, rstd), (8, &dweight), (9, &dbias)];
    ctx.launch(&Launch {
        kernel: Kernel::LayerNormParamsBackward,
        params: bytemuck::bytes_of(&params),
        buffers: &buffers,
        grid: Grid::Linear(params.c.div_ceil(32)), // one workgroup per 32 columns
    })?;
    Ok(GpuLayerNormGrads { dx, dweight, dbias })
}

/// `dx = dy · f'(x)` over `n` elements, one invocation each.
fn pointwise_backward(
    ctx: &GpuContext,
    kernel: Kernel,
    x: &GpuBuffer,
    dy: &GpuBuffer,
    n: usize,
) -> Result<GpuBuffer, GpuError> {
    let numel = u32_arg(n, "numel");
    let dx = ctx.alloc(u64::from(numel) * 4)?;
    let params = BackwardParams { numel, ..Default::default() };
    let buffers = [(1, x), (3, dy), (4, &dx)];
    ctx.launch(&Launch {
        kernel,
        params: bytemuck::bytes_of(&params),
        buffers: &buffers,
        grid: Grid::Linear(numel.div_ceil(256)),
    })?;
    Ok(dx)
}

/// Exact (erf) GELU backward over `n` elements: `dx = dy · (Φ(x) + x · φ(x))`, as
/// [`crate::cpu::backward::gelu_backward`] (same erfc fit; the GPU's `exp` for the CPU's
/// `exp_fast`).
pub fn gelu_backward(ctx: &GpuContext, x: &GpuBuffer, dy: &GpuBuffer, n: usize) -> Result<GpuBuffer, GpuError> {
    pointwise_backward(ctx, Kernel::GeluBackward, x, dy, n)
}

/// Tanh-GELU backward over `n` elements: with `u = √(2/π)(x + 0.044715 x³)` and `t = tanh u`,
/// `dx = dy · ((1 + t)/2 + x/2 · (1 - t²) · √(2/π)(1 + 3·0.044715 x²))`, forming `1 ± t` from
/// `exp(-2|u|)` as [`crate::cpu::backward::gelu_tanh_backward`] does.
pub fn gelu_tanh_backward(ctx: &GpuContext, x: &GpuBuffer, dy: &GpuBuffer, n: usize) -> Result<GpuBuffer, GpuError> {
    pointwise_backward(ctx, Kernel::GeluTanhBackward, x, dy, n)
}

/// Gradient of the mean cross-entropy ([`super::cross_entropy`]) with respect to contiguous
/// `(rows, V)` logits, given i32 `targets` (`(rows,)`) and the one-element upstream gradient
/// `dloss`: `(softmax(row) - onehot(target)) · dloss / n_kept` on kept rows, zeros on rows whose
/// target is `ignore_index`, with `n_kept = max(1, kept rows)`. That is
/// [`crate::cpu::backward::cross_entropy_backward`] with the scale that
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
    let params = BackwardParams { rows: u32_arg(rows, "rows"), c: u32_arg(v, "V"), numel: 0, ignore_index };
    rows_backward(ctx, Kernel::CrossEntropyBackward, params, &[(1, logits), (3, dloss), (10, targets)])
}

/// `torch.index_add`: `out[o, r, :] = x[o, r, :] + Σ_{j : index[j] = r} src[o, j, :]` for
/// contiguous `x` viewed as `(outer, d, inner)`, `k` i32 indices and `src` `(outer, k, inner)`;
/// returns a new `(outer, d, inner)` buffer. The backward of `index_select` and of embedding
/// lookup (`(1, V, C)` with `x` zeros). As [`crate::cpu::backward::index_add`], summing in the
/// same order, so the results agree to the bit.
///
/// Deterministic, without atomics, in the CPU's order. With `k ≥ d` one invocation per output
/// element scans all `k` indices (`outer·d·k·inner` compares); with fewer indices than rows (an
/// embedding backward: `d` = vocabulary) the output starts as a copy of `x` and one invocation
/// per source element sums the sources of its destination row when it is that row's first
/// (`outer·k²·inner`). Indices must be in `0..d`: the caller checks them on the host.
pub fn index_add(
    ctx: &GpuContext,
    x: &GpuBuffer,
    (outer, d, inner): (usize, usize, usize),
    index: &GpuBuffer,
    k: usize,
    src: &GpuBuffer,
) -> Result<GpuBuffer, GpuError> {
    let numel = u32_arg(outer * d * inner, "numel");
    let sources = u32_arg(outer * k * inner, "source numel");
    let params = ScatterParams {
        outer: outer as u32,
        d: d as u32,
        inner: inner as u32,
        k: k as u32,
        numel,
        ..Default::default()
    };
    let (kernel, out, grid) = if k >= d {
        (Kernel::IndexAdd, ctx.alloc(u64::from(numel) * 4)?, numel)
    } else {
        (Kernel::IndexAddSources, copy_strided(ctx, x, &Layout::contiguous(numel as usize))?, sources)
    };
    let buffers = [(1, x), (2, index), (3, src), (4, &out)];
    ctx.launch(&Launch {
        kernel,
        params: bytemuck::bytes_of(&params),
        buffers: &buffers,
        grid: Grid::Linear(grid.div_ceil(256)),
    })?;
    Ok(out)
}

/// `torch.scatter_add(x, dim, index, src)`: a copy of contiguous `x` (`x_dims`) with each
/// `src[p]` added at p's coordinates with the `dim` coordinate replaced by `index[p]`; `index`
/// (i32) and `src` share `index_dims`, of `x`'s rank and no larger off `dim`. The backward of
/// `gather`, as [`crate::cpu::backward::scatter_add`], summing in the same order (to the bit).
///
/// Deterministic, without atomics: one invocation per output element scans the
/// `index_dims[dim]` sources that can land on it. Indices must be in `0..x_dims[dim]`: the
/// caller checks them on the host.
pub fn scatter_add(
    ctx: &GpuContext,
    x: &GpuBuffer,
    x_dims: &[usize],
    dim: usize,
    index: &GpuBuffer,
    index_dims: &[usize],
    src: &GpuBuffer,
) -> Result<GpuBuffer, GpuError> {
    assert_eq!(
        x_dims.len(),
        index_dims.len(),
        "gpu scatter_add: x dims {x_dims:?} and index dims {index_dims:?} differ in rank"
    );
    assert!(dim < x_dims.len(), "gpu scatter_add: dim {dim} out of range for rank {}", x_dims.len());
    let numel = u32_arg(x_dims.iter().product(), "numel");
    let shapes: Vec<u32> = x_dims.iter().chain(index_dims).map(|&n| u32_arg(n, "dim")).collect();
    let shapes = ctx.upload_meta(&shapes)?;
    let out = ctx.alloc(u64::from(numel) * 4)?;
    let params = ScatterParams { numel, rank: x_dims.len() as u32, dim: dim as u32, ..Default::default() };
    let buffers = [(1, x), (2, index), (3, src), (4, &out), (5, &shapes)];
    ctx.launch(&Launch {
        kernel: Kernel::ScatterAdd,
        params: bytemuck::bytes_of(&params),
        buffers: &buffers,
        grid: Grid::Linear(numel.div_ceil(256)),
    })?;
    Ok(out)
}
