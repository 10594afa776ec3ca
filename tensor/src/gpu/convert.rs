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

/// `numel` i32 → f32 (as a cast: exact up to 2^24).
pub fn i32_to_f32(ctx: &GpuContext, x: &GpuBuffer, numel: usize) -> Result<GpuBuffer, GpuError> {
    let wide = ctx.alloc((numel * 4) as u64)?;
    launch_int(ctx, Kernel::I32ToF32, &wide, x, None, numel)?;
    Ok(wide)
}

/// `numel` f32 → i32, without waiting: the buffer of `first_bad` (one u32, `u32::MAX` when
/// every element was an integer in range, else the smallest index of one that was not;
/// those elements become 0) comes back with the result for the caller to read or ignore.
pub fn f32_to_i32_flagged(ctx: &GpuContext, x: &GpuBuffer, numel: usize) -> Result<(GpuBuffer, GpuBuffer), GpuError> {
    let ints = ctx.alloc((numel * 4) as u64)?;
    let first_bad = ctx.upload(&[u32::MAX])?;
    launch_int(ctx, Kernel::F32ToI32, x, &ints, Some(&first_bad), numel)?;
    Ok((ints, first_bad))
}

/// f32 that are known to be integers (argmax positions) → i32, without checking.
pub fn f32_to_i32_unchecked(ctx: &GpuContext, x: &GpuBuffer, numel: usize) -> Result<GpuBuffer, GpuError> {
    f32_to_i32_flagged(ctx, x, numel).map(|(ints, _)| ints)
}

/// f32 → i32 as the CPU's `to_dtype(I32)`: waits for the check, and fails naming the first
/// element that is not an integer in i32's range.
pub fn f32_to_i32(ctx: &GpuContext, x: &GpuBuffer, numel: usize) -> crate::Result<GpuBuffer> {
    let (ints, first_bad) = f32_to_i32_flagged(ctx, x, numel)?;
    let bad = ctx.read_back::<u32>(&first_bad, 1)?[0];
    if bad == u32::MAX {
        return Ok(ints);
    }
    let index = bad as usize;
    let value = ctx.read_back::<f32>(x, index + 1)?[index];
    Err(crate::Error::Conversion { to: "i32".into(), index, value: f64::from(value) })
}

/// One invocation per element; `first_bad` only for f32 → i32.
fn launch_int(
    ctx: &GpuContext,
    kernel: Kernel,
    wide: &GpuBuffer,
    packed: &GpuBuffer,
    first_bad: Option<&GpuBuffer>,
    numel: usize,
) -> Result<(), GpuError> {
    let numel = u32_arg(numel, "numel");
    let params = ConvertParams { numel, ..Default::default() };
    let mut buffers = vec![(1, wide), (2, packed)];
    buffers.extend(first_bad.map(|b| (3, b)));
    ctx.launch(&Launch {
        kernel,
        params: bytemuck::bytes_of(&params),
        buffers: &buffers,
        grid: Grid::Linear(numel.div_ceil(256)),
    })
}
