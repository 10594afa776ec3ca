//! A per-op profiler: where a step's time goes, op by op, forward and backward apart.
//!
//! Off by default and then free: every profiled op first reads one relaxed atomic flag and
//! takes no time stamp, computes no cost and locks nothing. [`enable`] (or `DELTAW_PROFILE=1`
//! read by [`enable_from_env`]) measures this machine's roofline once (the FMA rate of a
//! 512³ sgemm and the bandwidth of an in-place pass over 64 MiB, best of three),
//! then every op records its wall time, its phase (forward, backward, optimizer update: set by
//! the autograd engine and the optimizers through [`in_phase`]), and its cost in FLOPs and
//! bytes moved. An op that calls other ops (`sum_all` calls `sum`) counts once, as itself.
//!
//! [`report`] gives a table per (op, phase): calls, total ms, share of the profiled wall time,
//! achieved GFLOP/s and GB/s, and the share of the roofline: achieved FLOP/s against
//! `min(peak, intensity × bandwidth)`, where intensity is the op's FLOPs per byte. The wall
//! time no op accounts for (model code, allocation, the optimizer's bookkeeping) is its own
//! row. [`write_chrome_trace`] writes the ops as trace events that Perfetto
//! (<https://ui.perfetto.dev>) or `chrome://tracing` opens as a timeline.
//!
//! GPU ops are timed on the host: the time to encode and submit them, and any wait for a
//! read-back, not the kernel's own time on the device.
//!
//! ```
//! use deltaw_tensor::{profile, Device, Seed, Tensor};
//! profile::enable();
//! let a = Tensor::randn((64, 64), Seed(1), &Device::Cpu);
//! let _ = a.matmul(&a).gelu();
//! let report = profile::report().expect("enabled");
//! assert_eq!(report.row("matmul", profile::Phase::Forward).unwrap().calls, 1);
//! println!("{report}");
//! profile::disable();
//! ```

mod report;

pub use report::{Report, Row};

use std::cell::Cell;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

static ENABLED: AtomicBool = AtomicBool::new(false);
static STATE: Mutex<Option<State>> = Mutex::new(None);

/// Trace events kept for the timeline (the table counts every op regardless).
const MAX_EVENTS: usize = 1 << 20;

/// Which part of a training step an op ran in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    Forward,
    Backward,
    Update,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Forward => "forward",
            Phase::Backward => "backward",
            Phase::Update => "update",
        }
    }
}

/// What an op computes and moves: FLOPs, and bytes read plus written.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Cost {
    pub flops: f64,
    pub bytes: f64,
}

impl Cost {
    /// `flops` FLOPs over `floats` f32 values read or written.
    pub fn new(flops: f64, floats: f64) -> Cost {
        Cost { flops, bytes: 4.0 * floats }
    }
}

