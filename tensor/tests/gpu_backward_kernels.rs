//! Every GPU backward kernel and the fused AdamW step against the CPU kernels
//! (`cpu::backward`, `cpu::optim`), on small random inputs with odd sizes.
//!
//! Without an adapter the tests print a notice and pass, unless `DELTAW_REQUIRE_GPU=1`.
//! Run: `DELTAW_REQUIRE_GPU=1 cargo test -p deltaw-tensor --features gpu --test gpu_backward_kernels`.

mod gpu_support;

use deltaw_tensor::cpu;
use deltaw_tensor::gpu;
use deltaw_tensor::AdamWScalars;
use gpu_support::{assert_close, context, down, randn, up, Tol};

#[test]
fn softmax_and_log_softmax_backward_match_cpu() {
    let Some(ctx) = context() else { return };
    for (rows, c) in [(5, 13), (3, 300), (1, 1)] {
        let x: Vec<f32> = randn(rows * c, 100).iter().map(|v| v * 2.0).collect();
        let dy = randn(rows * c, 101);
        let what = format!("{rows}x{c}");

        let y = cpu::nn::softmax_forward(&x, c);
        let got = gpu::softmax_backward(ctx, &up(ctx, &y), &up(ctx, &dy), rows, c).unwrap();
        let expected = cpu::nn::softmax_backward(&y, &dy, c);
        assert_close(&down(ctx, &got, rows * c), &expected, Tol::REDUCTION, &format!("softmax_backward {what}"));

        let y = cpu::nn::log_softmax_forward(&x, c);
        let got = gpu::log_softmax_backward(ctx, &up(ctx, &y), &up(ctx, &dy), rows, c).unwrap();
        let expected = cpu::nn::log_softmax_backward(&y, &dy, c);
        assert_close(&down(ctx, &got, rows * c), &expected, Tol::REDUCTION, &format!("log_softmax_backward {what}"));
    }
}

#[test]
fn layer_norm_backward_matches_cpu_for_dx_dweight_and_dbias() {
    let Some(ctx) = context() else { return };
    // 45 columns: two column blocks of 32, the second partial; 37 rows: uneven row lanes.
    for (rows, c) in [(37, 45), (3, 301), (1, 7)] {
        let x: Vec<f32> = randn(rows * c, 110).iter().map(|v| v * 3.0 + 1.0).collect();
        let (w, b, dy) = (randn(c, 111), randn(c, 112), randn(rows * c, 113));
        let saved = cpu::nn::layer_norm_forward(&x, &w, &b, c, 1e-5);
        let (mean, rstd) = (up(ctx, &saved.mean), up(ctx, &saved.rstd));
        let got =
            gpu::layer_norm_backward(ctx, &up(ctx, &dy), &up(ctx, &x), &up(ctx, &w), &mean, &rstd, rows, c).unwrap();
        let expected = cpu::nn::layer_norm_backward(&dy, &x, &w, &saved.mean, &saved.rstd, c);
        let what = format!("layer_norm_backward {rows}x{c}");
        assert_close(&down(ctx, &got.dx, rows * c), &expected.dx, Tol::REDUCTION, &format!("{what} dx"));
        assert_close(&down(ctx, &got.dweight, c), &expected.dweight, Tol::REDUCTION, &format!("{what} dweight"));
        assert_close(&down(ctx, &got.dbias, c), &expected.dbias, Tol::REDUCTION, &format!("{what} dbias"));
    }
}

#[test]
fn gelu_backwards_match_cpu_in_the_tails_and_near_zero() {
    let Some(ctx) = context() else { return };
    let n = 1001;
    let mut x: Vec<f32> = randn(n, 120).iter().map(|v| v * 3.0).collect();
    x[..6].copy_from_slice(&[0.0, -0.75, 6.0, -6.0, 12.0, -12.0]);
    let dy = randn(n, 121);
    let (gx, gdy) = (up(ctx, &x), up(ctx, &dy));
    let got = gpu::gelu_backward(ctx, &gx, &gdy, n).unwrap();
    assert_close(&down(ctx, &got, n), &cpu::elementwise::gelu_backward(&x, &dy), Tol::TRANSCENDENTAL, "gelu_backward");
    let got = gpu::gelu_tanh_backward(ctx, &gx, &gdy, n).unwrap();
    assert_close(
        &down(ctx, &got, n),
        &cpu::elementwise::gelu_tanh_backward(&x, &dy),
        Tol::TRANSCENDENTAL,
        "gelu_tanh_backward",
    );
}

#[test]
fn cross_entropy_backward_matches_cpu_and_zeroes_ignored_rows() {
    let Some(ctx) = context() else { return };
    let (rows, v) = (9, 300);
    let logits: Vec<f32> = randn(rows * v, 130).iter().map(|x| x * 3.0).collect();
    let dloss = 0.7f32;
    let targets = [3, -100, 299, 0, 17, -100, 150, 1, 298];
    let all_ignored = [-100; 9];
    for targets in [&targets, &all_ignored] {
        let got = gpu::cross_entropy_backward(
            ctx,
            &up(ctx, &logits),
            &ctx.upload(targets).unwrap(),
            &up(ctx, &[dloss]),
            rows,
            v,
            -100,
        )
        .unwrap();
        // The scale Tensor::cross_entropy_backward passes the CPU kernel.
        let kept = cpu::nn::count_kept(targets, -100).max(1);
        let expected = cpu::nn::cross_entropy_backward(&logits, targets, v, -100, dloss / kept as f32);
        let got = down(ctx, &got, rows * v);
        assert_close(&got, &expected, Tol::TRANSCENDENTAL, &format!("cross_entropy_backward, {kept} kept"));
        assert!(got[v..2 * v].iter().all(|&d| d == 0.0), "an ignored row must get exact zeros");
    }
}

