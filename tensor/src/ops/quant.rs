//! Tensors of block-quantized weights ([`crate::quant`]): building them from bytes, reading the
//! bytes back, selecting rows (embedding lookups), and the products that take one as `rhs`.
//!
//! A quantized tensor is a weight, so its ops are the ones a weight takes part in. Views
//! (`t()`, `reshape`, `narrow` of whole rows) are free as for any tensor; anything that would
//! cut a block (a view whose rows do not start on a block) is refused by the op that meets
//! it, naming the shape and strides.

use crate::cpu::gemm::{sgemm, MatRef};
use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::quant::QuantType;
use crate::shape::Shape;
use crate::storage::CpuStorage;
use crate::{DType, Device, Tensor};
use rayon::prelude::*;

impl Tensor {
    /// A tensor of `shape` from whole blocks of `ty` in row-major order (what a GGUF file
    /// stores): the last dim must be a whole number of blocks.
    ///
    /// ```
    /// use deltaw_tensor::{DType, Device, QuantType, Tensor};
    /// // One Q8_0 block: an f16 scale d = 0.5 (0x3800), then 32 i8 values q; x = d·q.
    /// let mut block = vec![0x00, 0x38];
    /// block.extend((0..32).map(|q: i8| q as u8));
    /// let w = Tensor::from_quant(QuantType::Q8_0, (1, 32), block, &Device::Cpu)?;
    /// assert_eq!(w.dtype(), DType::Quant(QuantType::Q8_0));
    /// assert_eq!(w.to_vec()[3], 1.5);
    /// # Ok::<(), deltaw_tensor::Error>(())
    /// ```
    ///
    /// # Errors
    /// When the last dim is not a multiple of the block size, or `bytes` does not hold
    /// exactly the blocks of `shape`; on a GPU, when the upload fails.
    pub fn from_quant(ty: QuantType, shape: impl Into<Shape>, bytes: Vec<u8>, device: &Device) -> Result<Tensor> {
        let shape = shape.into();
        let bad = |message: String| Error::BadTensor { tensor: format!("{ty} {shape:?}"), message };
        let last = shape.dims().last().copied().unwrap_or(1);
        if !last.is_multiple_of(ty.block_elems()) {
            return Err(bad(format!("the last dim {last} is not a whole number of {}-value blocks", ty.block_elems())));
        }
        let want = DType::Quant(ty).bytes_for(shape.numel());
        if bytes.len() != want {
            return Err(bad(format!("{} bytes given, {want} needed", bytes.len())));
        }
        Tensor::from_cpu(CpuStorage::Quant { ty, bytes }, shape).to_device(device)
    }

    /// The block type and bytes of a quantized tensor on the CPU whose layout is row-major
    /// over whole blocks; `None` otherwise (another dtype, a GPU tensor, or a strided view).
    pub fn quant_bytes(&self) -> Option<(QuantType, &[u8])> {
        let ty = self.dtype().quant_type()?;
        if self.device().is_gpu() || !self.is_contiguous() || !self.layout().offset().is_multiple_of(ty.block_elems()) {
            return None;
        }
        let start = DType::Quant(ty).bytes_for(self.layout().offset());
        let len = DType::Quant(ty).bytes_for(self.numel());
        Some((ty, &self.cpu_storage().as_bytes()[start..start + len]))
    }
}

