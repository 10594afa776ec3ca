//! Per-thread, cache-line-aligned buffers for packed panels, reused across GEMM calls.

use std::cell::Cell;
use std::thread::LocalKey;

/// A 64-byte-aligned run of 16 floats, so packed panels start on a cache line and the
/// kernels' vector loads never straddle two lines.
#[repr(C, align(64))]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct CacheLine([f32; 16]);

/// A thread's reusable buffer.
pub(crate) type Slot = LocalKey<Cell<Vec<CacheLine>>>;

thread_local! {
    /// The packed A slab of the GEMMs this thread calls.
    pub(crate) static A_PACK: Cell<Vec<CacheLine>> = const { Cell::new(Vec::new()) };
    /// The packed B block of the GEMMs this thread calls.
    pub(crate) static B_PACK: Cell<Vec<CacheLine>> = const { Cell::new(Vec::new()) };
}

/// Runs `f` on a 64-byte-aligned scratch slice of `len` floats, reusing this thread's buffer
/// across calls (so small GEMMs do not pay for fresh pages every time). The buffer is taken
/// out of its slot meanwhile: a nested GEMM (a rayon task that itself calls sgemm while this
/// thread waits) finds the slot empty and allocates its own instead of aliasing this one.
pub(crate) fn with_scratch<R>(slot: &'static Slot, len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    let mut buf = slot.take();
    if buf.len() * 16 < len {
        buf = Vec::new(); // free the old one first rather than copying it while growing
        buf.resize(len.div_ceil(16), CacheLine([0.0; 16]));
    }
    let floats: &mut [f32] = bytemuck::cast_slice_mut(&mut buf);
    let result = f(&mut floats[..len]);
    slot.set(buf);
    result
}