thread_local! {
    static PHASE: Cell<Phase> = const { Cell::new(Phase::Forward) };
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

#[derive(Default)]
struct Stat {
    calls: u64,
    seconds: f64,
    flops: f64,
    bytes: f64,
}

struct Event {
    name: &'static str,
    phase: Phase,
    start_us: f64,
    dur_us: f64,
}

struct State {
    start: Instant,
    peak_flops: f64,
    bandwidth: f64,
    stats: HashMap<(&'static str, Phase), Stat>,
    events: Vec<Event>,
}

/// Starts profiling (again, from empty), after measuring the roofline.
pub fn enable() {
    disable();
    let (peak_flops, bandwidth) = measure_roofline();
    *lock() = Some(State { start: Instant::now(), peak_flops, bandwidth, stats: HashMap::new(), events: Vec::new() });
    ENABLED.store(true, Ordering::Release);
}

/// [`enable`] when the environment has `DELTAW_PROFILE` set to anything but `0` or empty;
/// returns whether profiling is on.
pub fn enable_from_env() -> bool {
    let wanted = std::env::var("DELTAW_PROFILE").is_ok_and(|v| !v.is_empty() && v != "0");
    if wanted && !is_enabled() {
        enable();
    }
    is_enabled()
}

/// Stops profiling and forgets what was recorded.
pub fn disable() {
    ENABLED.store(false, Ordering::Release);
    *lock() = None;
}

#[inline]
pub fn is_enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Runs `f` with this thread's ops counted in `phase` (the autograd engine wraps each
/// backward rule in [`Phase::Backward`], the optimizers their step in [`Phase::Update`]).
pub fn in_phase<R>(phase: Phase, f: impl FnOnce() -> R) -> R {
    let before = PHASE.with(|p| p.replace(phase));
    let out = f();
    PHASE.with(|p| p.set(before));
    out
}

/// Times the op `name` until the returned guard drops; `cost` is only evaluated when the
/// profiler is on. Called at the top of every profiled op: `let _op = profile::op(...)`.
#[inline]
pub fn op(name: &'static str, cost: impl FnOnce() -> Cost) -> Option<OpTimer> {
    if !is_enabled() {
        return None;
    }
    let outer = DEPTH.with(|d| d.replace(d.get() + 1)) == 0;
    let cost = if outer { cost() } else { Cost::default() };
    Some(OpTimer { name, cost, outer, start: Instant::now() })
}

/// The guard [`op`] returns: records the op when dropped.
pub struct OpTimer {
    name: &'static str,
    cost: Cost,
    outer: bool,
    start: Instant,
}

impl Drop for OpTimer {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
        if !self.outer {
            return;
        }
        let seconds = self.start.elapsed().as_secs_f64();
        let phase = PHASE.with(Cell::get);
        let mut guard = lock();
        let Some(state) = guard.as_mut() else { return };
        let stat = state.stats.entry((self.name, phase)).or_default();
        stat.calls += 1;
        stat.seconds += seconds;
        stat.flops += self.cost.flops;
        stat.bytes += self.cost.bytes;
        if state.events.len() < MAX_EVENTS {
            let start_us = self.start.saturating_duration_since(state.start).as_secs_f64() * 1e6;
            state.events.push(Event { name: self.name, phase, start_us, dur_us: seconds * 1e6 });
        }
    }
}

/// The table of what was recorded since [`enable`]; `None` when the profiler is off.
pub fn report() -> Option<Report> {
    let guard = lock();
    let state = guard.as_ref()?;
    let rows = state
        .stats
        .iter()
        .map(|(&(op, phase), s)| Row { op, phase, calls: s.calls, seconds: s.seconds, flops: s.flops, bytes: s.bytes })
        .collect();
    Some(Report::new(rows, state.start.elapsed().as_secs_f64(), state.peak_flops, state.bandwidth))
}

/// Writes the recorded ops as Chrome trace-event JSON (one complete event per op, one track
/// per phase), atomically (`crate::atomic::write_with`).
///
/// # Errors
/// The profiler is off, or the file cannot be written.
pub fn write_chrome_trace(path: &Path) -> crate::Result<()> {
    let guard = lock();
    let off = || std::io::Error::other("the profiler is off: nothing to write");
    let state = guard.as_ref().ok_or_else(|| crate::Error::Io { path: path.to_path_buf(), source: off() })?;
    crate::atomic::write_with(path, |out| {
        out.write_all(b"{\"displayTimeUnit\": \"ms\", \"traceEvents\": [\n")?;
        for (i, e) in state.events.iter().enumerate() {
            let sep = if i == 0 { "" } else { ",\n" };
            let tid = e.phase as u32 + 1;
            write!(
                out,
                "{sep}{{\"name\": \"{}\", \"cat\": \"{}\", \"ph\": \"X\", \"ts\": {:.3}, \"dur\": {:.3}, \"pid\": 1, \"tid\": {tid}}}",
                e.name,
                e.phase.name(),
                e.start_us,
                e.dur_us
            )?;
        }
        for phase in [Phase::Forward, Phase::Backward, Phase::Update] {
            let tid = phase as u32 + 1;
            write!(
                out,
                ",\n{{\"name\": \"thread_name\", \"ph\": \"M\", \"pid\": 1, \"tid\": {tid}, \"args\": {{\"name\": \"{}\"}}}}",
                phase.name()
            )?;
        }
        out.write_all(b"\n]}\n")
    })
}

fn lock() -> std::sync::MutexGuard<'static, Option<State>> {
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// `(peak FLOP/s, bytes/s)` on the host: the best of three 512³ sgemms through our own GEMM,
/// and of three in-place scalings of 64 MiB (bytes read plus written; in place, as the
/// optimizer's and the in-place ops' passes are), with rayon's threads.
fn measure_roofline() -> (f64, f64) {
    use crate::{Device, Seed, Tensor};
    let n = 512;
    let a = Tensor::randn((n, n), Seed(0), &Device::Cpu);
    let best = |f: &mut dyn FnMut()| {
        (0..3)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min)
    };
    let gemm = best(&mut || drop(a.matmul(&a)));
    let mut buf = vec![1.0f32; 16 << 20];
    let scale = best(&mut || crate::cpu::elementwise::scale_in_place(&mut buf, 1.0));
    let bytes = 2.0 * 4.0 * (16 << 20) as f64;
    (2.0 * (n * n * n) as f64 / gemm, bytes / scale)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Device, Seed, Tensor};

    /// One test for all of it: the profiler is process-wide state, and the crate's other tests
    /// run beside this one (their ops may add rows; the assertions here only read this test's).
    #[test]
    fn ops_are_counted_once_by_phase_and_written_as_a_trace() {
        let a = Tensor::randn((32, 48), Seed(1), &Device::Cpu);
        disable();
        assert!(op("matmul", || panic!("no cost is computed while off")).is_none());
        enable();
        let _ = a.sum_all(); // sum_all reshapes and calls sum: counted once, as sum
        in_phase(Phase::Backward, || a.matmul(&a.t()));
        let table = report().expect("on");
        let mm = table.row("matmul", Phase::Backward).expect("a backward matmul");
        assert!(mm.calls >= 1 && mm.flops >= 2.0 * 32.0 * 32.0 * 48.0 && mm.seconds > 0.0, "{mm:?}");
        assert!(table.row("sum", Phase::Forward).is_some());
        let path = std::env::temp_dir().join(format!("deltaw-profile-test-{}.json", std::process::id()));
        write_chrome_trace(&path).unwrap();
        let trace: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let events = trace["traceEvents"].as_array().unwrap();
        assert!(events.iter().any(|e| e["name"] == "matmul" && e["cat"] == "backward" && e["ph"] == "X"));
        std::fs::remove_file(&path).ok();
        disable();
        assert!(report().is_none() && write_chrome_trace(&path).is_err());
    }
}
