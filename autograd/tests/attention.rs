//! `Var::attention` (one op with its own backward) against the same attention built from the
//! unfused ops (matmul, mul_scalar, masked_fill, softmax, matmul), whose gradients the PyTorch
//! fixtures and the finite-difference gradcheck already pin: equal to the bit on the CPU, and
//! within float tolerance on a GPU when one exists.

use deltaw_autograd::Var;
use deltaw_tensor::{Device, Seed, Tensor};

/// q, k, v as heads of `(B, T, NH, HS)` projections (strided views, as in the models) and a
/// causal mask offset so that every query sees at least one key.
fn inputs(dev: &Device) -> ([Var; 3], Tensor) {
    let (b, nh, t, s, hs) = (2, 3, 4, 6, 5);
    let leaf =
        |len, seed| Var::parameter(Tensor::randn((b, len, nh, hs), Seed(seed), &Device::Cpu).to_device(dev).unwrap());
    let keys = Tensor::arange(0.0, s as f32, dev).reshape((1, 1, 1, s));
    let queries = Tensor::arange(2.0, (t + 2) as f32, dev).reshape((1, 1, t, 1));
    ([leaf(t, 1), leaf(s, 2), leaf(s, 3)], keys.gt(&queries))
}

/// Output and the gradients of q, k, v for loss `Σ out ⊙ w`, fused or not.
fn run(dev: &Device, fused: bool) -> Vec<Vec<f32>> {
    let (leaves, mask) = inputs(dev);
    let [q, k, v] = leaves.each_ref().map(|x| x.permute(&[0, 2, 1, 3])); // (B, NH, len, HS) views
    let scale = 1.0 / 5f32.sqrt();
    let out = if fused {
        q.attention(&k, &v, &mask, scale)
    } else {
        let p = q.matmul(&k.transpose(-2, -1)).mul_scalar(scale).masked_fill(&mask, f32::NEG_INFINITY).softmax(-1);
        p.matmul(&v)
    };
    let w = Tensor::randn(out.dims(), Seed(9), &Device::Cpu).to_device(dev).unwrap();
    let grads = out.mul(&Var::constant(w)).sum_all().backward().unwrap();
    let grad = |x: &Var| grads.get(x).expect("a gradient").to_vec();
    let [dq, dk, dv] = leaves.each_ref().map(grad);
    vec![out.value().to_vec(), dq, dk, dv]
}

#[test]
fn fused_attention_matches_the_unfused_ops_to_the_bit_on_the_cpu() {
    assert_eq!(run(&Device::Cpu, true), run(&Device::Cpu, false));
}

#[cfg(feature = "gpu")]
#[test]
fn fused_attention_on_a_gpu_matches_the_cpu() {
    let dev = match Device::gpu() {
        Ok(dev) => dev,
        Err(e) if std::env::var("DELTAW_REQUIRE_GPU").as_deref() == Ok("1") => panic!("DELTAW_REQUIRE_GPU=1 but {e}"),
        Err(e) => return eprintln!("notice: GPU test skipped: {e}"),
    };
    let (gpu, cpu) = (run(&dev, true), run(&Device::Cpu, true));
    for (what, (g, c)) in ["output", "dq", "dk", "dv"].iter().zip(gpu.iter().zip(&cpu)) {
        // Sums of ≤ 6 products and a softmax: a few ulp of the terms' scale.
        let close = g.iter().zip(c).all(|(a, e)| (a - e).abs() <= 1e-5 + 1e-5 * e.abs());
        assert!(close, "{what}: gpu {g:?} vs cpu {c:?}");
    }
}
