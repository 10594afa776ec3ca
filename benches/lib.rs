//! Shared setup for the benchmarks and the comparison examples.

#![forbid(unsafe_code)]

pub mod generation;
#[cfg(feature = "gpu")]
pub mod gpu;
pub mod llama;
pub mod minilm;
pub mod sft;

/// The environment variable that moves the GPT-2 step and generation benches to the GPU.
pub const DEVICE_VAR: &str = "DELTAW_BENCH_DEVICE";

/// What `DELTAW_BENCH_DEVICE` names ("cpu" when unset), for the benches' JSON lines.
pub fn bench_device_name() -> String {
    std::env::var(DEVICE_VAR).unwrap_or_else(|_| "cpu".into())
}

/// Turns the per-op profiler on when `DELTAW_PROFILE=1` (call it after the warm-up, so only
/// the timed part is profiled; the timings then include the profiler's own small cost).
/// Returns whether it is on, for [`profile_finish`].
pub fn profile_start() -> bool {
    deltaw_tensor::profile::enable_from_env()
}

/// When `profiling`: the op table on stderr and the timeline in `deltaw-profile.json`.
///
/// # Panics
/// If the timeline cannot be written.
pub fn profile_finish(profiling: bool) {
    if let Some(report) = deltaw_tensor::profile::report().filter(|_| profiling) {
        eprint!("{report}");
        deltaw_tensor::profile::write_chrome_trace("deltaw-profile.json".as_ref())
            .expect("writing deltaw-profile.json");
    }
}

/// The device of the GPT-2 step and generation benches: the CPU, or with
/// `DELTAW_BENCH_DEVICE=gpu` the adapter that `Device::gpu` picks (`benches/gpu_device.sh`).
///
/// # Panics
/// If the variable names something else, or no GPU adapter opens: a figure from the wrong
/// device must not be printed.
pub fn bench_device() -> deltaw_tensor::Device {
    match std::env::var(DEVICE_VAR).as_deref() {
        Err(_) | Ok("cpu") => deltaw_tensor::Device::Cpu,
        #[cfg(feature = "gpu")]
        Ok("gpu") => deltaw_tensor::Device::gpu().unwrap_or_else(|e| panic!("{DEVICE_VAR}=gpu: {e}")),
        #[cfg(not(feature = "gpu"))]
        Ok("gpu") => panic!("{DEVICE_VAR}=gpu: build deltaw-benches with --features gpu"),
        Ok(other) => panic!("{DEVICE_VAR}={other:?}: expected cpu or gpu"),
    }
}

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
