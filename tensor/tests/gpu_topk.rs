//! `topk` on the GPU (`topk.wgsl`: a bitonic top-k reduction for k ≤ 256, a full bitonic sort
//! above) against the CPU kernel (a partial selection): the same elements in the same order,
//! values bit for bit and indices exactly, on rows full of ties, NaN, ±inf and ±0, of lengths
//! on both sides of every boundary the kernels have (powers of two, the 512-pair block,
//! several blocks, several reduction rounds), with k from 0 to n, as views and batches.
//!
//! Without an adapter the tests print a notice and pass, unless `DELTAW_REQUIRE_GPU=1`.
//! Run: `DELTAW_REQUIRE_GPU=1 cargo test -p deltaw-tensor --test gpu_topk`.

mod gpu_support;

use deltaw_tensor::{cpu, gpu, DType, Device, Seed, Tensor};
use gpu_support::{context, up};
use proptest::prelude::*;

fn gpu() -> Option<Device> {
    context().map(|ctx| Device::Gpu(ctx.clone()))
}

/// `numel` values, half drawn from a pool of eight (so rows are full of ties, NaN and ±inf
/// among them, and -0 next to +0), half spread over [-8, 8).
fn tie_heavy(numel: usize, seed: u64) -> Vec<f32> {
    let pool = [f32::NAN, f32::NEG_INFINITY, f32::INFINITY, -0.0, 0.0, 1.0, -1.0, 0.5];
    let u = Tensor::rand(numel, Seed(seed), &Device::Cpu).to_vec();
    u.iter()
        .enumerate()
        .map(|(i, &u)| if i % 2 == 0 { pool[((u * 8.0) as usize).min(7)] } else { u * 16.0 - 8.0 })
        .collect()
}

/// `x.topk(k)` on the GPU against the CPU: values compared as bits (NaN payloads and the sign
/// of zero included), indices exactly.
fn assert_same_topk(x_cpu: &Tensor, x_gpu: &Tensor, k: usize, what: &str) {
    let (want, got) = (x_cpu.topk(k), x_gpu.topk(k));
    assert!(got.values.device().is_gpu() && got.indices.device().is_gpu(), "{what}: the result left the GPU");
    assert_eq!((got.values.dtype(), got.indices.dtype()), (DType::F32, DType::I32), "{what}");
    assert_eq!(got.values.dims(), want.values.dims(), "{what}: shapes differ");
    let (want_ids, got_ids) = (want.indices.to_vec_i32(), got.indices.to_vec_i32());
    if let Some(i) = (0..want_ids.len()).find(|&i| want_ids[i] != got_ids[i]) {
        let start = i - i % k; // the row's first output
        let shown = start..(start + k).min(start + 8);
        panic!(
            "{what}: output {i} has index {} on the gpu, {} on the cpu; its row's first (gpu, cpu) indices: {:?}",
            got_ids[i],
            want_ids[i],
            got_ids[shown.clone()].iter().zip(&want_ids[shown]).collect::<Vec<_>>()
        );
    }
    let bits = |t: &Tensor| t.to_vec().iter().map(|v| v.to_bits()).collect::<Vec<u32>>();
    assert_eq!(bits(&got.values), bits(&want.values), "{what}: values differ in their bits");
}

