//! Every GPU kernel family against the CPU kernels, on small random inputs with odd sizes,
//! broadcast and transposed operands; plus the pool's no-growth property and the errors.
//!
//! Without an adapter the tests print a notice and pass, unless `DELTAW_REQUIRE_GPU=1`.
//! Run: `DELTAW_REQUIRE_GPU=1 cargo test -p deltaw-tensor --features gpu --test gpu_kernels`.

mod gpu_support;

use deltaw_tensor::cpu::{self, gemm::MatRef};
use deltaw_tensor::gpu::{self, GpuContext, GpuError, MatmulArgs};
use deltaw_tensor::{BinaryOp, Device, Layout, ReduceDims, ReduceOp, Tensor, UnaryOp};
use gpu_support::{assert_close, context, down, new_context, randn, up, view, Tol, UNARY_OPS};
use half::{bf16, f16};

#[test]
fn unary_ops_match_cpu_on_a_transposed_narrowed_view() {
    let Some(ctx) = context() else { return };
    // (5, 9, 7) → transpose(0, 2) → narrow(1, 2, 6): strides (1, 7, 63), offset 14.
    let (data, layout) = view(&[5, 9, 7], 1, |t| t.transpose(0, 2).narrow(1, 2, 6));
    let src = up(ctx, &data);
    for op in UNARY_OPS {
        let got = gpu::unary(ctx, op, &src, &layout).unwrap();
        let expected = cpu::elementwise::unary(op, &data, &layout);
        let tol = match op {
            UnaryOp::Neg
            | UnaryOp::Abs
            | UnaryOp::Relu
            | UnaryOp::Powf(2.0)
            | UnaryOp::AddScalar(_)
            | UnaryOp::MulScalar(_) => Tol::EXACT,
            UnaryOp::Sqrt | UnaryOp::DivScalar(_) | UnaryOp::ScalarDiv(_) => Tol::ARITH,
            _ => Tol::TRANSCENDENTAL,
        };
        assert_close(&down(ctx, &got, expected.len()), &expected, tol, &format!("{op:?}"));
    }
}

#[test]
fn binary_ops_match_cpu_with_broadcast_operands() {
    let Some(ctx) = context() else { return };
    // a: (5, 1, 7) expanded to (5, 3, 7); b: (3, 7) viewed as (1, 3, 7) expanded.
    let round = |v: Vec<f32>| v.into_iter().map(|x| (x * 2.0).round() / 2.0).collect::<Vec<_>>(); // ties for Eq/Le
    let mut a = round(randn(35, 2));
    let mut b = round(randn(21, 3));
    (a[4], b[9]) = (f32::NAN, f32::NAN); // maximum/minimum propagate NaN from either side
    let ta = Tensor::from_vec(a.clone(), (5, 1, 7), &Device::Cpu).unwrap().expand((5, 3, 7));
    let tb = Tensor::from_vec(b.clone(), (1, 3, 7), &Device::Cpu).unwrap().expand((5, 3, 7));
    let (ga, gb) = (up(ctx, &a), up(ctx, &b));
    use BinaryOp::*;
    for op in [Add, Sub, Mul, Div, Maximum, Minimum, Eq, Ne, Lt, Le, Gt, Ge] {
        let got = gpu::binary(ctx, op, &ga, ta.layout(), &gb, tb.layout()).unwrap();
        let expected = cpu::elementwise::binary(op, &a, ta.layout(), &b, tb.layout());
        let tol = if op == Div { Tol::ARITH } else { Tol::EXACT };
        assert_close(&down(ctx, &got, expected.len()), &expected, tol, &format!("{op:?}"));
    }
}

#[test]
fn select_where_matches_cpu_with_a_broadcast_condition() {
    let Some(ctx) = context() else { return };
    let cond: Vec<f32> = randn(6, 4).into_iter().map(|x| if x > 0.0 { 1.0 } else { 0.0 }).collect();
    let tc = Tensor::from_vec(cond.clone(), (6, 1), &Device::Cpu).unwrap().expand((6, 11));
    let (t, lt) = view(&[11, 6], 5, |t| t.transpose(0, 1));
    let (f, lf) = view(&[6, 11], 6, |t| t);
    let got = gpu::select_where(ctx, (&up(ctx, &cond), tc.layout()), (&up(ctx, &t), &lt), (&up(ctx, &f), &lf)).unwrap();
    let expected = cpu::elementwise::select((&cond, tc.layout()), (&t, &lt), (&f, &lf));
    assert_close(&down(ctx, &got, 66), &expected, Tol::EXACT, "select_where");
}

