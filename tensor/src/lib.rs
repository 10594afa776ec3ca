//! # deltaw-tensor
//!
//! N-dimensional tensors with shapes, strides and NumPy broadcasting, on a CPU backend that
//! runs every kernel in parallel with rayon and multiplies matrices with its own SIMD GEMM.
//!
//! ```
//! use deltaw_tensor::{Device, Seed, Tensor};
//! let dev = Device::Cpu;
//! let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], (2, 3), &dev)?; // length checked
//! let b = Tensor::randn((3, 4), Seed(7), &dev);   // reproducible for any thread count
//! let c = a.matmul(&b);                            // (2, 4)
//! let p = (&c * 2.0).softmax(-1);                  // dims may be negative, as in PyTorch
//! let v: Vec<f32> = p.to_vec();
//! assert_eq!(v.len(), 8);
//! assert!((p.sum(-1).to_vec()[0] - 1.0).abs() < 1e-6);
//! # Ok::<(), deltaw_tensor::Error>(())
//! ```
//!
//! ## Design
//! - A [`Tensor`] is shared storage (`Arc`) plus a [`Layout`] (shape, strides, offset). Views —
//!   `reshape` of contiguous data, `transpose`, `permute`, `narrow`, `expand` — never copy;
//!   `contiguous()` copies only when needed.
//! - Compute is f32. f16 and bf16 are storage types ([`Tensor::to_dtype`]); i32 holds indices.
//! - Data from outside (lengths, files, conversions) returns [`Result`]; API misuse (shapes
//!   that do not fit, dims out of range) panics with the op name and the shapes.
//! - Kernels live in the crate's `cpu` module: elementwise maps over coalesced strided operands,
//!   row-parallel reductions and nn kernels, and a packed, cache-blocked GEMM with an AVX-512 /
//!   AVX2+FMA / NEON micro-kernel chosen at run time.
//! - With the `gpu` feature (on by default), `Device::gpu()` opens a wgpu device and the same
//!   ops run there: `gpu` holds the [`gpu::GpuContext`] and the launches of the WGSL kernels of
//!   `deltaw-shaders`, the pipeline cache and the buffer pool. Each op validates its shapes,
//!   then matches once on its first operand's storage and runs the CPU or the GPU kernel;
//!   nothing falls back to the CPU inside a GPU op.
//! - Op descriptors ([`UnaryOp`], [`BinaryOp`], [`ReduceOp`], [`AdamWScalars`]) are
//!   device-neutral: both backends read them.

/// The raw CPU kernels over host slices. Not part of the API: public (and hidden from the
/// docs) only for the crate's benches, examples and kernel tests; use [`Tensor`]'s ops.
pub mod atomic;
#[doc(hidden)]
pub mod cpu;
mod device;
mod display;
mod dtype;
mod error;
pub mod gguf;
#[cfg(feature = "gpu")]
pub mod gpu;
mod kinds;
mod layout;
mod ops;
pub mod profile;
pub mod quant;
mod rng;
pub mod safetensors;
mod safetensors_stream;
mod shape;
mod storage;
mod tensor;

pub use device::Device;
pub use dtype::{DType, Element};
pub use error::{Error, Result};
pub use kinds::{AdamWScalars, BinaryOp, ReduceDims, ReduceOp, UnaryOp};
pub use layout::{Layout, StridedOffsets};
pub use ops::{AttentionOutput, LayerNormOutput, MatmulVectors, RmsNormOutput, TopK};
pub use quant::QuantType;
pub use rng::{mix64, Seed};
pub use shape::{Dim, Shape};
#[doc(hidden)]
pub use storage::CpuStorage;
pub use storage::IntoStorage;
pub use tensor::Tensor;

/// The README's examples, compiled and run as doc tests so they stay true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
