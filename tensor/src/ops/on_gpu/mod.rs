//! The GPU half of every op (feature `gpu`). Each function takes what an op was given and,
//! when the tensors live on a GPU, runs the kernel from [`crate::gpu`] and returns
//! `Some(result)`; for host tensors it returns `None` and the op runs its CPU kernel. The ops
//! check shapes and dims before they get here, so these functions move buffers and sizes only:
//! nothing falls back to the CPU.
//!
//! Most kernels read *dense* buffers (row-major from element 0); the elementwise family and
//! matmul walk strides themselves. [`dense`] makes the copy when a view is not dense.
//! f16 and bf16 live packed two per word; ops that move elements of them (copies, index ops,
//! `cat`) widen to f32, run the 32-bit kernel and narrow again, which is exact.

mod backward;

pub(crate) use backward::{
    adamw, cross_entropy_backward, gelu_backward, index_add, layer_norm_backward, scatter_add, softmax_rows_backward,
};

use std::sync::Arc;

use crate::cpu::elementwise::{BinaryOp, UnaryOp};
use crate::cpu::reduce::{ReduceDims, ReduceOp};
use crate::gpu::{self, GpuBuffer, GpuContext, GpuError, MatmulArgs};
use crate::layout::Layout;
use crate::ops::{LayerNormOutput, TopK};
use crate::shape::Shape;
use crate::storage::{GpuStorage, Storage};
use crate::{DType, Result, Tensor};

/// Unwraps a kernel launch. Ops are infallible by design, so a GPU failure inside one (device
/// lost, a buffer over the device's limits) panics with the op and the reason;
/// [`Tensor::to_device`] and `to_dtype` return those errors instead.
#[track_caller]
fn ok<T>(op: &str, r: std::result::Result<T, GpuError>) -> T {
    r.unwrap_or_else(|e| panic!("{op} on the GPU: {e}"))
}

/// A tensor owning a kernel's output buffer, contiguous.
fn wrap(ctx: &GpuContext, buffer: GpuBuffer, dtype: DType, shape: impl Into<Shape>) -> Tensor {
    let shape = shape.into();
    let storage = GpuStorage { ctx: ctx.clone(), buffer, dtype, len: shape.numel() };
    Tensor::new(Arc::new(Storage::Gpu(storage)), Layout::contiguous(shape))
}

#[track_caller]
fn same_device(op: &str, a: &Tensor, b: &Tensor) {
    if a.device() != b.device() {
        panic!("{op}: operands are on different devices: {} and {}", a.device(), b.device());
    }
}

/// The storage of a GPU tensor that an op computes on, which must be f32 (as on the host).
#[track_caller]
fn f32_of<'a>(t: &'a Tensor, op: &str) -> &'a GpuStorage {
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
    let copied = match g.dtype {
        DType::F32 | DType::I32 => gpu::copy_strided(&g.ctx, &g.buffer, t.layout()),
        DType::F16 | DType::BF16 => widen(&g.ctx, g.dtype, &g.buffer, g.len)
            .and_then(|wide| gpu::copy_strided(&g.ctx, &wide, t.layout()))
            .and_then(|picked| narrow(&g.ctx, g.dtype, &picked, t.numel())),
    };
    wrap(&g.ctx, ok(op, copied), g.dtype, t.shape())
}

/// The dense buffer of a GPU tensor (see [`dense`]).
#[track_caller]
fn dense_buffer(t: &Tensor, op: &str) -> GpuBuffer {
    dense(t, op).gpu_storage().expect("dense keeps the device").buffer.clone()
}

/// `numel` packed 16-bit elements of `dtype` → f32.
fn widen(ctx: &GpuContext, dtype: DType, x: &GpuBuffer, numel: usize) -> std::result::Result<GpuBuffer, GpuError> {
    match dtype {
        DType::F16 => gpu::f16_to_f32(ctx, x, numel),
        DType::BF16 => gpu::bf16_to_f32(ctx, x, numel),
        other => unreachable!("widen from {other}"),
    }
}

/// `numel` f32 → packed 16-bit elements of `dtype`.
fn narrow(ctx: &GpuContext, dtype: DType, x: &GpuBuffer, numel: usize) -> std::result::Result<GpuBuffer, GpuError> {
    match dtype {
        DType::F16 => gpu::f32_to_f16(ctx, x, numel),
        DType::BF16 => gpu::f32_to_bf16(ctx, x, numel),
        other => unreachable!("narrow to {other}"),
    }
}

