//! The GPU arm of the elementwise ops: unary maps, broadcast binary ops, `where`, and the GELUs'
//! backward beside the unary kernel that computes their forward.

use super::{dense_buffer, f32_of, ok, same_device, wrap};
use crate::gpu;
use crate::kinds::{BinaryOp, UnaryOp};
use crate::layout::Layout;
use crate::shape::Shape;
use crate::{DType, Tensor};

#[track_caller]
pub(crate) fn unary(x: &Tensor, op: UnaryOp) -> Tensor {
    let name = format!("{op:?}");
    let g = f32_of(x, &name);
    let out = ok(&name, gpu::unary(&g.ctx, op, &g.buffer, x.layout()));
    wrap(&g.ctx, out, DType::F32, x.shape())
}

/// The exact or tanh GELU's backward: `dy · gelu'(x)`.
#[track_caller]
pub(crate) fn gelu_backward(x: &Tensor, dy: &Tensor, tanh: bool, op: &str) -> Tensor {
    same_device(op, x, dy);
    let g = f32_of(x, op);
    f32_of(dy, op);
    let (xb, db) = (dense_buffer(x, op), dense_buffer(dy, op));
    let n = x.numel();
    let dx = if tanh { gpu::gelu_tanh_backward(&g.ctx, &xb, &db, n) } else { gpu::gelu_backward(&g.ctx, &xb, &db, n) };
    wrap(&g.ctx, ok(op, dx), DType::F32, x.shape().clone())
}

/// `la` and `lb` are already broadcast to `shape`.
#[track_caller]
pub(crate) fn binary(a: &Tensor, la: &Layout, b: &Tensor, lb: &Layout, op: BinaryOp, shape: &Shape) -> Tensor {
    let name = format!("{op:?}").to_lowercase();
    let (ga, gb) = (f32_of(a, &name), f32_of(b, &name));
    let out = ok(&name, gpu::binary(&ga.ctx, op, &ga.buffer, la, &gb.buffer, lb));
    wrap(&ga.ctx, out, DType::F32, shape.clone())
}

/// `where`: the three operands with their layouts broadcast to `shape`.
#[track_caller]
pub(crate) fn select(operands: [(&Tensor, Layout); 3], shape: &Shape) -> Tensor {
    let [c, t, f] = operands.each_ref().map(|(x, l)| (&f32_of(x, "where").buffer, l));
    let ctx = &f32_of(operands[0].0, "where").ctx;
    let out = ok("where", gpu::select_where(ctx, c, t, f));
    wrap(ctx, out, DType::F32, shape.clone())
}
