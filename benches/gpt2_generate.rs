//! Criterion group `gpt2_generate`: GPT-2 124M (random weights) continues a 16-token prompt by
//! 64 greedy tokens with the KV cache. The target: ≥ 1.5× transformers' tokens/s
//! (`benches/compare_generate.sh`). Ten samples of one generation each, about half a minute.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use deltaw_benches::generation::{model, options, prompt, NEW_TOKENS};
use deltaw_transformer::CausalLm;
use std::time::Duration;

fn gpt2_generate(c: &mut Criterion) {
    let (model, prompt, options) = (model(), prompt(), options());
    let mut group = c.benchmark_group("gpt2_generate");
    group.sample_size(10).measurement_time(Duration::from_secs(20)).warm_up_time(Duration::from_secs(3));
    group.throughput(Throughput::Elements(NEW_TOKENS as u64)); // new tokens
    group.bench_function("greedy_64", |b| b.iter(|| model.generate(&prompt, &options)));
    group.finish();
}

criterion_group!(benches, gpt2_generate);
criterion_main!(benches);
