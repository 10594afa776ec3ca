//! Block-quantized weights on the GPU (`quant.wgsl`) against the host, for all 8 types:
//! upload and read-back byte for byte, dequantizing and row selection bit for bit, and the
//! products `x @ Wᵀ` (gemv and tiled kernels) and `dy @ W` within the f32 summation-order
//! tolerance; other ops refuse quantized tensors by name.
//!
//! Without an adapter the tests print a notice and pass, unless `DELTAW_REQUIRE_GPU=1`.
//! Run: `DELTAW_REQUIRE_GPU=1 cargo test -p deltaw-tensor --test gpu_quant`.

mod gpu_support;

use std::panic::{catch_unwind, AssertUnwindSafe};

use deltaw_tensor::quant::quantize;
use deltaw_tensor::{DType, Device, QuantType, Seed, Tensor};
use gpu_support::context;

fn gpu() -> Option<Device> {
    context().map(|ctx| Device::Gpu(ctx.clone()))
}

/// A (rows, cols) host tensor of N(0, 1) values quantized to `ty` with the reference
/// quantizer, and its dequantized f32 copy (the host's decode).
fn weight(ty: QuantType, rows: usize, cols: usize, seed: u64) -> (Tensor, Tensor) {
    let x = Tensor::randn((rows, cols), Seed(seed), &Device::Cpu).to_vec();
    let bytes = quantize(ty, &x).expect("finite values");
    let q = Tensor::from_quant(ty, (rows, cols), bytes, &Device::Cpu).expect("whole blocks");
    let f = q.to_dtype(DType::F32).expect("dequantize");
    (q, f)
}

fn bytes_of(t: &Tensor) -> Vec<u8> {
    let host = t.to_device(&Device::Cpu).expect("read back");
    host.quant_bytes().expect("row-major blocks").1.to_vec()
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.to_vec().into_iter().map(f32::to_bits).collect()
}

/// The panic message of `f`.
fn panic_of(f: impl FnOnce()) -> String {
    let e = catch_unwind(AssertUnwindSafe(f)).expect_err("should panic");
    e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default()
}

#[test]
fn quantized_bytes_round_trip_through_the_gpu_exactly() {
    let Some(dev) = gpu() else { return };
    for ty in QuantType::ALL {
        // 3 rows of one block: 54, 60, 66, 72, 102 bytes... (not all a multiple of 4).
        for (rows, cols) in [(3, ty.block_elems()), (5, 2 * ty.block_elems())] {
            let (q, _) = weight(ty, rows, cols, 1);
            let on_gpu = q.to_device(&dev).unwrap();
            assert_eq!(on_gpu.dtype(), DType::Quant(ty));
            assert_eq!(bytes_of(&on_gpu), q.quant_bytes().unwrap().1, "{ty} ({rows}, {cols})");
            // A narrow of rows starts inside the buffer (at an odd byte for Q4_0, Q5_0, Q8_0).
            let middle = on_gpu.narrow(0, 1, 2);
            assert_eq!(bytes_of(&middle), q.narrow(0, 1, 2).quant_bytes().unwrap().1, "{ty} rows 1..3");
            assert_eq!(bytes_of(&middle.contiguous()), bytes_of(&middle), "{ty} contiguous");
        }
    }
}

#[test]
fn dequantize_on_the_gpu_matches_the_host_bit_for_bit() {
    let Some(dev) = gpu() else { return };
    for ty in QuantType::ALL {
        let (q, f) = weight(ty, 7, 512, 2);
        let g = q.to_device(&dev).unwrap();
        // The kernel runs the host's f32 operations in its order, so the values are the same
        // bits. (Vulkan lets a driver fuse `d · q + m` / `d1 · q - m1` into an fma, which would
        // move Q4_1, Q5_1, Q4_K and Q5_K by an ulp; llvmpipe does not fuse them.)
        assert_eq!(bits(&g.to_dtype(DType::F32).unwrap()), bits(&f), "{ty}");
        assert_eq!(bits(&g.narrow(0, 3, 2).to_dtype(DType::F32).unwrap()), bits(&f.narrow(0, 3, 2)), "{ty} narrow");
        // Through f32 to the 16-bit types and i32-free paths, as the host converts.
        let bf = g.to_dtype(DType::BF16).unwrap().to_dtype(DType::F32).unwrap();
        assert_eq!(bits(&bf), bits(&f.to_dtype(DType::BF16).unwrap()), "{ty} bf16");
        assert_eq!(g.to_vec().len(), 7 * 512);
    }
}

