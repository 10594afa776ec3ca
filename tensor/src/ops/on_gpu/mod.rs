//! The GPU arm of every op (feature `gpu`). Each op checks shapes and dims, then matches on its
//! first operand's storage once: `Storage::Cpu` runs the kernel of [`crate::cpu`] in the op's
//! own file, `Storage::Gpu` calls the function of the same name here, which runs the kernel of
//! [`crate::gpu`]. These functions move buffers and sizes only: nothing falls back to the CPU.
//! The files mirror `ops/`: `elementwise.rs` (with GELU's backward), `nn.rs` (softmax, layer
//! norm, cross-entropy, each forward beside its backward), `llama.rs` (RMSNorm, rope, SwiGLU), `index.rs` (gathers beside their
//! scatter-adds); this file holds the shared helpers and the single-kernel ops.
//!
//! Most kernels read *dense* buffers (row-major from element 0); the elementwise family and
//! matmul walk strides themselves. [`dense`] makes the copy when a view is not dense.
//! f16 and bf16 live packed two per word; ops that move elements of them (copies, index ops,
//! `cat`) widen to f32, run the 32-bit kernel and narrow again, which is exact. Quantized
//! tensors keep their blocks' bytes; `quant.rs` holds the ops they take part in (copies of
//! whole blocks, dequantizing, the products with a weight), and every other op refuses them.

mod elementwise;
mod index;
mod llama;
mod nn;
mod quant;

pub(crate) use elementwise::{binary, gelu_backward, select, unary};
pub(crate) use index::{cat, embedding_rows_16, gather, index_add, index_select, scatter_add};
pub(crate) use llama::{rms_norm, rms_norm_backward, rope, swiglu, swiglu_backward};
pub(crate) use nn::{
    cross_entropy, cross_entropy_backward, layer_norm, layer_norm_backward, softmax_rows, softmax_rows_backward,
};

use std::sync::Arc;

use crate::gpu::{self, GpuBuffer, GpuContext, GpuError, MatmulArgs};
use crate::kinds::{AdamWScalars, ReduceDims, ReduceOp};
use crate::layout::Layout;
use crate::ops::TopK;
use crate::shape::Shape;
use crate::storage::{GpuStorage, Storage};
use crate::{DType, Result, Tensor};

/// Unwraps a kernel launch. Ops are infallible by design, so a GPU failure inside one (device
/// lost, a buffer over the device's limits) panics with the op and the reason;
/// [`Tensor::to_device`] and `to_dtype` return those errors instead.
#[track_caller]
pub(super) fn ok<T>(op: &str, r: std::result::Result<T, GpuError>) -> T {
    r.unwrap_or_else(|e| panic!("{op} on the GPU: {e}"))
}

/// A tensor owning a kernel's output buffer, contiguous.
pub(super) fn wrap(ctx: &GpuContext, buffer: GpuBuffer, dtype: DType, shape: impl Into<Shape>) -> Tensor {
    let shape = shape.into();
    let storage = GpuStorage { ctx: ctx.clone(), buffer, dtype, len: shape.numel() };
    Tensor::new(Arc::new(Storage::Gpu(storage)), Layout::contiguous(shape))
}

#[track_caller]
pub(super) fn same_device(op: &str, a: &Tensor, b: &Tensor) {
    if a.device() != b.device() {
        panic!("{op}: operands are on different devices: {} and {}", a.device(), b.device());
    }
}

/// The storage of a GPU tensor that an op computes on, which must be f32 (as on the host).
#[track_caller]
pub(super) fn f32_of<'a>(t: &'a Tensor, op: &str) -> &'a GpuStorage {
    let g = t.gpu_storage().expect("on_gpu is called with GPU tensors");
    if g.dtype != DType::F32 {
        panic!(
            "{op}: expects an f32 tensor, got {} of shape {:?}; convert with to_dtype(DType::F32)",
            g.dtype,
            t.shape()
        );
    }
    g
}

/// `t` with its elements row-major from element 0 of its buffer: `t` itself when it already
/// is, else a strided copy on the device.
#[track_caller]
pub(crate) fn dense(t: &Tensor, op: &str) -> Tensor {
    let g = t.gpu_storage().expect("dense of a GPU tensor");
    if t.is_contiguous() && t.layout().offset() == 0 {
        return t.clone();
    }
    if g.dtype.quant_type().is_some() {
        return quant::dense(t, op);
    }
    let copied = match g.dtype {
        DType::F32 | DType::I32 => gpu::copy_strided(&g.ctx, &g.buffer, t.layout()),
        DType::F16 | DType::BF16 => widen(&g.ctx, g.dtype, &g.buffer, g.len)
            .and_then(|wide| gpu::copy_strided(&g.ctx, &wide, t.layout()))
            .and_then(|picked| narrow(&g.ctx, g.dtype, &picked, t.numel())),
        DType::Quant(_) => unreachable!("returned above"),
    };
    wrap(&g.ctx, ok(op, copied), g.dtype, t.shape())
}

