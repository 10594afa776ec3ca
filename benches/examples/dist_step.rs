//! The data-parallel GPT-2 124M full fine-tuning step (B = 4, T = 64 per micro-batch, 2
//! micro-batches a step) through the trainer, on however many MPI ranks launched it:
//!
//! ```text
//! cargo build --release -p deltaw-benches --features mpi --example dist_step
//! RAYON_NUM_THREADS=1 mpiexec -n 1 target/release/examples/dist_step 6
//! RAYON_NUM_THREADS=1 mpiexec -n 2 target/release/examples/dist_step 6 [zero1]
//! ```
//!
//! Rank 0 prints one JSON line: ranks, ZeRO-1 or not, the median step time of the steps after
//! the first (all-reduce included) and of its time in collectives, tokens/s of the whole step, and every rank's optimizer
//! state in MiB. `benches/compare_mpi.sh` runs it at 1 and 2 ranks and prints the ratios.

use deltaw_tensor::{Device, Seed};
use deltaw_train::data::{Sample, SftDataset};
use deltaw_train::distributed::{Collective, DistConfig, MpiWorld};
use deltaw_train::trainer::{read_metrics, MetricsLine, StepMetrics};
use deltaw_train::{Trainer, TrainerConfig};
use deltaw_transformer::{Gpt2, Gpt2Config, Model};
use std::sync::Arc;
use std::time::Duration;

const BATCH: usize = 4;
const SEQ: usize = 64;
const ACCUM: usize = 2;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let steps: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(6);
    let zero1 = args.iter().any(|a| a == "zero1");
    let world = Arc::new(MpiWorld::init(Duration::from_secs(600)).expect("MPI"));
    let (rank, ranks) = (world.rank(), world.size());
    let config = Gpt2Config::new(50257, 1024, 768, 12, 12).expect("GPT-2 124M config");
    let model = Gpt2::init(config, Seed(0), &Device::Cpu);
    // Enough distinct sequences for every micro-batch of the run.
    let samples = (0..BATCH * ACCUM * steps)
        .map(|s| {
            let ids: Vec<i32> = (0..SEQ).map(|i| ((s * 131 + i * 7919 + 11) % 50257) as i32).collect();
            Sample { input_ids: ids.clone(), labels: ids }
        })
        .collect();
    let data = SftDataset { samples };
    // One folder for the run (rank 0 writes in it; ranks on one host share the temp folder).
    let out = std::env::temp_dir().join("deltaw-dist-step");
    if rank == 0 {
        std::fs::remove_dir_all(&out).ok();
    }
    world.barrier("a fresh output folder");
    let tc = TrainerConfig {
        max_steps: Some(steps),
        batch_size: BATCH,
        grad_accum: ACCUM,
        lr: 1e-4,
        progress: false,
        ..TrainerConfig::default()
    };
    let config = DistConfig { zero1, ..DistConfig::default() };
    let mut trainer = Trainer::new(&model, model.parameters(), tc, &out, (0, 0))
        .and_then(|t| t.distributed(Box::new(world.clone()), config))
        .expect("a distributed trainer");
    trainer.fit(&data, None).expect("training");
    let (mut mine, mut mib) = (vec![0f32; ranks], vec![0f32; ranks]);
    mine[rank] = trainer.optimizer_bytes() as f32 / (1 << 20) as f32;
    world.all_reduce_sum_f32(&mine, &mut mib, "optimizer sizes");
    if rank == 0 {
        report(&out, ranks, zero1, &mib);
        std::fs::remove_dir_all(&out).ok();
    }
}

fn report(out: &std::path::Path, ranks: usize, zero1: bool, mib: &[f32]) {
    let lines = read_metrics(&out.join("metrics.jsonl")).expect("metrics");
    let steps: Vec<&StepMetrics> =
        lines.iter().filter_map(|l| if let MetricsLine::Train(m) = l { Some(m) } else { None }).collect();
    // The median over the steps after the first (first-touch allocations, optimizer state).
    let median = |f: &dyn Fn(&StepMetrics) -> f64| {
        let mut v: Vec<f64> = steps.iter().skip(1).map(|m| f(m)).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (secs, comm) = (median(&|m| m.seconds), median(&|m| m.comm_seconds.unwrap_or(0.0)));
    let tokens = (BATCH * SEQ * ACCUM) as f64;
    println!(
        "{{\"ranks\": {ranks}, \"zero1\": {zero1}, \"seconds_per_step\": {secs:.3}, \"comm_seconds\": {comm:.3}, \"tokens_per_s\": {:.1}, \"optimizer_mib_per_rank\": {mib:?}}}",
        tokens / secs
    );
}
