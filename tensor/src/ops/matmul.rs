//! Matrix multiplication, 2-D and batched with broadcast leading dims, as `torch.matmul`.
//!
//! Operands are passed to the GEMM as strided views, so a transposed (`x.t()`) or sliced
//! operand is multiplied in place with no copy: the packing step of the GEMM reads any strides.

use crate::cpu::gemm::{sgemm_into, Epilogue, MatRef, Widen};
use crate::layout::Layout;
use crate::shape::Shape;
use crate::storage::{CpuStorage, Storage};
use crate::{DType, Tensor};
use rayon::prelude::*;

impl Tensor {
    /// `self @ rhs`: `(.., M, K) @ (.., K, N) -> (.., M, N)`, leading (batch) dims broadcast.
    /// A 1-D `self` is a row vector and a 1-D `rhs` a column vector; their unit dim is dropped
    /// from the result, as in PyTorch.
    ///
    /// The result is f32. `rhs` may be bf16 or f16 (a frozen weight kept in its storage type):
    /// it is widened to f32 element by element as the GEMM reads it, so `x.matmul(&w)` equals
    /// `x.matmul(&w.to_dtype(DType::F32)?)` bit for bit on the CPU, without the f32 copy. A
    /// bf16 / f16 `self` (an activation, small) is widened to an f32 copy first. On a GPU, an
    /// f32 `self` times a bf16 or f16 `rhs` runs one mixed kernel (`matmul_w16.wgsl`), and
    /// f16 times f16 runs `matmul_f16.wgsl` when the adapter has SHADER_F16. A quantized `rhs`
    /// (a 2-D weight `W` or `Wᵀ` whose rows are whole blocks, see [`Tensor::from_quant`]) stays
    /// in its blocks: each product reads them directly (on a GPU, `x @ Wᵀ` runs the kernels
    /// of `quant.wgsl`, and `dy @ W` dequantizes W on the device, then runs the f32 GEMM).
    ///
    /// ```
    /// use deltaw_tensor::{Device, Tensor};
    /// let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], (2, 2), &Device::Cpu)?;
    /// assert_eq!(a.matmul(&a.t()).to_vec(), vec![5.0, 11.0, 11.0, 25.0]);
    /// # Ok::<(), deltaw_tensor::Error>(())
    /// ```
    ///
    /// # Panics
    /// `matmul: lhs (2, 3) and rhs (4, 5): inner dimensions 3 and 4 differ`, and likewise when
    /// batch dims do not broadcast, an operand is 0-d, or the devices differ.
    #[track_caller]
    pub fn matmul(&self, rhs: &Tensor) -> Tensor {
        let vectors = MatmulVectors::of(self.shape(), rhs.shape());
        assert_eq!(self.device(), rhs.device(), "matmul: lhs is on {} and rhs on {}", self.device(), rhs.device());
        let lhs2 = if vectors.lhs { self.unsqueeze(0) } else { self.clone() };
        let rhs2 = if vectors.rhs { rhs.unsqueeze(1) } else { rhs.clone() };
        let out = matmul_batched(&lhs2, &rhs2, None, (self, rhs));
        vectors.squeezed().fold(out, |out, d| out.squeeze(d))
    }

    /// `self @ rhs + bias`, a linear layer: `(.., M, K) @ (.., K, N) + (N,)`, the bias added to
    /// every row of the product. The result has the bits of `self.matmul(rhs).add(bias)`. On
    /// the CPU, for an f32 `self` and `bias` and an f32, bf16 or f16 `rhs`, the GEMM adds the
    /// bias to each tile of the product as it finishes it ([`crate::cpu::gemm::Epilogue`]),
    /// which saves the add's own pass over the output; elsewhere it is the two ops.
    ///
    /// ```
    /// use deltaw_tensor::{Device, Tensor};
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], (2, 2), &Device::Cpu)?;
    /// let bias = Tensor::from_vec(vec![0.5f32, -1.0], 2, &Device::Cpu)?;
    /// assert_eq!(x.matmul_bias(&x.t(), &bias).to_vec(), vec![5.5, 10.0, 11.5, 24.0]);
    /// # Ok::<(), deltaw_tensor::Error>(())
    /// ```
    ///
    /// # Panics
    /// If `self` or `rhs` has fewer than 2 dims or `bias` is not `(N,)`, naming the three
    /// shapes, and as [`Tensor::matmul`].
    #[track_caller]
    pub fn matmul_bias(&self, rhs: &Tensor, bias: &Tensor) -> Tensor {
        let fits = self.rank() >= 2 && rhs.rank() >= 2 && bias.dims() == [rhs.dim(-1)];
        assert!(
            fits,
            "matmul_bias: lhs {:?}, rhs {:?} and bias {:?}: expects (.., M, K) @ (.., K, N) + (N,)",
            self.shape(),
            rhs.shape(),
            bias.shape()
        );
        let cpu =
            self.device() == crate::Device::Cpu && rhs.device() == self.device() && bias.device() == self.device();
        let fused = cpu
            && self.dtype() == DType::F32
            && bias.dtype() == DType::F32
            && matches!(rhs.dtype(), DType::F32 | DType::BF16 | DType::F16);
        if !fused {
            return self.matmul(rhs).add(bias);
        }
        matmul_batched(self, rhs, Some(&bias.f32_values("matmul_bias")), (self, rhs))
    }
}

