//! [`on_pool_spinning`]: one call on the pool with the other workers kept awake.

use std::sync::atomic::{AtomicBool, Ordering};

/// Pause hints between two looks for work: short enough to take a job within about a
/// microsecond, long enough not to hammer the other workers' queues.
const PAUSES: usize = 32;

/// [`super::on_pool`], with the pool's other workers kept awake until `op` returns: each
/// looks for work in a loop (`rayon::yield_now`) instead of going to sleep when it runs out.
///
/// A decoding step, or the forward and backward of a training step, is hundreds of parallel
/// kernels with short serial stretches between them. A worker that finds no work yields to
/// the OS a few dozen times (system calls), then sleeps, and the next kernel must wake it
/// (another system call, and tens of microseconds before it helps). Kept awake, it takes the
/// next kernel's first task at once, and its waiting is user time. This is what OpenMP's
/// active wait policy and llama.cpp's thread pool do. The cost: the other cores stay busy for
/// the length of `op` even where it is serial, so use it for work that is mostly parallel.
///
/// `DELTAW_SPIN=0` turns the helpers off (plain [`super::on_pool`]), for a machine whose cores
/// other processes need while `op` runs serial stretches. A pool with more threads than the
/// process may use cores (`std::thread::available_parallelism`) gets no helpers either: they
/// would take turns on the cores with the threads doing the work.
/// A pool of one thread has no helpers either (the data-parallel ranks share the cores that
/// way).
///
/// Nothing waits on the helpers: a helper that only starts once `op` has returned, or that
/// the calling worker picks up itself while it waits inside `op` for a stolen task, returns
/// at once, so no arrangement of the pool can deadlock on them.
///
/// ```
/// let sum: f32 = deltaw_tensor::cpu::on_pool_spinning(|| (0..4).map(|i| i as f32).sum());
/// assert_eq!(sum, 6.0);
/// ```
pub fn on_pool_spinning<R: Send>(op: impl FnOnce() -> R + Send) -> R {
    let threads = rayon::current_num_threads();
    let helpers = threads.saturating_sub(1);
    if helpers == 0 || !enabled() || threads > cores() {
        return super::on_pool(op);
    }
    let done = AtomicBool::new(false);
    let done = &done;
    rayon::scope(|s| {
        let leader = rayon::current_thread_index();
        for _ in 0..helpers {
            s.spawn(move |_| look_for_work(done, leader));
        }
        let out = op();
        done.store(true, Ordering::Release);
        out
    })
}

/// [`on_pool_spinning`] for work on the CPU, plain [`super::on_pool`] for work on a GPU, whose
/// kernels do not use the pool (helpers would only keep a core busy while it waits).
///
/// ```
/// use deltaw_tensor::Device;
/// assert_eq!(deltaw_tensor::cpu::on_pool_for(&Device::Cpu, || 2 + 2), 4);
/// ```
pub fn on_pool_for<R: Send>(device: &crate::Device, op: impl FnOnce() -> R + Send) -> R {
    if device.is_gpu() {
        super::on_pool(op)
    } else {
        on_pool_spinning(op)
    }
}

/// The cores this process may use (read once per process; 1 when unknown).
fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Whether helpers run: unless `DELTAW_SPIN=0` (read once per process).
fn enabled() -> bool {
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ENABLED.get_or_init(|| std::env::var("DELTAW_SPIN").map_or(true, |v| v.trim() != "0"))
}

/// A helper's loop: run whatever work the pool has until `done`; on the leader's own thread
/// (which took this job from its queue while waiting inside `op`), return at once.
fn look_for_work(done: &AtomicBool, leader: Option<usize>) {
    if rayon::current_thread_index() == leader {
        return;
    }
    while !done.load(Ordering::Acquire) {
        if rayon::yield_now() != Some(rayon::Yield::Executed) {
            (0..PAUSES).for_each(|_| std::hint::spin_loop());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;

    #[test]
    fn parallel_work_inside_runs_and_returns() {
        let v: Vec<u64> = on_pool_spinning(|| (0..10_000u64).into_par_iter().map(|i| i * i).collect());
        assert_eq!(v[9_999], 9_999 * 9_999);
    }

    #[test]
    fn nested_and_concurrent_calls_finish() {
        // Leaders on every worker at once, each spawning helpers that can only start on a
        // thread another leader holds: the arrangement that would deadlock if a leader
        // waited for its helpers.
        let sums: Vec<u64> = (0..16u64)
            .into_par_iter()
            .map(|k| on_pool_spinning(|| (0..1000u64).into_par_iter().map(|i| i + k).sum::<u64>()))
            .collect();
        assert_eq!(sums[3], (0..1000u64).sum::<u64>() + 3000);
        let inner = on_pool_spinning(|| on_pool_spinning(|| 7));
        assert_eq!(inner, 7);
    }
}
