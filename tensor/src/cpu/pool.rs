//! Recycling of large f32 output buffers.
//!
//! Every op returns a new tensor, and a fresh multi-megabyte allocation is expensive: the
//! allocator hands out new pages from the OS, and the first write to each 4 KiB page faults.
//! Measured on an 8 M-float copy, writing into a fresh buffer ran at a third of the speed of
//! writing into a reused one. So when a large f32 storage is dropped its `Vec` is kept here,
//! and the next output of the same length takes it back instead of allocating.
//!
//! Idle buffers do not pile up: a request the pool cannot serve first frees as many pooled
//! bytes as it asks for, taken from the buffers idle longest among those that have sat through
//! the last [`STALE_EVENTS`] takes and gives (sizes the work stopped asking for, such as a
//! previous model's or a one-off computation's), before allocating. A loop that keeps asking
//! for the same sizes keeps them all, so the pool can be large ([`MAX_POOLED_BYTES`]): a
//! training loop allocates the same sizes every step, and once the first step has given them
//! back, later steps take every large buffer from the pool and ask the OS for no new pages
//! (`benches/examples/sft_step.rs` reports the page faults, the system time and the pool's
//! reuse per step). Buffers below [`MIN_BYTES`] are left to the allocator, which recycles
//! small blocks well on its own (below 128 KiB glibc's malloc keeps them in its heap; above, it
//! maps fresh pages for each). A recycled buffer holds its old values, so [`take`] is only for
//! kernels that overwrite every element.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Requests of at least [`MIN_BYTES`] served from the pool, and those it had to allocate.
static HITS: AtomicU64 = AtomicU64::new(0);
static MISSES: AtomicU64 = AtomicU64::new(0);
static MISSED_BYTES: AtomicU64 = AtomicU64::new(0);

/// Counts of the large requests so far: `(served from the pool, allocated, bytes allocated)`.
/// A steady-state training step should allocate nothing.
pub fn stats() -> (u64, u64, u64) {
    (HITS.load(Ordering::Relaxed), MISSES.load(Ordering::Relaxed), MISSED_BYTES.load(Ordering::Relaxed))
}

/// Buffers smaller than this go straight back to the allocator.
pub const MIN_BYTES: usize = 128 << 10;
/// The most memory the pool keeps alive: a bound on what an idle process holds once a large
/// job is done, not on peak memory (see the module docs).
pub const MAX_POOLED_BYTES: usize = 4 << 30;
/// Pool events (takes and gives of large buffers) a buffer must sit through unused before a
/// miss may free it: a few training steps' worth for small models, so a steady loop never
/// frees what its next step takes.
pub const STALE_EVENTS: u64 = 2048;

/// Pooled buffers by length, each list oldest first, with the tick each was given back at.
#[derive(Default)]
struct Pool {
    by_len: HashMap<usize, Vec<(u64, Vec<f32>)>>,
    bytes: usize,
    tick: u64,
}

impl Pool {
    /// Frees the longest-idle buffers, of those idle for over [`STALE_EVENTS`], until `want`
    /// bytes are freed or none is left.
    fn evict(&mut self, want: usize) {
        let mut freed = 0;
        let stale = self.tick.saturating_sub(STALE_EVENTS);
        while freed < want {
            let oldest = self.by_len.iter().filter_map(|(&len, list)| list.first().map(|(t, _)| (*t, len))).min();
            let Some((_, len)) = oldest.filter(|&(t, _)| t < stale) else { break };
            let list = self.by_len.get_mut(&len).expect("the length was just found");
            list.remove(0);
            if list.is_empty() {
                self.by_len.remove(&len);
            }
            self.bytes -= len * 4;
            freed += len * 4;
        }
    }
}

static POOL: Mutex<Option<Pool>> = Mutex::new(None);

/// A buffer of `len` f32 whose contents are unspecified (zeros or a recycled tensor's values):
/// the caller must write every element.
pub fn take(len: usize) -> Vec<f32> {
    reuse(len).unwrap_or_else(|| vec![0.0; len])
}

