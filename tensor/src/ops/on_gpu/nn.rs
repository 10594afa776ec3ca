//! The GPU arm of the nn ops, each forward above its backward: softmax and log-softmax, layer
//! norm, and cross-entropy (whose targets are read back and checked first).

use super::index::check_i32;
use super::{dense_buffer, f32_of, ok, same_device, wrap};
use crate::gpu;
use crate::ops::LayerNormOutput;
use crate::{DType, Tensor};

/// Softmax or log-softmax over the last dim of `x` (whose last dim is `c`).
#[track_caller]
pub(crate) fn softmax_rows(x: &Tensor, c: usize, log: bool, op: &str) -> Tensor {
    let g = f32_of(x, op);
    let src = dense_buffer(x, op);
    let rows = x.numel().checked_div(c).unwrap_or(0);
    let out = if log { gpu::log_softmax(&g.ctx, &src, rows, c) } else { gpu::softmax(&g.ctx, &src, rows, c) };
    wrap(&g.ctx, ok(op, out), DType::F32, x.shape())
}

/// Softmax or log-softmax backward over the last dim `c`, from the forward output `y`.
#[track_caller]
pub(crate) fn softmax_rows_backward(y: &Tensor, dy: &Tensor, c: usize, log: bool, op: &str) -> Tensor {
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
    wrap(&g.ctx, ok(op, dx), DType::F32, y.shape().clone())
}

/// Layer norm over the last dim `c`; `stats_shape` is the shape of mean and rstd.
#[track_caller]
pub(crate) fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f32, c: usize) -> LayerNormOutput {
    let op = "layer_norm";
    same_device(op, x, weight);
    same_device(op, x, bias);
    let g = f32_of(x, op);
    let (_, _) = (f32_of(weight, op), f32_of(bias, op));
    let [xb, wb, bb] = [x, weight, bias].map(|t| dense_buffer(t, op));
    let rows = x.numel().checked_div(c).unwrap_or(0);
    let o = ok(op, gpu::layer_norm(&g.ctx, &xb, &wb, &bb, rows, c, eps));
    let stats = &x.dims()[..x.rank().saturating_sub(1)];
    LayerNormOutput {
        output: wrap(&g.ctx, o.y, DType::F32, x.shape()),
        mean: wrap(&g.ctx, o.mean, DType::F32, stats),
        rstd: wrap(&g.ctx, o.rstd, DType::F32, stats),
    }
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
) -> (Tensor, Tensor, Tensor) {
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
    (
        wrap(ctx, g.dx, DType::F32, x.shape().clone()),
        wrap(ctx, g.dweight, DType::F32, c),
        wrap(ctx, g.dbias, DType::F32, c),
    )
}

/// Mean cross-entropy of `(…, V)` logits against i32 targets; targets are checked on the host
/// first (one read-back), so a bad target panics as on the CPU instead of reading garbage.
#[track_caller]
pub(crate) fn cross_entropy(logits: &Tensor, targets: &Tensor, v: usize, ignore_index: i32) -> Tensor {
    let op = "cross_entropy";
    same_device(op, logits, targets);
    let g = f32_of(logits, op);
    checked_targets(targets, v, ignore_index, op);
    let (lb, tb) = (dense_buffer(logits, op), dense_buffer(targets, op));
    let out = ok(op, gpu::cross_entropy(&g.ctx, &lb, &tb, targets.numel(), v, ignore_index));
    wrap(&g.ctx, out, DType::F32, ())
}

/// `dlogits = dloss / kept · (softmax(logits) - onehot(target))`, zero on ignored rows; the
/// kept-row count and `dloss` stay on the device. Targets are checked as in the forward.
#[track_caller]
pub(crate) fn cross_entropy_backward(logits: &Tensor, targets: &Tensor, ignore_index: i32, dloss: &Tensor) -> Tensor {
    let op = "cross_entropy_backward";
    same_device(op, logits, targets);
    same_device(op, logits, dloss);
    let g = f32_of(logits, op);
    f32_of(dloss, op);
    let v = logits.dim(-1);
    checked_targets(targets, v, ignore_index, op);
    let [lb, tb, db] = [logits, targets, dloss].map(|t| dense_buffer(t, op));
    let dx = gpu::cross_entropy_backward(&g.ctx, &lb, &tb, &db, targets.numel(), v, ignore_index);
    wrap(&g.ctx, ok(op, dx), DType::F32, logits.shape().clone())
}

/// Targets read back and checked: each in `0..v` or `ignore_index`.
#[track_caller]
fn checked_targets(targets: &Tensor, v: usize, ignore_index: i32, op: &str) {
    check_i32(targets, op);
    for t in targets.to_vec_i32() {
        assert!(t == ignore_index || (t >= 0 && (t as usize) < v), "{op}: target {t} is out of range for {v} classes");
    }
}
