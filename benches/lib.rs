//! Shared setup for the benchmarks and the comparison examples.

pub mod sft;