/// Runs a kernel that moves 32-bit words on the dense data of `t` (any dtype): 16-bit
/// dtypes are widened before and narrowed after. `out_numel` is the kernel's output size.
#[track_caller]
fn on_words(
    t: &Tensor,
    op: &str,
    out_numel: usize,
    kernel: impl FnOnce(&GpuContext, &GpuBuffer) -> std::result::Result<GpuBuffer, GpuError>,
) -> GpuBuffer {
    let g = t.gpu_storage().expect("on_words of a GPU tensor");
    let x = dense_buffer(t, op);
    let result = match g.dtype {
        DType::F32 | DType::I32 => kernel(&g.ctx, &x),
        DType::F16 | DType::BF16 => widen(&g.ctx, g.dtype, &x, t.numel())
            .and_then(|wide| kernel(&g.ctx, &wide))
            .and_then(|out| narrow(&g.ctx, g.dtype, &out, out_numel)),
    };
    ok(op, result)
}

pub(crate) fn contiguous(t: &Tensor) -> Option<Tensor> {
    t.gpu_storage()?;
    Some(dense(t, "contiguous"))
}

/// Dtype conversion on the device: f32 ↔ f16/bf16 on the bits (exact as the host), and
/// i32 ↔ the float types through f32; to i32 fails, naming the first element that is not an
/// integer in range, like the host.
pub(crate) fn to_dtype(t: &Tensor, to: DType) -> Option<Result<Tensor>> {
    let g = t.gpu_storage()?;
    let (ctx, from, n) = (&g.ctx, g.dtype, t.numel());
    let x = dense_buffer(t, "to_dtype");
    let convert = || -> Result<GpuBuffer> {
        let wide = match from {
            DType::F32 => x.clone(),
            DType::F16 | DType::BF16 => widen(ctx, from, &x, n)?,
            DType::I32 => gpu::i32_to_f32(ctx, &x, n)?,
        };
        Ok(match to {
            DType::F32 => wide,
            DType::F16 | DType::BF16 => narrow(ctx, to, &wide, n)?,
            DType::I32 => gpu::f32_to_i32(ctx, &wide, n)?,
        })
    };
    Some(convert().map(|buffer| wrap(ctx, buffer, to, t.shape())))
}

#[track_caller]
pub(crate) fn unary(x: &Tensor, op: UnaryOp) -> Option<Tensor> {
    x.gpu_storage()?;
    let name = format!("{op:?}");
    let g = f32_of(x, &name);
    let out = ok(&name, gpu::unary(&g.ctx, op, &g.buffer, x.layout()));
    Some(wrap(&g.ctx, out, DType::F32, x.shape()))
}

/// `la` and `lb` are already broadcast to `shape`.
#[track_caller]
pub(crate) fn binary(a: &Tensor, la: &Layout, b: &Tensor, lb: &Layout, op: BinaryOp, shape: &Shape) -> Option<Tensor> {
    a.gpu_storage()?;
    let name = format!("{op:?}").to_lowercase();
    let (ga, gb) = (f32_of(a, &name), f32_of(b, &name));
    let out = ok(&name, gpu::binary(&ga.ctx, op, &ga.buffer, la, &gb.buffer, lb));
    Some(wrap(&ga.ctx, out, DType::F32, shape.clone()))
}

/// `where`: the three operands with their layouts broadcast to `shape`.
#[track_caller]
pub(crate) fn select(operands: [(&Tensor, Layout); 3], shape: &Shape) -> Option<Tensor> {
    operands[0].0.gpu_storage()?;
    let [c, t, f] = operands.each_ref().map(|(x, l)| (&f32_of(x, "where").buffer, l));
    let ctx = &f32_of(operands[0].0, "where").ctx;
    let out = ok("where", gpu::select_where(ctx, c, t, f));
    Some(wrap(ctx, out, DType::F32, shape.clone()))
}

/// A reduction of `x` viewed as `rdims` into `shape`; argmax gives i32 indices as the host.
#[track_caller]
pub(crate) fn reduce(x: &Tensor, op: ReduceOp, rdims: ReduceDims, shape: Vec<usize>) -> Option<Tensor> {
    x.gpu_storage()?;
    let name = format!("{op:?}").to_lowercase();
    let g = f32_of(x, &name);
    let src = dense_buffer(x, &name);
    let out = ok(&name, gpu::reduce(&g.ctx, op, &src, rdims));
    Some(match op {
        ReduceOp::ArgMax => {
            let numel = rdims.outer * rdims.inner;
            let ids = ok(&name, gpu::f32_to_i32_unchecked(&g.ctx, &out, numel));
            wrap(&g.ctx, ids, DType::I32, shape)
        }
        _ => wrap(&g.ctx, out, DType::F32, shape),
    })
}

