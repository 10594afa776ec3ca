//! Shared setup for the benchmarks and the comparison examples.

pub mod generation;
#[cfg(feature = "gpu")]
pub mod gpu;
pub mod minilm;
pub mod sft;
