//! One process per measurement, for tokens/s and peak RSS of a GPT-2 124M fine-tuning step:
//!
//! ```text
//! cargo run --release -p deltaw-benches --example sft_step -- full 5
//! cargo run --release -p deltaw-benches --example sft_step -- lora 5
//! ```
//!
//! Prints one JSON line: mode, steps, tokens/s (after one warm-up step), peak RSS (VmHWM
//! from /proc/self/status), and for the timed steps the share of wall time spent in the
//! kernel and the minor page faults per step (from /proc/self/stat): a steady-state step that
//! takes no new memory from the OS faults rarely and spends little time in the kernel.
//! `benches/compare_sft.sh` runs it beside PyTorch. With `DELTAW_PROFILE=1` it also prints
//! the per-op profile of the timed steps (`deltaw_tensor::profile`) and writes its timeline.

use deltaw_benches::sft::{setup, step, Mode, BATCH, SEQ};
use deltaw_benches::{profile_finish, profile_start};
use std::time::Instant;

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(f64::NAN);
    kib / 1024.0
}

/// `(user seconds, system seconds, minor page faults)` of this process so far (Linux; zeros
/// elsewhere). /proc/self/stat counts CPU time in USER_HZ ticks, 100 a second on Linux.
fn cpu_and_faults() -> (f64, f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name, which may hold spaces.
    let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let field = |i: usize| rest.split(' ').nth(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // rest[0] is field 3 (state): minflt is field 10, utime 14, stime 15.
    (field(11) / 100.0, field(12) / 100.0, field(7))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).and_then(|m| Mode::parse(m)).unwrap_or_else(|| {
        eprintln!("usage: sft_step full|lora [steps]");
        std::process::exit(2)
    });
    let steps: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5);
    let mut s = setup(mode);
    step(&mut s); // warm-up: first-touch allocations, optimizer state
    let profiling = profile_start(); // DELTAW_PROFILE=1: the timed part only
    let (start, before, pool_before) = (Instant::now(), cpu_and_faults(), deltaw_tensor::cpu::pool::stats());
    let mut loss = 0.0;
    for _ in 0..steps {
        loss = step(&mut s);
    }
    let secs = start.elapsed().as_secs_f64();
    let (after, pool_after) = (cpu_and_faults(), deltaw_tensor::cpu::pool::stats());
    profile_finish(profiling);
    // Large buffers the steps took from the CPU buffer pool, and the MiB per step they had to
    // allocate instead: a steady-state step allocates none.
    let reused = (pool_after.0 - pool_before.0) as f64 / steps as f64;
    let allocated_mib = (pool_after.2 - pool_before.2) as f64 / steps as f64 / (1 << 20) as f64;
    let (system_share, faults) = ((after.1 - before.1) / secs, (after.2 - before.2) / steps as f64);
    let tokens_per_s = (steps * BATCH * SEQ) as f64 / secs;
    let mode = format!("{mode:?}").to_lowercase();
    println!(
        "{{\"impl\": \"deltaw\", \"mode\": \"{mode}\", \"steps\": {steps}, \"seconds_per_step\": {:.3}, \"tokens_per_s\": {tokens_per_s:.1}, \"peak_rss_mib\": {:.0}, \"system_share\": {system_share:.3}, \"page_faults_per_step\": {faults:.0}, \"pool_reused_per_step\": {reused:.0}, \"pool_allocated_mib_per_step\": {allocated_mib:.1}, \"loss\": {loss:.4}, \"kernel\": \"{}\", \"device\": \"{}\"}}",
        secs / steps as f64,
        peak_rss_mib(),
        deltaw_tensor::cpu::gemm::kernel_name(),
        deltaw_benches::bench_device_name()
    );
}
