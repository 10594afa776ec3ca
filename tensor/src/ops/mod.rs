//! The op front end: validates shapes and dims (panicking with the op name and both shapes on
//! misuse), resolves broadcasting and views, then calls a backend kernel.

mod arith;
mod attention;
mod backward;
mod elementwise;
mod index;
mod matmul;
mod nn;
#[cfg(feature = "gpu")]
pub(crate) mod on_gpu;
mod optim;
mod reduce;
mod topk;
mod views;

pub use attention::AttentionOutput;
pub use nn::LayerNormOutput;
pub use topk::TopK;
