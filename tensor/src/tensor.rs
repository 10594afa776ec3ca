//! `Tensor`: shared storage plus a layout. Cloning is cheap (an `Arc` bump); views share data.

use crate::cpu;
use crate::dtype::{DType, Element};
use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::rng::{self, Seed};
use crate::shape::{Dim, Shape};
use crate::storage::{CpuStorage, IntoStorage, Storage};
use crate::Device;
use rayon::prelude::*;
use std::borrow::Cow;
use std::sync::Arc;

/// An n-dimensional array on a [`Device`].
///
/// Values are immutable: every op returns a new tensor, and views (reshape of contiguous data,
/// `transpose`, `permute`, `narrow`, `expand`...) return tensors that share the storage.
#[derive(Clone)]
pub struct Tensor {
    storage: Arc<Storage>,
    layout: Layout,
}

impl Tensor {
    pub(crate) fn new(storage: Arc<Storage>, layout: Layout) -> Tensor {
        Tensor { storage, layout }
    }

    /// A contiguous tensor owning `data` (no checks: kernels call this with the right length).
    pub(crate) fn from_cpu(data: CpuStorage, shape: impl Into<Shape>) -> Tensor {
        let layout = Layout::contiguous(shape);
        debug_assert_eq!(data.len(), layout.shape().numel());
        Tensor::new(Arc::new(Storage::Cpu(data)), layout)
    }

    pub(crate) fn from_f32(data: Vec<f32>, shape: impl Into<Shape>) -> Tensor {
        Tensor::from_cpu(CpuStorage::F32(data), shape)
    }

    /// Builds a tensor from row-major `data` of any element type (f32, f16, bf16, i32).
    ///
    /// ```
    /// use deltaw_tensor::{Device, Tensor};
    /// let t = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], (2, 3), &Device::Cpu)?;
    /// assert_eq!(t.dims(), &[2, 3]);
    /// assert!(Tensor::from_vec(vec![1.0f32; 5], (2, 3), &Device::Cpu).is_err());
    /// # Ok::<(), deltaw_tensor::Error>(())
    /// ```
    ///
    /// # Errors
    /// When `data.len()` is not the number of elements of `shape`.
    pub fn from_vec<T: IntoStorage>(data: Vec<T>, shape: impl Into<Shape>, device: &Device) -> Result<Tensor> {
        let shape = shape.into();
        if data.len() != shape.numel() {
            return Err(Error::LengthMismatch {
                what: "Tensor::from_vec".into(),
                shape: format!("{shape:?}"),
                expected: shape.numel(),
                got: data.len(),
            });
        }
        Tensor::on_device(T::into_storage(data), shape, device)
    }

    /// Like [`Tensor::from_vec`], copying from a slice.
    pub fn from_slice<T: IntoStorage>(data: &[T], shape: impl Into<Shape>, device: &Device) -> Result<Tensor> {
        Tensor::from_vec(data.to_vec(), shape, device)
    }

    /// Host data placed on `device` (an upload for a GPU).
    fn on_device(data: CpuStorage, shape: Shape, device: &Device) -> Result<Tensor> {
        match device {
            Device::Cpu => Ok(Tensor::from_cpu(data, shape)),
            #[cfg(feature = "gpu")]
            Device::Gpu(_) => Tensor::from_cpu(data, shape).to_device(device),
        }
    }

    /// [`Tensor::on_device`] for the constructors that cannot fail on the host; on a GPU an
    /// upload can (device lost, buffer over the limits), and that panics with the reason.
    #[track_caller]
    fn created(op: &str, data: CpuStorage, shape: Shape, device: &Device) -> Tensor {
        Tensor::on_device(data, shape, device).unwrap_or_else(|e| panic!("{op}: {e}"))
    }

    /// A 0-d tensor holding `value`.
    pub fn scalar(value: f32, device: &Device) -> Tensor {
        Tensor::full((), value, device)
    }