#[test]
fn index_select_and_embedding_of_quantized_rows_match_the_host() {
    let Some(dev) = gpu() else { return };
    let ids = Tensor::from_vec(vec![4i32, 0, 4, 2], 4, &Device::Cpu).unwrap();
    let gpu_ids = ids.to_device(&dev).unwrap();
    for ty in QuantType::ALL {
        let (q, f) = weight(ty, 5, 256, 3);
        let g = q.to_device(&dev).unwrap();
        let picked = g.index_select(0, &gpu_ids);
        assert_eq!(picked.dtype(), DType::Quant(ty), "{ty}: rows stay quantized");
        assert_eq!(bytes_of(&picked), q.index_select(0, &ids).quant_bytes().unwrap().1, "{ty} index_select");
        let e = g.embedding(&gpu_ids.reshape((2, 2)));
        assert_eq!(e.dims(), &[2, 2, 256]);
        assert_eq!(bits(&e), bits(&f.index_select(0, &ids)), "{ty} embedding");
        // Rows of a 3-D tensor along dim 1: (outer 2, n 3) rows of 32 values.
        let (q3, _) = weight(ty, 6, ty.block_elems(), 4);
        let q3 = q3.reshape((2, 3, ty.block_elems()));
        let mid = Tensor::from_vec(vec![2i32, 1], 2, &Device::Cpu).unwrap();
        let got = q3.to_device(&dev).unwrap().index_select(1, &mid.to_device(&dev).unwrap());
        assert_eq!(bytes_of(&got), q3.index_select(1, &mid).quant_bytes().unwrap().1, "{ty} dim 1");
    }
}

/// `|gpu - cpu| ≤ SUM_ORDER · Σ_p |x[i, p]| · |W[j, p]|` for each output. Both sides multiply
/// the same f32 values (the GPU decodes W bit for bit as the host) and add K products in f32,
/// in different orders (64 strided partial sums and a tree, or 32-deep tiles, against the host
/// GEMM's blocking), each rounding at most ε = 6e-8 relative to a partial sum bounded by
/// Σ|x·w|. The error grows like ε·√K in practice (≈ 2e-6 for K = 768); 1e-5 leaves margin
/// while still failing on any wrong value, whose error is of the size of one whole term.
const SUM_ORDER: f32 = 1e-5;

fn assert_product_close(got: &Tensor, want: &Tensor, scale: &Tensor, what: &str) {
    assert_eq!(got.dims(), want.dims(), "{what}");
    let (g, w, s) = (got.to_vec(), want.to_vec(), scale.to_vec());
    for (i, ((a, b), s)) in g.iter().zip(&w).zip(&s).enumerate() {
        assert!((a - b).abs() <= SUM_ORDER * s, "{what}: element {i} is {a}, expected {b} (scale {s})");
    }
}