#[test]
fn copy_strided_matches_cpu_on_permuted_views() {
    let Some(ctx) = context() else { return };
    let (data, layout) = view(&[3, 4, 5, 6], 7, |t| t.permute(&[2, 0, 3, 1]).narrow(2, 1, 4));
    let got = gpu::copy_strided(ctx, &up(ctx, &data), &layout).unwrap();
    let expected = cpu::copy::gather(&data, &layout);
    assert_close(&down(ctx, &got, expected.len()), &expected, Tol::EXACT, "copy_strided");
}

#[test]
fn grids_over_65535_workgroups_cover_every_element() {
    let Some(ctx) = context() else { return };
    // 65,535 · 256 + 1,000 elements: the linear grid folds into 2-D.
    let n = 65_535 * 256 + 1_000;
    let data: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let got = gpu::unary(ctx, UnaryOp::Neg, &up(ctx, &data), &Layout::contiguous(n)).unwrap();
    let got = down(ctx, &got, n);
    let wrong = got.iter().enumerate().find(|&(i, &y)| y != -(i as f32));
    assert!(wrong.is_none(), "element {:?} wrong after a folded grid", wrong);
    // 65,541 rows of a row kernel: one workgroup per row, folded the same way.
    let rows = 65_541;
    let x: Vec<f32> = (0..rows * 2).map(|i| (i % 7) as f32).collect();
    let dims = ReduceDims { outer: rows, d: 2, inner: 1 };
    let got = gpu::reduce(ctx, ReduceOp::Sum, &up(ctx, &x), dims).unwrap();
    assert_close(
        &down(ctx, &got, rows),
        &cpu::reduce::reduce(ReduceOp::Sum, &x, dims),
        Tol::EXACT,
        "reduce_rows over 65,541 rows",
    );
}

#[test]
fn reductions_match_cpu_along_rows_and_columns() {
    let Some(ctx) = context() else { return };
    let shapes = [(3, 37, 1), (2, 1000, 1), (1, 1, 1), (2, 300, 5), (4, 3, 257), (1, 2, 1)];
    for (seed, &(outer, d, inner)) in shapes.iter().enumerate() {
        let x = randn(outer * d * inner, 10 + seed as u64);
        let gx = up(ctx, &x);
        let dims = ReduceDims { outer, d, inner };
        use ReduceOp::*;
        for op in [Sum, Mean, Max, Min, Var, ArgMax] {
            let got = gpu::reduce(ctx, op, &gx, dims).unwrap();
            let expected = cpu::reduce::reduce(op, &x, dims);
            let tol = if matches!(op, Max | Min | ArgMax) { Tol::EXACT } else { Tol::REDUCTION };
            assert_close(
                &down(ctx, &got, outer * inner),
                &expected,
                tol,
                &format!("{op:?} over {:?}", (outer, d, inner)),
            );
        }
    }
}

#[test]
fn max_min_argmax_keep_infinities_and_nan_like_the_cpu() {
    let Some(ctx) = context() else { return };
    let (inf, nan) = (f32::INFINITY, f32::NAN);
    #[rustfmt::skip]
    let rows = [
        -inf, -inf, -inf, -inf, -inf, // max -inf, argmax 0 (no sentinel may win)
        1.0, nan, 3.0, nan, 0.0,      // NaN wins, argmax = first NaN
        inf, inf, inf, inf, inf,
        2.0, 5.0, 5.0, -1.0, 5.0,     // first maximum
    ];
    // The same values as columns: (5, 4), reduced along dim 0.
    let columns: Vec<f32> = (0..20).map(|i| rows[(i % 4) * 5 + i / 4]).collect();
    let cases =
        [(&rows[..], ReduceDims { outer: 4, d: 5, inner: 1 }), (&columns[..], ReduceDims { outer: 1, d: 5, inner: 4 })];
    for (x, dims) in cases {
        for op in [ReduceOp::Max, ReduceOp::Min, ReduceOp::ArgMax] {
            let got = gpu::reduce(ctx, op, &up(ctx, x), dims).unwrap();
            assert_close(
                &down(ctx, &got, 4),
                &cpu::reduce::reduce(op, x, dims),
                Tol::EXACT,
                &format!("{op:?} over {dims:?}"),
            );
        }
    }
}