    /// A tensor of `shape` with every element `value`.
    pub fn full(shape: impl Into<Shape>, value: f32, device: &Device) -> Tensor {
        let shape = shape.into();
        let n = shape.numel();
        let data = if value == 0.0 { crate::cpu::pool::take_zeroed(n) } else { vec![value; n] };
        Tensor::created("full", CpuStorage::F32(data), shape, device)
    }

    pub fn zeros(shape: impl Into<Shape>, device: &Device) -> Tensor {
        Tensor::full(shape, 0.0, device)
    }

    pub fn ones(shape: impl Into<Shape>, device: &Device) -> Tensor {
        Tensor::full(shape, 1.0, device)
    }

    /// Zeros with this tensor's shape and device (always f32).
    pub fn zeros_like(&self) -> Tensor {
        Tensor::zeros(self.shape(), &self.device())
    }

    /// Ones with this tensor's shape and device (always f32).
    pub fn ones_like(&self) -> Tensor {
        Tensor::ones(self.shape(), &self.device())
    }

    /// `[start, start + step, ...]` up to but excluding `end`, as `torch.arange`.
    ///
    /// # Panics
    /// If `step` is zero or has the wrong sign to reach `end`.
    #[track_caller]
    pub fn arange_step(start: f32, end: f32, step: f32, device: &Device) -> Tensor {
        let len = ((end - start) / step).ceil();
        assert!(step != 0.0 && len >= 0.0, "arange: cannot go from {start} to {end} in steps of {step}");
        let data = (0..len as usize).map(|i| start + i as f32 * step).collect::<Vec<_>>();
        let n = data.len();
        Tensor::created("arange", CpuStorage::F32(data), n.into(), device)
    }

    /// `[start, start + 1, ...]` up to but excluding `end`.
    #[track_caller]
    pub fn arange(start: f32, end: f32, device: &Device) -> Tensor {
        Tensor::arange_step(start, end, 1.0, device)
    }

    /// Uniform samples in `[0, 1)`. Element `i` depends only on `(seed, i)`, so the result is
    /// the same for any number of threads.
    pub fn rand(shape: impl Into<Shape>, seed: Seed, device: &Device) -> Tensor {
        let shape = shape.into();
        let data = (0..shape.numel() as u64).into_par_iter().map(|i| rng::uniform(seed, i)).collect();
        Tensor::created("rand", CpuStorage::F32(data), shape, device)
    }

    /// Standard normal samples (Box–Muller), reproducible for any thread count.
    ///
    /// ```
    /// use deltaw_tensor::{Device, Seed, Tensor};
    /// let a = Tensor::randn((2, 3), Seed(42), &Device::Cpu);
    /// let b = Tensor::randn((2, 3), Seed(42), &Device::Cpu);
    /// assert_eq!(a.to_vec(), b.to_vec());
    /// ```
    pub fn randn(shape: impl Into<Shape>, seed: Seed, device: &Device) -> Tensor {
        let shape = shape.into();
        let data = (0..shape.numel() as u64).into_par_iter().map(|i| rng::normal(seed, i)).collect();
        Tensor::created("randn", CpuStorage::F32(data), shape, device)
    }

    pub fn shape(&self) -> &Shape {
        self.layout.shape()
    }

    pub fn dims(&self) -> &[usize] {
        self.layout.dims()
    }

    /// Size of one dim (negative counts from the end).
    #[track_caller]
    pub fn dim(&self, dim: impl Dim) -> usize {
        self.dims()[dim.resolve(self.rank(), "dim", self.shape())]
    }

    pub fn rank(&self) -> usize {
        self.shape().rank()
    }

    pub fn numel(&self) -> usize {
        self.shape().numel()
    }

    pub fn dtype(&self) -> DType {
        self.storage.dtype()
    }

