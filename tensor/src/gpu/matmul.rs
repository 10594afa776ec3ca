//! Batched, strided GEMM (`matmul.wgsl`, `matmul_f16.wgsl` with f16 storage, and
//! `matmul_w16.wgsl` with an f32 A and a bf16 / f16 B).

use crate::DType;
use deltaw_shaders::params::MatmulParams;
use deltaw_shaders::Kernel;

use super::context::GpuContext;
use super::error::GpuError;
use super::launch::{u32_arg, Grid, Launch};
use super::pool::GpuBuffer;

/// Sizes and strides of `C[b] = A[b] · B[b]` for each batch `b`.
///
/// `A[b]` is `(m, k)`: element `(i, p)` at `a_offset + i·a_strides.0 + p·a_strides.1`, where
/// `a_offset` is `batch_offsets[b].0` (likewise B, `(k, n)`). A transposed operand is just
/// swapped strides; a broadcast batch dim repeats an offset. All in elements.
#[derive(Clone, Debug)]
pub struct MatmulArgs {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    /// (row, column) strides of A.
    pub a_strides: (usize, usize),
    /// (row, column) strides of B.
    pub b_strides: (usize, usize),
    /// `(a_offset, b_offset)` per batch; its length is the batch count.
    pub batch_offsets: Vec<(usize, usize)>,
}

/// 64×64 tiles of C per workgroup (see the WGSL header).
const TILE: usize = 64;

fn launch_matmul(
    ctx: &GpuContext,
    kernel: Kernel,
    a: &GpuBuffer,
    b: &GpuBuffer,
    args: &MatmulArgs,
) -> Result<GpuBuffer, GpuError> {
    let batch = args.batch_offsets.len();
    let c = ctx.alloc(u64::from(u32_arg(batch * args.m * args.n, "batch · m · n")) * 4)?;
    let offsets: Vec<u32> =
        args.batch_offsets.iter().flat_map(|&(oa, ob)| [u32_arg(oa, "a offset"), u32_arg(ob, "b offset")]).collect();
    let offsets = ctx.upload_meta(&offsets)?;
    let params = MatmulParams {
        m: u32_arg(args.m, "m"),
        n: u32_arg(args.n, "n"),
        k: u32_arg(args.k, "k"),
        batch: batch as u32,
        a_row_stride: u32_arg(args.a_strides.0, "a row stride"),
        a_col_stride: u32_arg(args.a_strides.1, "a column stride"),
        b_row_stride: u32_arg(args.b_strides.0, "b row stride"),
        b_col_stride: u32_arg(args.b_strides.1, "b column stride"),
    };
    let max = ctx.limits().max_compute_workgroups_per_dimension as usize;
    assert!(batch <= max, "gpu matmul: batch {batch} exceeds {max} workgroups per dimension");
    let grid = Grid::Xyz(args.n.div_ceil(TILE) as u32, args.m.div_ceil(TILE) as u32, batch as u32);
    let buffers = [(1, a), (2, b), (3, &c), (4, &offsets)];
    ctx.launch(&Launch { kernel, params: bytemuck::bytes_of(&params), buffers: &buffers, grid })?;
    Ok(c)
}

/// `C = A · B` in f32 for every batch (see [`MatmulArgs`]); C is contiguous `(batch, m, n)`.
/// Workgroups of 16×16 compute 64×64 tiles of C; grid `(⌈n/64⌉, ⌈m/64⌉, batch)`.
pub fn matmul(ctx: &GpuContext, a: &GpuBuffer, b: &GpuBuffer, args: &MatmulArgs) -> Result<GpuBuffer, GpuError> {
    launch_matmul(ctx, Kernel::Matmul, a, b, args)
}

/// [`matmul`] with A and B stored as f16 (packed two per word, as [`super::f32_to_f16`]
/// makes them); products accumulate in f32 and C is f32.
///
/// # Errors
/// [`GpuError::NeedsF16`] when the adapter lacks SHADER_F16.
pub fn matmul_f16(ctx: &GpuContext, a: &GpuBuffer, b: &GpuBuffer, args: &MatmulArgs) -> Result<GpuBuffer, GpuError> {
    launch_matmul(ctx, Kernel::MatmulF16, a, b, args)
}

/// [`matmul`] with A f32 and B a 16-bit weight of `b_dtype` (bf16 or f16, packed two per word
/// as a host `[bf16]` / `[f16]` is), widened exactly in the kernel; C is f32. Strides and
/// offsets of B are in elements. Needs no SHADER_F16.
///
/// # Panics
/// If `b_dtype` is not bf16 or f16.
pub fn matmul_w16(
    ctx: &GpuContext,
    a: &GpuBuffer,
    b: &GpuBuffer,
    b_dtype: DType,
    args: &MatmulArgs,
) -> Result<GpuBuffer, GpuError> {
    let kernel = match b_dtype {
        DType::BF16 => Kernel::MatmulBf16Weight,
        DType::F16 => Kernel::MatmulF16Weight,
        other => panic!("matmul_w16: B must be bf16 or f16, got {other}"),
    };
    launch_matmul(ctx, kernel, a, b, args)
}
