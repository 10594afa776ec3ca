//! Single-precision GEMM on the CPU: packed panels, cache blocking, a SIMD micro-kernel.
//!
//! `sgemm` computes `C = A·B` (or `C += A·B`) for strided f32 operands; `sgemm_into` also
//! `C = A·B + bias`, the bias added in the loops' epilogue (see [`Epilogue`]). The design is the
//! classic Goto/BLIS one, written for a row-major `C`:
//!
//! ```text
//! for pc in 0..k step KC                  depth slice: C (+)= A[:, pc..] · B[pc.., :]
//!   pack A[:, pc..] into MR-row panels    } both shared by all threads, packed in parallel
//!   pack B[pc.., :] into NR-column panels }   (A in blocks of 4096 rows, B of 4096 columns)
//!   parallel over tasks = rectangles of C:
//!     for jc over the task's columns step NC    these KC×NC B panels stay in L2 ...
//!       for ir over the task's A panels         ... one MR×KC A panel stays in L1 ...
//!         for jr over the B panels of jc        ... while B panels stream from L2
//!           micro-kernel: MR×NR tile of C (+)= A panel · B panel
//! ```
//!
//! Files: `pack.rs` (panel layouts; `pack_x86.rs` its AVX transposes), `driver.rs` (the
//! loops above and the thread split), `scratch.rs` (reused per-thread pack buffers),
//! `dispatch.rs` (which micro-kernel runs, with its block sizes), one `kernel_*.rs` per
//! instruction set, `widen.rs` (bf16 and f16 B operands, widened to f32 while packing).

mod dispatch;
mod driver;
mod gemv;
mod kernel_portable;
mod pack;
mod scratch;
mod widen;

#[cfg(target_arch = "x86_64")]
mod gemv_avx512;
#[cfg(target_arch = "x86_64")]
mod gemv_x86;
#[cfg(target_arch = "x86_64")]
mod kernel_avx2;
#[cfg(target_arch = "x86_64")]
mod kernel_avx512;
#[cfg(target_arch = "aarch64")]
mod kernel_neon;
#[cfg(target_arch = "x86_64")]
mod pack_x86;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_bias;
#[cfg(test)]
mod tests_prop;
#[cfg(test)]
mod tests_widen;

pub(crate) use driver::sequential;
pub use widen::Widen;

/// A read-only strided matrix view: element (i, j) is
/// `data[offset + i * row_stride + j * col_stride]`. Transposed or sliced operands are just
/// other strides: no copy is needed before calling `sgemm`. The element type is f32, or
/// (for B) bf16 / f16, widened as it is read (see [`Widen`]).
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a, T = f32> {
    pub data: &'a [T],
    pub offset: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<T: Widen> MatRef<'_, T> {
    /// The same elements seen as the transposed matrix: (i, j) here is (j, i) of `self`.
    pub(crate) fn t(self) -> Self {
        MatRef { row_stride: self.col_stride, col_stride: self.row_stride, ..self }
    }

    /// Element (i, j), widened to f32; bounds-checked against `data`.
    pub(crate) fn at(&self, i: usize, j: usize) -> f32 {
        self.data[self.offset + i * self.row_stride + j * self.col_stride].widen()
    }
}

/// C = A·B for A (m×k), B (k×n), written into the row-major `c` with row stride `ldc`
/// (`c[i*ldc + j]`). `accumulate == true` computes C += A·B instead (used for gradient
/// accumulation). Correct for every shape, including m, n or k = 0 or 1, odd sizes and
/// tall-skinny ones; k = 0 gives C = 0 (or leaves C unchanged when accumulating).
///
/// Parallel over blocks of C on rayon's global pool; problems under 2^18 multiply-adds stay
/// on the calling thread, where threading would cost more than it saves.
///
/// B may be bf16 or f16 (a frozen weight in its storage type): each element is widened to
/// f32 as it is packed or streamed, so the result equals, bit for bit, `sgemm` on the f32
/// copy of B, which is never made.
///
/// Without `accumulate`, C is only written, never read, so it may hold garbage (even NaN).
/// The micro-kernel is chosen once per process from the CPU's features (see [`kernel_name`]):
/// `DELTAW_SIMD=portable|avx2|avx512|neon` forces a level for every CPU kernel
/// ([`crate::cpu::simd`]), `DELTAW_GEMM_KERNEL` (same names) the GEMM kernel alone.
///
/// # Panics
/// If `a` cannot hold an m×k matrix, `b` a k×n one, or `c` m rows of n with stride `ldc`
/// (including `ldc < n` when m > 1, which would make rows overlap).
#[track_caller]
#[allow(clippy::too_many_arguments)] // the BLAS signature: three shapes, three operands, one flag
pub fn sgemm<T: Widen>(
    m: usize,
    n: usize,
    k: usize,
    a: MatRef<'_>,
    b: MatRef<'_, T>,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    sgemm_into(m, n, k, a, b, c, ldc, Epilogue::from(accumulate));
}

/// What a GEMM does with C besides forming A·B (see [`sgemm_into`]).
#[derive(Clone, Copy, Debug)]
pub enum Epilogue<'a> {
    /// `C = A·B`: C is only written.
    Write,
    /// `C += A·B`.
    Accumulate,
    /// `C = A·B + bias`, the `n` floats of `bias` added to every row. Each element gets its bias
    /// once its whole sum is done, so the bits equal the product followed by a broadcast add,
    /// but the add happens while the micro-kernel's tile of C is still in L1: a linear layer's
    /// bias costs no pass of its own over the output (one read and one write of all of C).
    Bias(&'a [f32]),
}