#[test]
fn index_add_matches_cpu_to_the_bit_with_repeated_indices() {
    let Some(ctx) = context() else { return };
    // Fewer indices than rows (the per-source kernel) and more (the per-output kernel).
    let few: &[i32] = &[9, 0, 3, 3, 7, 3];
    let many: &[i32] = &[2, 0, 3, 3, 1, 3, 0, 2, 2, 9, 3, 1, 0, 3, 5, 5, 3];
    for index in [few, many] {
        let (outer, d, inner) = (3, 10, 5);
        let k = index.len();
        let x = randn(outer * d * inner, 140);
        let src = randn(outer * k * inner, 141);
        let (xb, ib, sb) = (up(ctx, &x), ctx.upload(index).unwrap(), up(ctx, &src));
        let got = gpu::index_add(ctx, &xb, (outer, d, inner), &ib, k, &sb).unwrap();
        let mut expected = x.clone();
        cpu::index::index_add(&mut expected, (outer, d, inner), index, &src);
        assert_close(&down(ctx, &got, x.len()), &expected, Tol::EXACT, &format!("index_add with k = {k}"));
    }
    // Embedding backward: (1, V, C) from zeros, token ids as the index.
    let (vocab, c, ids) = (11, 7, [4, 10, 4, 0, 4, 9, 10]);
    let dy = randn(ids.len() * c, 142);
    let zeros = vec![0.0; vocab * c];
    let got =
        gpu::index_add(ctx, &up(ctx, &zeros), (1, vocab, c), &ctx.upload(&ids).unwrap(), ids.len(), &up(ctx, &dy))
            .unwrap();
    let mut expected = zeros.clone();
    cpu::index::index_add(&mut expected, (1, vocab, c), &ids, &dy);
    assert_close(&down(ctx, &got, zeros.len()), &expected, Tol::EXACT, "embedding backward");
}

#[test]
fn scatter_add_matches_cpu_to_the_bit_along_each_dim() {
    let Some(ctx) = context() else { return };
    let x_dims = [4usize, 6, 3];
    let x = randn(x_dims.iter().product(), 150);
    // Index shapes no larger than x off `dim`, and longer or shorter along it.
    for (dim, index_dims) in [(0usize, [7usize, 5, 3]), (1, [3, 9, 2]), (2, [4, 6, 5])] {
        let n: usize = index_dims.iter().product();
        let index: Vec<i32> = (0..n).map(|i| ((i * 7 + 3) % x_dims[dim]) as i32).collect();
        let src = randn(n, 151 + dim as u64);
        let got = gpu::scatter_add(
            ctx,
            &up(ctx, &x),
            &x_dims,
            dim,
            &ctx.upload(&index).unwrap(),
            &index_dims,
            &up(ctx, &src),
        )
        .unwrap();
        let mut expected = x.clone();
        cpu::index::scatter_add(&mut expected, &x_dims, dim, &index, &index_dims, &src);
        assert_close(&down(ctx, &got, x.len()), &expected, Tol::EXACT, &format!("scatter_add dim {dim}"));
    }
}

#[test]
fn adamw_update_matches_cpu_with_and_without_decay() {
    let Some(ctx) = context() else { return };
    let n = 1003;
    let (p, g) = (randn(n, 160), randn(n, 161));
    let m: Vec<f32> = randn(n, 162).iter().map(|x| x * 0.1).collect();
    let v: Vec<f32> = randn(n, 163).iter().map(|x| x * x).collect();
    let (gp, gg, gm, gv) = (up(ctx, &p), up(ctx, &g), up(ctx, &m), up(ctx, &v));
    for decay in [Some(0.999), None] {
        let s = AdamWScalars {
            decay,
            one_minus_beta1: 0.1,
            beta2: 0.999,
            one_minus_beta2: 0.001,
            bias2_sqrt: 0.03,
            eps: 1e-8,
            step_size: -0.004,
        };
        let got = gpu::adamw_update(ctx, &gp, &gg, &gm, &gv, n, s).unwrap();
        let (p2, m2, v2) = cpu::optim::adamw(&p, &g, &m, &v, s);
        let what = format!("adamw decay {decay:?}");
        assert_close(&down(ctx, &got.p, n), &p2, Tol::ARITH, &format!("{what} p"));
        assert_close(&down(ctx, &got.m, n), &m2, Tol::ARITH, &format!("{what} m"));
        assert_close(&down(ctx, &got.v, n), &v2, Tol::ARITH, &format!("{what} v"));
    }
    // The inputs are left as they were.
    assert_close(&down(ctx, &gp, n), &p, Tol::EXACT, "adamw input p");
}
