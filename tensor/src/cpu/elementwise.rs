//! Elementwise kernels over strided, broadcast operands: unary maps, binary ops with NumPy
//! broadcasting, and the ternary select behind `where_`; beside `unary`, the backward of its
//! GELUs (`dx = dy · gelu'(x)`).
//!
//! Each op is a closure passed to a generic loop, so the compiler emits one tight loop per op;
//! when the inner strides are 1 (or 0 for a broadcast scalar) the loop runs over slices and
//! vectorises.

use super::math;
use super::pool;
use super::simd::vectorized;
use super::strided::StridedPlan;
use crate::kinds::{BinaryOp, UnaryOp};
use crate::layout::Layout;
use rayon::prelude::*;

/// The function `$f` (f32 → f32) as a closure forced inline. Passed as a fn item, an
/// elementwise function was called through an outlined `Fn::call` shim compiled at baseline
/// width, not inlined into the vectorised loop: GELU ran 5× slower.
macro_rules! inlined {
    ($f:path) => {
        #[allow(clippy::redundant_closure)]
        #[inline(always)]
        |x: f32| $f(x)
    };
}

/// Applies `op` to every element of the view `layout` over `src`; returns row-major output.
pub fn unary(op: UnaryOp, src: &[f32], layout: &Layout) -> Vec<f32> {
    match op {
        UnaryOp::Neg => map(src, layout, |x| -x),
        UnaryOp::Abs => map(src, layout, f32::abs),
        UnaryOp::Exp => map(src, layout, f32::exp),
        UnaryOp::Log => map(src, layout, f32::ln),
        UnaryOp::Sqrt => map(src, layout, f32::sqrt),
        UnaryOp::Rsqrt => map(src, layout, |x| 1.0 / x.sqrt()),
        UnaryOp::Tanh => map(src, layout, f32::tanh),
        UnaryOp::Sigmoid => map(src, layout, math::sigmoid),
        UnaryOp::Relu => map(src, layout, |x| if x > 0.0 { x } else { 0.0 }),
        UnaryOp::Silu => map(src, layout, |x| x * math::sigmoid(x)),
        UnaryOp::Gelu => map(src, layout, inlined!(math::gelu_erf)),
        UnaryOp::GeluTanh => map(src, layout, inlined!(math::gelu_tanh)),
        UnaryOp::Powf(2.0) => map(src, layout, |x| x * x),
        UnaryOp::Powf(e) => map(src, layout, |x| x.powf(e)),
        UnaryOp::AddScalar(s) => map(src, layout, |x| x + s),
        UnaryOp::MulScalar(s) => map(src, layout, |x| x * s),
        UnaryOp::DivScalar(s) => map(src, layout, |x| x / s),
        UnaryOp::ScalarDiv(s) => map(src, layout, |x| s / x),
    }
}

fn map<F: Fn(f32) -> f32 + Sync>(src: &[f32], layout: &Layout, f: F) -> Vec<f32> {
    let mut out = pool::take(layout.shape().numel());
    let plan = StridedPlan::<1>::new(layout.dims(), [(layout.strides(), layout.offset())]);
    plan.for_each_segment(&mut out, |dst, [o], [s]| {
        if s == 1 {
            let n = dst.len();
            // Forced inline: with a large `f` (GELU's erfc) LLVM otherwise compiled this
            // closure as a function of its own, at baseline width, outside the AVX2 wrapper.
            vectorized(
                #[inline(always)]
                || apply(dst, &src[o..o + n], &f),
            );
        } else {
            for (j, d) in dst.iter_mut().enumerate() {
                *d = f(src[o + j * s]);
            }
        }
    });
    out
}

/// Elements per rayon task for the in-place updates below (memory-bound: large enough that
/// scheduling is noise, small enough that both cores share a 1 M-float tensor).
const IN_PLACE_BLOCK: usize = 64 * 1024;

/// `xs[i] ← f(xs[i], ys[i])` in place, in parallel blocks; `ys` has `xs`' length.
pub fn zip_in_place<F: Fn(f32, f32) -> f32 + Sync>(xs: &mut [f32], ys: &[f32], f: F) {
    debug_assert_eq!(xs.len(), ys.len());
    xs.par_chunks_mut(IN_PLACE_BLOCK).zip(ys.par_chunks(IN_PLACE_BLOCK)).for_each(|(x, y)| {
        vectorized(
            #[inline(always)]
            || x.iter_mut().zip(y).for_each(|(a, &b)| *a = f(*a, b)),
        )
    });
}

/// `xs[i] ← xs[i]·k` in place, in parallel blocks.
pub fn scale_in_place(xs: &mut [f32], k: f32) {
    xs.par_chunks_mut(IN_PLACE_BLOCK).for_each(|x| {
        vectorized(
            #[inline(always)]
            || x.iter_mut().for_each(|a| *a *= k),
        )
    });
}

/// `dst[i] = f(src[i])`, forced inline so that the loop lands inside [`vectorized`]'s
/// wide-register function instead of being compiled on its own at baseline width.
#[inline(always)]
fn apply<F: Fn(f32) -> f32>(dst: &mut [f32], src: &[f32], f: &F) {
    for (d, &x) in dst.iter_mut().zip(src) {
        *d = f(x);
    }
}