/// `index_select` on a quantized CPU tensor: whole rows of blocks are copied, so `dim` must
/// not be the last one.
#[track_caller]
pub(super) fn index_select(src: &Tensor, d: usize, idx: &[i32]) -> Tensor {
    let ty = src.dtype().quant_type().expect("a quantized tensor");
    assert!(
        d + 1 < src.rank(),
        "index_select: dim {d} of a {ty} tensor of shape {:?} would cut its blocks; select rows, or to_dtype(F32) first",
        src.shape()
    );
    let (_, bytes) = src.quant_bytes().unwrap_or_else(|| {
        panic!(
            "index_select: a {ty} view of shape {:?} with strides {:?} cuts its blocks",
            src.shape(),
            src.layout().strides()
        )
    });
    let (outer, n) = (src.dims()[..d].iter().product::<usize>(), src.dims()[d]);
    let inner = DType::Quant(ty).bytes_for(src.dims()[d + 1..].iter().product());
    let mut out = Vec::with_capacity(outer * idx.len() * inner);
    for o in 0..outer {
        for &i in idx {
            let i = usize::try_from(i)
                .ok()
                .filter(|&i| i < n)
                .unwrap_or_else(|| panic!("index_select: index {i} out of range for dim {d} of size {n}"));
            let row = (o * n + i) * inner;
            out.extend_from_slice(&bytes[row..row + inner]);
        }
    }
    let mut shape = src.dims().to_vec();
    shape[d] = idx.len();
    Tensor::from_cpu(CpuStorage::Quant { ty, bytes: out }, shape)
}

/// How a quantized `rhs` (k × n, after the batch dims) lies over its blocks.
pub(super) enum Orientation {
    /// `rhs = Wᵀ` for W (n × k) whose rows are `row_stride` apart: a `Linear` forward.
    Transposed { row_stride: usize },
    /// `rhs = W` (k × n) itself: the input gradient `dout @ W` of that `Linear`.
    Plain { row_stride: usize },
}

/// Weight rows dequantized per panel: about 256 KiB of f32, so a panel stays in L2 while
/// the GEMM reads it.
const PANEL_FLOATS: usize = 1 << 16;

/// `out (batch·m × n) = a @ rhs` on the CPU for a quantized 2-D `rhs` (broadcast over the
/// batch dims of `a`). `x @ Wᵀ` over dense rows runs `cpu::qdot::quant_matmul` (integer dot
/// products on the blocks for few rows, dequantized tiles and the GEMM for many); any other
/// view dequantizes panels of W's rows to f32 and multiplies them with the GEMM, whose f32
/// multiply-adds are those of `a @ rhs.to_dtype(F32)`.
#[track_caller]
pub(super) fn cpu_matmul(
    a: &[f32],
    la: &Layout,
    rhs: &Tensor,
    lb: &Layout,
    batch: &[usize],
    mnk: (usize, usize, usize),
) -> Vec<f32> {
    let (m, n, k) = mnk;
    let ty = rhs.dtype().quant_type().expect("a quantized rhs");
    let orientation = orientation(ty, rhs, lb);
    let bytes = rhs.cpu_storage().as_bytes();
    let start = lb.offset();
    let count: usize = batch.iter().product();
    if m * n == 0 || k == 0 {
        return crate::cpu::pool::take_zeroed(count * m * n); // empty sums
    }
    // Every element is written below (each route writes all of its rows and columns), so the
    // buffer is not cleared first: a decoded token's products spent 1.4% of it in memset.
    let mut out = crate::cpu::pool::take(count * m * n);
    for (i, c) in out.chunks_mut(m * n).enumerate() {
        let r = la.strides().len();
        let ma = MatRef {
            data: a,
            offset: la.batch_offset(batch, i),
            row_stride: la.strides()[r - 2],
            col_stride: la.strides()[r - 1],
        };
        match orientation {
            // The common case, `x @ Wᵀ` over dense rows of x: the kernels of `cpu::qdot` read
            // the blocks directly (activations quantized per block for few rows).
            Orientation::Transposed { row_stride } if row_stride == k && ma.col_stride == 1 && ma.row_stride == k => {
                let w = row_bytes(ty, bytes, start, n * k);
                crate::cpu::qdot::quant_matmul(ty, w, n, k, &a[ma.offset..ma.offset + m * k], m, c);
            }
            Orientation::Transposed { row_stride } => {
                let rows = |j: usize, len: usize| row_bytes(ty, bytes, start + j * row_stride, len);
                by_panels(n, k, |j0, w, panel| {
                    dequantize_rows(ty, &rows, j0, w, k, panel);
                    let b = MatRef { data: &*panel, offset: 0, row_stride: 1, col_stride: k };
                    sgemm(m, w, k, ma, b, &mut c[j0..], n, false);
                });
            }
            Orientation::Plain { row_stride } => {
                let rows = |p: usize, len: usize| row_bytes(ty, bytes, start + p * row_stride, len);
                by_panels(k, n, |p0, w, panel| {
                    dequantize_rows(ty, &rows, p0, w, n, panel);
                    let a_part = MatRef { offset: ma.offset + p0 * ma.col_stride, ..ma };
                    let b = MatRef { data: &*panel, offset: 0, row_stride: n, col_stride: 1 };
                    sgemm(m, n, w, a_part, b, c, n, p0 > 0);
                });
            }
        }
    }
    out
}

