//! `--distributed` under a real MPI launcher (`mpiexec`, MPICH in CI), 2 ranks of 1 rayon
//! thread each on one machine. Two ranks each running 1 of the step's 2 micro-batches must
//! give exactly (bit for bit) what one process accumulating both gives: the all-reduce adds
//! `g_0 + g_1` as the process does (see `deltaw_train::distributed`). Checked for LoRA, full
//! fine-tuning and pretraining, with and without ZeRO-1, across resumes under another number
//! of ranks, and after a rank is killed.
#![cfg(feature = "mpi")]

mod support;

use deltaw_tensor::{safetensors, Device};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::{deltaw_with_env, fixture, fresh_path, ok, s, scratch, train_losses};

const ONE_THREAD: [(&str, &str); 1] = [("RAYON_NUM_THREADS", "1")];

fn mpiexec(ranks: usize) -> Command {
    let mut cmd = Command::new("mpiexec");
    cmd.args(["-n", &ranks.to_string(), env!("CARGO_BIN_EXE_deltaw")]).envs(ONE_THREAD).stdin(Stdio::null());
    cmd
}

/// `deltaw args` on `ranks` MPI ranks (with `--distributed`), or as one plain process.
fn run(ranks: usize, args: &[String]) -> Output {
    if ranks == 1 {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        return deltaw_with_env(&args, &ONE_THREAD);
    }
    mpiexec(ranks).args(args).arg("--distributed").output().expect("running mpiexec (is MPI installed?)")
}

fn sft_args(full: bool, out: &Path) -> Vec<String> {
    let mut args: Vec<String> = ["sft", "--model", &s(&fixture("tiny_gpt2")), "--data"]
        .into_iter()
        .map(String::from)
        .chain([s(&fixture("sft/alpaca.jsonl"))])
        .collect();
    let rest = ["--max-steps", "3", "--batch-size", "2", "--grad-accum", "2", "--lr", "1e-2", "--save-every", "2"];
    args.extend(rest.iter().map(|a| a.to_string()));
    if full {
        args.push("--full".into());
    }
    args.extend(["--out".to_string(), s(out)]);
    args
}

fn train_args(data: &Path, out: &Path, steps: usize) -> Vec<String> {
    let mut args: Vec<String> = vec!["train".into(), "--data".into(), s(data), "--out".into(), s(out)];
    let rest = ["--block-size", "32", "--n-layer", "1", "--n-head", "2", "--n-embd", "32", "--batch-size", "4"];
    args.extend(rest.iter().map(|a| a.to_string()));
    args.extend(["--grad-accum", "2", "--save-every", "5", "--max-steps"].iter().map(|a| a.to_string()));
    args.push(steps.to_string());
    args
}

fn corpus(dir: &Path) -> std::path::PathBuf {
    let text: String = (0..400).map(|i| format!("the dog ran to tree number {}.\n", i % 11)).collect();
    let path = dir.join("corpus.txt");
    std::fs::write(&path, text).unwrap();
    path
}

/// Every tensor of two safetensors files is equal bit for bit.
#[track_caller]
fn same_tensors(a: &Path, b: &Path) {
    let (x, y) = (safetensors::load(a, &Device::Cpu).unwrap(), safetensors::load(b, &Device::Cpu).unwrap());
    assert_eq!(x.keys().collect::<Vec<_>>(), y.keys().collect::<Vec<_>>(), "{} vs {}", a.display(), b.display());
    for (name, t) in &x {
        let (p, q) = (t.to_vec(), y[name].to_vec());
        let same = p.iter().zip(&q).all(|(u, v)| u.to_bits() == v.to_bits());
        assert!(same, "{name} differs between {} and {}", a.display(), b.display());
    }
}

