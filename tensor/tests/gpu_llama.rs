//! The Llama family's ops on `Device::Gpu` against the same calls on the CPU: RMSNorm, rotary
//! embedding and SwiGLU (`rms_norm.wgsl`, `rope.wgsl`, `swiglu.wgsl`), forward and backward, and
//! grouped-query attention (the broadcasting matmul path), on odd sizes and strided inputs.
//!
//! Without an adapter the tests print a notice and pass, unless `DELTAW_REQUIRE_GPU=1`.
//! Run: `DELTAW_REQUIRE_GPU=1 cargo test --workspace --all-features --test gpu_llama`.

mod gpu_support;

use deltaw_tensor::{Device, Seed, Tensor};
use gpu_support::{assert_close, context, Tol};

/// The shared context as a device.
fn gpu() -> Option<Device> {
    context().map(|ctx| Device::Gpu(ctx.clone()))
}

/// A seeded N(0, 1) tensor on the host and its copy on `dev`.
fn pair(dims: &[usize], seed: u64, dev: &Device) -> (Tensor, Tensor) {
    let host = Tensor::randn(dims, Seed(seed), &Device::Cpu);
    let on_gpu = host.to_device(dev).unwrap();
    (host, on_gpu)
}

fn check(gpu: &Tensor, cpu: &Tensor, tol: Tol, what: &str) {
    assert_eq!(gpu.dims(), cpu.dims(), "{what}: shapes differ");
    assert_close(&gpu.to_vec(), &cpu.to_vec(), tol, what);
}

#[test]
fn rms_norm_forward_and_backward_match_cpu() {
    let Some(dev) = gpu() else { return };
    // 45 columns: a partial second block of 32 for dweight; 301: rows longer than a workgroup.
    for (rows, c) in [(37, 45), (3, 301), (1, 7)] {
        let (x, gx) = pair(&[rows, c], 1, &dev);
        let (w, gw) = pair(&[c], 2, &dev);
        let (dy, gdy) = pair(&[rows, c], 3, &dev);
        let what = format!("rms_norm {rows}x{c}");
        let (cpu, on_gpu) = (x.rms_norm_with_stats(&w, 1e-6), gx.rms_norm_with_stats(&gw, 1e-6));
        check(&on_gpu.output, &cpu.output, Tol::REDUCTION, &format!("{what} output"));
        check(&on_gpu.rstd, &cpu.rstd, Tol::REDUCTION, &format!("{what} rstd"));
        let (dx, dw) = x.rms_norm_backward(&dy, &w, &cpu.rstd);
        let (gdx, gdw) = gx.rms_norm_backward(&gdy, &gw, &on_gpu.rstd);
        check(&gdx, &dx, Tol::REDUCTION, &format!("{what} dx"));
        check(&gdw, &dw, Tol::REDUCTION, &format!("{what} dweight"));
    }
}

#[test]
fn rope_forward_and_backward_match_cpu_on_strided_input_and_broadcast_tables() {
    let Some(dev) = gpu() else { return };
    let (b, t, nh, hs) = (2, 5, 3, 8);
    // x as (B, NH, T, HS) permuted to (B, T, NH, HS): the layout of q after a transpose.
    let (x, gx) = pair(&[b, nh, t, hs], 4, &dev);
    let (x, gx) = (x.permute(&[0, 2, 1, 3]), gx.permute(&[0, 2, 1, 3]));
    let (cos, gcos) = pair(&[1, t, hs / 2], 5, &dev); // shared by the batch
    let (sin, gsin) = pair(&[1, t, hs / 2], 6, &dev);
    check(&gx.rope(&gcos, &gsin), &x.rope(&cos, &sin), Tol::ARITH, "rope");
    check(&gx.rope_backward(&gcos, &gsin), &x.rope_backward(&cos, &sin), Tol::ARITH, "rope_backward");
}

#[test]
fn swiglu_forward_and_backward_match_cpu() {
    let Some(dev) = gpu() else { return };
    let dims = [3, 347]; // more than one workgroup, not a multiple of 256
    let (g, gg) = pair(&dims, 7, &dev);
    let (g, gg) = (g.mul_scalar(4.0), gg.mul_scalar(4.0)); // into silu's tails
    let (u, gu) = pair(&dims, 8, &dev);
    let (d, gd) = pair(&dims, 9, &dev);
    check(&gg.swiglu(&gu), &g.swiglu(&u), Tol::TRANSCENDENTAL, "swiglu");
    let ((dg, du), (gdg, gdu)) = (g.swiglu_backward(&u, &d), gg.swiglu_backward(&gu, &gd));
    check(&gdg, &dg, Tol::TRANSCENDENTAL, "swiglu dgate");
    check(&gdu, &du, Tol::TRANSCENDENTAL, "swiglu dup");
}

#[test]
fn grouped_query_attention_forward_and_backward_match_cpu() {
    let Some(dev) = gpu() else { return };
    for (nh, nkv) in [(4, 1), (6, 2), (2, 2)] {
        let (b, t, s, hs) = (2, 4, 6, 8);
        let (q, gq) = pair(&[b, t, nh, hs], 10, &dev);
        let (q, gq) = (q.permute(&[0, 2, 1, 3]), gq.permute(&[0, 2, 1, 3])); // strided queries
        let (k, gk) = pair(&[b, nkv, s, hs], 11, &dev);
        let (v, gv) = pair(&[b, nkv, s, hs], 12, &dev);
        let causal = |d: &Device| {
            let keys = Tensor::arange(0.0, s as f32, d).reshape((1, 1, 1, s));
            keys.gt(&Tensor::arange((s - t) as f32, s as f32, d).reshape((1, 1, t, 1)))
        };
        let scale = 1.0 / (hs as f32).sqrt();
        let what = format!("attention {nh}:{nkv}");
        let cpu = q.attention(&k, &v, &causal(&Device::Cpu), scale);
        let on_gpu = gq.attention(&gk, &gv, &causal(&dev), scale);
        check(&on_gpu.output, &cpu.output, Tol::MATMUL, &format!("{what} output"));
        check(&on_gpu.probs, &cpu.probs, Tol::MATMUL, &format!("{what} probs"));
        let (dout, gdout) = pair(&[b, nh, t, hs], 13, &dev);
        let grads = q.attention_backward(&k, &v, &cpu.probs, &dout, scale);
        let gpu_grads = gq.attention_backward(&gk, &gv, &on_gpu.probs, &gdout, scale);
        check(&gpu_grads.0, &grads.0, Tol::MATMUL, &format!("{what} dq"));
        check(&gpu_grads.1, &grads.1, Tol::MATMUL, &format!("{what} dk"));
        check(&gpu_grads.2, &grads.2, Tol::MATMUL, &format!("{what} dv"));
    }
}