#[test]
fn softmax_and_log_softmax_match_cpu() {
    let Some(ctx) = context() else { return };
    for (rows, c) in [(5, 1), (3, 7), (4, 300), (2, 1000)] {
        let x: Vec<f32> = randn(rows * c, 20 + c as u64).iter().map(|v| v * 4.0).collect();
        let gx = up(ctx, &x);
        let got = gpu::softmax(ctx, &gx, rows, c).unwrap();
        assert_close(
            &down(ctx, &got, rows * c),
            &cpu::nn::softmax_forward(&x, c),
            Tol::TRANSCENDENTAL,
            &format!("softmax {rows}x{c}"),
        );
        let got = gpu::log_softmax(ctx, &gx, rows, c).unwrap();
        assert_close(
            &down(ctx, &got, rows * c),
            &cpu::nn::log_softmax_forward(&x, c),
            Tol::TRANSCENDENTAL,
            &format!("log_softmax {rows}x{c}"),
        );
    }
}

#[test]
fn layer_norm_matches_cpu_and_saves_mean_and_rstd() {
    let Some(ctx) = context() else { return };
    for (rows, c, eps) in [(4, 13, 1e-5), (3, 777, 1e-12), (1, 1, 1e-5)] {
        let x: Vec<f32> = randn(rows * c, 30).iter().map(|v| v * 3.0 + 1.0).collect();
        let (w, b) = (randn(c, 31), randn(c, 32));
        let got = gpu::layer_norm(ctx, &up(ctx, &x), &up(ctx, &w), &up(ctx, &b), rows, c, eps).unwrap();
        let expected = cpu::nn::layer_norm_forward(&x, &w, &b, c, eps);
        let what = format!("layer_norm {rows}x{c}");
        assert_close(&down(ctx, &got.y, rows * c), &expected.y, Tol::REDUCTION, &what);
        assert_close(&down(ctx, &got.mean, rows), &expected.mean, Tol::REDUCTION, &what);
        assert_close(&down(ctx, &got.rstd, rows), &expected.rstd, Tol::REDUCTION, &what);
    }
}

#[test]
fn index_select_gather_and_cat_match_cpu() {
    let Some(ctx) = context() else { return };
    let x = randn(3 * 10 * 5, 40);
    let index = [9, 0, 3, 3];
    let got = gpu::index_select(ctx, &up(ctx, &x), (3, 10, 5), &ctx.upload(&index).unwrap(), 4).unwrap();
    assert_close(
        &down(ctx, &got, 60),
        &cpu::index::index_select(&x, (3, 10, 5), &index, "t"),
        Tol::EXACT,
        "index_select",
    );
    // An embedding lookup on i32 data: the kernels move 32-bit words, whatever they hold.
    let table: Vec<i32> = (0..50 * 16).map(|i| i * 7 - 300).collect();
    let ids = [49, 0, 17, 17, 3, 8, 22];
    let got = gpu::index_select(ctx, &ctx.upload(&table).unwrap(), (1, 50, 16), &ctx.upload(&ids).unwrap(), 7).unwrap();
    assert_eq!(ctx.read_back::<i32>(&got, 7 * 16).unwrap(), cpu::index::index_select(&table, (1, 50, 16), &ids, "t"));
    // gather along dims 1 and 2 of (4, 6, 3).
    let x = randn(4 * 6 * 3, 41);
    for (dim, index_dims) in [(1usize, [4usize, 2, 3]), (2, [4, 6, 5])] {
        let n: usize = index_dims.iter().product();
        let index: Vec<i32> = (0..n).map(|i| ((i * 7 + 3) % [4, 6, 3][dim]) as i32).collect();
        let got = gpu::gather(ctx, &up(ctx, &x), &[4, 6, 3], dim, &ctx.upload(&index).unwrap(), &index_dims).unwrap();
        let expected = cpu::index::gather(&x, &[4, 6, 3], dim, &index, &index_dims);
        assert_close(&down(ctx, &got, n), &expected, Tol::EXACT, &format!("gather dim {dim}"));
    }
    let parts: Vec<(Vec<f32>, usize)> =
        [2, 5, 1].iter().enumerate().map(|(s, &d)| (randn(3 * d * 4, 50 + s as u64), d)).collect();
    let gparts: Vec<(gpu::GpuBuffer, usize)> = parts.iter().map(|(v, d)| (up(ctx, v), *d)).collect();
    let refs: Vec<(&gpu::GpuBuffer, usize)> = gparts.iter().map(|(b, d)| (b, *d)).collect();
    let got = gpu::cat(ctx, &refs, 3, 4).unwrap();
    let cpu_parts: Vec<(&[f32], usize)> = parts.iter().map(|(v, d)| (v.as_slice(), *d)).collect();
    assert_close(&down(ctx, &got, 3 * 8 * 4), &cpu::index::cat(&cpu_parts, 3, 4), Tol::EXACT, "cat");
}

