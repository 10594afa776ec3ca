//! The GPU arm of the index ops, each gather beside its scatter-add: `index_select` and
//! `index_add`, `gather` and `scatter_add`, and `cat`. Indices are read back and checked
//! against the dim first, as the host kernels check them.

use super::{dense_buffer, f32_of, narrow, ok, on_words, same_device, widen, wrap};
use crate::gpu::{self, GpuBuffer};
use crate::ops::index::around;
use crate::storage::GpuStorage;
use crate::{DType, Tensor};

/// `index_select` along dim `d` of any dtype.
#[track_caller]
pub(crate) fn index_select(x: &Tensor, d: usize, index: &Tensor) -> Tensor {
    let op = "index_select";
    same_device(op, x, index);
    if x.dtype().quant_type().is_some() {
        return super::quant::index_select(x, d, index);
    }
    let dims = around(x.dims(), d);
    checked_indices(index, dims.1, op);
    let k = index.numel();
    let idx = dense_buffer(index, op);
    let out = on_words(x, op, dims.0 * k * dims.2, |ctx, src| gpu::index_select(ctx, src, dims, &idx, k));
    let mut shape = x.dims().to_vec();
    shape[d] = k;
    wrap(&x.gpu_storage().expect("a GPU tensor").ctx, out, x.dtype(), shape)
}

/// Rows `index` (1-D) of a bf16 / f16 `(V, C)` table with C even, as f32 `(k, C)`: rows are
/// selected as 32-bit words (two elements each, so a row is C/2 words), then only the k
/// selected rows are widened, never the whole V × C table.
#[track_caller]
pub(crate) fn embedding_rows_16(table: &Tensor, index: &Tensor) -> Tensor {
    let op = "embedding";
    same_device(op, table, index);
    let (v, c) = (table.dim(0), table.dim(1));
    checked_indices(index, v, op);
    let g = table.gpu_storage().expect("a GPU tensor");
    let k = index.numel();
    let (words, idx) = (dense_buffer(table, op), dense_buffer(index, op));
    let rows = gpu::index_select(&g.ctx, &words, (1, v, c / 2), &idx, k);
    let wide = rows.and_then(|rows| widen(&g.ctx, g.dtype, &rows, k * c));
    wrap(&g.ctx, ok(op, wide), DType::F32, (k, c))
}

/// `x` with `source`'s slices added at `index` along dim `d` (1-D index).
#[track_caller]
pub(crate) fn index_add(x: &Tensor, d: usize, index: &Tensor, source: &Tensor) -> Tensor {
    let op = "index_add";
    let dims = around(x.dims(), d);
    let (g, [xb, ib, sb]) = scatter_operands(x, index, source, dims.1, op);
    let out = gpu::index_add(&g.ctx, &xb, dims, &ib, index.numel(), &sb);
    wrap(&g.ctx, ok(op, out), DType::F32, x.shape().clone())
}

/// `gather` along dim `d` of any dtype.
#[track_caller]
pub(crate) fn gather(x: &Tensor, d: usize, index: &Tensor) -> Tensor {
    let op = "gather";
    same_device(op, x, index);
    checked_indices(index, x.dims()[d], op);
    let idx = dense_buffer(index, op);
    let out = on_words(x, op, index.numel(), |ctx, src| gpu::gather(ctx, src, x.dims(), d, &idx, index.dims()));
    wrap(&x.gpu_storage().expect("a GPU tensor").ctx, out, x.dtype(), index.shape().clone())
}

/// `x` with `source[p]` added at `p` with coordinate `d` replaced by `index[p]`.
#[track_caller]
pub(crate) fn scatter_add(x: &Tensor, d: usize, index: &Tensor, source: &Tensor) -> Tensor {
    let op = "scatter_add";
    let (g, [xb, ib, sb]) = scatter_operands(x, index, source, x.dims()[d], op);
    let out = gpu::scatter_add(&g.ctx, &xb, x.dims(), d, &ib, index.dims(), &sb);
    wrap(&g.ctx, ok(op, out), DType::F32, x.shape().clone())
}

/// The checked operands of a scatter-add: f32 `x` and `source` and an i32 `index` into a dim
/// of size `d`, all on `x`'s device; returns `x`'s storage and the three dense buffers.
#[track_caller]
fn scatter_operands<'a>(
    x: &'a Tensor,
    index: &Tensor,
    source: &Tensor,
    d: usize,
    op: &str,
) -> (&'a GpuStorage, [GpuBuffer; 3]) {
    same_device(op, x, index);
    same_device(op, x, source);
    let g = f32_of(x, op);
    f32_of(source, op);
    checked_indices(index, d, op);
    (g, [x, index, source].map(|t| dense_buffer(t, op)))
}

/// `cat` of same-dtype parts viewed as `(outer, d_i, inner)` into `shape`.
#[track_caller]
pub(crate) fn cat(parts: &[&Tensor], outer: usize, inner: usize, dim: usize, shape: Vec<usize>) -> Tensor {
    let g = parts[0].gpu_storage().expect("cat of GPU tensors");
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
    wrap(ctx, out, dtype, shape)
}

#[track_caller]
pub(super) fn check_i32(index: &Tensor, op: &str) {
    if index.dtype() != DType::I32 {
        panic!("{op}: expects an i32 index tensor, got {} of shape {:?}", index.dtype(), index.shape());
    }
}

/// Indices read back and checked against the dim size `d`, as the host kernels check them.
#[track_caller]
pub(super) fn checked_indices(index: &Tensor, d: usize, op: &str) {
    check_i32(index, op);
    for i in index.to_vec_i32() {
        assert!(i >= 0 && (i as usize) < d, "{op}: index {i} is out of range for a dim of size {d}");
    }
}