/// The orientation of a quantized `rhs` with broadcast layout `lb`, or a panic naming the
/// shape and strides when its rows do not lie on whole blocks or it is not one 2-D weight.
#[track_caller]
pub(super) fn orientation(ty: QuantType, rhs: &Tensor, lb: &Layout) -> Orientation {
    let r = lb.strides().len();
    let (sk, sn) = (lb.strides()[r - 2], lb.strides()[r - 1]);
    let (k, n) = (lb.dims()[r - 2], lb.dims()[r - 1]);
    let b = ty.block_elems();
    let whole = |len: usize, stride: usize| len.is_multiple_of(b) && stride.is_multiple_of(b);
    let weight = lb.strides()[..r - 2].iter().all(|&s| s == 0) && lb.offset().is_multiple_of(b);
    match (sk, sn) {
        (1, s) if weight && whole(k, s) => Orientation::Transposed { row_stride: s },
        (s, 1) if weight && whole(n, s) => Orientation::Plain { row_stride: s },
        _ => panic!(
            "matmul: a {ty} rhs must be one 2-D weight W or Wᵀ whose rows are whole {b}-value blocks; \
             got shape {:?} with strides {:?}",
            rhs.shape(),
            rhs.layout().strides()
        ),
    }
}

/// The bytes of `len` values starting at element `at` (block-aligned) of a quantized buffer.
fn row_bytes(ty: QuantType, bytes: &[u8], at: usize, len: usize) -> &[u8] {
    let (from, size) = (DType::Quant(ty).bytes_for(at), DType::Quant(ty).bytes_for(len));
    &bytes[from..from + size]
}

/// Calls `f(first, count, panel)` for consecutive runs of `rows` rows of `len` values each,
/// with a panel buffer of `count × len` floats reused between runs.
fn by_panels(rows: usize, len: usize, mut f: impl FnMut(usize, usize, &mut [f32])) {
    let per = (PANEL_FLOATS / len.max(1)).clamp(1, rows.max(1));
    let mut panel = vec![0.0f32; per * len];
    for first in (0..rows).step_by(per) {
        let count = per.min(rows - first);
        f(first, count, &mut panel[..count * len]);
    }
}

