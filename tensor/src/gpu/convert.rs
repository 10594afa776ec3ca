//! Dtype conversions (`convert.wgsl`) between f32 and the 16-bit storage types, done on the
//! bits so they round exactly as the CPU (`half`): nearest, ties to even.
//!
//! f16 and bf16 buffers hold two elements per 32-bit word, element `2w` in the low half of
//! word `w`, which is the little-endian byte layout of a `[f16]` / `[bf16]` slice.

use deltaw_shaders::params::ConvertParams;
use deltaw_shaders::Kernel;

use super::context::GpuContext;
use super::error::GpuError;
use super::launch::{u32_arg, Grid, Launch};
use super::pool::GpuBuffer;

/// Runs a conversion over `numel` elements: one invocation per packed word.
fn convert(
    ctx: &GpuContext,
    kernel: Kernel,
    wide: &GpuBuffer,
    packed: &GpuBuffer,
    numel: usize,
) -> Result<(), GpuError> {
    let numel = u32_arg(numel, "numel");
    let params = ConvertParams { numel, ..Default::default() };
    let buffers = [(1, wide), (2, packed)];
    let words = numel.div_ceil(2);
    ctx.launch(&Launch {
        kernel,
        params: bytemuck::bytes_of(&params),
        buffers: &buffers,
        grid: Grid::Linear(words.div_ceil(256)),
    })
}

fn narrow(ctx: &GpuContext, kernel: Kernel, x: &GpuBuffer, numel: usize) -> Result<GpuBuffer, GpuError> {
    let packed = ctx.alloc((numel.div_ceil(2) * 4) as u64)?;
    convert(ctx, kernel, x, &packed, numel)?;
    Ok(packed)
}

fn widen(ctx: &GpuContext, kernel: Kernel, x: &GpuBuffer, numel: usize) -> Result<GpuBuffer, GpuError> {
    let wide = ctx.alloc((numel * 4) as u64)?;
    convert(ctx, kernel, &wide, x, numel)?;
    Ok(wide)
}

/// `numel` f32 → f16 (IEEE binary16; overflow to ±inf, subnormals kept).
pub fn f32_to_f16(ctx: &GpuContext, x: &GpuBuffer, numel: usize) -> Result<GpuBuffer, GpuError> {
    narrow(ctx, Kernel::F32ToF16, x, numel)
}

/// `numel` f16 → f32, exactly.
pub fn f16_to_f32(ctx: &GpuContext, x: &GpuBuffer, numel: usize) -> Result<GpuBuffer, GpuError> {
    widen(ctx, Kernel::F16ToF32, x, numel)
}

/// `numel` f32 → bf16 (the top 16 bits, rounded to nearest-even).
pub fn f32_to_bf16(ctx: &GpuContext, x: &GpuBuffer, numel: usize) -> Result<GpuBuffer, GpuError> {
    narrow(ctx, Kernel::F32ToBf16, x, numel)
}

/// `numel` bf16 → f32, exactly.
pub fn bf16_to_f32(ctx: &GpuContext, x: &GpuBuffer, numel: usize) -> Result<GpuBuffer, GpuError> {
    widen(ctx, Kernel::Bf16ToF32, x, numel)
}