/// Exact-GELU backward: `dx = dy · gelu'(x)` with [`math::gelu_erf_grad`].
pub fn gelu_backward(x: &[f32], dy: &[f32]) -> Vec<f32> {
    pointwise_backward(x, dy, inlined!(math::gelu_erf_grad))
}

/// Tanh-GELU backward: `dx = dy · gelu'(x)` with [`math::gelu_tanh_grad`].
pub fn gelu_tanh_backward(x: &[f32], dy: &[f32]) -> Vec<f32> {
    pointwise_backward(x, dy, inlined!(math::gelu_tanh_grad))
}

/// `dx = dy · f'(x)` elementwise, in parallel blocks whose inner loop is plain slice code the
/// compiler can vectorise (`f'` must be branch-free for that).
fn pointwise_backward(x: &[f32], dy: &[f32], derivative: impl Fn(f32) -> f32 + Sync) -> Vec<f32> {
    const BLOCK: usize = 8192;
    // Every element is written below, so a recycled buffer will do (no fresh pages to fault in).
    let mut dx = pool::take(x.len());
    dx.par_chunks_mut(BLOCK).zip(x.par_chunks(BLOCK).zip(dy.par_chunks(BLOCK))).for_each(|(d, (xs, gs))| {
        vectorized(|| {
            for ((o, &v), &g) in d.iter_mut().zip(xs).zip(gs) {
                *o = g * derivative(v);
            }
        })
    });
    dx
}

/// `op(a, b)` elementwise, with `la` and `lb` already broadcast to the output shape.
pub fn binary(op: BinaryOp, a: &[f32], la: &Layout, b: &[f32], lb: &Layout) -> Vec<f32> {
    let bool_f32 = |c: bool| if c { 1.0 } else { 0.0 };
    match op {
        BinaryOp::Add => zip(a, la, b, lb, |x, y| x + y),
        BinaryOp::Sub => zip(a, la, b, lb, |x, y| x - y),
        BinaryOp::Mul => zip(a, la, b, lb, |x, y| x * y),
        BinaryOp::Div => zip(a, la, b, lb, |x, y| x / y),
        BinaryOp::Maximum => zip(a, la, b, lb, |x, y| if x >= y || x.is_nan() { x } else { y }),
        BinaryOp::Minimum => zip(a, la, b, lb, |x, y| if x <= y || x.is_nan() { x } else { y }),
        BinaryOp::Eq => zip(a, la, b, lb, |x, y| bool_f32(x == y)),
        BinaryOp::Ne => zip(a, la, b, lb, |x, y| bool_f32(x != y)),
        BinaryOp::Lt => zip(a, la, b, lb, |x, y| bool_f32(x < y)),
        BinaryOp::Le => zip(a, la, b, lb, |x, y| bool_f32(x <= y)),
        BinaryOp::Gt => zip(a, la, b, lb, |x, y| bool_f32(x > y)),
        BinaryOp::Ge => zip(a, la, b, lb, |x, y| bool_f32(x >= y)),
    }
}

fn zip<F: Fn(f32, f32) -> f32 + Sync>(a: &[f32], la: &Layout, b: &[f32], lb: &Layout, f: F) -> Vec<f32> {
    let mut out = pool::take(la.shape().numel());
    let plan = StridedPlan::<2>::new(la.dims(), [(la.strides(), la.offset()), (lb.strides(), lb.offset())]);
    plan.for_each_segment(&mut out, |dst, [oa, ob], strides| {
        let n = dst.len();
        match strides {
            [1, 1] => vectorized(|| {
                for ((d, &x), &y) in dst.iter_mut().zip(&a[oa..oa + n]).zip(&b[ob..ob + n]) {
                    *d = f(x, y);
                }
            }),
            [1, 0] => vectorized(|| {
                let y = b[ob];
                dst.iter_mut().zip(&a[oa..oa + n]).for_each(|(d, &x)| *d = f(x, y));
            }),
            [0, 1] => vectorized(|| {
                let x = a[oa];
                dst.iter_mut().zip(&b[ob..ob + n]).for_each(|(d, &y)| *d = f(x, y));
            }),
            [sa, sb] => {
                for (j, d) in dst.iter_mut().enumerate() {
                    *d = f(a[oa + j * sa], b[ob + j * sb]);
                }
            }
        }
    });
    out
}

/// `cond != 0 ? on_true : on_false` elementwise; all three layouts broadcast to the output.
pub fn select(cond: (&[f32], &Layout), on_true: (&[f32], &Layout), on_false: (&[f32], &Layout)) -> Vec<f32> {
    let (c, lc) = cond;
    let (t, lt) = on_true;
    let (f, lf) = on_false;
    let mut out = pool::take(lc.shape().numel());
    let operands = [(lc.strides(), lc.offset()), (lt.strides(), lt.offset()), (lf.strides(), lf.offset())];
    let plan = StridedPlan::<3>::new(lc.dims(), operands);
    plan.for_each_segment(&mut out, |dst, [oc, ot, of], [sc, st, sf]| {
        for (j, d) in dst.iter_mut().enumerate() {
            *d = if c[oc + j * sc] != 0.0 { t[ot + j * st] } else { f[of + j * sf] };
        }
    });
    out
}
