//! The GPU arm of the ops a block-quantized weight takes part in (`quant.wgsl`): copies of
//! whole blocks (`contiguous`, `index_select` of rows, so embeddings), dequantizing
//! (`to_dtype`), and the products `x @ Wᵀ` (blocks read in place) and `dy @ W` (W dequantized
//! on the device, then the f32 GEMM). Any other op refuses a quantized tensor by name.

use super::index::checked_indices;
use super::{dense_buffer, f32_of, ok, wrap};
use crate::gpu::{self, GpuBuffer, GpuError, QuantRows};
use crate::layout::Layout;
use crate::ops::index::around;
use crate::ops::quant::{orientation, Orientation};
use crate::quant::QuantType;
use crate::storage::GpuStorage;
use crate::{DType, Tensor};

/// The message of every op that has no quantized kernel: blocks are not elements.
#[track_caller]
pub(crate) fn refuse(op: &str, t: &Tensor) -> ! {
    panic!(
        "{op}: a {} tensor of shape {:?} on the GPU stores blocks, not elements: \
         convert with to_dtype(DType::F32) first",
        t.dtype(),
        t.shape()
    )
}

/// The storage, block type and byte offset of a quantized GPU view that is row-major over
/// whole blocks (contiguous, starting on a block); panics naming `op`, the shape and the
/// strides otherwise, as the host's `contiguous` does.
#[track_caller]
fn blocks_of<'a>(t: &'a Tensor, op: &str) -> (&'a GpuStorage, QuantType, usize) {
    let g = t.gpu_storage().expect("a GPU tensor");
    let ty = g.dtype.quant_type().expect("a quantized tensor");
    let offset = t.layout().offset();
    if !t.is_contiguous() || !offset.is_multiple_of(ty.block_elems()) {
        panic!(
            "{op}: a {ty} tensor of shape {:?} is viewed with strides {:?} from element {offset}; blocks \
             cannot be copied element by element: convert with to_dtype(DType::F32) first",
            t.shape(),
            t.layout().strides()
        );
    }
    (g, ty, g.dtype.bytes_for(offset))
}

/// A row-major copy of a quantized view that starts inside its buffer (a narrow of rows):
/// its bytes, moved to the start of a new buffer.
#[track_caller]
pub(super) fn dense(t: &Tensor, op: &str) -> Tensor {
    let (g, _, base) = blocks_of(t, op);
    let bytes = g.dtype.bytes_for(t.numel());
    let first = ok(op, g.ctx.upload_meta(&[0]));
    let out = ok(op, gpu::quant_gather_rows(&g.ctx, &g.buffer, base, (1, 1, bytes), &first, 1));
    wrap(&g.ctx, out, g.dtype, t.shape())
}

/// The values of a quantized view as a dense f32 buffer, decoded as the host's
/// [`crate::quant::dequantize`] decodes them.
#[track_caller]
pub(super) fn to_f32(t: &Tensor, op: &str) -> Result<GpuBuffer, GpuError> {
    let (g, ty, base) = blocks_of(t, op);
    let len = t.dims().last().copied().unwrap_or(1);
    if t.numel() == 0 {
        return g.ctx.alloc(4);
    }
    let rows = QuantRows { ty, base, row_stride: g.dtype.bytes_for(len) };
    gpu::dequantize(&g.ctx, &g.buffer, rows, t.numel() / len, len)
}

/// `index_select` along dim `d` (not the last) of a quantized tensor: whole rows of blocks
/// copied as bytes; the result stays quantized, as on the host.
#[track_caller]
pub(super) fn index_select(x: &Tensor, d: usize, index: &Tensor) -> Tensor {
    let op = "index_select";
    let ty = x.dtype().quant_type().expect("a quantized tensor");
    assert!(
        d + 1 < x.rank(),
        "index_select: dim {d} of a {ty} tensor of shape {:?} would cut its blocks; select rows, or to_dtype(F32) first",
        x.shape()
    );
    let (outer, n, inner) = around(x.dims(), d);
    checked_indices(index, n, op);
    let (g, _, base) = blocks_of(x, op);
    let k = index.numel();
    let idx = dense_buffer(index, op);
    let row_bytes = g.dtype.bytes_for(inner);
    let out = ok(op, gpu::quant_gather_rows(&g.ctx, &g.buffer, base, (outer, n, row_bytes), &idx, k));
    let mut shape = x.dims().to_vec();
    shape[d] = k;
    wrap(&g.ctx, out, x.dtype(), shape)
}

/// `a @ w` for an f32 `a` and a quantized 2-D weight `w` (layouts broadcast as in
/// [`super::matmul`]). `x @ Wᵀ` reads the blocks in place (`quant_gemv` for up to
/// [`gpu::GEMV_MAX_ROWS`] rows of `a`, else `quant_matmul`); `dy @ W` dequantizes W's `k`
/// rows to an f32 `(k, n)` buffer on the device and runs the f32 GEMM, which is the backward
/// of a frozen weight and reads W once per step.
#[track_caller]
pub(super) fn matmul(a: &Tensor, la: &Layout, w: &Tensor, lb: &Layout, mnk: (usize, usize, usize)) -> Tensor {
    let op = "matmul";
    let (m, n, k) = mnk;
    let ga = f32_of(a, op);
    let gw = w.gpu_storage().expect("matmul of GPU tensors");
    let ty = gw.dtype.quant_type().expect("a quantized rhs");
    let orientation = orientation(ty, w, lb);
    let rank = la.dims().len();
    let out_shape = [&la.dims()[..rank - 2], &[m, n]].concat();
    if k == 0 || out_shape.iter().product::<usize>() == 0 {
        return Tensor::zeros(out_shape, &a.device());
    }
    let bytes = |elements: usize| gw.dtype.bytes_for(elements);
    match orientation {
        Orientation::Transposed { row_stride } => {
            // Every row of `a` (its own batch dims, not yet broadcast) against W's n rows.
            let rows = QuantRows { ty, base: bytes(lb.offset()), row_stride: bytes(row_stride) };
            let x = dense_buffer(a, op);
            let y = ok(op, gpu::quant_matmul(&ga.ctx, &x, &gw.buffer, rows, (a.numel() / k, n, k)));
            let own = [&a.dims()[..a.rank() - 2], &[m, n]].concat();
            let y = wrap(&ga.ctx, y, DType::F32, own.clone());
            // W has no batch of its own, so a broadcast batch of `a` repeats its products.
            if own == out_shape {
                y
            } else {
                y.expand(out_shape).contiguous()
            }
        }
        Orientation::Plain { row_stride } => {
            let rows = QuantRows { ty, base: bytes(lb.offset()), row_stride: bytes(row_stride) };
            let wide = wrap(&ga.ctx, ok(op, gpu::dequantize(&ga.ctx, &gw.buffer, rows, k, n)), DType::F32, (k, n));
            let batch_kn = [&la.dims()[..rank - 2], &[k, n]].concat();
            let lw = wide.layout().broadcast_to(&batch_kn.into()).expect("(k, n) broadcasts over any batch");
            super::matmul(a, la, &wide, &lw, mnk)
        }
    }
}
