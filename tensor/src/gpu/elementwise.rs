//! Elementwise kernels (`elementwise.wgsl`): unary maps with the GELUs' backward beside them,
//! broadcast binary ops, `where_`, and the strided copy behind `contiguous()`. Operands are
//! read in place through their layouts.

use deltaw_shaders::params::ElementwiseParams;
use deltaw_shaders::Kernel;

use super::context::GpuContext;
use super::error::GpuError;
use super::launch::{u32_arg, Grid};
use super::pool::GpuBuffer;
use crate::kinds::{BinaryOp, UnaryOp};
use crate::layout::Layout;

/// The `strided` binding: the output dims, then for each operand its strides and offset.
fn strided_words(dims: &[usize], layouts: &[&Layout]) -> Vec<u32> {
    let mut words: Vec<u32> = dims.iter().map(|&d| u32_arg(d, "dim")).collect();
    for layout in layouts {
        assert_eq!(
            layout.dims(),
            dims,
            "gpu elementwise: operand shape {:?} differs from output shape {dims:?}",
            layout.dims()
        );
        words.extend(layout.strides().iter().map(|&s| u32_arg(s, "stride")));
        words.push(u32_arg(layout.offset(), "offset"));
    }
    words
}

/// The op code (index in `UnaryOp`) and the scalar of scalar ops.
fn unary_code(op: UnaryOp) -> (u32, f32) {
    match op {
        UnaryOp::Neg => (0, 0.0),
        UnaryOp::Abs => (1, 0.0),
        UnaryOp::Exp => (2, 0.0),
        UnaryOp::Log => (3, 0.0),
        UnaryOp::Sqrt => (4, 0.0),
        UnaryOp::Rsqrt => (5, 0.0),
        UnaryOp::Tanh => (6, 0.0),
        UnaryOp::Sigmoid => (7, 0.0),
        UnaryOp::Relu => (8, 0.0),
        UnaryOp::Silu => (9, 0.0),
        UnaryOp::Gelu => (10, 0.0),
        UnaryOp::GeluTanh => (11, 0.0),
        UnaryOp::Powf(s) => (12, s),
        UnaryOp::AddScalar(s) => (13, s),
        UnaryOp::MulScalar(s) => (14, s),
        UnaryOp::DivScalar(s) => (15, s),
        UnaryOp::ScalarDiv(s) => (16, s),
    }
}

/// The op code: the index in `BinaryOp`.
fn binary_code(op: BinaryOp) -> u32 {
    match op {
        BinaryOp::Add => 0,
        BinaryOp::Sub => 1,
        BinaryOp::Mul => 2,
        BinaryOp::Div => 3,
        BinaryOp::Maximum => 4,
        BinaryOp::Minimum => 5,
        BinaryOp::Eq => 6,
        BinaryOp::Ne => 7,
        BinaryOp::Lt => 8,
        BinaryOp::Le => 9,
        BinaryOp::Gt => 10,
        BinaryOp::Ge => 11,
    }
}

/// Runs one elementwise entry point: `inputs` are bound to in0.. (bindings 2..), the output
/// (contiguous, `dims`) to binding 5.
fn launch_elementwise(
    ctx: &GpuContext,
    kernel: Kernel,
    op: u32,
    scalar: f32,
    dims: &[usize],
    inputs: &[(&GpuBuffer, &Layout)],
) -> Result<GpuBuffer, GpuError> {
    let numel: usize = dims.iter().product();
    let layouts: Vec<&Layout> = inputs.iter().map(|(_, l)| *l).collect();
    let strided = ctx.upload_meta(&strided_words(dims, &layouts))?;
    let out = ctx.alloc((numel * 4) as u64)?;
    let numel = u32_arg(numel, "numel");
    let params = ElementwiseParams { numel, rank: dims.len() as u32, op, scalar };
    let mut buffers = vec![(1, &strided)];
    buffers.extend(inputs.iter().enumerate().map(|(k, (b, _))| (2 + k as u32, *b)));
    buffers.push((5, &out));
    ctx.run(kernel, &params, &buffers, Grid::per_element(numel))?;
    Ok(out)
}

