//! The op front end: validates shapes and dims (panicking with the op name and both shapes on
//! misuse), resolves broadcasting and views, then calls a backend kernel with one `match` on
//! the storage of its first operand:
//!
//! ```ignore
//! match x.storage() {
//!     Storage::Cpu(_) => Tensor::from_f32(cpu::nn::softmax_forward(&x.f32_values(op), c), x.shape()),
//!     #[cfg(feature = "gpu")]
//!     Storage::Gpu(_) => on_gpu::softmax_rows(x, c, false, op),
//! }
//! ```
//!
//! Each file keeps an op family's forward and backward side by side (`nn.rs`: softmax,
//! layer norm and cross-entropy with their `_backward`s; `index.rs`: gathers with their
//! scatter-adds); `on_gpu/` holds the GPU arms in files of the same names.

mod arith;
mod attention;
mod elementwise;
mod in_place;
mod index;
mod llama;
mod matmul;
mod matmul_many;
mod nn;
#[cfg(feature = "gpu")]
pub(crate) mod on_gpu;
mod optim;
mod quant;
mod reduce;
mod topk;
mod views;

pub use attention::AttentionOutput;
pub use llama::RmsNormOutput;
pub use matmul::MatmulVectors;
pub use nn::LayerNormOutput;
pub use topk::TopK;
