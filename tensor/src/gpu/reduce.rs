//! Reductions along one dim (`reduce.wgsl`), choosing the loop order by the reduced stride.

use deltaw_shaders::params::ReduceParams;
use deltaw_shaders::Kernel;

use super::context::GpuContext;
use super::error::GpuError;
use super::launch::{fold_grid, u32_arg, Grid, Launch};
use super::pool::GpuBuffer;
use crate::kinds::{ReduceDims, ReduceOp};

/// The op code: the index in `ReduceOp`.
fn reduce_code(op: ReduceOp) -> u32 {
    match op {
        ReduceOp::Sum => 0,
        ReduceOp::Mean => 1,
        ReduceOp::Max => 2,
        ReduceOp::Min => 3,
        ReduceOp::Var => 4,
        ReduceOp::ArgMax => 5,
    }
}

/// Reduces contiguous `x`, viewed as `(outer, d, inner)`, along `d`; output `(outer, inner)`
/// contiguous, as [`crate::cpu::reduce::reduce`] (argmax as an f32 index).
///
/// `inner == 1` dispatches `reduce_rows` (one workgroup of 256 per row, tree reduction);
/// otherwise `reduce_columns` (one invocation per output, walking down its column so that
/// neighbouring invocations read neighbouring addresses).
pub fn reduce(ctx: &GpuContext, op: ReduceOp, x: &GpuBuffer, dims: ReduceDims) -> Result<GpuBuffer, GpuError> {
    let ReduceDims { outer, d, inner } = dims;
    let outputs = u32_arg(outer * inner, "outer · inner");
    let _ = u32_arg(outer * d * inner, "numel");
    let out = ctx.alloc(u64::from(outputs) * 4)?;
    let params = ReduceParams { outer: outer as u32, d: d as u32, inner: inner as u32, op: reduce_code(op) };
    let (kernel, grid) = if inner == 1 {
        let (gx, gy) = fold_grid(outputs);
        (Kernel::ReduceRows, Grid::Xyz(gx, gy, 1))
    } else {
        (Kernel::ReduceColumns, Grid::Linear(outputs.div_ceil(256)))
    };
    let buffers = [(1, x), (2, &out)];
    ctx.launch(&Launch { kernel, params: bytemuck::bytes_of(&params), buffers: &buffers, grid })?;
    Ok(out)
}
