//! The fused AdamW update on the GPU (`optim.wgsl`), mirroring [`crate::cpu::optim::adamw`]:
//! one dispatch reads `p, g, m, v` and writes the new `p, m, v`.

use deltaw_shaders::params::AdamWParams;
use deltaw_shaders::Kernel;

use super::context::GpuContext;
use super::error::GpuError;
use super::launch::{u32_arg, Grid, Launch};
use super::pool::GpuBuffer;
use crate::kinds::AdamWScalars;

/// A parameter's state after one AdamW step, each `(n,)` like the inputs.
#[derive(Debug)]
pub struct GpuAdamW {
    /// The updated parameter.
    pub p: GpuBuffer,
    /// The first moment.
    pub m: GpuBuffer,
    /// The second moment.
    pub v: GpuBuffer,
}

/// One AdamW step over `n` contiguous f32 elements of the parameter `p`, gradient `g` and
/// moments `m`, `v`, returning new buffers (the inputs are left as they were), as
/// `Tensor::adamw_update` and [`crate::cpu::optim::adamw`]. Per element, in the CPU's order:
/// `p ← p·decay`; `m ← m + (g - m)(1 - β1)`; `v ← v·β2 + (g(1 - β2))·g`;
/// `p ← p + (m·step_size) / (√v / √(1 - β2ᵗ) + eps)`. No decay (`scalars.decay == None`)
/// multiplies by 1, which leaves p's bits unchanged. Only the GPU's sqrt and division may
/// round differently from the CPU's (a few ulps).
pub fn adamw_update(
    ctx: &GpuContext,
    p: &GpuBuffer,
    g: &GpuBuffer,
    m: &GpuBuffer,
    v: &GpuBuffer,
    n: usize,
    scalars: AdamWScalars,
) -> Result<GpuAdamW, GpuError> {
    let numel = u32_arg(n, "numel");
    let bytes = u64::from(numel) * 4;
    let out = GpuAdamW { p: ctx.alloc(bytes)?, m: ctx.alloc(bytes)?, v: ctx.alloc(bytes)? };
    let params = AdamWParams {
        numel,
        decay: scalars.decay.unwrap_or(1.0),
        one_minus_beta1: scalars.one_minus_beta1,
        beta2: scalars.beta2,
        one_minus_beta2: scalars.one_minus_beta2,
        bias2_sqrt: scalars.bias2_sqrt,
        eps: scalars.eps,
        step_size: scalars.step_size,
    };
    let buffers = [(1, p), (2, g), (3, m), (4, v), (5, &out.p), (6, &out.m), (7, &out.v)];
    ctx.launch(&Launch {
        kernel: Kernel::AdamWUpdate,
        params: bytemuck::bytes_of(&params),
        buffers: &buffers,
        grid: Grid::Linear(numel.div_ceil(256)),
    })?;
    Ok(out)
}
