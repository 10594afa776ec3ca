//! Recycling of large f32 output buffers.
//!
//! Every op returns a new tensor, and a fresh multi-megabyte allocation is expensive: the
//! allocator hands out new pages from the OS, and the first write to each 4 KiB page faults.
//! Measured on an 8 M-float copy, writing into a fresh buffer ran at a third of the speed of
//! writing into a reused one. So when a large f32 storage is dropped its `Vec` is kept here,
//! and the next output of the same length takes it back instead of allocating.
//!
//! Bounded: at most [`MAX_POOLED_BYTES`] are held, and buffers below [`MIN_BYTES`] are left
//! to the allocator, which recycles small blocks well on its own. A recycled buffer holds its
//! old values, so [`take`] is only for kernels that overwrite every element.

use std::collections::HashMap;
use std::sync::Mutex;

/// Buffers smaller than this go straight back to the allocator.
pub const MIN_BYTES: usize = 1 << 20;
/// The most memory the pool keeps alive.
pub const MAX_POOLED_BYTES: usize = 512 << 20;

struct Pool {
    by_len: HashMap<usize, Vec<Vec<f32>>>,
    bytes: usize,
}

static POOL: Mutex<Option<Pool>> = Mutex::new(None);

/// A buffer of `len` f32 whose contents are unspecified (zeros or a recycled tensor's values):
/// the caller must write every element.
pub fn take(len: usize) -> Vec<f32> {
    reuse(len).unwrap_or_else(|| vec![0.0; len])
}

/// A buffer of `len` zeros: a recycled one cleared when the pool has one (its pages are
/// already the process's), a fresh zeroed allocation otherwise (whose pages the OS maps on
/// first touch, so a mostly-untouched buffer costs little).
pub fn take_zeroed(len: usize) -> Vec<f32> {
    match reuse(len) {
        Some(mut buf) => {
            buf.fill(0.0);
            buf
        }
        None => vec![0.0; len],
    }
}

/// A pooled buffer of exactly `len` f32, if the pool holds one.
fn reuse(len: usize) -> Option<Vec<f32>> {
    if len * 4 < MIN_BYTES {
        return None;
    }
    let mut guard = POOL.lock().unwrap_or_else(|e| e.into_inner());
    let pool = guard.as_mut()?;
    let buf = pool.by_len.get_mut(&len).and_then(Vec::pop)?;
    pool.bytes -= len * 4;
    Some(buf)
}

/// Offers a buffer back for reuse; it is freed instead when small or when the pool is full.
pub fn give_back(buf: Vec<f32>) {
    let len = buf.len();
    if len * 4 < MIN_BYTES || buf.capacity() != len {
        return;
    }
    let mut guard = POOL.lock().unwrap_or_else(|e| e.into_inner());
    let pool = guard.get_or_insert_with(|| Pool { by_len: HashMap::new(), bytes: 0 });
    if pool.bytes + len * 4 <= MAX_POOLED_BYTES {
        pool.bytes += len * 4;
        pool.by_len.entry(len).or_default().push(buf);
    }
}

/// Frees every pooled buffer (e.g. after a large one-off computation, before measuring RSS).
pub fn clear() {
    if let Some(pool) = POOL.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        pool.by_len.clear();
        pool.bytes = 0;
    }
}

/// Bytes currently held for reuse (for tests and memory reports).
pub fn pooled_bytes() -> usize {
    POOL.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map_or(0, |p| p.bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_buffers_are_reused_and_small_ones_are_not() {
        let len = MIN_BYTES; // 4 MiB of f32
        let mut buf = take(len);
        buf[0] = 42.0;
        let ptr = buf.as_ptr();
        give_back(buf);
        assert!(pooled_bytes() >= len * 4);
        let again = take(len);
        assert_eq!(again.as_ptr(), ptr, "the same allocation comes back");
        give_back(vec![1.0; 16]);
        give_back(again);
        // A recycled buffer (if this test got it back before a parallel test took it) comes
        // back cleared from take_zeroed.
        assert!(take_zeroed(len).iter().all(|&x| x == 0.0));
        clear(); // other tests run in parallel, so no exact count is asserted after this
    }
}