/// `op(x)` for every element of the view `layout` of `src`, as [`crate::cpu::elementwise::unary`].
///
/// Output: contiguous f32 with `layout`'s shape. One invocation per output element.
pub fn unary(ctx: &GpuContext, op: UnaryOp, src: &GpuBuffer, layout: &Layout) -> Result<GpuBuffer, GpuError> {
    let (code, scalar) = unary_code(op);
    launch_elementwise(ctx, Kernel::Unary, code, scalar, layout.dims(), &[(src, layout)])
}

/// `dx = dy · f'(x)` over `n` contiguous elements (`x` as in0, `dy` as in1), one invocation
/// each.
fn gelu_like_backward(
    ctx: &GpuContext,
    kernel: Kernel,
    x: &GpuBuffer,
    dy: &GpuBuffer,
    n: usize,
) -> Result<GpuBuffer, GpuError> {
    let numel = u32_arg(n, "numel");
    let dx = ctx.alloc(u64::from(numel) * 4)?;
    let params = ElementwiseParams { numel, ..Default::default() };
    ctx.run(kernel, &params, &[(2, x), (3, dy), (5, &dx)], Grid::per_element(numel))?;
    Ok(dx)
}

/// Exact (erf) GELU backward over `n` elements: `dx = dy · (Φ(x) + x · φ(x))`, as
/// [`crate::cpu::elementwise::gelu_backward`] (same erfc fit; the GPU's `exp` for the CPU's
/// `exp_fast`).
pub fn gelu_backward(ctx: &GpuContext, x: &GpuBuffer, dy: &GpuBuffer, n: usize) -> Result<GpuBuffer, GpuError> {
    gelu_like_backward(ctx, Kernel::GeluBackward, x, dy, n)
}

/// Tanh-GELU backward over `n` elements: with `u = √(2/π)(x + 0.044715 x³)` and `t = tanh u`,
/// `dx = dy · ((1 + t)/2 + x/2 · (1 - t²) · √(2/π)(1 + 3·0.044715 x²))`, forming `1 ± t` from
/// `exp(-2|u|)` as [`crate::cpu::math::gelu_tanh_grad`] does.
pub fn gelu_tanh_backward(ctx: &GpuContext, x: &GpuBuffer, dy: &GpuBuffer, n: usize) -> Result<GpuBuffer, GpuError> {
    gelu_like_backward(ctx, Kernel::GeluTanhBackward, x, dy, n)
}

/// `op(a, b)` with both layouts already broadcast to the output shape (broadcast dims have
/// stride 0), as [`crate::cpu::elementwise::binary`]. Comparisons give 1.0 / 0.0.
///
/// # Panics
/// If the two layouts have different shapes.
pub fn binary(
    ctx: &GpuContext,
    op: BinaryOp,
    a: &GpuBuffer,
    la: &Layout,
    b: &GpuBuffer,
    lb: &Layout,
) -> Result<GpuBuffer, GpuError> {
    launch_elementwise(ctx, Kernel::Binary, binary_code(op), 0.0, la.dims(), &[(a, la), (b, lb)])
}

/// `cond != 0 ? on_true : on_false`, all three broadcast to the output shape, as
/// [`crate::cpu::elementwise::select`].
pub fn select_where(
    ctx: &GpuContext,
    cond: (&GpuBuffer, &Layout),
    on_true: (&GpuBuffer, &Layout),
    on_false: (&GpuBuffer, &Layout),
) -> Result<GpuBuffer, GpuError> {
    launch_elementwise(ctx, Kernel::SelectWhere, 0, 0.0, cond.1.dims(), &[cond, on_true, on_false])
}

/// The row-major copy of any view of 32-bit elements (`contiguous()`), as
/// [`crate::cpu::copy::gather`].
pub fn copy_strided(ctx: &GpuContext, src: &GpuBuffer, layout: &Layout) -> Result<GpuBuffer, GpuError> {
    launch_elementwise(ctx, Kernel::CopyStrided, 0, 0.0, layout.dims(), &[(src, layout)])
}