    pub fn device(&self) -> Device {
        self.storage.device()
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn is_contiguous(&self) -> bool {
        self.layout.is_contiguous()
    }

    /// The buffer behind this tensor: each op matches on it once to pick its backend.
    pub(crate) fn storage(&self) -> &Storage {
        &self.storage
    }

    /// The storage for writing, when no other tensor (a clone or a view) shares it.
    pub(crate) fn storage_mut(&mut self) -> Option<&mut Storage> {
        Arc::get_mut(&mut self.storage)
    }

    /// The host buffer behind this tensor.
    ///
    /// # Panics
    /// On a GPU tensor: ops take their GPU path when their first operand is on a GPU, so this
    /// is reached only when a GPU operand joins CPU ones.
    #[track_caller]
    pub(crate) fn cpu_storage(&self) -> &CpuStorage {
        match self.storage.as_ref() {
            Storage::Cpu(s) => s,
            #[cfg(feature = "gpu")]
            Storage::Gpu(_) => panic!(
                "a tensor on {} was mixed with CPU tensors in one op; move the operands to one device with to_device",
                self.device()
            ),
        }
    }

    /// The device buffer behind this tensor, when it lives on a GPU.
    #[cfg(feature = "gpu")]
    pub(crate) fn gpu_storage(&self) -> Option<&crate::storage::GpuStorage> {
        match self.storage.as_ref() {
            Storage::Gpu(s) => Some(s),
            Storage::Cpu(_) => None,
        }
    }

    /// A host copy of a GPU tensor (waits for the queue); `self` on the CPU.
    ///
    /// # Panics
    /// When the GPU fails (device lost); [`Tensor::to_device`] returns that as an error.
    #[track_caller]
    fn on_host(&self, op: &str) -> Tensor {
        self.to_device(&Device::Cpu).unwrap_or_else(|e| panic!("{op}: {e}"))
    }

    /// A new tensor sharing this storage with another layout (a view).
    pub(crate) fn with_layout(&self, layout: Layout) -> Tensor {
        Tensor::new(self.storage.clone(), layout)
    }

    /// The whole f32 storage buffer (for kernels that walk the layout's strides themselves).
    ///
    /// # Panics
    /// If the dtype is not f32.
    #[track_caller]
    pub(crate) fn f32_storage(&self, op: &str) -> &[f32] {
        match self.cpu_storage() {
            CpuStorage::F32(data) => data,
            _ => panic!(
                "{op}: expects an f32 tensor, got {} of shape {:?}; convert with to_dtype(DType::F32)",
                self.dtype(),
                self.shape()
            ),
        }
    }

    /// The f32 values in row-major order: borrowed when already contiguous, copied otherwise.
    ///
    /// # Panics
    /// If the dtype is not f32 (compute ops take f32; convert with `to_dtype` first).
    #[track_caller]
    pub(crate) fn f32_values(&self, op: &str) -> Cow<'_, [f32]> {
        self.row_major(self.f32_storage(op))
    }

