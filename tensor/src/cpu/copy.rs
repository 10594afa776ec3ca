//! Copying a strided view into a fresh row-major buffer (`contiguous()`), for any element type.

use super::strided::StridedPlan;
use crate::layout::Layout;
use crate::storage::CpuStorage;

/// The elements of `layout` over `src`, in row-major order.
pub fn gather<T: Copy + Send + Sync + Default + 'static>(src: &[T], layout: &Layout) -> Vec<T> {
    let mut out = super::pool::take_any(layout.shape().numel()); // every element written
    gather_into(src, layout, &mut out);
    out
}

/// [`gather`] into `out`, which has the view's element count.
pub fn gather_into<T: Copy + Send + Sync>(src: &[T], layout: &Layout, out: &mut [T]) {
    let plan = StridedPlan::<1>::new(layout.dims(), [(layout.strides(), layout.offset())]);
    plan.for_each_segment(out, |dst, [o], [s]| {
        if s == 1 {
            dst.copy_from_slice(&src[o..o + dst.len()]);
        } else {
            for (j, d) in dst.iter_mut().enumerate() {
                *d = src[o + j * s];
            }
        }
    });
}

/// [`gather`] for whichever element type the storage holds.
pub fn gather_storage(src: &CpuStorage, layout: &Layout) -> CpuStorage {
    match src {
        CpuStorage::F32(v) => CpuStorage::F32(gather(v, layout)),
        CpuStorage::F16(v) => CpuStorage::F16(gather(v, layout)),
        CpuStorage::BF16(v) => CpuStorage::BF16(gather(v, layout)),
        CpuStorage::I32(v) => CpuStorage::I32(gather(v, layout)),
        CpuStorage::Quant { ty, .. } => panic!(
            "contiguous: a {ty} tensor of shape {:?} is viewed with strides {:?}; blocks cannot be \
             copied element by element: convert with to_dtype(DType::F32) first",
            layout.dims(),
            layout.strides()
        ),
    }
}
