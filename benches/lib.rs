//! Shared setup for the benchmarks and the comparison examples.

pub mod generation;
pub mod minilm;
pub mod sft;