/// Dequantizes rows `first..first + count` (each `len` values, read by `rows`) into `panel`,
/// in parallel over rows.
fn dequantize_rows<'a>(
    ty: QuantType,
    rows: &(impl Fn(usize, usize) -> &'a [u8] + Sync),
    first: usize,
    count: usize,
    len: usize,
    panel: &mut [f32],
) {
    panel[..count * len]
        .par_chunks_mut(len)
        .enumerate()
        .for_each(|(i, dst)| crate::quant::dequantize(ty, rows(first + i, len), dst));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Seed;

    /// A (rows, cols) weight quantized to `ty`, and its dequantized f32 copy.
    fn weight(ty: QuantType, rows: usize, cols: usize) -> (Tensor, Tensor) {
        let x = Tensor::randn((rows, cols), Seed(3), &Device::Cpu).to_vec();
        let bytes = crate::quant::quantize(ty, &x).expect("finite values");
        let q = Tensor::from_quant(ty, (rows, cols), bytes, &Device::Cpu).expect("whole blocks");
        let f = q.to_dtype(DType::F32).expect("dequantize");
        (q, f)
    }

    fn close(a: &Tensor, b: &Tensor, tol: f32) {
        assert_eq!(a.dims(), b.dims());
        for (i, (x, y)) in a.to_vec().iter().zip(b.to_vec()).enumerate() {
            assert!((x - y).abs() <= tol * (1.0 + y.abs()), "element {i}: {x} vs {y}");
        }
    }

    #[test]
    fn products_match_the_dequantized_weight_in_both_orientations() {
        for ty in [QuantType::Q8_0, QuantType::Q4_0, QuantType::Q4K, QuantType::Q6K] {
            let (q, f) = weight(ty, 24, 512);
            for m in [1, 3, 20] {
                let x = Tensor::randn((2, m, 512), Seed(m as u64), &Device::Cpu);
                // x @ Wᵀ: the qdot kernels quantize x per block (for m < 16), rounding each
                // value by at most amax/254, so |error| ≤ amax/254 · max_j Σ_p |W[j, p]|.
                let amax = x.to_vec().iter().fold(0.0f32, |a, v| a.max(v.abs()));
                let row_l1 = f.abs().sum(-1).to_vec().into_iter().fold(0.0f32, f32::max);
                let bound = amax / 254.0 * row_l1 + 1e-4;
                for (i, (a, b)) in x.matmul(&q.t()).to_vec().iter().zip(x.matmul(&f.t()).to_vec()).enumerate() {
                    assert!((a - b).abs() <= bound, "{ty} m={m} element {i}: {a} vs {b} (bound {bound})");
                }
                // dout @ W: dequantized panels and the GEMM, the same f32 products.
                let d = Tensor::randn((m, 24), Seed(9), &Device::Cpu);
                close(&d.matmul(&q), &d.matmul(&f), 1e-5);
            }
            // A strided x takes the panel route: exact f32 products of the dequantized weight.
            let xt = Tensor::randn((512, 5), Seed(4), &Device::Cpu).t();
            close(&xt.matmul(&q.t()), &xt.matmul(&f.t()), 1e-5);
        }
    }

    #[test]
    fn rows_are_selected_and_embedded_whole() {
        let (q, f) = weight(QuantType::Q4_0, 10, 64);
        let ids = Tensor::from_vec(vec![7i32, 0, 7], 3, &Device::Cpu).unwrap();
        assert_eq!(q.index_select(0, &ids).dtype(), DType::Quant(QuantType::Q4_0));
        assert_eq!(q.embedding(&ids).to_vec(), f.index_select(0, &ids).to_vec());
        assert_eq!(q.narrow(0, 2, 3).to_vec(), f.narrow(0, 2, 3).to_vec());
    }

    #[test]
    fn bad_bytes_and_cut_blocks_are_refused() {
        let e = Tensor::from_quant(QuantType::Q8_0, (2, 48), vec![0; 68], &Device::Cpu).unwrap_err();
        assert!(e.to_string().contains("not a whole number of 32-value blocks"), "{e}");
        let e = Tensor::from_quant(QuantType::Q8_0, (2, 32), vec![0; 67], &Device::Cpu).unwrap_err();
        assert!(e.to_string().contains("67 bytes given, 68 needed"), "{e}");
        let (q, _) = weight(QuantType::Q8_0, 4, 64);
        assert!(q.narrow(1, 0, 32).quant_bytes().is_none());
        let cut =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| q.narrow(1, 8, 32).contiguous())).unwrap_err();
        assert!(cut.downcast_ref::<String>().unwrap().contains("blocks cannot be copied"));
    }
}