/// The dense buffer of a GPU tensor (see [`dense`]).
#[track_caller]
pub(super) fn dense_buffer(t: &Tensor, op: &str) -> GpuBuffer {
    dense(t, op).gpu_storage().expect("dense keeps the device").buffer.clone()
}

/// `numel` packed 16-bit elements of `dtype` → f32.
pub(super) fn widen(
    ctx: &GpuContext,
    dtype: DType,
    x: &GpuBuffer,
    numel: usize,
) -> std::result::Result<GpuBuffer, GpuError> {
    match dtype {
        DType::F16 => gpu::f16_to_f32(ctx, x, numel),
        DType::BF16 => gpu::bf16_to_f32(ctx, x, numel),
        other => unreachable!("widen from {other}"),
    }
}

/// `numel` f32 → packed 16-bit elements of `dtype`.
pub(super) fn narrow(
    ctx: &GpuContext,
    dtype: DType,
    x: &GpuBuffer,
    numel: usize,
) -> std::result::Result<GpuBuffer, GpuError> {
    match dtype {
        DType::F16 => gpu::f32_to_f16(ctx, x, numel),
        DType::BF16 => gpu::f32_to_bf16(ctx, x, numel),
        other => unreachable!("narrow to {other}"),
    }
}

/// Runs a kernel that moves 32-bit words on the dense data of `t` (any dtype): 16-bit
/// dtypes are widened before and narrowed after. `out_numel` is the kernel's output size.
#[track_caller]
pub(super) fn on_words(
    t: &Tensor,
    op: &str,
    out_numel: usize,
    kernel: impl FnOnce(&GpuContext, &GpuBuffer) -> std::result::Result<GpuBuffer, GpuError>,
) -> GpuBuffer {
    let g = t.gpu_storage().expect("on_words of a GPU tensor");
    if g.dtype.quant_type().is_some() {
        quant::refuse(op, t);
    }
    let x = dense_buffer(t, op);
    let result = match g.dtype {
        DType::F32 | DType::I32 => kernel(&g.ctx, &x),
        DType::F16 | DType::BF16 => widen(&g.ctx, g.dtype, &x, t.numel())
            .and_then(|wide| kernel(&g.ctx, &wide))
            .and_then(|out| narrow(&g.ctx, g.dtype, &out, out_numel)),
        DType::Quant(_) => unreachable!("refused above"),
    };
    ok(op, result)
}

/// Dtype conversion on the device: f32 ↔ f16/bf16 on the bits (exact as the host), and
/// i32 ↔ the float types through f32; to i32 fails, naming the first element that is not an
/// integer in range, like the host. A quantized tensor is dequantized by `quant.wgsl` (bit
/// for bit the host's values) and then converted; quantizing is the host's job, so converting
/// to a quantized type is an error.
pub(crate) fn to_dtype(t: &Tensor, to: DType) -> Result<Tensor> {
    let g = t.gpu_storage().expect("to_dtype of a GPU tensor");
    let (ctx, from, n) = (&g.ctx, g.dtype, t.numel());
    let convert = || -> Result<GpuBuffer> {
        let wide = match from {
            DType::Quant(_) => quant::to_f32(t, "to_dtype")?,
            DType::F32 => dense_buffer(t, "to_dtype"),
            DType::F16 | DType::BF16 => widen(ctx, from, &dense_buffer(t, "to_dtype"), n)?,
            DType::I32 => gpu::i32_to_f32(ctx, &dense_buffer(t, "to_dtype"), n)?,
        };
        Ok(match to {
            DType::F32 => wide,
            DType::F16 | DType::BF16 => narrow(ctx, to, &wide, n)?,
            DType::I32 => gpu::f32_to_i32(ctx, &wide, n)?,
            DType::Quant(ty) => {
                return Err(crate::Error::BadTensor {
                    tensor: format!("{from} {:?}", t.shape()),
                    message: format!(
                        "to_dtype({ty}) on a GPU: quantizing runs on the CPU; move the tensor there first"
                    ),
                })
            }
        })
    };
    convert().map(|buffer| wrap(ctx, buffer, to, t.shape()))
}