/// Row lengths around each boundary of the kernel: 1, powers of two, one block of 512
/// pairs, the first global step (1024), and several global stages (> 4096).
const LENGTHS: [usize; 15] = [1, 2, 3, 5, 31, 255, 256, 257, 511, 512, 513, 1000, 4096, 4097, 5000];

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn topk_on_the_gpu_matches_the_cpu_bit_for_bit(
        n in prop::sample::select(LENGTHS.to_vec()),
        rows in 1usize..4,
        // Small k (the reduction, one or several rounds), around K = 256 / 512 (where the
        // plans switch), and up to the whole row (the full sort); capped at n.
        k_wanted in prop_oneof![0usize..=12, 200usize..=300, 0usize..=5000],
        transposed in any::<bool>(),
        seed in 0u64..1000,
    ) {
        let Some(dev) = gpu() else { return Ok(()) };
        let k = k_wanted.min(n);
        let data = tie_heavy(rows * n, seed);
        // A transposed view makes each row strided: the GPU copies it dense first.
        let x = if transposed {
            Tensor::from_vec(data, (n, rows), &Device::Cpu).unwrap().t()
        } else {
            Tensor::from_vec(data, (rows, n), &Device::Cpu).unwrap()
        };
        let what = format!("rows {rows}, n {n}, k {k}, transposed {transposed}, seed {seed}");
        assert_same_topk(&x, &x.to_device(&dev).unwrap(), k, &what);
    }
}

#[test]
fn topk_of_every_short_row_length_matches_the_cpu() {
    let Some(dev) = gpu() else { return };
    for n in 1..=70 {
        let x = Tensor::from_vec(tie_heavy(3 * n, n as u64), (3, n), &Device::Cpu).unwrap();
        for k in [1, n.div_ceil(2), n] {
            assert_same_topk(&x, &x.to_device(&dev).unwrap(), k, &format!("(3, {n}), k {k}"));
        }
    }
}

#[test]
fn topk_handles_empty_outputs_higher_ranks_and_scalars_on_the_gpu() {
    let Some(dev) = gpu() else { return };
    let x = Tensor::from_vec(tie_heavy(2 * 3 * 7, 5), (2, 3, 7), &Device::Cpu).unwrap();
    let xg = x.to_device(&dev).unwrap();
    assert_same_topk(&x, &xg, 4, "(2, 3, 7)");
    assert_same_topk(&x.narrow(1, 1, 2), &xg.narrow(1, 1, 2), 3, "a narrowed view");
    let empty = xg.topk(0);
    assert_eq!((empty.values.dims(), empty.indices.dims()), (&[2, 3, 0][..], &[2, 3, 0][..]));
    assert!(empty.values.device().is_gpu() && empty.indices.device().is_gpu());
    assert_eq!(empty.indices.dtype(), DType::I32);
    let scalar = Tensor::scalar(-2.5, &dev).topk(1);
    assert_eq!((scalar.values.to_vec(), scalar.indices.to_vec_i32()), (vec![-2.5], vec![0]));
}

#[test]
fn the_topk_kernel_covers_grids_over_65535_workgroups() {
    let Some(ctx) = context() else { return };
    // 8,388,481 rows of 2: 16,776,962 pairs, so the key and gather grids (one invocation per
    // pair, per output) exceed 65,535 workgroups of 256 and fold into 2-D, while the pair buffer
    // (134.2 MB) still fits a 128 MiB binding. The sort grids (512 pairs per workgroup) would
    // fold only past 33.5 M pairs, a 268 MB buffer over that limit; they rebuild the workgroup
    // index the same way.
    let (rows, n, k) = (8_388_481, 2, 2);
    let x: Vec<f32> = (0..rows * n).map(|i| ((i * 7919) % 1009) as f32 - 500.0).collect();
    let got = gpu::topk(ctx, &up(ctx, &x), rows, n, k).unwrap();
    let (values, indices) = cpu::topk::topk(&x, n, k);
    assert_eq!(ctx.read_back::<i32>(&got.indices, rows * k).unwrap(), indices, "indices after folded grids");
    assert_eq!(ctx.read_back::<f32>(&got.values, rows * k).unwrap(), values, "values after folded grids");
}

#[test]
#[should_panic(expected = "topk: k = 6 is larger than the last dim (5) of shape")]
fn topk_past_the_row_length_panics_on_the_gpu_too() {
    let Some(dev) = gpu() else { panic!("topk: k = 6 is larger than the last dim (5) of shape (no adapter: skipped)") };
    Tensor::zeros((2, 5), &dev).topk(6);
}