/// `torch.matmul`'s rule for 1-D operands, written once for `Tensor::matmul` and autograd's
/// `Var::matmul` (each applies it with its own `unsqueeze` / `squeeze`): a 1-D lhs is the row
/// vector `(1, K)` (unsqueeze at 0), a 1-D rhs the column vector `(K, 1)` (unsqueeze at 1),
/// and the unit dims they added are squeezed from the product.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatmulVectors {
    /// The lhs is 1-D.
    pub lhs: bool,
    /// The rhs is 1-D.
    pub rhs: bool,
}

impl MatmulVectors {
    /// # Panics
    /// If an operand is 0-d, naming both shapes.
    #[track_caller]
    pub fn of(lhs: &Shape, rhs: &Shape) -> MatmulVectors {
        assert!(lhs.rank() >= 1 && rhs.rank() >= 1, "matmul: lhs {lhs:?} and rhs {rhs:?}: both need at least 1 dim");
        MatmulVectors { lhs: lhs.rank() == 1, rhs: rhs.rank() == 1 }
    }

    /// The dims to squeeze from the product, in order: the column's last dim, then the row's
    /// (last again when the rhs was a column, else second to last).
    pub fn squeezed(self) -> impl Iterator<Item = isize> {
        let column = self.rhs.then_some(-1);
        let row = self.lhs.then_some(if self.rhs { -1 } else { -2 });
        column.into_iter().chain(row)
    }
}

/// Both operands have rank ≥ 2 here; `orig_*` are only for error messages. A `bias` (N
/// floats, added to every row) comes only with f32 operands on the CPU (`matmul_bias`).
#[track_caller]
fn matmul_batched(
    lhs: &Tensor,
    rhs: &Tensor,
    bias: Option<&[f32]>,
    (orig_lhs, orig_rhs): (&Tensor, &Tensor),
) -> Tensor {
    let (m, k) = (lhs.dim(-2), lhs.dim(-1));
    let (k2, n) = (rhs.dim(-2), rhs.dim(-1));
    if k != k2 {
        panic!(
            "matmul: lhs {:?} and rhs {:?}: inner dimensions {k} and {k2} differ",
            orig_lhs.shape(),
            orig_rhs.shape()
        );
    }
    let batch_l = Shape::from(&lhs.dims()[..lhs.rank() - 2]);
    let batch_r = Shape::from(&rhs.dims()[..rhs.rank() - 2]);
    let batch = batch_l.broadcast(&batch_r).unwrap_or_else(|| {
        panic!(
            "matmul: lhs {:?} and rhs {:?}: batch dims {batch_l:?} and {batch_r:?} cannot be broadcast",
            orig_lhs.shape(),
            orig_rhs.shape()
        )
    });
    let _op = crate::profile::op(if bias.is_some() { "matmul+bias" } else { "matmul" }, || {
        let b = batch.numel() as f64;
        let (m, n, k) = (m as f64, n as f64, k as f64);
        crate::profile::Cost::new(2.0 * b * m * n * k, b * (m * k + k * n + m * n))
    });
    let with_batch = |rows, cols| Shape::from([batch.dims(), &[rows, cols]].concat());
    let la = lhs.layout().broadcast_to(&with_batch(m, k)).expect("batch dims broadcast");
    let lb = rhs.layout().broadcast_to(&with_batch(k, n)).expect("batch dims broadcast");
    if widens_lhs(lhs, rhs) {
        // A 16-bit lhs (activations, M×K) is widened to f32 once; the kernels read B only.
        let wide = lhs.to_dtype(DType::F32).expect("widening a float tensor to f32 cannot fail");
        return matmul_batched(&wide, rhs, bias, (orig_lhs, orig_rhs));
    }
    match lhs.storage() {
        Storage::Cpu(_) => {
            Tensor::from_f32(cpu_product(lhs, rhs, (&la, &lb), &batch, (m, n, k), bias), with_batch(m, n))
        }
        #[cfg(feature = "gpu")]
        Storage::Gpu(_) => super::on_gpu::matmul(lhs, &la, rhs, &lb, (m, n, k)),
    }
}