    /// The values as f32 in row-major order without a copy where possible: borrowed from a
    /// contiguous f32 host tensor, copied (gathered, converted or read back from the GPU)
    /// otherwise. For code that only reads the values, e.g. to send them over a network.
    ///
    /// ```
    /// use deltaw_tensor::{Device, Tensor};
    /// use std::borrow::Cow;
    /// let t = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], (2, 2), &Device::Cpu)?;
    /// assert!(matches!(t.values(), Cow::Borrowed([1.0, 2.0, 3.0, 4.0])));
    /// assert_eq!(t.t().values().as_ref(), &[1.0, 3.0, 2.0, 4.0]); // a transposed view: gathered
    /// # Ok::<(), deltaw_tensor::Error>(())
    /// ```
    pub fn values(&self) -> Cow<'_, [f32]> {
        if self.device().is_gpu() || self.dtype() != DType::F32 {
            return Cow::Owned(self.to_vec());
        }
        self.f32_values("values")
    }

    /// The i32 values in row-major order (index tensors).
    #[track_caller]
    pub(crate) fn i32_values(&self, op: &str) -> Cow<'_, [i32]> {
        let CpuStorage::I32(data) = self.cpu_storage() else {
            panic!("{op}: expects an i32 index tensor, got {} of shape {:?}", self.dtype(), self.shape());
        };
        self.row_major(data)
    }

    /// This view's elements of its host buffer `data`, row-major: borrowed when the layout is
    /// contiguous, gathered into a new vector otherwise.
    fn row_major<'a, T: Copy + Default + Send + Sync + 'static>(&self, data: &'a [T]) -> Cow<'a, [T]> {
        if self.is_contiguous() {
            let start = self.layout.offset();
            Cow::Borrowed(&data[start..start + self.numel()])
        } else {
            Cow::Owned(cpu::copy::gather(data, &self.layout))
        }
    }

    /// Copies the values, in row-major order, to a `Vec<f32>` (converting f16/bf16/i32).
    ///
    /// # Panics
    /// When a GPU tensor cannot be read back (device lost); `to_device(&Device::Cpu)` returns
    /// that as an error instead.
    #[track_caller]
    pub fn to_vec(&self) -> Vec<f32> {
        if self.device().is_gpu() {
            return self.on_host("to_vec").to_vec();
        }
        match self.cpu_storage() {
            CpuStorage::F32(_) => self.f32_values("to_vec").into_owned(),
            _ => self.to_vec_of::<f32>(),
        }
    }

    /// Copies the values to a `Vec<T>`, converting element by element through f32.
    #[track_caller]
    pub fn to_vec_of<T: Element>(&self) -> Vec<T> {
        if self.device().is_gpu() {
            return self.on_host("to_vec_of").to_vec_of();
        }
        if self.dtype().quant_type().is_some() {
            // Blocks are widened whole (a strided view of them cannot be gathered first).
            return self.to_dtype(DType::F32).unwrap_or_else(|e| panic!("to_vec_of: {e}")).to_vec_of();
        }
        let c = self.contiguous();
        let start = c.layout.offset();
        let range = start..start + c.numel();
        match c.cpu_storage() {
            CpuStorage::F32(v) => v[range].iter().map(|&x| T::from_f32(x)).collect(),
            CpuStorage::F16(v) => v[range].iter().map(|&x| T::from_f32(x.to_f32())).collect(),
            CpuStorage::BF16(v) => v[range].iter().map(|&x| T::from_f32(x.to_f32())).collect(),
            CpuStorage::I32(v) => v[range].iter().map(|&x| T::from_f32(x as f32)).collect(),
            CpuStorage::Quant { .. } => unreachable!("widened above"),
        }
    }

    /// The values of an i32 tensor (indices) in row-major order.
    ///
    /// # Panics
    /// If the dtype is not i32.
    #[track_caller]
    pub fn to_vec_i32(&self) -> Vec<i32> {
        if self.device().is_gpu() {
            return self.on_host("to_vec_i32").to_vec_i32();
        }
        self.i32_values("to_vec_i32").into_owned()
    }

    /// The single value of a one-element tensor, as f32.
    ///
    /// # Panics
    /// If the tensor does not hold exactly one element.
    #[track_caller]
    pub fn to_scalar(&self) -> f32 {
        assert_eq!(
            self.numel(),
            1,
            "to_scalar: tensor of shape {:?} has {} elements, not 1",
            self.shape(),
            self.numel()
        );
        self.to_vec()[0]
    }

    /// A row-major copy when the layout is not contiguous; otherwise `self` (no copy).
    pub fn contiguous(&self) -> Tensor {
        if self.is_contiguous() {
            return self.clone();
        }
        match self.storage() {
            Storage::Cpu(data) => Tensor::from_cpu(cpu::copy::gather_storage(data, &self.layout), self.shape()),
            #[cfg(feature = "gpu")]
            Storage::Gpu(_) => crate::ops::on_gpu::dense(self, "contiguous"),
        }
    }

    /// Converts the elements to `dtype` (round to nearest for f16/bf16, as PyTorch).
    ///
    /// # Errors
    /// Converting to i32 fails, naming the element, when a value is not an integer in range.
    pub fn to_dtype(&self, dtype: DType) -> Result<Tensor> {
        if dtype == self.dtype() {
            return Ok(self.clone());
        }
        match self.storage() {
            // A strided view of blocks (`Wᵀ` of a quantized W) cannot be gathered element by
            // element: the whole buffer is dequantized and the view taken of the floats.
            Storage::Cpu(data) if self.dtype().quant_type().is_some() && !self.is_contiguous() => {
                let floats = cpu::convert::convert(data, 0..data.len(), DType::F32)?;
                let view = Tensor::new(Arc::new(Storage::Cpu(floats)), self.layout.clone());
                view.contiguous().to_dtype(dtype)
            }
            Storage::Cpu(_) => {
                let c = self.contiguous();
                let start = c.layout.offset();
                let data = cpu::convert::convert(c.cpu_storage(), start..start + c.numel(), dtype)?;
                Ok(Tensor::from_cpu(data, self.shape()))
            }
            #[cfg(feature = "gpu")]
            Storage::Gpu(_) => crate::ops::on_gpu::to_dtype(self, dtype),
        }
    }

    /// Moves (copies) the data to `device`; returns `self` when it is already there. The copy
    /// is row-major (contiguous) whatever this tensor's layout.
    ///
    /// ```
    /// use deltaw_tensor::{Device, Tensor};
    /// let x = Tensor::arange(0.0, 6.0, &Device::Cpu).reshape((2, 3)).t();
    /// assert_eq!(x.to_device(&Device::Cpu)?.to_vec(), x.to_vec());
    /// # Ok::<(), deltaw_tensor::Error>(())
    /// ```
    ///
    /// A quantized tensor moves as its blocks' bytes, unchanged both ways (on a GPU they are
    /// u32 words, the last one zero-padded), so a round trip gives back the same bytes.
    ///
    /// # Errors
    /// When the GPU fails: an upload over the device's buffer limits (naming the size and
    /// the limit), or a lost device; a quantized view that starts inside a block.
    pub fn to_device(&self, device: &Device) -> Result<Tensor> {
        if self.device() == *device {
            return Ok(self.clone());
        }
        match (self.storage.as_ref(), device) {
            // Blocks are uploaded whole: a view must start on one (its bytes start there).
            #[cfg(feature = "gpu")]
            (Storage::Cpu(_), Device::Gpu(_))
                if self
                    .dtype()
                    .quant_type()
                    .is_some_and(|ty| !self.layout.offset().is_multiple_of(ty.block_elems())) =>
            {
                Err(Error::BadTensor {
                    tensor: format!("{} {:?}", self.dtype(), self.shape()),
                    message: format!("the view starts at element {}, inside a block", self.layout.offset()),
                })
            }
            #[cfg(feature = "gpu")]
            (Storage::Cpu(_), Device::Gpu(ctx)) => {
                let c = self.contiguous();
                let start = c.dtype().bytes_for(c.layout.offset());
                let bytes = &c.cpu_storage().as_bytes()[start..start + c.dtype().bytes_for(c.numel())];
                let storage = crate::storage::GpuStorage::upload(ctx, bytes, c.dtype(), c.numel())?;
                Ok(Tensor::new(Arc::new(Storage::Gpu(storage)), Layout::contiguous(self.shape().clone())))
            }
            #[cfg(feature = "gpu")]
            (Storage::Gpu(_), _) => {
                let dense = crate::ops::on_gpu::dense(self, "to_device");
                // A dense view may be a prefix of its buffer: read just its elements.
                let host = dense.gpu_storage().expect("dense keeps the device").download(self.numel())?;
                Tensor::from_cpu(host, self.shape()).to_device(device)
            }
            // Host to host is the early return above.
            (Storage::Cpu(_), Device::Cpu) => unreachable!("same device"),
        }
    }

    /// Bytes of element data held by this tensor's storage, on whichever device: elements ×
    /// the dtype's size (2 for bf16 / f16, 4 for f32 and i32; blocks for a quantized type). A view reports its whole
    /// buffer, which it shares. A bf16 `(4096, 4096)` weight holds 32 MiB, half its f32 copy.
    pub fn storage_bytes(&self) -> usize {
        let elements = match self.storage.as_ref() {
            Storage::Cpu(s) => s.len(),
            #[cfg(feature = "gpu")]
            Storage::Gpu(s) => s.len,
        };
        self.dtype().bytes_for(elements)
    }

    /// True when both tensors share the same storage buffer (one is a view of the other).
    pub fn shares_storage_with(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.storage, &other.storage)
    }
}
