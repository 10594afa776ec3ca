//! Shared setup for the benchmarks and the comparison examples.

#![forbid(unsafe_code)]

pub mod generation;
#[cfg(feature = "gpu")]
pub mod gpu;
pub mod llama;
pub mod minilm;
pub mod sft;

/// Deterministic values in [-1, 1) from a xorshift32 stream seeded by `seed`, for the GEMM
/// benches' matrices (CPU and GPU alike): the timing does not depend on them, only
/// reproducibility.
pub fn filled(len: usize, seed: u32) -> Vec<f32> {
    let mut state = seed.wrapping_mul(2_654_435_761).max(1);
    (0..len)
        .map(|_| {
            // xorshift32
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 8) as f32 / (1u32 << 23) as f32 - 1.0
        })
        .collect()
}
