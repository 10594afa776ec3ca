//! Top-k along rows (`topk.wgsl`): (key, index) pairs, bitonic networks that leave each row's
//! best k first (a bitonic top-k reduction for k ≤ 256, a full sort above), then the first k
//! gathered. Every step is one dispatch into the pending batch; nothing waits.

use deltaw_shaders::params::TopKParams;
use deltaw_shaders::Kernel;

use super::context::GpuContext;
use super::error::GpuError;
use super::launch::{u32_arg, Grid, Launch};
use super::pool::GpuBuffer;

/// Pairs that one `topk_sort_local` workgroup sorts in workgroup memory (`BLOCK` in the WGSL).
const BLOCK: u32 = 512;
/// Invocations per workgroup in every `topk.wgsl` entry point.
const WORKGROUP: u32 = 256;
/// The largest run length K of the reduction: two runs must fit a block.
const MAX_RUN: u32 = BLOCK / 2;

/// The outputs of [`topk`]: `(rows, k)` f32 values and i32 indices.
pub struct GpuTopK {
    pub values: GpuBuffer,
    pub indices: GpuBuffer,
}

/// The `k` largest of each row of contiguous f32 `x` viewed as `(rows, n)`, largest first,
/// in the order of [`crate::cpu::topk::topk`] (ties by lower index, NaN last), which it
/// matches exactly. `1 ≤ k ≤ n`, `rows ≥ 1`.
///
/// Dispatches for rows padded to `p = 2^m` (see `topk.wgsl`): `topk_keys`; then with
/// K = next power of two ≥ k, for K ≤ 256 `topk_reduce_local` until K pairs per row are left
/// (n = 4096, k = 5: two), otherwise a full bitonic sort (one `topk_sort_local` for every stage
/// up to 512, per later stage its steps `size/2 … 512` by `topk_sort_step` and the rest by one
/// `topk_sort_local`); and `topk_gather`. The pair buffer takes 8 · rows · p bytes.
pub fn topk(ctx: &GpuContext, x: &GpuBuffer, rows: usize, n: usize, k: usize) -> Result<GpuTopK, GpuError> {
    assert!(rows >= 1 && 1 <= k && k <= n, "gpu topk: needs rows ≥ 1 and 1 ≤ k ≤ n, got rows {rows}, n {n}, k {k}");
    let p = n.next_power_of_two();
    let base = TopKParams {
        rows: u32_arg(rows, "rows"),
        n: u32_arg(n, "n"),
        p: u32_arg(p, "padded row length"),
        k: k as u32,
        ..Default::default()
    };
    let total = u32_arg(rows * p, "rows · padded row length");
    let _ = u32_arg(rows * n, "numel");
    let pairs = ctx.alloc(u64::from(total) * 8)?;
    launch(ctx, Kernel::TopKKeys, &base, &[(1, x), (2, &pairs)], total.div_ceil(WORKGROUP))?;
    let run = base.k.next_power_of_two();
    let (best, row_len) = if run <= MAX_RUN {
        reduce_to_best(ctx, pairs, &base, run)?
    } else {
        bitonic_sort(ctx, &pairs, &base, total)?;
        (pairs, base.p)
    };
    gather(ctx, x, &best, &TopKParams { p: row_len, ..base })
}

/// Cuts each padded row of `pairs` down to its best `run` pairs, sorted, by
/// `topk_reduce_local` dispatches (each turning segments of up to 512 pairs into `run`);
/// returns the buffer of `(rows, run)` pairs and `run`.
fn reduce_to_best(
    ctx: &GpuContext,
    mut pairs: GpuBuffer,
    base: &TopKParams,
    run: u32,
) -> Result<(GpuBuffer, u32), GpuError> {
    let mut len = base.p;
    loop {
        let total = base.rows * len;
        let out_len = len / len.min(BLOCK) * run;
        let survivors = ctx.alloc(u64::from(base.rows * out_len) * 8)?;
        let params = TopKParams { p: len, size: run, ..*base };
        launch(ctx, Kernel::TopKReduceLocal, &params, &[(2, &pairs), (5, &survivors)], total.div_ceil(BLOCK))?;
        (pairs, len) = (survivors, out_len);
        if len == run {
            return Ok((pairs, run));
        }
    }
}

/// Sorts each padded row of `pairs` (`rows · p` pairs in all) into the final order.
fn bitonic_sort(ctx: &GpuContext, pairs: &GpuBuffer, base: &TopKParams, total: u32) -> Result<(), GpuError> {
    let p = base.p;
    if p == 1 {
        return Ok(());
    }
    let blocks = total.div_ceil(BLOCK);
    let buffers = [(2, pairs)];
    // Every stage whose compare-exchanges stay within a block of 512: one dispatch.
    let first = TopKParams { size: 2, size_end: p.min(BLOCK), ..*base };
    launch(ctx, Kernel::TopKSortLocal, &first, &buffers, blocks)?;
    let mut size = 2 * BLOCK;
    while size <= p {
        // Steps that span blocks, one dispatch each over the rows · p/2 compare-exchanges ...
        let mut step = size / 2;
        while step >= BLOCK {
            let params = TopKParams { size, step, ..*base };
            launch(ctx, Kernel::TopKSortStep, &params, &buffers, (total / 2).div_ceil(WORKGROUP))?;
            step /= 2;
        }
        // ... and the steps 256 … 1 of this stage within each block.
        let params = TopKParams { size, size_end: size, ..*base };
        launch(ctx, Kernel::TopKSortLocal, &params, &buffers, blocks)?;
        size *= 2;
    }
    Ok(())
}

/// The first `k` pairs of each sorted row (of length `base.p`) as values (read from `x`) and
/// i32 indices.
fn gather(ctx: &GpuContext, x: &GpuBuffer, pairs: &GpuBuffer, base: &TopKParams) -> Result<GpuTopK, GpuError> {
    let outputs = u32_arg(base.rows as usize * base.k as usize, "rows · k");
    let values = ctx.alloc(u64::from(outputs) * 4)?;
    let indices = ctx.alloc(u64::from(outputs) * 4)?;
    let buffers = [(1, x), (2, pairs), (3, &values), (4, &indices)];
    launch(ctx, Kernel::TopKGather, base, &buffers, outputs.div_ceil(WORKGROUP))?;
    Ok(GpuTopK { values, indices })
}

fn launch(
    ctx: &GpuContext,
    kernel: Kernel,
    params: &TopKParams,
    buffers: &[(u32, &GpuBuffer)],
    groups: u32,
) -> Result<(), GpuError> {
    ctx.launch(&Launch { kernel, params: bytemuck::bytes_of(params), buffers, grid: Grid::Linear(groups) })
}