#[test]
fn cross_entropy_matches_cpu_and_skips_ignored_rows() {
    let Some(ctx) = context() else { return };
    let (rows, v) = (9, 300);
    let logits: Vec<f32> = randn(rows * v, 60).iter().map(|x| x * 3.0).collect();
    let targets = [3, -100, 299, 0, 17, -100, 150, 1, 298];
    let got = gpu::cross_entropy(ctx, &up(ctx, &logits), &ctx.upload(&targets).unwrap(), rows, v, -100).unwrap();
    let (sum, count) = cpu::nn::cross_entropy_forward(&logits, &targets, v, -100);
    assert_close(&down(ctx, &got, 1), &[(sum / count as f64) as f32], Tol::REDUCTION, "cross_entropy");
    let all_ignored = [-100; 9];
    let got = gpu::cross_entropy(ctx, &up(ctx, &logits), &ctx.upload(&all_ignored).unwrap(), rows, v, -100).unwrap();
    assert!(down(ctx, &got, 1)[0].is_nan(), "all rows ignored must give NaN, as PyTorch");
}

/// CPU reference for one batched, strided product.
fn cpu_matmul(a: &[f32], b: &[f32], args: &MatmulArgs) -> Vec<f32> {
    let (m, n) = (args.m, args.n);
    let mut c = vec![0.0; args.batch_offsets.len() * m * n];
    for (batch, &(oa, ob)) in args.batch_offsets.iter().enumerate() {
        let ma = MatRef { data: a, offset: oa, row_stride: args.a_strides.0, col_stride: args.a_strides.1 };
        let mb = MatRef { data: b, offset: ob, row_stride: args.b_strides.0, col_stride: args.b_strides.1 };
        cpu::gemm::sgemm(m, n, args.k, ma, mb, &mut c[batch * m * n..(batch + 1) * m * n], n, false);
    }
    c
}

/// Batch 3 of (67 × 33) · (33 × 70): A transposed in storage, B broadcast over the batch.
fn matmul_case() -> (Vec<f32>, Vec<f32>, MatmulArgs) {
    let (m, n, k) = (67, 70, 33);
    let a = randn(3 * m * k, 70);
    let b = randn(k * n, 71);
    let args = MatmulArgs {
        m,
        n,
        k,
        a_strides: (1, m),
        b_strides: (n, 1),
        batch_offsets: (0..3).map(|i| (i * m * k, 0)).collect(),
    };
    (a, b, args)
}

#[test]
fn matmul_matches_cpu_with_transposed_and_broadcast_operands() {
    let Some(ctx) = context() else { return };
    let (a, b, args) = matmul_case();
    let got = gpu::matmul(ctx, &up(ctx, &a), &up(ctx, &b), &args).unwrap();
    let expected = cpu_matmul(&a, &b, &args);
    assert_close(&down(ctx, &got, expected.len()), &expected, Tol::MATMUL, "matmul");
}

