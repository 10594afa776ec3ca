//! Criterion group `minilm_embed`: 256 texts of 128 tokens through the real all-MiniLM-L6-v2
//! (tokenize, BERT, mean pooling, L2), batch 32, on all cores. The target: ≥ 1.2×
//! sentence-transformers' sentences/s (`benches/compare_minilm.sh`). Skipped, with a notice,
//! when the model folder (`$DELTAW_MINILM_DIR` or `~/.cache/deltaw/all-MiniLM-L6-v2`) is absent.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use deltaw_benches::minilm::{model_dir, texts, BATCH, SENTENCES};
use deltaw_tensor::Device;
use deltaw_transformer::SentenceEmbedder;
use std::time::Duration;

fn minilm_embed(c: &mut Criterion) {
    let dir = model_dir();
    if !dir.join("config.json").exists() {
        println!("minilm_embed: skipped, no model at {} (set DELTAW_MINILM_DIR)", dir.display());
        return;
    }
    let mut embedder = SentenceEmbedder::from_dir(&dir, &Device::Cpu).expect("load all-MiniLM-L6-v2");
    embedder.batch_size = BATCH;
    let texts = texts();
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let mut group = c.benchmark_group("minilm_embed");
    group.sample_size(10).measurement_time(Duration::from_secs(30)).warm_up_time(Duration::from_secs(3));
    group.throughput(Throughput::Elements(SENTENCES as u64)); // sentences
    group.bench_function("deltaw", |b| b.iter(|| embedder.embed(&texts).expect("embed")));
    group.finish();
}

criterion_group!(benches, minilm_embed);
criterion_main!(benches);
