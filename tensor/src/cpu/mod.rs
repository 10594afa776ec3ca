//! The CPU backend: kernels over host buffers, parallel with rayon. The front end (`ops/`)
//! hands them contiguous data or explicit strides plus small dimension structs.

pub mod attention;
pub mod convert;
pub mod copy;
pub mod elementwise;
pub mod gemm;
pub mod index;
pub mod llama;
pub mod math;
pub mod nn;
pub mod optim;
pub mod pool;
pub mod qdot;
pub mod reduce;
pub mod simd;
pub mod strided;
pub mod topk;
