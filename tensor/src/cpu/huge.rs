//! Transparent huge pages for weight buffers.
//!
//! Decoding streams every weight once per token: gigabytes a second through the TLB. With 4 KiB
//! pages that is a page walk every 4 KiB; with 2 MiB pages, one every 2 MiB. On Linux with
//! transparent huge pages set to `madvise` (the common default), the kernel gives a mapping
//! huge pages only where `madvise(MADV_HUGEPAGE)` asked before the pages were first touched.
//! On the 2-core AMD EPYC (Zen 5) this was written on, two threads summing a 2 GB buffer read
//! 45–47 GB/s with huge pages against 40–42 GB/s without (alternating, same process), and
//! greedy decoding at the Qwen2.5-0.5B shape in f32 gained 1–2% in paired runs.
//!
//! Advice only: where the kernel has no huge pages to give, or on other systems, nothing
//! changes. `DELTAW_THP=0` turns it off (to compare).

/// Smallest buffer worth advising: two huge pages (a buffer's 2 MiB-aligned interior is what
/// the advice can cover, and smaller ones have little or none).
const MIN_BYTES: usize = 4 << 20;

/// `n` zeros of `T` in a fresh allocation advised for huge pages before its first touch: for
/// buffers a loader is about to fill with weights.
///
/// ```
/// let v: Vec<f32> = deltaw_tensor::cpu::huge::zeroed(3 << 20);
/// assert!(v.len() == 3 << 20 && v.iter().all(|&x| x == 0.0));
/// ```
pub fn zeroed<T: bytemuck::Zeroable>(n: usize) -> Vec<T> {
    // A zeroed allocation (`alloc_zeroed`, calloc), not `vec![T::zeroed(); n]`, which writes
    // every element of a type the standard library does not know to be all-zero (bf16, f16).
    // This large, the allocator maps fresh pages that nothing has touched, so the advice comes
    // first; a recycled heap chunk is cleared by the allocator and keeps its small pages.
    let v = bytemuck::allocation::zeroed_vec(n);
    advise(&v);
    v
}

/// Asks the kernel to back the 2 MiB-aligned interior of `v`'s buffer with huge pages. Pages
/// already touched keep their size; later first touches fault in 2 MiB at a time.
fn advise<T>(v: &[T]) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let bytes = std::mem::size_of_val(v);
        if bytes < MIN_BYTES || std::env::var_os("DELTAW_THP").is_some_and(|s| s == "0") {
            return;
        }
        let start = v.as_ptr() as usize;
        let (first, end) = (start.next_multiple_of(HUGE), (start + bytes) / HUGE * HUGE);
        if end > first {
            // SAFETY: madvise changes how the range is backed, never its contents, and the
            // range lies inside `v`'s allocation. A failure (no THP support) is harmless.
            unsafe { libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE) };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = v;
}

#[cfg(test)]
mod tests {
    #[test]
    fn zeroed_buffers_are_zero_and_writable_at_every_size() {
        for n in [0, 1, 4 << 20, (5 << 20) + 3] {
            let mut v: Vec<u8> = super::zeroed(n);
            assert!(v.len() == n && v.capacity() == n && v.iter().all(|&b| b == 0));
            v.iter_mut().for_each(|b| *b = 7);
            assert!(v.iter().all(|&b| b == 7));
        }
        let h: Vec<half::bf16> = super::zeroed(3 << 20);
        assert!(h.iter().all(|x| x.to_bits() == 0));
    }
}
