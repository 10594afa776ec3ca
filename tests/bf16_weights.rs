//! Frozen bf16 / f16 weights used in their storage dtype: matmul, embedding and a LoRA-style
//! forward and backward over them give the bits of the same ops on the f32-widened weight
//! (widening is exact and the GEMM does the same f32 multiply-adds in the same order), and
//! the weight stays 2 bytes per element throughout. CPU only: the GPU is checked against the
//! CPU in `tensor/tests/gpu_kernels.rs`.

use deltaw_autograd::Var;
use deltaw_tensor::{DType, Device, Seed, Tensor};

const HALF_TYPES: [DType; 2] = [DType::BF16, DType::F16];

fn randn(dims: &[usize], seed: u64) -> Tensor {
    Tensor::randn(dims.to_vec(), Seed(seed), &Device::Cpu)
}

/// `w` rounded to `dtype`, and the f32 widening of that rounded weight.
fn narrowed(w: &Tensor, dtype: DType) -> (Tensor, Tensor) {
    let narrow = w.to_dtype(dtype).unwrap();
    let wide = narrow.to_dtype(DType::F32).unwrap();
    (narrow, wide)
}

/// Same shape and the same f32 bits everywhere.
#[track_caller]
fn assert_bits_eq(got: &Tensor, want: &Tensor, what: &str) {
    assert_eq!(got.dtype(), DType::F32, "{what}: result dtype");
    assert_eq!(got.dims(), want.dims(), "{what}: shapes");
    let (g, w) = (got.to_vec(), want.to_vec());
    let bad: Vec<_> =
        (0..g.len()).filter(|&i| g[i].to_bits() != w[i].to_bits()).take(4).map(|i| (i, g[i], w[i])).collect();
    assert!(bad.is_empty(), "{what}: first differing (index, got, want): {bad:?}");
}

#[test]
fn matmul_with_a_half_weight_gives_the_bits_of_the_widened_weight() {
    // Decode (M = 1), prefill (M = 7, batched) and a tall batch: gemv and packed paths.
    let (c, n) = (96, 136);
    for dtype in HALF_TYPES {
        let (w, w32) = narrowed(&randn(&[n, c], 1), dtype); // (N, C): a Linear weight
        for x_dims in [vec![1, c], vec![2, 7, c], vec![300, c], vec![c]] {
            let x = randn(&x_dims, 2);
            let what = format!("{dtype} x {x_dims:?} @ w.t()");
            assert_bits_eq(&x.matmul(&w.t()), &x.matmul(&w32.t()), &what);
        }
        // The backward's dx = dy · W reads W row-major.
        for dy_dims in [vec![1, n], vec![3, 5, n], vec![n]] {
            let dy = randn(&dy_dims, 3);
            assert_bits_eq(&dy.matmul(&w), &dy.matmul(&w32), &format!("{dtype} dy {dy_dims:?} @ w"));
        }
        // A column slice of the weight: strides that are neither row- nor column-major.
        let sliced = w.narrow(1, 8, 40).t();
        let x = randn(&[4, 40], 4);
        assert_bits_eq(&x.matmul(&sliced), &x.matmul(&w32.narrow(1, 8, 40).t()), "sliced");
    }
}

#[test]
fn matmul_with_a_half_lhs_equals_its_f32_widening() {
    for dtype in HALF_TYPES {
        let (x, x32) = narrowed(&randn(&[6, 20], 5), dtype);
        let w = randn(&[20, 9], 6);
        assert_bits_eq(&x.matmul(&w), &x32.matmul(&w), &format!("{dtype} lhs"));
    }
}

#[test]
fn embedding_from_a_half_table_gives_f32_rows_of_the_widened_table() {
    let ids = Tensor::from_vec(vec![3i32, 0, 7, 3, 9, 1], (2, 3), &Device::Cpu).unwrap();
    for dtype in HALF_TYPES {
        let (table, table32) = narrowed(&randn(&[10, 12], 7), dtype);
        let rows = table.embedding(&ids);
        assert_eq!(rows.dims(), &[2, 3, 12]);
        assert_bits_eq(&rows, &table32.embedding(&ids), &format!("{dtype} embedding"));
    }
}

/// The gradients of `Σ r · (x Wᵀ + s · (x Aᵀ) Bᵀ)`, a LoRA linear over the frozen `w`, for the
/// trainable x, A and B; and whether the frozen weight got a gradient.
fn lora_grads(w: &Tensor, x: &Tensor, a: &Tensor, b: &Tensor, r: &Tensor) -> (Vec<Tensor>, bool) {
    let w = Var::parameter(w.clone());
    w.set_requires_grad(false);
    let (x, a, b) = (Var::parameter(x.clone()), Var::parameter(a.clone()), Var::parameter(b.clone()));
    let base = x.matmul(&w.t()); // (B, T, N)
    let delta = x.matmul(&a.t()).matmul(&b.t()).mul_scalar(0.5); // (B, T, R) then (B, T, N)
    let y = base.add(&delta);
    let grads = y.backward_with(r).unwrap();
    let get = |v: &Var| grads.get(v).expect("a trainable input has a gradient").clone();
    (vec![get(&x), get(&a), get(&b)], grads.get(&w).is_some())
}

#[test]
fn lora_backward_over_a_frozen_half_weight_gives_the_bits_of_the_f32_weight() {
    let (bsz, t, c, n, rank) = (2, 5, 48, 40, 4);
    let x = randn(&[bsz, t, c], 8);
    let a = randn(&[rank, c], 9);
    let b = randn(&[n, rank], 10);
    let r = randn(&[bsz, t, n], 11); // a random upstream gradient, not all ones
    for dtype in HALF_TYPES {
        let (w, w32) = narrowed(&randn(&[n, c], 12), dtype);
        let (got, w_grad) = lora_grads(&w, &x, &a, &b, &r);
        let (want, _) = lora_grads(&w32, &x, &a, &b, &r);
        assert!(!w_grad, "{dtype}: the frozen weight must get no gradient");
        for (name, (g, e)) in ["dx", "dA", "dB"].iter().zip(got.iter().zip(&want)) {
            assert_bits_eq(g, e, &format!("{dtype} {name}"));
        }
        assert_eq!(w.dtype(), dtype, "the weight keeps its dtype");
    }
}

#[test]
fn a_half_weight_stays_two_bytes_per_element_through_forward_and_backward() {
    let (n, c) = (4096, 4096);
    let w = Tensor::zeros((n, c), &Device::Cpu).to_dtype(DType::BF16).unwrap();
    assert_eq!(w.storage_bytes(), n * c * 2, "a bf16 (4096, 4096) weight holds 32 MiB");
    let frozen = Var::parameter(w.clone());
    frozen.set_requires_grad(false);
    let x = Var::parameter(randn(&[1, c], 13));
    let y = x.matmul(&frozen.t());
    let grads = y.backward_with(&randn(&[1, n], 14)).unwrap();
    assert_eq!(grads.get(&x).unwrap().dims(), &[1, c]);
    assert!(grads.get(&frozen).is_none());
    let value = frozen.value();
    assert_eq!((value.dtype(), value.storage_bytes()), (DType::BF16, n * c * 2));
    assert!(value.shares_storage_with(&w), "the parameter is the loaded buffer, not a copy");
}