#[test]
fn x_times_w_transposed_matches_the_dequantized_product() {
    let Some(dev) = gpu() else { return };
    for ty in QuantType::ALL {
        for k in [256, 768] {
            let (q, f) = weight(ty, 70, k, 5);
            let g = q.to_device(&dev).unwrap();
            // m ≤ 8 runs the gemv kernel, more the 64×64 tiles (70: a partial second tile).
            for m in [1, 5, 20, 70] {
                let x = Tensor::randn((m, k), Seed(m as u64), &Device::Cpu);
                let want = x.matmul(&f.t());
                let scale = x.abs().matmul(&f.abs().t());
                let got = x.to_device(&dev).unwrap().matmul(&g.t());
                assert_product_close(&got, &want, &scale, &format!("{ty} k={k} m={m}"));
            }
        }
        // A vector, a batch with a transposed (strided) x, and a narrow of W's rows.
        let (q, f) = weight(ty, 40, 256, 6);
        let g = q.to_device(&dev).unwrap();
        let v = Tensor::randn(256, Seed(7), &Device::Cpu);
        let got = v.to_device(&dev).unwrap().matmul(&g.t());
        assert_product_close(&got, &v.matmul(&f.t()), &v.abs().matmul(&f.abs().t()), &format!("{ty} vector"));
        let xb = Tensor::randn((2, 256, 3), Seed(8), &Device::Cpu).transpose(1, 2);
        let got = xb.to_device(&dev).unwrap().matmul(&g.narrow(0, 8, 30).t());
        let (want, scale) = (xb.matmul(&f.narrow(0, 8, 30).t()), xb.abs().matmul(&f.narrow(0, 8, 30).abs().t()));
        assert_product_close(&got, &want, &scale, &format!("{ty} batched"));
    }
}

#[test]
fn gemv_covers_more_weight_rows_than_one_grid_dimension() {
    let Some(dev) = gpu() else { return };
    // 65,600 rows: one workgroup each, folded into a 2-D grid past 65,535.
    let (q, f) = weight(QuantType::Q8_0, 65_600, 32, 12);
    let x = Tensor::randn((1, 32), Seed(13), &Device::Cpu);
    let got = x.to_device(&dev).unwrap().matmul(&q.to_device(&dev).unwrap().t());
    assert_product_close(&got, &x.matmul(&f.t()), &x.abs().matmul(&f.abs().t()), "65,600 rows");
}

#[test]
fn dy_times_w_matches_the_dequantized_product() {
    let Some(dev) = gpu() else { return };
    for ty in [QuantType::Q8_0, QuantType::Q4_0, QuantType::Q4K, QuantType::Q6K] {
        let (q, f) = weight(ty, 24, 512, 9);
        let g = q.to_device(&dev).unwrap();
        for m in [1, 5] {
            let dy = Tensor::randn((m, 24), Seed(10 + m as u64), &Device::Cpu);
            let got = dy.to_device(&dev).unwrap().matmul(&g);
            assert_product_close(&got, &dy.matmul(&f), &dy.abs().matmul(&f.abs()), &format!("{ty} dy@W m={m}"));
        }
    }
}

#[test]
fn other_ops_refuse_quantized_gpu_tensors_by_name() {
    let Some(dev) = gpu() else { return };
    let (q, _) = weight(QuantType::Q4_0, 4, 64, 11);
    let g = q.to_device(&dev).unwrap();
    let relu = panic_of(|| {
        g.relu();
    });
    assert!(relu.contains("Relu") && relu.contains("q4_0"), "{relu}");
    let ids = Tensor::zeros((4, 64), &Device::Cpu).to_dtype(DType::I32).unwrap().to_device(&dev).unwrap();
    let gather = panic_of(|| {
        g.gather(1, &ids);
    });
    assert!(gather.contains("gather") && gather.contains("q4_0"), "{gather}");
    let cut = panic_of(|| {
        g.t().contiguous();
    });
    assert!(cut.contains("blocks cannot be copied"), "{cut}");
    let cat = panic_of(|| {
        Tensor::cat(&[&g, &g], 0);
    });
    assert!(cat.contains("cat: q4_0"), "{cat}");
    let e = Tensor::zeros((2, 32), &dev).to_dtype(DType::Quant(QuantType::Q8_0)).unwrap_err();
    assert!(e.to_string().contains("quantizing runs on the CPU"), "{e}");
    let e = Tensor::from_quant(QuantType::Q8_0, (1, 64), vec![0; 68], &Device::Cpu)
        .unwrap()
        .reshape(64)
        .narrow(0, 8, 32)
        .to_device(&dev)
        .unwrap_err();
    assert!(e.to_string().contains("inside a block"), "{e}");
}