#[test]
fn matmul_f16_matches_cpu_on_f16_rounded_inputs() {
    let Some(ctx) = context() else { return };
    let (a, b, args) = matmul_case();
    let (a16, b16) = (
        a.iter().map(|&x| f16::from_f32(x)).collect::<Vec<_>>(),
        b.iter().map(|&x| f16::from_f32(x)).collect::<Vec<_>>(),
    );
    let result = gpu::matmul_f16(ctx, &ctx.upload(&a16).unwrap(), &ctx.upload(&b16).unwrap(), &args);
    if !ctx.has_f16() {
        assert!(matches!(result, Err(GpuError::NeedsF16 { .. })), "expected NeedsF16, got {result:?}");
        eprintln!("{} has no SHADER_F16: matmul_f16 only checked to refuse", ctx.adapter_name());
        return;
    }
    // The f16 inputs widen exactly and products accumulate in f32, so against the CPU product
    // of the same rounded inputs only the summation order differs: the f32 tolerance holds.
    let (ar, br): (Vec<f32>, Vec<f32>) =
        (a16.iter().map(|x| x.to_f32()).collect(), b16.iter().map(|x| x.to_f32()).collect());
    let expected = cpu_matmul(&ar, &br, &args);
    assert_close(&down(ctx, &result.unwrap(), expected.len()), &expected, Tol::MATMUL, "matmul_f16");
}

#[test]
fn conversions_round_like_the_half_crate() {
    let Some(ctx) = context() else { return };
    let mut x = randn(999, 80); // odd: the last word is half padding
    x.extend([
        0.0,
        -0.0,
        1.0,
        65504.0,
        65519.0,
        65520.0,
        -1e9,
        f32::INFINITY,
        f32::NAN,
        6e-8,
        2.9802322e-8,
        3e-8,
        -1e-7,
        1e-40,
        3.0e38,
    ]);
    let n = x.len();
    let gx = up(ctx, &x);
    let h: Vec<f16> = ctx.read_back(&gpu::f32_to_f16(ctx, &gx, n).unwrap(), n).unwrap();
    for (i, (&v, got)) in x.iter().zip(&h).enumerate() {
        let want = f16::from_f32(v);
        assert!(
            got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
            "f32_to_f16({v}) at {i}: {got:?} vs {want:?}"
        );
    }
    let b: Vec<bf16> = ctx.read_back(&gpu::f32_to_bf16(ctx, &gx, n).unwrap(), n).unwrap();
    for (i, (&v, got)) in x.iter().zip(&b).enumerate() {
        let want = bf16::from_f32(v);
        assert!(
            got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
            "f32_to_bf16({v}) at {i}: {got:?} vs {want:?}"
        );
    }
    // Widening: every one of the 65,536 bit patterns.
    let all: Vec<u16> = (0..=u16::MAX).collect();
    let wide = down(ctx, &gpu::f16_to_f32(ctx, &ctx.upload(&all).unwrap(), all.len()).unwrap(), all.len());
    let expected: Vec<f32> = all.iter().map(|&h| f16::from_bits(h).to_f32()).collect();
    assert!(
        wide.iter().zip(&expected).all(|(a, e)| a.to_bits() == e.to_bits() || (a.is_nan() && e.is_nan())),
        "f16_to_f32 differs"
    );
    let wide = down(ctx, &gpu::bf16_to_f32(ctx, &ctx.upload(&all).unwrap(), all.len()).unwrap(), all.len());
    let expected: Vec<f32> = all.iter().map(|&h| bf16::from_bits(h).to_f32()).collect();
    assert!(
        wide.iter().zip(&expected).all(|(a, e)| a.to_bits() == e.to_bits() || (a.is_nan() && e.is_nan())),
        "bf16_to_f32 differs"
    );
}

#[test]
fn chained_dispatches_in_one_pass_see_each_others_writes() {
    let Some(ctx) = context() else { return };
    // 40 dependent dispatches recorded back to back (fewer than a batch), then one read-back.
    let x = randn(1_000, 95);
    let layout = Layout::contiguous(1_000);
    let mut y = up(ctx, &x);
    let mut expected = x.clone();
    for step in 0..40 {
        let op = if step % 2 == 0 { UnaryOp::AddScalar(1.0) } else { UnaryOp::MulScalar(0.5) };
        y = gpu::unary(ctx, op, &y, &layout).unwrap();
        expected = cpu::elementwise::unary(op, &expected, &layout);
    }
    assert_close(&down(ctx, &y, 1_000), &expected, Tol::EXACT, "40 chained unary ops");
}

