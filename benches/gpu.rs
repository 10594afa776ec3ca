//! Shared setup for the GPU benches: opening the adapter (or skipping), capping the sizes on
//! software adapters, and waiting for the queue.
//!
//! GPU timings must wait for the queue, or they time only the submission: [`wait`] submits
//! and polls the device until the work is done.

use deltaw_tensor::gpu::{GpuContext, GpuOptions};

/// The environment variable that caps the matrix sizes of `sgemm_gpu`.
pub const MAX_N_VAR: &str = "DELTAW_BENCH_MAX_N";

/// The size cap on a CPU adapter (lavapipe, SwiftShader, WARP): at about 1 GFLOP/s one 2048³
/// product takes some 17 s.
pub const CPU_ADAPTER_MAX_N: usize = 512;

/// Opens the adapter that [`GpuOptions::default`] picks (`WGPU_BACKEND`, `DELTAW_GPU_ADAPTER`)
/// and names it on stderr; `None`, with a notice, when there is no usable adapter, so that
/// `cargo bench` still succeeds on a machine without a GPU.
pub fn open_or_skip(bench: &str) -> Option<GpuContext> {
    match GpuContext::new(&GpuOptions::default()) {
        Ok(ctx) => {
            eprintln!("{bench}: adapter {:?}, f16 kernels: {}", ctx.adapter_name(), ctx.has_f16());
            Some(ctx)
        }
        Err(e) => {
            eprintln!("{bench}: skipped, no usable GPU adapter: {e}");
            None
        }
    }
}

/// The largest matrix size to run: `DELTAW_BENCH_MAX_N` when set, else
/// [`CPU_ADAPTER_MAX_N`] on a software adapter ([`GpuContext::is_software`]) and no cap
/// otherwise.
///
/// # Panics
/// If `DELTAW_BENCH_MAX_N` is set but is not a positive integer (a typo must not silently
/// start a 2048³ run on a software rasteriser).
pub fn max_n(ctx: &GpuContext) -> usize {
    if let Ok(value) = std::env::var(MAX_N_VAR) {
        return match value.trim().parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => panic!("{MAX_N_VAR}={value:?}: expected a positive integer"),
        };
    }
    if ctx.is_software() {
        CPU_ADAPTER_MAX_N
    } else {
        usize::MAX
    }
}

/// Blocks until the GPU has finished everything queued so far.
///
/// # Panics
/// If the device is lost or wgpu reports an error: a bench cannot go on from either.
pub fn wait(ctx: &GpuContext) {
    if let Err(e) = ctx.synchronize() {
        panic!("gpu bench: waiting for the queue failed on {:?}: {e}", ctx.adapter_name());
    }
}
