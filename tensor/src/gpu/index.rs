//! Index kernels (`index.wgsl`) on 32-bit words, so f32 and i32 tensors alike: `index_select`
//! (and embedding lookups), `gather`, and `cat` as one `copy_block` per part.
//!
//! Indices are i32 buffers that the caller has checked on the host (in range for the dim); an
//! out-of-range index reads an unspecified element (naga's bounds checks keep it in bounds).

use deltaw_shaders::params::IndexParams;
use deltaw_shaders::Kernel;

use super::context::GpuContext;
use super::error::GpuError;
use super::launch::{u32_arg, Grid, Launch};
use super::pool::GpuBuffer;

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
    let buffers = [(1, x), (2, index), (3, &out)];
    ctx.launch(&Launch {
        kernel: Kernel::IndexSelect,
        params: bytemuck::bytes_of(&params),
        buffers: &buffers,
        grid: Grid::Linear(numel.div_ceil(256)),
    })?;
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
    assert_eq!(
        x_dims.len(),
        index_dims.len(),
        "gpu gather: x dims {x_dims:?} and index dims {index_dims:?} differ in rank"
    );
    assert!(dim < x_dims.len(), "gpu gather: dim {dim} out of range for rank {}", x_dims.len());
    let numel = u32_arg(index_dims.iter().product(), "numel");
    let shapes: Vec<u32> = x_dims.iter().chain(index_dims).map(|&n| u32_arg(n, "dim")).collect();
    let shapes = ctx.upload_meta(&shapes)?;
    let out = ctx.alloc(u64::from(numel) * 4)?;
    let params = IndexParams { numel, rank: x_dims.len() as u32, dim: dim as u32, ..Default::default() };
    let buffers = [(1, x), (2, index), (3, &out), (4, &shapes)];
    ctx.launch(&Launch {
        kernel: Kernel::Gather,
        params: bytemuck::bytes_of(&params),
        buffers: &buffers,
        grid: Grid::Linear(numel.div_ceil(256)),
    })?;
    Ok(out)
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
        let buffers = [(1, part), (3, &out)];
        ctx.launch(&Launch {
            kernel: Kernel::CopyBlock,
            params: bytemuck::bytes_of(&params),
            buffers: &buffers,
            grid: Grid::Linear(numel.div_ceil(256)),
        })?;
        column += d;
    }
    Ok(out)
}
