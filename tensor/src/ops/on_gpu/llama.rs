//! The GPU arm of the Llama family's ops, each forward above its backward: RMSNorm, rotary
//! embedding and SwiGLU. Operands are made dense on the device; nothing falls back to the CPU.

use super::{dense_buffer, f32_of, ok, same_device, wrap};
use crate::gpu;
use crate::ops::RmsNormOutput;
use crate::{DType, Tensor};

/// RMSNorm over the last dim `c`; rstd has the shape `x.shape[..-1]`.
#[track_caller]
pub(crate) fn rms_norm(x: &Tensor, weight: &Tensor, eps: f32, c: usize) -> RmsNormOutput {
    let op = "rms_norm";
    same_device(op, x, weight);
    let g = f32_of(x, op);
    f32_of(weight, op);
    let (xb, wb) = (dense_buffer(x, op), dense_buffer(weight, op));
    let rows = x.numel().checked_div(c).unwrap_or(0);
    let o = ok(op, gpu::rms_norm(&g.ctx, &xb, &wb, rows, c, eps));
    let stats = &x.dims()[..x.rank().saturating_sub(1)];
    RmsNormOutput { output: wrap(&g.ctx, o.y, DType::F32, x.shape()), rstd: wrap(&g.ctx, o.rstd, DType::F32, stats) }
}

/// `(dx, dweight)` of RMSNorm over the last dim `c`.
#[track_caller]
pub(crate) fn rms_norm_backward(
    x: &Tensor,
    dout: &Tensor,
    weight: &Tensor,
    rstd: &Tensor,
    c: usize,
) -> (Tensor, Tensor) {
    let op = "rms_norm_backward";
    let inputs = [x, dout, weight, rstd];
    for t in inputs {
        same_device(op, x, t);
        f32_of(t, op);
    }
    let [xb, db, wb, rb] = inputs.map(|t| dense_buffer(t, op));
    let ctx = &f32_of(x, op).ctx;
    let rows = x.numel().checked_div(c).unwrap_or(0);
    let g = ok(op, gpu::rms_norm_backward(ctx, &db, &xb, &wb, &rb, (rows, c)));
    (wrap(ctx, g.dx, DType::F32, x.shape().clone()), wrap(ctx, g.dweight, DType::F32, c))
}

/// Rotation of `x` `(B, T, NH, HS)` by `sign · θ` with contiguous `(B, T, HS/2)` tables.
#[track_caller]
pub(crate) fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor, sign: f32, op: &str) -> Tensor {
    let inputs = [x, cos, sin];
    for t in inputs {
        same_device(op, x, t);
        f32_of(t, op);
    }
    let [xb, cb, sb] = inputs.map(|t| dense_buffer(t, op));
    let ctx = &f32_of(x, op).ctx;
    let d = x.dims();
    let out = ok(op, gpu::rope(ctx, &xb, &cb, &sb, (d[0] * d[1], d[2], d[3]), sign));
    wrap(ctx, out, DType::F32, x.shape().clone())
}

/// `silu(gate) · up`, both of one shape.
#[track_caller]
pub(crate) fn swiglu(gate: &Tensor, up: &Tensor) -> Tensor {
    let op = "swiglu";
    same_device(op, gate, up);
    let g = f32_of(gate, op);
    f32_of(up, op);
    let (gb, ub) = (dense_buffer(gate, op), dense_buffer(up, op));
    let y = ok(op, gpu::swiglu(&g.ctx, &gb, &ub, gate.numel()));
    wrap(&g.ctx, y, DType::F32, gate.shape().clone())
}

/// `(dgate, dup)` of SwiGLU.
#[track_caller]
pub(crate) fn swiglu_backward(gate: &Tensor, up: &Tensor, dout: &Tensor) -> (Tensor, Tensor) {
    let op = "swiglu_backward";
    let inputs = [gate, up, dout];
    for t in inputs {
        same_device(op, gate, t);
        f32_of(t, op);
    }
    let [gb, ub, db] = inputs.map(|t| dense_buffer(t, op));
    let ctx = &f32_of(gate, op).ctx;
    let (dgate, dup) = ok(op, gpu::swiglu_backward(ctx, &gb, &ub, &db, gate.numel()));
    (wrap(ctx, dgate, DType::F32, gate.shape().clone()), wrap(ctx, dup, DType::F32, gate.shape().clone()))
}
