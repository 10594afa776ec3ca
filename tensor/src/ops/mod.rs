//! The op front end: validates shapes and dims (panicking with the op name and both shapes on
//! misuse), resolves broadcasting and views, then calls a backend kernel.

mod arith;
mod backward;
mod elementwise;
mod index;
mod matmul;
mod nn;
mod optim;
mod reduce;
mod views;

pub use nn::LayerNormOutput;