/// [`take`] for any element type: pooled for f32, a fresh buffer otherwise (the generic
/// kernels, copies and gathers, run mostly on f32). `T` is told apart by a downcast of a slot
/// on the stack: no allocation, and no pool lock for other types.
pub fn take_any<T: Copy + Default + 'static>(len: usize) -> Vec<T> {
    let mut slot: Option<Vec<T>> = None;
    if let Some(f32_slot) = (&mut slot as &mut dyn std::any::Any).downcast_mut::<Option<Vec<f32>>>() {
        *f32_slot = Some(take(len));
    }
    slot.unwrap_or_else(|| vec![T::default(); len])
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

/// A pooled buffer of exactly `len` f32, the most recently given back (its pages are the most
/// likely still in cache), if the pool holds one. On a miss, frees as many pooled bytes as
/// the caller is about to allocate.
fn reuse(len: usize) -> Option<Vec<f32>> {
    if len * 4 < MIN_BYTES {
        return None;
    }
    let mut guard = POOL.lock().unwrap_or_else(|e| e.into_inner());
    let pool = guard.get_or_insert_with(Pool::default);
    pool.tick += 1;
    let Some(list) = pool.by_len.get_mut(&len) else {
        MISSES.fetch_add(1, Ordering::Relaxed);
        MISSED_BYTES.fetch_add(len as u64 * 4, Ordering::Relaxed);
        pool.evict(len * 4);
        return None;
    };
    HITS.fetch_add(1, Ordering::Relaxed);
    let (_, buf) = list.pop().expect("empty lists are removed");
    if list.is_empty() {
        pool.by_len.remove(&len);
    }
    pool.bytes -= len * 4;
    Some(buf)
}

thread_local! {
    /// Set inside [`unpooled`]: buffers dropped on this thread go straight to the allocator.
    static BYPASS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with buffers dropped on this thread freed at once instead of pooled: for one-off
/// work whose sizes nothing later asks for (a checkpoint's f32 tensors quantized as they load),
/// which would otherwise only hold memory until the pool's longest-idle buffers are freed.
pub fn unpooled<R>(f: impl FnOnce() -> R) -> R {
    super::with_flag(&BYPASS, f)
}

/// Offers a buffer back for reuse; it is freed instead when small or when the pool is full.
pub fn give_back(buf: Vec<f32>) {
    let len = buf.len();
    if len * 4 < MIN_BYTES || buf.capacity() != len || BYPASS.with(std::cell::Cell::get) {
        return;
    }
    let mut guard = POOL.lock().unwrap_or_else(|e| e.into_inner());
    let pool = guard.get_or_insert_with(Pool::default);
    if pool.bytes + len * 4 <= MAX_POOLED_BYTES {
        pool.bytes += len * 4;
        pool.tick += 1;
        let tick = pool.tick;
        pool.by_len.entry(len).or_default().push((tick, buf));
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

    #[test]
    fn a_miss_frees_the_longest_idle_stale_buffers_first_and_at_least_what_it_asks() {
        // A pool of its own: the global one is shared with tests running in parallel.
        let mut pool = Pool::default();
        let recent = 3 * STALE_EVENTS;
        for (tick, len) in [(1, 300_000), (2, 400_000), (3, 300_000), (4, 500_000), (recent, 600_000)] {
            pool.by_len.entry(len).or_default().push((tick, vec![0.0; len]));
            pool.bytes += len * 4;
        }
        pool.tick = recent + 1; // ticks 1..=4 are stale, `recent` is not
        pool.evict(1_000_000); // 250 000 floats: the oldest (tick 1) is enough
        assert_eq!(pool.bytes, 1_800_000 * 4);
        assert_eq!(pool.by_len[&300_000].iter().map(|(t, _)| *t).collect::<Vec<_>>(), vec![3]);
        pool.evict(usize::MAX); // every stale buffer goes, the recent one stays
        assert_eq!((pool.bytes, pool.by_len.len()), (600_000 * 4, 1));
    }
}