/// The CPU product for `matmul_batched`, the operands' layouts broadcast to `batch`: `rhs`
/// f32, bf16, f16 or quantized, and the bias (f32 `rhs` types only) in the GEMM's epilogue.
fn cpu_product(
    lhs: &Tensor,
    rhs: &Tensor,
    (la, lb): (&Layout, &Layout),
    batch: &Shape,
    (m, n, k): (usize, usize, usize),
    bias: Option<&[f32]>,
) -> Vec<f32> {
    let a = lhs.f32_storage("matmul");
    // (A quantized weight keeps its per-entry products: its kernels pick their path by the
    // row count, and merging would change which one ran.)
    let quant = matches!(rhs.cpu_storage(), CpuStorage::Quant { .. });
    let merged = if quant { None } else { merged_rows(la, rhs, batch.numel(), m) };
    // One GEMM over every row, or one per batch entry: `(batch, rows, la, lb)`.
    let (bd, rows, la, lb) = match &merged {
        Some(la2) => (&[][..], batch.numel() * m, la2, rhs.layout()),
        None => (batch.dims(), m, la, lb),
    };
    match rhs.cpu_storage() {
        CpuStorage::BF16(b) => cpu_matmul(a, la, b, lb, bd, (rows, n, k), bias),
        CpuStorage::F16(b) => cpu_matmul(a, la, b, lb, bd, (rows, n, k), bias),
        CpuStorage::Quant { .. } => {
            debug_assert!(bias.is_none(), "matmul_bias adds after a quantized product");
            super::quant::cpu_matmul(a, la, rhs, lb, bd, (rows, n, k))
        }
        _ => cpu_matmul(a, la, rhs.f32_storage("matmul"), lb, bd, (rows, n, k), bias),
    }
}

/// For `(.., M, K) @ (K, N)` (a weight shared by the batch), the lhs layout `la` as one
/// `(count·M, K)` matrix when its batch dims step over whole rows, as a contiguous activation's
/// do: one GEMM then packs the weight once and splits all the rows over the threads, instead of
/// one small GEMM per batch entry (a linear layer over `(B, T, C)` is one `(B·T, C)` product).
/// Every element is the same sum in the same order either way (the kernels do not depend on a
/// row's position), so the bits do not change. `None` for one row per entry (batched decoding
/// keeps its gemv path), a batched rhs, or a layout whose batch dims do not merge.
fn merged_rows(la: &Layout, rhs: &Tensor, count: usize, m: usize) -> Option<Layout> {
    let r = la.strides().len();
    if count <= 1 || m <= 1 || rhs.rank() != 2 {
        return None;
    }
    let (dims, strides) = (la.dims(), la.strides());
    // Inside out, each batch dim must step over exactly the rows of the dims inside it.
    let mut step = m * strides[r - 2];
    for d in (0..r - 2).rev() {
        if dims[d] != 1 && strides[d] != step {
            return None;
        }
        step *= dims[d];
    }
    let rows = Shape::from((count * m, dims[r - 1]));
    Some(Layout::new(rows, vec![strides[r - 2], strides[r - 1]], la.offset()))
}

/// Whether `lhs` is bf16 / f16 and goes to the kernels widened: always, except f16 × f16 on
/// a GPU, which has its own f16-storage kernel.
fn widens_lhs(lhs: &Tensor, rhs: &Tensor) -> bool {
    let half = matches!(lhs.dtype(), DType::BF16 | DType::F16);
    let f16_pair = lhs.dtype() == DType::F16 && rhs.dtype() == DType::F16 && lhs.device() != crate::Device::Cpu;
    half && !f16_pair
}

/// The batched product on the CPU, one `sgemm` per batch entry (in parallel): `a` f32, `b`
/// f32 or a 16-bit weight widened by the GEMM as it packs (see `cpu::gemm::Widen`), plus the
/// bias in the GEMM's epilogue when there is one.
fn cpu_matmul<T: Widen>(
    a: &[f32],
    la: &Layout,
    b: &[T],
    lb: &Layout,
    batch: &[usize],
    (m, n, k): (usize, usize, usize),
    bias: Option<&[f32]>,
) -> Vec<f32> {
    let count: usize = batch.iter().product();
    let mut out = crate::cpu::pool::take(count * m * n); // every element written below
    if m * n > 0 {
        let epilogue = bias.map_or(Epilogue::Write, Epilogue::Bias);
        // With a few products per thread, each runs on one thread (attention's per-head
        // products): splitting them again only adds scheduling.
        let many = count >= 2 * rayon::current_num_threads();
        out.par_chunks_mut(m * n).enumerate().for_each(|(i, c)| {
            let ma = mat_ref(a, la, batch, i);
            let mb = mat_ref(b, lb, batch, i);
            let mut product = || sgemm_into(m, n, k, ma, mb, c, n, epilogue);
            if many {
                crate::cpu::gemm::sequential(product)
            } else {
                product()
            }
        });
    }
    out
}

/// The `i`-th matrix (row-major over the batch dims) of a batch-broadcast layout.
fn mat_ref<'a, T>(data: &'a [T], layout: &Layout, batch: &[usize], i: usize) -> MatRef<'a, T> {
    let r = layout.strides().len();
    let offset = layout.batch_offset(batch, i);
    MatRef { data, offset, row_stride: layout.strides()[r - 2], col_stride: layout.strides()[r - 1] }
}