impl<'a> Epilogue<'a> {
    /// `(accumulate, bias)`.
    pub(crate) fn parts(self) -> (bool, Option<&'a [f32]>) {
        match self {
            Epilogue::Write => (false, None),
            Epilogue::Accumulate => (true, None),
            Epilogue::Bias(bias) => (false, Some(bias)),
        }
    }
}

impl From<bool> for Epilogue<'_> {
    /// `accumulate` as `sgemm` takes it.
    fn from(accumulate: bool) -> Self {
        if accumulate {
            Epilogue::Accumulate
        } else {
            Epilogue::Write
        }
    }
}

/// [`sgemm`] with any [`Epilogue`]: `C = A·B`, `C += A·B` or `C = A·B + bias`.
///
/// ```
/// use deltaw_tensor::cpu::gemm::{sgemm_into, Epilogue, MatRef};
/// // (2×2) · I + [10, 20]
/// let a = [1.0f32, 2.0, 3.0, 4.0];
/// let eye = [1.0f32, 0.0, 0.0, 1.0];
/// let view = |data| MatRef { data, offset: 0, row_stride: 2, col_stride: 1 };
/// let mut c = [0.0f32; 4];
/// sgemm_into(2, 2, 2, view(&a), view(&eye), &mut c, 2, Epilogue::Bias(&[10.0, 20.0]));
/// assert_eq!(c, [11.0, 22.0, 13.0, 24.0]);
/// ```
///
/// # Panics
/// As [`sgemm`], and if a bias does not hold exactly `n` floats.
#[track_caller]
#[allow(clippy::too_many_arguments)] // sgemm's signature with the epilogue for its flag
pub fn sgemm_into<T: Widen>(
    m: usize,
    n: usize,
    k: usize,
    a: MatRef<'_>,
    b: MatRef<'_, T>,
    c: &mut [f32],
    ldc: usize,
    epilogue: Epilogue<'_>,
) {
    check_shapes(m, n, k, &a, &b, c.len(), ldc);
    if let Epilogue::Bias(bias) = epilogue {
        assert_eq!(bias.len(), n, "sgemm (m={m}, n={n}, k={k}): a bias of {} floats for {n} columns", bias.len());
    }
    driver::gemm(dispatch::selected(), m, n, k, a, b, c, ldc, epilogue);
}

/// `outs[i] = a · Bᵢ` for matrices `Bᵢ` (K × Nᵢ, contiguous columns: `Wᵢᵀ` of weights stored
/// `(Nᵢ, K)`) that share the row `a`: each as `sgemm` with m = 1 computes it, bit for bit, in
/// one parallel pass over all of them.
///
/// # Panics
/// If a `Bᵢ` does not have unit row stride, or its columns or output do not fit.
#[track_caller]
pub(crate) fn gemv_t_many<T: Widen>(a: &[f32], bs: &[MatRef<'_, T>], outs: &mut [&mut [f32]]) {
    let k = a.len();
    assert_eq!(bs.len(), outs.len(), "gemv_t_many: {} matrices for {} outputs", bs.len(), outs.len());
    for (b, out) in bs.iter().zip(outs.iter()) {
        let n = out.len();
        assert!(
            b.row_stride == 1,
            "gemv_t_many: B (k={k}, n={n}) needs contiguous columns, has row stride {}",
            b.row_stride
        );
        check_view("B", k, n, b, (1, n, k));
    }
    if k == 0 {
        outs.iter_mut().for_each(|o| o.fill(0.0));
        return;
    }
    gemv::gemv_t_many(dispatch::selected(), a, bs, outs);
}

/// The micro-kernel `sgemm` uses on this machine, as "isa MRxNR" (rows × columns of the
/// register tile of C), e.g. "avx512f 12x32", "avx2+fma 6x16", "neon 8x8" or "portable 4x8".
pub fn kernel_name() -> &'static str {
    dispatch::selected().name
}

/// Panics unless every element the shapes address lies inside its buffer.
#[track_caller]
fn check_shapes<T: Widen>(m: usize, n: usize, k: usize, a: &MatRef<'_>, b: &MatRef<'_, T>, c_len: usize, ldc: usize) {
    check_view("A", m, k, a, (m, n, k));
    check_view("B", k, n, b, (m, n, k));
    if m == 0 || n == 0 {
        return;
    }
    assert!(m == 1 || ldc >= n, "sgemm (m={m}, n={n}, k={k}): ldc = {ldc} < n would make the rows of C overlap");
    // The last element written is c[(m-1)*ldc + n-1].
    let need = (m - 1).checked_mul(ldc).and_then(|x| x.checked_add(n));
    assert!(
        need.is_some_and(|need| need <= c_len),
        "sgemm (m={m}, n={n}, k={k}): C with ldc = {ldc} needs {need:?} elements, has {c_len}"
    );
}

/// Panics unless the `rows`×`cols` view stays inside `view.data`.
#[track_caller]
fn check_view<T: Widen>(name: &str, rows: usize, cols: usize, view: &MatRef<'_, T>, mnk: (usize, usize, usize)) {
    if rows == 0 || cols == 0 {
        return;
    }
    let (m, n, k) = mnk;
    // The largest index read is offset + (rows-1)*row_stride + (cols-1)*col_stride.
    let last = (rows - 1)
        .checked_mul(view.row_stride)
        .and_then(|x| x.checked_add((cols - 1).checked_mul(view.col_stride)?))
        .and_then(|x| x.checked_add(view.offset));
    assert!(
        last.is_some_and(|last| last < view.data.len()),
        "sgemm (m={m}, n={n}, k={k}): {name} as {rows}x{cols} (offset {}, strides {}x{}) \
         reads up to index {last:?} but has {} elements",
        view.offset,
        view.row_stride,
        view.col_stride,
        view.data.len()
    );
}
