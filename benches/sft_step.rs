//! Criterion group `sft_step`: one GPT-2 124M optimizer step (B = 4, T = 64: forward,
//! backward, AdamW), full fine-tuning against LoRA r = 8 on `c_attn`. The targets:
//! full ≥ 1.0× PyTorch's tokens/s (`benches/compare_sft.sh`), LoRA ≥ 1.3× faster than full.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use deltaw_benches::sft::{setup, step, Mode, BATCH, SEQ};
use std::time::Duration;

fn sft_step(c: &mut Criterion) {
    let mut group = c.benchmark_group("sft_step");
    group.sample_size(10).measurement_time(Duration::from_secs(30)).warm_up_time(Duration::from_secs(3));
    group.throughput(Throughput::Elements((BATCH * SEQ) as u64)); // tokens
    for mode in [Mode::Full, Mode::Lora] {
        let mut s = setup(mode);
        group.bench_function(format!("{mode:?}").to_lowercase(), |b| b.iter(|| step(&mut s)));
    }
    group.finish();
}

criterion_group!(benches, sft_step);
criterion_main!(benches);
