//! The wgpu backend: kernels from `deltaw-shaders` run on `GpuBuffer`s (feature `gpu`).
//!
//! The steps of wgpu's hello_compute, each in one small named place:
//! - [`GpuContext`] (`context.rs`): instance → adapter → device and queue, with the adapter's
//!   real limits and SHADER_F16 when it has it.
//! - [`GpuBuffer`] (`pool.rs`): storage buffers recycled by size class.
//! - pipelines (`pipelines.rs`): one compute pipeline per [`deltaw_shaders::Kernel`], compiled
//!   on first use.
//! - launches (`launch.rs`): bind group + uniform params + dispatch, recorded into a pending
//!   command encoder and submitted in batches; [`GpuContext::read_back`] is the only wait.
//! - kernels (`elementwise.rs`, `reduce.rs`, `nn.rs`, `index.rs`, `matmul.rs`, `convert.rs`, `topk.rs`, and
//!   for training `backward.rs`, `optim.rs`): one function per kernel family, mirroring the CPU
//!   kernels in [`crate::cpu`] on contiguous or strided buffers.
//!
//! ```no_run
//! use deltaw_tensor::gpu::{self, GpuContext, GpuOptions};
//! use deltaw_tensor::{Layout, UnaryOp};
//! let ctx = GpuContext::new(&GpuOptions::default())?;
//! let x = ctx.upload(&[1.0f32, -2.0, 3.0])?;
//! let y = gpu::unary(&ctx, UnaryOp::Relu, &x, &Layout::contiguous(3))?;
//! assert_eq!(ctx.read_back::<f32>(&y, 3)?, vec![1.0, 0.0, 3.0]);
//! # Ok::<(), deltaw_tensor::gpu::GpuError>(())
//! ```

mod backward;
mod context;
mod convert;
mod elementwise;
mod error;
mod index;
mod launch;
mod matmul;
mod nn;
mod optim;
mod pipelines;
mod pool;
mod reduce;
mod topk;

pub use backward::{
    cross_entropy_backward, gelu_backward, gelu_tanh_backward, index_add, layer_norm_backward, log_softmax_backward,
    scatter_add, softmax_backward, GpuLayerNormGrads,
};
pub use context::{GpuContext, GpuOptions};
pub use convert::{
    bf16_to_f32, f16_to_f32, f32_to_bf16, f32_to_f16, f32_to_i32, f32_to_i32_flagged, f32_to_i32_unchecked, i32_to_f32,
};
pub use elementwise::{binary, copy_strided, select_where, unary};
pub use error::GpuError;
pub use index::{cat, gather, index_select};
pub use matmul::{matmul, matmul_f16, MatmulArgs};
pub use nn::{cross_entropy, layer_norm, log_softmax, softmax, GpuLayerNorm};
pub use optim::{adamw_update, GpuAdamW};
pub use pool::{GpuBuffer, PoolStats};
pub use reduce::reduce;
pub use topk::{topk, GpuTopK};