/// The `k` largest along the last dim (`n`) of f32 `x` into outputs of `shape`, by the
/// bitonic kernels; never read back.
#[track_caller]
pub(crate) fn topk(x: &Tensor, n: usize, k: usize, shape: Vec<usize>) -> Option<TopK> {
    x.gpu_storage()?;
    let g = f32_of(x, "topk");
    let src = dense_buffer(x, "topk");
    let out = ok("topk", gpu::topk(&g.ctx, &src, x.numel() / n, n, k));
    Some(TopK {
        values: wrap(&g.ctx, out.values, DType::F32, shape.clone()),
        indices: wrap(&g.ctx, out.indices, DType::I32, shape),
    })
}

/// Softmax or log-softmax over the last dim of `x` (whose last dim is `c`).
#[track_caller]
pub(crate) fn softmax_rows(x: &Tensor, c: usize, log: bool, op: &str) -> Option<Tensor> {
    x.gpu_storage()?;
    let g = f32_of(x, op);
    let src = dense_buffer(x, op);
    let rows = x.numel().checked_div(c).unwrap_or(0);
    let out = if log { gpu::log_softmax(&g.ctx, &src, rows, c) } else { gpu::softmax(&g.ctx, &src, rows, c) };
    Some(wrap(&g.ctx, ok(op, out), DType::F32, x.shape()))
}

/// Layer norm over the last dim `c`; `stats_shape` is the shape of mean and rstd.
#[track_caller]
pub(crate) fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f32, c: usize) -> Option<LayerNormOutput> {
    x.gpu_storage()?;
    let op = "layer_norm";
    same_device(op, x, weight);
    same_device(op, x, bias);
    let g = f32_of(x, op);
    let (_, _) = (f32_of(weight, op), f32_of(bias, op));
    let [xb, wb, bb] = [x, weight, bias].map(|t| dense_buffer(t, op));
    let rows = x.numel().checked_div(c).unwrap_or(0);
    let o = ok(op, gpu::layer_norm(&g.ctx, &xb, &wb, &bb, rows, c, eps));
    let stats = &x.dims()[..x.rank().saturating_sub(1)];
    Some(LayerNormOutput {
        output: wrap(&g.ctx, o.y, DType::F32, x.shape()),
        mean: wrap(&g.ctx, o.mean, DType::F32, stats),
        rstd: wrap(&g.ctx, o.rstd, DType::F32, stats),
    })
}

/// Mean cross-entropy of `(…, V)` logits against i32 targets; targets are checked on the host
/// first (one read-back), so a bad target panics as on the CPU instead of reading garbage.
#[track_caller]
pub(crate) fn cross_entropy(logits: &Tensor, targets: &Tensor, v: usize, ignore_index: i32) -> Option<Tensor> {
    logits.gpu_storage()?;
    let op = "cross_entropy";
    same_device(op, logits, targets);
    let g = f32_of(logits, op);
    checked_targets(targets, v, ignore_index, op);
    let (lb, tb) = (dense_buffer(logits, op), dense_buffer(targets, op));
    let out = ok(op, gpu::cross_entropy(&g.ctx, &lb, &tb, targets.numel(), v, ignore_index));
    Some(wrap(&g.ctx, out, DType::F32, ()))
}

/// Targets read back and checked: each in `0..v` or `ignore_index`.
#[track_caller]
fn checked_targets(targets: &Tensor, v: usize, ignore_index: i32, op: &str) {
    check_i32(targets, op);
    for t in targets.to_vec_i32() {
        assert!(t == ignore_index || (t >= 0 && (t as usize) < v), "{op}: target {t} is out of range for {v} classes");
    }
}

#[track_caller]
fn check_i32(index: &Tensor, op: &str) {
    if index.dtype() != DType::I32 {
        panic!("{op}: expects an i32 index tensor, got {} of shape {:?}", index.dtype(), index.shape());
    }
}

/// Indices read back and checked against the dim size `d`, as the host kernels check them.
#[track_caller]
fn checked_indices(index: &Tensor, d: usize, op: &str) {
    check_i32(index, op);
    for i in index.to_vec_i32() {
        assert!(i >= 0 && (i as usize) < d, "{op}: index {i} is out of range for a dim of size {d}");
    }
}