/// One process, 2 ranks, and 2 ranks with ZeRO-1 give the same losses and outputs.
fn check_equal_runs(tag: &str, args: impl Fn(&Path) -> Vec<String>, output: &str) {
    let dirs: Vec<_> = ["one", "two", "zero1"].iter().map(|k| fresh_path(&format!("dist-{tag}-{k}"))).collect();
    ok(&run(1, &args(&dirs[0])));
    ok(&run(2, &args(&dirs[1])));
    let mut zero1 = args(&dirs[2]);
    zero1.extend(["--zero1".into(), "--bucket-mb".into(), "0.001".into()]);
    ok(&run(2, &zero1));
    let losses = train_losses(&dirs[0]);
    assert!(!losses.is_empty());
    for dir in &dirs[1..] {
        assert_eq!(train_losses(dir), losses, "{tag}: {} against one process", dir.display());
        same_tensors(&dirs[0].join(output), &dir.join(output));
    }
    let latest = std::fs::read_to_string(dirs[2].join("checkpoints/latest")).unwrap();
    let shards = dirs[2].join("checkpoints").join(latest.trim());
    for r in 0..2 {
        assert!(shards.join(format!("optim-rank{r:03}-of-002.safetensors")).exists(), "{tag}: rank {r}'s shard");
    }
}

#[test]
fn lora_on_two_ranks_equals_one_process_bit_for_bit() {
    check_equal_runs("lora", |out| sft_args(false, out), "adapter/adapter_model.safetensors");
}

#[test]
fn full_fine_tuning_on_two_ranks_equals_one_process_bit_for_bit() {
    check_equal_runs("full", |out| sft_args(true, out), "model/model.safetensors");
}

#[test]
fn pretraining_on_two_ranks_equals_one_process_bit_for_bit() {
    let data = corpus(&scratch("dist-corpus"));
    check_equal_runs("train", |out| train_args(&data, out, 6), "model/model.safetensors");
}

#[test]
fn a_zero1_checkpoint_resumes_under_another_number_of_ranks() {
    let data = corpus(&scratch("dist-resume-corpus"));
    let (whole, split, back) = (fresh_path("dist-whole"), fresh_path("dist-split"), fresh_path("dist-back"));
    ok(&run(1, &train_args(&data, &whole, 10)));
    // 2 ranks with ZeRO-1 stop at step 5; one process finishes the run from their shards.
    let mut first = train_args(&data, &split, 10);
    first.extend(["--zero1".into(), "--stop-after".into(), "5".into()]);
    ok(&run(2, &first));
    let mut rest = train_args(&data, &split, 10);
    rest.push("--resume".into());
    ok(&run(1, &rest));
    // And the other way: one process stops, 2 ZeRO-1 ranks each take their shard of its moments.
    let mut first = train_args(&data, &back, 10);
    first.extend(["--stop-after".into(), "5".into()]);
    ok(&run(1, &first));
    let mut rest = train_args(&data, &back, 10);
    rest.extend(["--resume".into(), "--zero1".into()]);
    ok(&run(2, &rest));
    for dir in [&split, &back] {
        assert_eq!(train_losses(dir), train_losses(&whole), "{}", dir.display());
        same_tensors(&whole.join("model/model.safetensors"), &dir.join("model/model.safetensors"));
    }
}

