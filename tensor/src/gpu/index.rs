//! Index kernels (`index.wgsl`) on 32-bit words, so f32 and i32 tensors alike: `index_select`
//! (and embedding lookups), `gather`, and `cat` as one `copy_block` per part, each gather
//! beside its backward, the f32 scatter-add (`index_add`, `scatter_add`).
//!
//! Indices are i32 buffers that the caller has checked on the host (in range for the dim); an
//! out-of-range index reads an unspecified element (naga's bounds checks keep it in bounds).

use deltaw_shaders::params::IndexParams;
use deltaw_shaders::Kernel;

use super::context::GpuContext;
use super::elementwise::copy_strided;
use super::error::GpuError;
use super::launch::{u32_arg, Grid};
use super::pool::GpuBuffer;
use crate::layout::Layout;

/// `out[o, j, :] = x[o, index[j], :]` for contiguous `x` viewed as `(outer, d, inner)` and `k`
/// indices; output `(outer, k, inner)`, as [`crate::cpu::index::index_select`].
/// Embedding lookup is `(1, V, C)` with the token ids as `index`.
pub fn index_select(
    ctx: &GpuContext,
    x: &GpuBuffer,
    (outer, d, inner): (usize, usize, usize),
    index: &GpuBuffer,
    k: usize,
) -> Result<GpuBuffer, GpuError> {
    let numel = u32_arg(outer * k * inner, "numel");
    let out = ctx.alloc(u64::from(numel) * 4)?;
    let params = IndexParams {
        outer: outer as u32,
        d: u32_arg(d, "d"),
        inner: inner as u32,
        k: k as u32,
        numel,
        ..Default::default()
    };
    ctx.run(Kernel::IndexSelect, &params, &[(1, x), (2, index), (3, &out)], Grid::per_element(numel))?;
    Ok(out)
}

/// `torch.index_add`: `out[o, r, :] = x[o, r, :] + Σ_{j : index[j] = r} src[o, j, :]` for
/// contiguous `x` viewed as `(outer, d, inner)`, `k` i32 indices and `src` `(outer, k, inner)`;
/// returns a new `(outer, d, inner)` buffer. The backward of `index_select` and of embedding
/// lookup (`(1, V, C)` with `x` zeros). As [`crate::cpu::index::index_add`], summing in the
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
    let params =
        IndexParams { outer: outer as u32, d: d as u32, inner: inner as u32, k: k as u32, numel, ..Default::default() };
    let (kernel, out, grid) = if k >= d {
        (Kernel::IndexAdd, ctx.alloc(u64::from(numel) * 4)?, numel)
    } else {
        (Kernel::IndexAddSources, copy_strided(ctx, x, &Layout::contiguous(numel as usize))?, sources)
    };
    ctx.run(kernel, &params, &[(1, x), (2, index), (5, src), (3, &out)], Grid::per_element(grid))?;
    Ok(out)
}

/// `torch.gather(x, dim, index)`: `out[p] = x[p with coordinate dim replaced by index[p]]`,
/// for contiguous `x` of `x_dims` and `index` of `index_dims` (same rank); output has
/// `index_dims`, as [`crate::cpu::index::gather`].
pub fn gather(
    ctx: &GpuContext,
    x: &GpuBuffer,
    x_dims: &[usize],
    dim: usize,
    index: &GpuBuffer,
    index_dims: &[usize],
) -> Result<GpuBuffer, GpuError> {
    let (shapes, params) = along_dim(ctx, x_dims, (dim, index_dims), index_dims, "gather")?;
    let out = ctx.alloc(u64::from(params.numel) * 4)?;
    let buffers = [(1, x), (2, index), (3, &out), (4, &shapes)];
    ctx.run(Kernel::Gather, &params, &buffers, Grid::per_element(params.numel))?;
    Ok(out)
}

/// `torch.scatter_add(x, dim, index, src)`: a copy of contiguous `x` (`x_dims`) with each
/// `src[p]` added at p's coordinates with the `dim` coordinate replaced by `index[p]`; `index`
/// (i32) and `src` share `index_dims`, of `x`'s rank and no larger off `dim`. The backward of
/// `gather`, as [`crate::cpu::index::scatter_add`], summing in the same order (to the bit).
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
    let (shapes, params) = along_dim(ctx, x_dims, (dim, index_dims), x_dims, "scatter_add")?;
    let out = ctx.alloc(u64::from(params.numel) * 4)?;
    let buffers = [(1, x), (2, index), (5, src), (3, &out), (4, &shapes)];
    ctx.run(Kernel::ScatterAdd, &params, &buffers, Grid::per_element(params.numel))?;
    Ok(out)
}

/// The `shapes` buffer (`x_dims` then `index_dims`) and the params of gather and scatter_add,
/// whose output has `out_dims`.
///
/// # Panics
/// If the ranks differ or `dim` is out of range (naming `op`).
fn along_dim(
    ctx: &GpuContext,
    x_dims: &[usize],
    (dim, index_dims): (usize, &[usize]),
    out_dims: &[usize],
    op: &str,
) -> Result<(GpuBuffer, IndexParams), GpuError> {
    assert_eq!(
        x_dims.len(),
        index_dims.len(),
        "gpu {op}: x dims {x_dims:?} and index dims {index_dims:?} differ in rank"
    );
    assert!(dim < x_dims.len(), "gpu {op}: dim {dim} out of range for rank {}", x_dims.len());
    let numel = u32_arg(out_dims.iter().product(), "numel");
    let shapes: Vec<u32> = x_dims.iter().chain(index_dims).map(|&n| u32_arg(n, "dim")).collect();
    let params = IndexParams { numel, rank: x_dims.len() as u32, dim: dim as u32, ..Default::default() };
    Ok((ctx.upload_meta(&shapes)?, params))
}

/// Concatenation along a dim: each part is contiguous `(outer, d_part, inner)` and the output
/// `(outer, Σ d_part, inner)`, as [`crate::cpu::index::cat`]. One `copy_block` per part, each
/// invocation moving one element of its part.
pub fn cat(ctx: &GpuContext, parts: &[(&GpuBuffer, usize)], outer: usize, inner: usize) -> Result<GpuBuffer, GpuError> {
    let total: usize = parts.iter().map(|(_, d)| d).sum();
    let out = ctx.alloc(u64::from(u32_arg(outer * total * inner, "numel")) * 4)?;
    let mut column = 0;
    for &(part, d) in parts {
        let numel = (outer * d * inner) as u32;
        let params = IndexParams {
            outer: outer as u32,
            d: d as u32,
            inner: inner as u32,
            k: total as u32,
            numel,
            column: column as u32,
            ..Default::default()
        };
        ctx.run(Kernel::CopyBlock, &params, &[(1, part), (3, &out)], Grid::per_element(numel))?;
        column += d;
    }
    Ok(out)
}