/// `index_select` along dim `d` of any dtype.
#[track_caller]
pub(crate) fn index_select(x: &Tensor, d: usize, index: &Tensor) -> Option<Tensor> {
    x.gpu_storage()?;
    let op = "index_select";
    same_device(op, x, index);
    let dims = (x.dims()[..d].iter().product::<usize>(), x.dims()[d], x.dims()[d + 1..].iter().product::<usize>());
    checked_indices(index, dims.1, op);
    let k = index.numel();
    let idx = dense_buffer(index, op);
    let out = on_words(x, op, dims.0 * k * dims.2, |ctx, src| gpu::index_select(ctx, src, dims, &idx, k));
    let mut shape = x.dims().to_vec();
    shape[d] = k;
    Some(wrap(&x.gpu_storage()?.ctx, out, x.dtype(), shape))
}

/// `gather` along dim `d` of any dtype.
#[track_caller]
pub(crate) fn gather(x: &Tensor, d: usize, index: &Tensor) -> Option<Tensor> {
    x.gpu_storage()?;
    let op = "gather";
    same_device(op, x, index);
    checked_indices(index, x.dims()[d], op);
    let idx = dense_buffer(index, op);
    let out = on_words(x, op, index.numel(), |ctx, src| gpu::gather(ctx, src, x.dims(), d, &idx, index.dims()));
    Some(wrap(&x.gpu_storage()?.ctx, out, x.dtype(), index.shape().clone()))
}

/// `cat` of same-dtype parts viewed as `(outer, d_i, inner)` into `shape`.
#[track_caller]
pub(crate) fn cat(parts: &[&Tensor], outer: usize, inner: usize, dim: usize, shape: Vec<usize>) -> Option<Tensor> {
    let g = parts[0].gpu_storage()?;
    let (ctx, dtype) = (&g.ctx, g.dtype);
    let wide: Vec<(GpuBuffer, usize)> = parts
        .iter()
        .map(|t| {
            let x = dense_buffer(t, "cat");
            let x = match dtype {
                DType::F32 | DType::I32 => x,
                _ => ok("cat", widen(ctx, dtype, &x, t.numel())),
            };
            (x, t.dims()[dim])
        })
        .collect();
    let refs: Vec<(&GpuBuffer, usize)> = wide.iter().map(|(b, d)| (b, *d)).collect();
    let numel = shape.iter().product();
    let out = ok("cat", gpu::cat(ctx, &refs, outer, inner));
    let out = match dtype {
        DType::F32 | DType::I32 => out,
        _ => ok("cat", narrow(ctx, dtype, &out, numel)),
    };
    Some(wrap(ctx, out, dtype, shape))
}

/// Batched `C = A · B` with `la`, `lb` already broadcast to `batch + (m, k)` and
/// `batch + (k, n)`. f16 operands use the f16-storage kernel (f32 accumulation) when the
/// adapter has SHADER_F16; otherwise operands must be f32, as on the host.
#[track_caller]
pub(crate) fn matmul(a: &Tensor, la: &Layout, b: &Tensor, lb: &Layout, mnk: (usize, usize, usize)) -> Option<Tensor> {
    let ga = a.gpu_storage()?;
    let (m, n, k) = mnk;
    let rank = la.dims().len();
    let batch = &la.dims()[..rank - 2];
    let out_shape = [batch, &[m, n]].concat();
    let count: usize = batch.iter().product();
    let f16 = a.dtype() == DType::F16 && b.dtype() == DType::F16 && ga.ctx.has_f16();
    let gb = if f16 { b.gpu_storage().expect("same device") } else { f32_of(b, "matmul") };
    if !f16 {
        f32_of(a, "matmul");
    }
    if k == 0 || m * n * count == 0 {
        return Some(Tensor::zeros(out_shape, &a.device()));
    }
    let args = MatmulArgs {
        m,
        n,
        k,
        a_strides: (la.strides()[rank - 2], la.strides()[rank - 1]),
        b_strides: (lb.strides()[rank - 2], lb.strides()[rank - 1]),
        batch_offsets: (0..count).map(|i| (batch_offset(la, batch, i), batch_offset(lb, batch, i))).collect(),
    };
    let out = if f16 {
        gpu::matmul_f16(&ga.ctx, &ga.buffer, &gb.buffer, &args)
    } else {
        gpu::matmul(&ga.ctx, &ga.buffer, &gb.buffer, &args)
    };
    Some(wrap(&ga.ctx, ok("matmul", out), DType::F32, out_shape))
}

/// The element offset of batch `i` (row-major over `batch`) in `layout`.
fn batch_offset(layout: &Layout, batch: &[usize], mut i: usize) -> usize {
    let mut offset = layout.offset();
    for d in (0..batch.len()).rev() {
        offset += (i % batch[d]) * layout.strides()[d];
        i /= batch[d];
    }
    offset
}
