//! The GPU half of the backward ops and the fused AdamW step (see the parent module): each
//! returns `None` for host tensors, else runs the kernel of [`crate::gpu`] on dense buffers.

use super::{checked_indices, dense_buffer, f32_of, ok, same_device, wrap};
use crate::cpu::optim::AdamWScalars;
use crate::gpu;
use crate::{DType, Tensor};

/// Softmax or log-softmax backward over the last dim `c`, from the forward output `y`.
#[track_caller]
pub(crate) fn softmax_rows_backward(y: &Tensor, dy: &Tensor, c: usize, log: bool, op: &str) -> Option<Tensor> {
    y.gpu_storage()?;
    same_device(op, y, dy);
    let g = f32_of(y, op);
    f32_of(dy, op);
    let (yb, db) = (dense_buffer(y, op), dense_buffer(dy, op));
    let rows = y.numel().checked_div(c).unwrap_or(0);
    let dx = if log {
        gpu::log_softmax_backward(&g.ctx, &yb, &db, rows, c)
    } else {
        gpu::softmax_backward(&g.ctx, &yb, &db, rows, c)
    };
    Some(wrap(&g.ctx, ok(op, dx), DType::F32, y.shape().clone()))
}

/// `(dx, dweight, dbias)` of layer norm over the last dim `c`.
#[track_caller]
pub(crate) fn layer_norm_backward(
    x: &Tensor,
    dy: &Tensor,
    weight: &Tensor,
    mean: &Tensor,
    rstd: &Tensor,
    c: usize,
) -> Option<(Tensor, Tensor, Tensor)> {
    x.gpu_storage()?;
    let op = "layer_norm_backward";
    let inputs = [x, dy, weight, mean, rstd];
    for t in inputs {
        same_device(op, x, t);
        f32_of(t, op);
    }
    let [xb, db, wb, mb, rb] = inputs.map(|t| dense_buffer(t, op));
    let ctx = &f32_of(x, op).ctx;
    let rows = x.numel().checked_div(c).unwrap_or(0);
    let g = ok(op, gpu::layer_norm_backward(ctx, &db, &xb, &wb, &mb, &rb, rows, c));
    Some((
        wrap(ctx, g.dx, DType::F32, x.shape().clone()),
        wrap(ctx, g.dweight, DType::F32, c),
        wrap(ctx, g.dbias, DType::F32, c),
    ))
}

/// The exact or tanh GELU's backward: `dy · gelu'(x)`.
#[track_caller]
pub(crate) fn gelu_backward(x: &Tensor, dy: &Tensor, tanh: bool, op: &str) -> Option<Tensor> {
    x.gpu_storage()?;
    same_device(op, x, dy);
    let g = f32_of(x, op);
    f32_of(dy, op);
    let (xb, db) = (dense_buffer(x, op), dense_buffer(dy, op));
    let n = x.numel();
    let dx = if tanh { gpu::gelu_tanh_backward(&g.ctx, &xb, &db, n) } else { gpu::gelu_backward(&g.ctx, &xb, &db, n) };
    Some(wrap(&g.ctx, ok(op, dx), DType::F32, x.shape().clone()))
}

/// `dlogits = dloss / kept · (softmax(logits) - onehot(target))`, zero on ignored rows; the
/// kept-row count and `dloss` stay on the device. Targets are checked as in the forward.
#[track_caller]
pub(crate) fn cross_entropy_backward(
    logits: &Tensor,
    targets: &Tensor,
    ignore_index: i32,
    dloss: &Tensor,
) -> Option<Tensor> {
    logits.gpu_storage()?;
    let op = "cross_entropy_backward";
    same_device(op, logits, targets);
    same_device(op, logits, dloss);
    let g = f32_of(logits, op);
    f32_of(dloss, op);
    let v = logits.dim(-1);
    super::checked_targets(targets, v, ignore_index, op);
    let [lb, tb, db] = [logits, targets, dloss].map(|t| dense_buffer(t, op));
    let dx = gpu::cross_entropy_backward(&g.ctx, &lb, &tb, &db, targets.numel(), v, ignore_index);
    Some(wrap(&g.ctx, ok(op, dx), DType::F32, logits.shape().clone()))
}

/// `x` with `source`'s slices added at `index` along dim `d` (1-D index).
#[track_caller]
pub(crate) fn index_add(x: &Tensor, d: usize, index: &Tensor, source: &Tensor) -> Option<Tensor> {
    x.gpu_storage()?;
    let op = "index_add";
    same_device(op, x, index);
    same_device(op, x, source);
    let g = f32_of(x, op);
    f32_of(source, op);
    let dims = (x.dims()[..d].iter().product(), x.dims()[d], x.dims()[d + 1..].iter().product());
    checked_indices(index, dims.1, op);
    let [xb, ib, sb] = [x, index, source].map(|t| dense_buffer(t, op));
    let out = gpu::index_add(&g.ctx, &xb, dims, &ib, index.numel(), &sb);
    Some(wrap(&g.ctx, ok(op, out), DType::F32, x.shape().clone()))
}

/// `x` with `source[p]` added at `p` with coordinate `d` replaced by `index[p]`.
#[track_caller]
pub(crate) fn scatter_add(x: &Tensor, d: usize, index: &Tensor, source: &Tensor) -> Option<Tensor> {
    x.gpu_storage()?;
    let op = "scatter_add";
    same_device(op, x, index);
    same_device(op, x, source);
    let g = f32_of(x, op);
    f32_of(source, op);
    checked_indices(index, x.dims()[d], op);
    let [xb, ib, sb] = [x, index, source].map(|t| dense_buffer(t, op));
    let out = gpu::scatter_add(&g.ctx, &xb, x.dims(), d, &ib, index.dims(), &sb);
    Some(wrap(&g.ctx, ok(op, out), DType::F32, x.shape().clone()))
}

/// One fused AdamW step: new `(p, m, v)`.
#[track_caller]
pub(crate) fn adamw(
    p: &Tensor,
    grad: &Tensor,
    m: &Tensor,
    v: &Tensor,
    s: AdamWScalars,
) -> Option<(Tensor, Tensor, Tensor)> {
    p.gpu_storage()?;
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
    Some((
        wrap(ctx, out.p, DType::F32, shape.clone()),
        wrap(ctx, out.m, DType::F32, shape.clone()),
        wrap(ctx, out.v, DType::F32, shape.clone()),
    ))
}