#[test]
fn a_step_that_cannot_be_split_evenly_is_refused_on_every_rank() {
    let data = corpus(&scratch("dist-odd-corpus"));
    let mut args = train_args(&data, &fresh_path("dist-odd"), 4);
    let at = args.iter().position(|a| a == "--grad-accum").unwrap();
    args[at + 1] = "3".into();
    let out = run(2, &args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("grad_accum 3 must be a multiple of the number of ranks (2)"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Starts a long 2-rank pretraining run and returns it with the pids of its ranks (from the
/// line each rank prints on stderr) and the rest of its stderr, read on a thread.
fn start_long_run(
    out: &Path,
    data: &Path,
    extra: &[&str],
) -> (std::process::Child, Vec<u32>, std::sync::mpsc::Receiver<String>) {
    let mut child = mpiexec(2)
        .args(train_args(data, out, 100_000))
        .args(["--distributed", "--zero1"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running mpiexec (is MPI installed?)");
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || BufReader::new(stderr).lines().map_while(Result::ok).for_each(|l| drop(tx.send(l))));
    let mut pids = vec![0u32; 2];
    let mut lines = Vec::new();
    while pids.contains(&0) {
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| panic!("no rank line in {lines:?}"));
        // "rank 1 of 2 on host, pid 1234, 1 rayon threads"
        if let Some(rest) = line.strip_prefix("rank ") {
            let rank: usize = rest.split(' ').next().unwrap().parse().unwrap();
            let pid = rest.split("pid ").nth(1).unwrap().split(',').next().unwrap();
            pids[rank] = pid.parse().unwrap();
        }
        lines.push(line);
    }
    // Let it write a checkpoint or two first.
    let started = Instant::now();
    while !out.join("checkpoints/step-000010").exists() {
        assert!(started.elapsed() < Duration::from_secs(120), "no checkpoint at step 10");
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, pids, rx)
}

/// Waits at most `limit` for `child`; its exit status and stderr.
fn wait_at_most(mut child: std::process::Child, rx: std::sync::mpsc::Receiver<String>, limit: Duration) -> String {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(!status.success(), "the run went on to the end");
            break;
        }
        if started.elapsed() > limit {
            child.kill().ok();
            panic!("the ranks were still running {limit:?} later: {:?}", rx.try_iter().collect::<Vec<_>>());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(200));
    rx.try_iter().collect::<Vec<_>>().join("\n")
}

fn signal(pid: u32, sig: &str) {
    assert!(Command::new("kill").args([sig, &pid.to_string()]).status().unwrap().success(), "kill {sig} {pid}");
}

#[test]
fn a_rank_killed_mid_run_stops_the_others_and_resume_gives_the_same_losses() {
    let data = corpus(&scratch("dist-kill-corpus"));
    let out = fresh_path("dist-kill");
    let (child, pids, rx) = start_long_run(&out, &data, &[]);
    let killed = Instant::now();
    signal(pids[1], "-KILL");
    let stderr = wait_at_most(child, rx, Duration::from_secs(60));
    println!("stopped {:?} after the kill:\n{stderr}", killed.elapsed());
    assert!(!Path::new(&format!("/proc/{}", pids[0])).exists(), "rank 0 is still running");
    assert!(!out.join("model").exists(), "the run finished before the kill");

    // Resume a shorter run from the last checkpoint: the losses are those of a run never
    // interrupted (the schedule differs from the 100 000-step run's, so compare like with like:
    // the interrupted run's own steps, recomputed by one uninterrupted run of that length).
    let last = std::fs::read_to_string(out.join("checkpoints/latest")).unwrap();
    let step: usize = last.trim().trim_start_matches("step-").parse().unwrap();
    let mut resume = train_args(&data, &out, 100_000);
    resume.extend(["--zero1".into(), "--resume".into(), "--stop-after".into(), (step + 5).to_string()]);
    ok(&run(2, &resume));
    let whole = fresh_path("dist-kill-whole");
    let mut reference = train_args(&data, &whole, 100_000);
    reference.extend(["--stop-after".into(), (step + 5).to_string()]);
    ok(&run(1, &reference));
    assert_eq!(train_losses(&out), train_losses(&whole));
}

#[test]
fn a_rank_that_hangs_is_stopped_by_the_watchdog() {
    let data = corpus(&scratch("dist-hang-corpus"));
    let out = fresh_path("dist-hang");
    let (child, pids, rx) = start_long_run(&out, &data, &["--comm-timeout", "3"]);
    signal(pids[1], "-STOP");
    let stderr = wait_at_most(child, rx, Duration::from_secs(60));
    // The launcher ended the stopped rank too; a kill that finds it would be a leak.
    let left = Command::new("kill").args(["-KILL", &pids[1].to_string()]).stderr(Stdio::null()).status().unwrap();
    assert!(!left.success(), "rank 1 outlived the run");
    assert!(stderr.contains("no answer from the other ranks for"), "{stderr}");
    assert!(stderr.contains("--resume"), "{stderr}");
}