/// A reduction of `x` viewed as `rdims` into `shape`; argmax gives i32 indices as the host.
#[track_caller]
pub(crate) fn reduce(x: &Tensor, op: ReduceOp, rdims: ReduceDims, shape: Vec<usize>) -> Tensor {
    let name = format!("{op:?}").to_lowercase();
    let g = f32_of(x, &name);
    let src = dense_buffer(x, &name);
    let out = ok(&name, gpu::reduce(&g.ctx, op, &src, rdims));
    match op {
        ReduceOp::ArgMax => {
            let numel = rdims.outer * rdims.inner;
            let ids = ok(&name, gpu::f32_to_i32_unchecked(&g.ctx, &out, numel));
            wrap(&g.ctx, ids, DType::I32, shape)
        }
        _ => wrap(&g.ctx, out, DType::F32, shape),
    }
}

/// The `k` largest along the last dim (`n`) of f32 `x` into outputs of `shape`, by the
/// bitonic kernels; never read back.
#[track_caller]
pub(crate) fn topk(x: &Tensor, n: usize, k: usize, shape: Vec<usize>) -> TopK {
    let g = f32_of(x, "topk");
    let src = dense_buffer(x, "topk");
    let out = ok("topk", gpu::topk(&g.ctx, &src, x.numel() / n, n, k));
    TopK {
        values: wrap(&g.ctx, out.values, DType::F32, shape.clone()),
        indices: wrap(&g.ctx, out.indices, DType::I32, shape),
    }
}

/// Batched `C = A · B` with `la`, `lb` already broadcast to `batch + (m, k)` and
/// `batch + (k, n)`. f16 operands use the f16-storage kernel (f32 accumulation) when the
/// adapter has SHADER_F16; an f32 `a` times a bf16 / f16 `b` (a frozen weight) uses the
/// mixed kernel of `matmul_w16.wgsl`, times a quantized `b` the kernels of `quant.wgsl`;
/// otherwise operands must be f32, as on the host.
#[track_caller]
pub(crate) fn matmul(a: &Tensor, la: &Layout, b: &Tensor, lb: &Layout, mnk: (usize, usize, usize)) -> Tensor {
    if b.dtype().quant_type().is_some() {
        return quant::matmul(a, la, b, lb, mnk);
    }
    let ga = a.gpu_storage().expect("matmul of GPU tensors");
    let (m, n, k) = mnk;
    let rank = la.dims().len();
    let batch = &la.dims()[..rank - 2];
    let out_shape = [batch, &[m, n]].concat();
    let count: usize = batch.iter().product();
    let f16 = a.dtype() == DType::F16 && b.dtype() == DType::F16 && ga.ctx.has_f16();
    let w16 = !f16 && matches!(b.dtype(), DType::BF16 | DType::F16);
    let gb = if f16 || w16 { b.gpu_storage().expect("same device") } else { f32_of(b, "matmul") };
    if !f16 {
        f32_of(a, "matmul");
    }
    if k == 0 || m * n * count == 0 {
        return Tensor::zeros(out_shape, &a.device());
    }
    let args = MatmulArgs {
        m,
        n,
        k,
        a_strides: (la.strides()[rank - 2], la.strides()[rank - 1]),
        b_strides: (lb.strides()[rank - 2], lb.strides()[rank - 1]),
        batch_offsets: (0..count).map(|i| (la.batch_offset(batch, i), lb.batch_offset(batch, i))).collect(),
    };
    let out = if f16 {
        gpu::matmul_f16(&ga.ctx, &ga.buffer, &gb.buffer, &args)
    } else if w16 {
        gpu::matmul_w16(&ga.ctx, &ga.buffer, &gb.buffer, gb.dtype, &args)
    } else {
        gpu::matmul(&ga.ctx, &ga.buffer, &gb.buffer, &args)
    };
    wrap(&ga.ctx, ok("matmul", out), DType::F32, out_shape)
}

/// One fused AdamW step: new `(p, m, v)`.
#[track_caller]
pub(crate) fn adamw(p: &Tensor, grad: &Tensor, m: &Tensor, v: &Tensor, s: AdamWScalars) -> (Tensor, Tensor, Tensor) {
    let op = "adamw_update";
    let inputs = [p, grad, m, v];
    for t in inputs {
        same_device(op, p, t);
        f32_of(t, op);
    }
    let [pb, gb, mb, vb] = inputs.map(|t| dense_buffer(t, op));
    let ctx = &f32_of(p, op).ctx;
    let out = ok(op, gpu::adamw_update(ctx, &pb, &gb, &mb, &vb, p.numel(), s));
    let shape = p.shape();
    (
        wrap(ctx, out.p, DType::F32, shape.clone()),
        wrap(ctx, out.m, DType::F32, shape.clone()),
        wrap(ctx, out.v, DType::F32, shape.clone()),
    )
}