#[test]
fn softmax_handles_causally_masked_rows() {
    let Some(ctx) = context() else { return };
    // Row r of a (6, 6) causal mask keeps columns 0..=r; the rest is -inf, as in attention.
    let scores = randn(36, 96);
    let x: Vec<f32> = (0..36).map(|i| if i % 6 > i / 6 { f32::NEG_INFINITY } else { scores[i] }).collect();
    let gx = up(ctx, &x);
    let got = down(ctx, &gpu::softmax(ctx, &gx, 6, 6).unwrap(), 36);
    assert_close(&got, &cpu::nn::softmax_forward(&x, 6), Tol::TRANSCENDENTAL, "masked softmax");
    let got = down(ctx, &gpu::log_softmax(ctx, &gx, 6, 6).unwrap(), 36);
    assert_close(&got, &cpu::nn::log_softmax_forward(&x, 6), Tol::TRANSCENDENTAL, "masked log_softmax");
}

/// One step of a small model: matmul, GELU, softmax, a reduction.
fn model_step(ctx: &GpuContext, x: &gpu::GpuBuffer, w: &gpu::GpuBuffer) -> gpu::GpuBuffer {
    let args = MatmulArgs { m: 8, n: 12, k: 16, a_strides: (16, 1), b_strides: (12, 1), batch_offsets: vec![(0, 0)] };
    let h = gpu::matmul(ctx, x, w, &args).unwrap();
    let g = gpu::unary(ctx, UnaryOp::Gelu, &h, &Layout::contiguous((8, 12))).unwrap();
    let p = gpu::softmax(ctx, &g, 8, 12).unwrap();
    gpu::reduce(ctx, ReduceOp::Sum, &p, ReduceDims { outer: 8, d: 12, inner: 1 }).unwrap()
}

#[test]
fn repeated_launches_of_the_same_shapes_do_not_grow_the_pool() {
    if context().is_none() {
        return;
    }
    let ctx = new_context().unwrap(); // its own pool counters
    let (x, w) = (up(&ctx, &randn(8 * 16, 90)), up(&ctx, &randn(16 * 12, 91)));
    for _ in 0..200 {
        model_step(&ctx, &x, &w);
    }
    let first = down(&ctx, &model_step(&ctx, &x, &w), 8);
    let before = ctx.pool_stats();
    for _ in 0..1_000 {
        model_step(&ctx, &x, &w);
    }
    let last = down(&ctx, &model_step(&ctx, &x, &w), 8);
    let after = ctx.pool_stats();
    assert_eq!(before.buffers_created, after.buffers_created, "pool grew: {before:?} -> {after:?}");
    assert_eq!(first, last, "same inputs, same outputs");
    assert_close(&first, &[1.0; 8], Tol::ARITH, "softmax rows sum to 1");
}

#[test]
fn allocations_over_the_limit_fail_naming_size_and_limit() {
    let Some(ctx) = context() else { return };
    let limit = ctx.limits().max_buffer_size.min(ctx.limits().max_storage_buffer_binding_size);
    let err = ctx.alloc(limit + 4).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, GpuError::AllocationTooLarge { .. }), "{message}");
    assert!(message.contains(&(limit + 4).to_string()) && message.contains(&limit.to_string()), "{message}");
    let over = ctx.limits().max_buffer_size + 4;
    assert!(ctx.alloc(over).unwrap_err().to_string().contains(&over.to_string()));
}

#[test]
fn a_lost_device_returns_an_error_instead_of_hanging() {
    if context().is_none() {
        return;
    }
    let ctx = new_context().unwrap();
    let x = up(&ctx, &[1.0, 2.0, 3.0]);
    ctx.destroy();
    let result = gpu::unary(&ctx, UnaryOp::Neg, &x, &Layout::contiguous(3)).and_then(|y| ctx.read_back::<f32>(&y, 3));
    assert!(matches!(result, Err(GpuError::DeviceLost(_))), "got {result:?}");
}
