//! Autograd overhead on a matmul-heavy graph: a 4-layer MLP (`(N, C) -> C -> C -> C -> C`,
//! GELU between layers, mean-squared output) timed forward only and forward + backward.
//!
//! The target is backward ≤ 2.2× forward, i.e. `forward_backward / forward ≤ 3.2`. Each
//! linear layer costs one GEMM forward and two backward (`dx = dout·W`, `dW = doutᵀ·x`), and
//! the first layer's `dx` is skipped because the input needs no gradient, so the GEMM count
//! alone gives 7/4 = 1.75×; the rest is GELU and bias-sum passes and the sweep's bookkeeping.
//! After criterion's runs the bench prints the measured ratio from its own interleaved timing.

use criterion::{criterion_group, criterion_main, Criterion};
use deltaw_autograd::Var;
use deltaw_tensor::{Device, Seed, Tensor};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Rows (batch × tokens) and width: 4 GEMMs of 256×512×512 forward, 134 MFLOP each way.
const N: usize = 256;
const C: usize = 512;
const LAYERS: usize = 4;

struct Mlp {
    layers: Vec<(Var, Var)>, // (weight (C, C) as PyTorch's [out, in], bias (C,))
    x: Var,                  // (N, C), constant
}

fn mlp() -> Mlp {
    let dev = Device::Cpu;
    let layers = (0..LAYERS as u64)
        .map(|i| {
            let w = Tensor::randn((C, C), Seed(10 + i), &dev).mul_scalar(1.0 / (C as f32).sqrt());
            (Var::parameter(w), Var::parameter(Tensor::zeros(C, &dev)))
        })
        .collect();
    Mlp { layers, x: Var::constant(Tensor::randn((N, C), Seed(1), &dev)) }
}

/// The loss `mean((MLP(x))²)`, a scalar.
fn forward(m: &Mlp) -> Var {
    let mut h = m.x.clone();
    for (i, (w, b)) in m.layers.iter().enumerate() {
        h = &h.matmul(&w.t()) + b; // (N, C)
        if i + 1 < LAYERS {
            h = h.gelu();
        }
    }
    (&h * &h).mean_all()
}

fn forward_backward(m: &Mlp) -> usize {
    forward(m).backward().expect("scalar loss").len()
}

/// Median seconds of `f` and of `g` over `reps` calls each, interleaved so that load from
/// other processes on a shared machine hits both alike.
fn median_secs_pair(reps: usize, mut f: impl FnMut(), mut g: impl FnMut()) -> (f64, f64) {
    let time = |h: &mut dyn FnMut()| {
        let start = Instant::now();
        h();
        start.elapsed().as_secs_f64()
    };
    let (mut tf, mut tg): (Vec<f64>, Vec<f64>) = (0..reps).map(|_| (time(&mut f), time(&mut g))).unzip();
    tf.sort_by(f64::total_cmp);
    tg.sort_by(f64::total_cmp);
    (tf[reps / 2], tg[reps / 2])
}

fn bench_autograd_mlp(crit: &mut Criterion) {
    let m = mlp();
    let mut group = crit.benchmark_group("autograd_mlp");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(4));
    group.bench_function("forward", |bench| bench.iter(|| forward(black_box(&m))));
    group.bench_function("forward_backward", |bench| bench.iter(|| forward_backward(black_box(&m))));
    group.finish();

    let (fwd, both) = median_secs_pair(
        41,
        || drop(black_box(forward(&m))),
        || {
            black_box(forward_backward(&m));
        },
    );
    eprintln!(
        "autograd_mlp: forward {:.2} ms, forward+backward {:.2} ms, backward/forward = {:.2} (target ≤ 2.2)",
        fwd * 1e3,
        both * 1e3,
        (both - fwd) / fwd
    );
}

criterion_group!(benches, bench_autograd_mlp);
criterion_main!(benches);
