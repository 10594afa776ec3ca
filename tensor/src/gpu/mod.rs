//! The wgpu backend (feature `gpu`): what an embedder needs is [`GpuContext`] (with
//! [`GpuOptions`] and [`GpuError`]), usually through `Device::gpu()`; tensors on that device run
//! every op here.
//!
//! The steps of wgpu's hello_compute, each in one small named place:
//! - `context.rs`: instance → adapter → device and queue, with the adapter's real limits and
//!   SHADER_F16 when it has it.
//! - `pool.rs`: storage buffers recycled by size class.
//! - `pipelines.rs`: one compute pipeline per [`deltaw_shaders::Kernel`], compiled on first use.
//! - `launch.rs`: bind group + uniform params + dispatch, recorded into a pending command
//!   encoder and submitted in batches; reading back is the only wait.
//! - kernels (`elementwise.rs`, `reduce.rs`, `nn.rs`, `llama.rs` (RMSNorm, rope, SwiGLU), `index.rs`, `matmul.rs`, `convert.rs`,
//!   `quant.rs` (block-quantized weights), `topk.rs`, and for training `optim.rs`): one file per kernel family, each forward beside
//!   its backward, mirroring the CPU kernels on contiguous or strided buffers.
//!
//! ```no_run
//! use deltaw_tensor::{Device, Tensor};
//! let dev = Device::gpu()?; // the first adapter wgpu finds
//! let x = Tensor::from_vec(vec![1.0f32, -2.0, 3.0], 3, &dev)?;
//! assert_eq!(x.relu().to_vec(), vec![1.0, 0.0, 3.0]); // computed on the GPU, then read back
//! # Ok::<(), deltaw_tensor::Error>(())
//! ```

mod context;
mod convert;
mod elementwise;
mod error;
mod index;
mod launch;
mod llama;
mod matmul;
mod nn;
mod optim;
mod pipelines;
mod pool;
mod quant;
mod reduce;
mod topk;

pub use context::{GpuContext, GpuOptions};
pub use error::GpuError;

// The raw kernel launches on `GpuBuffer`s, mirroring `crate::cpu`: not part of the API, public
// (and hidden from the docs) only for the crate's benches, examples and kernel tests. Tensors
// reach them through their ops.
#[doc(hidden)]
pub use convert::{
    bf16_to_f32, f16_to_f32, f32_to_bf16, f32_to_f16, f32_to_i32, f32_to_i32_flagged, f32_to_i32_unchecked, i32_to_f32,
};
#[doc(hidden)]
pub use elementwise::{binary, copy_strided, gelu_backward, gelu_tanh_backward, select_where, unary};
#[doc(hidden)]
pub use index::{cat, gather, index_add, index_select, scatter_add};
#[doc(hidden)]
pub use llama::{rms_norm, rms_norm_backward, rope, swiglu, swiglu_backward, GpuRmsNorm, GpuRmsNormGrads};
#[doc(hidden)]
pub use matmul::{matmul, matmul_f16, matmul_w16, MatmulArgs};
#[doc(hidden)]
pub use nn::{
    cross_entropy, cross_entropy_backward, layer_norm, layer_norm_backward, log_softmax, log_softmax_backward, softmax,
    softmax_backward, GpuLayerNorm, GpuLayerNormGrads,
};
#[doc(hidden)]
pub use optim::{adamw_update, GpuAdamW};
#[doc(hidden)]
pub use pool::{GpuBuffer, PoolStats};
#[doc(hidden)]
pub use quant::{dequantize, quant_gather_rows, quant_matmul, QuantRows, GEMV_MAX_ROWS};
#[doc(hidden)]
pub use reduce::reduce;
#[doc(hidden)]
pub use topk::{topk, GpuTopK};
