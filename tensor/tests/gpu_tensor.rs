//! The `Tensor` API on `Device::Gpu` against the same calls on `Device::Cpu`: a property test
//! that runs every op (forward, backward and the optimizer step) on random shapes, dims and
//! non-contiguous views; moving data between devices in every dtype; the buffer pool staying
//! flat over 1,000 forward passes; and the errors (mixed devices, no adapter, lost device).
//!
//! Without an adapter the tests print a notice and pass, unless `DELTAW_REQUIRE_GPU=1`.
//! Run: `DELTAW_REQUIRE_GPU=1 cargo test -p deltaw-tensor --test gpu_tensor`.

mod gpu_support;

use deltaw_tensor::gpu::{GpuContext, GpuError, GpuOptions};
use deltaw_tensor::{AdamWScalars, DType, Device, Error, ReduceOp, Seed, Tensor};
use gpu_support::{assert_close, context, Tol, UNARY_OPS};
use proptest::prelude::*;

/// The shared context as a device.
fn gpu() -> Option<Device> {
    context().map(|ctx| Device::Gpu(ctx.clone()))
}

/// Random inputs for one case, made on the host and copied to `dev`, so both devices see the
/// same values.
struct Inputs {
    dev: Device,
    dims: Vec<usize>,
    /// A dim of `dims` for the ops that take one.
    d: usize,
    seed: u64,
}

impl Inputs {
    fn put(&self, t: Tensor) -> Tensor {
        t.to_device(&self.dev).unwrap()
    }

    fn randn(&self, dims: &[usize], k: u64) -> Tensor {
        self.put(Tensor::randn(dims, Seed(self.seed * 64 + k), &Device::Cpu))
    }

    /// The main operand, shaped `dims`: a transposed view when rank ≥ 2, so kernels see strides.
    fn x(&self) -> Tensor {
        if self.dims.len() < 2 {
            return self.randn(&self.dims, 0);
        }
        let mut swapped = self.dims.clone();
        let r = swapped.len();
        swapped.swap(r - 1, r - 2);
        self.randn(&swapped, 0).transpose(-1, -2)
    }

    /// Another operand, broadcastable to `dims`: size 1 along `d`.
    fn y(&self) -> Tensor {
        let mut dims = self.dims.clone();
        dims[self.d] = 1;
        self.randn(&dims, 1)
    }

    /// i32 indices in `0..hi` of `shape`.
    fn ids(&self, shape: &[usize], hi: usize, k: u64) -> Tensor {
        let u = Tensor::rand(shape, Seed(self.seed * 64 + k), &Device::Cpu).to_vec();
        let ids: Vec<i32> = u.iter().map(|&u| ((u * hi as f32) as usize).min(hi - 1) as i32).collect();
        self.put(Tensor::from_vec(ids, shape, &Device::Cpu).unwrap())
    }

    fn last(&self) -> usize {
        *self.dims.last().unwrap()
    }

    fn rows(&self) -> usize {
        self.dims.iter().product::<usize>() / self.last()
    }
}

type OpFn = fn(&Inputs) -> Vec<Tensor>;

/// Every op with the tolerance GPU results are held to against the CPU's (see `Tol`).
fn ops() -> Vec<(&'static str, Tol, OpFn)> {
    vec![
        ("unary", Tol::TRANSCENDENTAL, |i| {
            // Positive inputs, so log/sqrt/fractional powers are defined on both devices.
            let x = i.x().abs().add_scalar(0.1);
            UNARY_OPS.iter().map(|&op| x.unary(op)).collect()
        }),
        ("add sub mul maximum minimum", Tol::ARITH, |i| {
            let (x, y) = (i.x(), i.y());
            vec![x.add(&y), x.sub(&y), x.mul(&y), x.maximum(&y), x.minimum(&y)]
        }),
        ("div", Tol::ARITH, |i| vec![i.x().div(&i.y().abs().add_scalar(0.5))]),
        ("comparisons", Tol::EXACT, |i| {
            let (x, y) = (i.x(), i.y());
            let zero = Tensor::zeros((), &i.dev);
            let (a, b) = (x.gt(&zero), y.gt(&zero));
            vec![a.eq(&b), a.ne(&b), x.lt(&y), x.le(&y), x.gt(&y), x.ge(&y)]
        }),
        ("where masked_fill", Tol::EXACT, |i| {
            let (x, y) = (i.x(), i.y());
            let cond = y.gt(&Tensor::zeros((), &i.dev));
            vec![cond.where_(&x, &y), x.masked_fill(&cond, -7.0)]
        }),
        ("sum mean var", Tol::REDUCTION, |i| {
            let x = i.x();
            [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Var]
                .iter()
                .flat_map(|&op| [x.reduce(i.d, op, false), x.reduce(i.d, op, true)])
                .chain([x.sum_all(), x.mean_all()])
                .collect()
        }),
        ("max min argmax", Tol::EXACT, |i| {
            let x = i.x();
            let argmax = x.argmax(i.d);
            assert_eq!(argmax.dtype(), DType::I32);
            vec![x.max(i.d), x.min_keepdim(i.d), argmax, x.max_all(), x.min_all()]
        }),
        ("topk", Tol::EXACT, |i| {
            // Along the last dim of the transposed view: half the row, and all of it.
            let (half, all) = (i.x().topk(i.last().div_ceil(2)), i.x().topk(i.last()));
            vec![half.values, half.indices, all.values, all.indices]
        }),
        ("softmax log_softmax", Tol::REDUCTION, |i| vec![i.x().softmax(i.d), i.x().log_softmax(i.d)]),
        ("layer_norm", Tol::REDUCTION, |i| {
            let (w, b) = (i.randn(&[i.last()], 2), i.randn(&[i.last()], 3));
            let o = i.x().layer_norm_with_stats(&w, &b, 1e-5);
            vec![o.output, o.mean, o.rstd]
        }),
        ("embedding index_select gather", Tol::EXACT, |i| {
            let x = i.x();
            let table = i.randn(&[i.dims[0] + 3, i.last()], 2);
            let n = i.dims[i.d];
            let gather_index = i.ids(&i.dims, n, 4);
            vec![
                table.embedding(&i.ids(&[2, 3], i.dims[0] + 3, 3)),
                x.index_select(i.d, &i.ids(&[5], n, 5)),
                x.gather(i.d, &gather_index),
            ]
        }),
        ("cross_entropy", Tol::REDUCTION, |i| {
            let logits = i.x().reshape((i.rows(), i.last()));
            let mut targets = i.ids(&[i.rows()], i.last(), 6).to_vec_i32();
            targets[0] = -100; // ignored
            let t = i.put(Tensor::from_vec(targets, i.rows(), &Device::Cpu).unwrap());
            let dloss = i.put(Tensor::scalar(1.5, &Device::Cpu));
            vec![logits.cross_entropy(&t, -100), logits.cross_entropy_backward(&t, -100, &dloss)]
        }),
        ("matmul", Tol::MATMUL, |i| {
            let x = i.x();
            let mut b_dims = i.dims.clone();
            let r = b_dims.len();
            b_dims[r - 1] = 5;
            if r >= 2 {
                b_dims[r - 2] = i.last();
            } else {
                b_dims = vec![i.last(), 5];
            }
            let b = i.randn(&b_dims, 2);
            // (…, k) @ (…, k, 5), a broadcast batch, and (…, k) @ (k,) (a matrix–vector product).
            vec![x.matmul(&b), x.matmul(&i.randn(&[i.last(), 3], 3)), x.matmul(&i.randn(&[i.last()], 4))]
        }),
        ("cat stack contiguous narrow", Tol::EXACT, |i| {
            let (x, z) = (i.x(), i.randn(&i.dims, 2));
            let narrowed = x.narrow(i.d, i.dims[i.d] / 2, i.dims[i.d].div_ceil(2));
            vec![Tensor::cat(&[&x, &z, &narrowed], i.d), Tensor::stack(&[&x, &z], i.d), x.contiguous(), narrowed]
        }),
        ("to_dtype", Tol::EXACT, |i| {
            let x = i.x().mul_scalar(1000.0);
            let ids = i.ids(&i.dims, 50, 2);
            let h = x.to_dtype(DType::F16).unwrap();
            let bh = x.to_dtype(DType::BF16).unwrap();
            assert_eq!((h.dtype(), bh.dtype()), (DType::F16, DType::BF16));
            vec![
                h.to_dtype(DType::F32).unwrap(),
                bh.to_dtype(DType::F32).unwrap(),
                // 16-bit views: transposed and narrowed, copied by widening on the device.
                h.transpose(0, -1).contiguous().to_dtype(DType::F32).unwrap(),
                h.to_dtype(DType::BF16).unwrap().to_dtype(DType::F32).unwrap(),
                ids.to_dtype(DType::F32).unwrap(),
                ids.to_dtype(DType::F32).unwrap().to_dtype(DType::I32).unwrap(),
            ]
        }),
        ("softmax_backward log_softmax_backward", Tol::REDUCTION, |i| {
            let (x, dy) = (i.x(), i.randn(&i.dims, 2));
            vec![x.softmax(i.d).softmax_backward(&dy, i.d), x.log_softmax(i.d).log_softmax_backward(&dy, i.d)]
        }),
        ("layer_norm_backward", Tol::REDUCTION, |i| {
            let (x, dy, w) = (i.x(), i.randn(&i.dims, 2), i.randn(&[i.last()], 3));
            let o = x.layer_norm_with_stats(&w, &i.randn(&[i.last()], 4), 1e-5);
            let (dx, dw, db) = x.layer_norm_backward(&dy, &w, &o.mean, &o.rstd);
            vec![dx, dw, db]
        }),
        ("gelu backward", Tol::TRANSCENDENTAL, |i| {
            let (x, dy) = (i.x(), i.randn(&i.dims, 2));
            vec![x.gelu_backward(&dy), x.gelu_tanh_backward(&dy)]
        }),
        ("index_add scatter_add sum_to_shape", Tol::REDUCTION, |i| {
            let (x, n) = (i.x(), i.dims[i.d]);
            let mut src_dims = i.dims.clone();
            src_dims[i.d] = 4;
            let added = x.index_add(i.d, &i.ids(&[4], n, 2), &i.randn(&src_dims, 3));
            let scattered = x.scatter_add(i.d, &i.ids(&i.dims, n, 4), &i.randn(&i.dims, 5));
            vec![added, scattered, x.sum_to_shape(i.y().shape().clone())]
        }),
        ("attention and its backward", Tol::REDUCTION, |i| {
            // Heads (B, NH, T, HS) from the random dims; keys masked at random (a row with every
            // key masked is NaN on both devices).
            let (b, t, s, hs) = (i.dims[0], i.last(), i.dims[i.d] + 1, 3);
            let (q, k, v) = (i.randn(&[b, 2, t, hs], 2), i.randn(&[b, 2, s, hs], 3), i.randn(&[b, 2, s, hs], 4));
            let mask = i
                .put(Tensor::rand((b, 1, t, s), Seed(i.seed + 5), &Device::Cpu).gt(&Tensor::scalar(0.7, &Device::Cpu)));
            let out = q.attention(&k, &v, &mask, 0.5);
            let (dq, dk, dv) = q.attention_backward(&k, &v, &out.probs, &i.randn(&[b, 2, t, hs], 6), 0.5);
            vec![out.output, out.probs, dq, dk, dv]
        }),
        ("adamw_update", Tol::ARITH, |i| {
            let (p, g, m) = (i.x(), i.randn(&i.dims, 2), i.randn(&i.dims, 3));
            let v = i.randn(&i.dims, 4).abs();
            let s = AdamWScalars {
                decay: Some(0.999),
                one_minus_beta1: 0.1,
                beta2: 0.999,
                one_minus_beta2: 0.001,
                bias2_sqrt: 0.03,
                eps: 1e-8,
                step_size: -0.004,
            };
            let (p2, m2, v2) = p.adamw_update(&g, &m, &v, s);
            vec![p2, m2, v2]
        }),
    ]
}

fn dims_strategy() -> impl Strategy<Value = (Vec<usize>, usize, u64)> {
    (prop::collection::vec(1usize..7, 1..=3), 0usize..3, 0u64..1000).prop_map(|(dims, d, seed)| {
        let d = d % dims.len();
        (dims, d, seed)
    })
}

proptest! {
    // Each case runs every op (about 80 kernels); lavapipe makes that a few hundred ms.
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn every_op_on_the_gpu_matches_the_cpu((dims, d, seed) in dims_strategy()) {
        let Some(dev) = gpu() else { return Ok(()) };
        let on_cpu = Inputs { dev: Device::Cpu, dims: dims.clone(), d, seed };
        let on_gpu = Inputs { dev: dev.clone(), dims: dims.clone(), d, seed };
        for (name, tol, op) in ops() {
            let (expected, got) = (op(&on_cpu), op(&on_gpu));
            for (k, (e, g)) in expected.iter().zip(&got).enumerate() {
                let what = format!("{name} output {k} for dims {dims:?}, dim {d}, seed {seed}");
                prop_assert_eq!(g.device(), dev.clone(), "{}: result left the GPU", what);
                prop_assert_eq!(g.dims(), e.dims(), "{}: shapes differ", what);
                prop_assert_eq!(g.dtype(), e.dtype(), "{}: dtypes differ", what);
                assert_close(&g.to_vec(), &e.to_vec(), tol, &what);
            }
        }
    }
}

#[test]
fn tensors_of_every_dtype_and_layout_move_to_the_gpu_and_back_unchanged() {
    let Some(dev) = gpu() else { return };
    let x = Tensor::randn((5, 7), Seed(1), &Device::Cpu).mul_scalar(100.0);
    // Whole, transposed, at an offset, a prefix of the buffer, and strided.
    let views = [x.clone(), x.t(), x.narrow(0, 1, 3), x.narrow(0, 0, 2), x.narrow(1, 2, 5).t()];
    for v in &views {
        for dtype in [DType::F32, DType::F16, DType::BF16] {
            let host = v.to_dtype(dtype).unwrap();
            let there = host.to_device(&dev).unwrap();
            assert_eq!(there.device(), dev);
            assert_eq!(there.dtype(), dtype);
            let back = there.to_device(&Device::Cpu).unwrap();
            assert_eq!(back.to_vec(), host.to_vec(), "{dtype} {:?}", v.layout());
            // And views taken on the device read the same as on the host.
            assert_eq!(there.t().to_vec(), host.t().to_vec(), "{dtype} transposed on the GPU");
            assert_eq!(there.narrow(0, 0, 1).to_vec(), host.narrow(0, 0, 1).to_vec(), "{dtype} prefix on the GPU");
        }
    }
    let ids = Tensor::from_vec(vec![3i32, -1, 7], 3, &Device::Cpu).unwrap();
    assert_eq!(ids.to_device(&dev).unwrap().to_vec_i32(), vec![3, -1, 7]);
    let odd = Tensor::from_vec(vec![half::f16::from_f32(1.5); 3], 3, &dev).unwrap();
    assert_eq!(odd.to_vec(), vec![1.5; 3], "an odd f16 count is padded, not truncated");
}

/// A frozen bf16 / f16 weight stays in its dtype on the GPU (2 bytes per element) and the
/// mixed kernel (`matmul_w16.wgsl`: f32 A, 16-bit B) gives the CPU's product of the same
/// weight, for `x @ W.t()` (decode and prefill) and `dy @ W` (the backward's dx), batched and
/// strided. Embedding from a 16-bit table gives f32 rows as on the host. MATMUL tolerance:
/// both sides multiply the same exactly-widened f32 values and differ only in summation
/// order and FMA use.
#[test]
fn half_weights_multiply_and_embed_on_the_gpu_as_on_the_cpu() {
    let Some(dev) = gpu() else { return };
    let cpu = Device::Cpu;
    let (c, n) = (72, 100);
    for dtype in [DType::BF16, DType::F16] {
        let w_host = Tensor::randn((n, c), Seed(3), &cpu).to_dtype(dtype).unwrap();
        let w = w_host.to_device(&dev).unwrap();
        assert_eq!((w.dtype(), w.storage_bytes()), (dtype, n * c * 2), "{dtype} weight on the GPU");
        for x_dims in [vec![1, c], vec![2, 5, c], vec![c]] {
            let x_host = Tensor::randn(x_dims.clone(), Seed(4), &cpu);
            let x = x_host.to_device(&dev).unwrap();
            let (got, want) = (x.matmul(&w.t()), x_host.matmul(&w_host.t()));
            assert_eq!((got.dtype(), got.dims()), (DType::F32, want.dims()));
            assert_close(&got.to_vec(), &want.to_vec(), Tol::MATMUL, &format!("{dtype} x {x_dims:?} @ w.t()"));
        }
        let dy_host = Tensor::randn((3, 4, n), Seed(5), &cpu);
        let dy = dy_host.to_device(&dev).unwrap();
        assert_close(
            &dy.matmul(&w).to_vec(),
            &dy_host.matmul(&w_host).to_vec(),
            Tol::MATMUL,
            &format!("{dtype} dy @ w"),
        );
        let sliced = |t: &Tensor| t.narrow(1, 7, 33).t(); // an odd element offset into the words
        let x_host = Tensor::randn((6, 33), Seed(6), &cpu);
        let got = x_host.to_device(&dev).unwrap().matmul(&sliced(&w));
        assert_close(&got.to_vec(), &x_host.matmul(&sliced(&w_host)).to_vec(), Tol::MATMUL, &format!("{dtype} sliced"));
        let ids_host = Tensor::from_vec(vec![5i32, 0, 99, 5], (2, 2), &cpu).unwrap();
        let rows = w.embedding(&ids_host.to_device(&dev).unwrap());
        assert_eq!(rows.dtype(), DType::F32);
        assert_eq!(rows.to_vec(), w_host.embedding(&ids_host).to_vec(), "{dtype} embedding rows are exact");
        // An odd width cannot be selected as whole words: the general path, same rows.
        let odd_host = Tensor::randn((7, 3), Seed(7), &cpu).to_dtype(dtype).unwrap();
        let few = Tensor::from_vec(vec![6i32, 0, 2], 3, &cpu).unwrap();
        let odd = odd_host.to_device(&dev).unwrap().embedding(&few.to_device(&dev).unwrap());
        assert_eq!((odd.dtype(), odd.to_vec()), (DType::F32, odd_host.embedding(&few).to_vec()), "{dtype} odd C");
    }
}

#[test]
fn safetensors_save_and_load_gpu_tensors() {
    let Some(dev) = gpu() else { return };
    let dir = std::env::temp_dir().join(format!("deltaw-gpu-st-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("w.safetensors");
    let w = Tensor::randn((3, 5), Seed(9), &dev).t();
    let h = w.to_dtype(DType::F16).unwrap();
    deltaw_tensor::safetensors::save([("w", &w), ("h", &h)], None, &path).unwrap();
    let loaded = deltaw_tensor::safetensors::load(&path, &dev).unwrap();
    assert_eq!(loaded["w"].device(), dev);
    assert_eq!(loaded["w"].to_vec(), w.to_vec());
    assert_eq!((loaded["h"].dtype(), loaded["h"].to_vec()), (DType::F16, h.to_vec()));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn creation_ops_place_their_values_on_the_gpu() {
    let Some(dev) = gpu() else { return };
    assert_eq!(Tensor::arange(0.0, 5.0, &dev).to_vec(), Tensor::arange(0.0, 5.0, &Device::Cpu).to_vec());
    assert_eq!(Tensor::randn(9, Seed(3), &dev).to_vec(), Tensor::randn(9, Seed(3), &Device::Cpu).to_vec());
    assert_eq!(Tensor::full((2, 2), 4.0, &dev).device(), dev);
    let shown = format!("{}", Tensor::ones(2, &dev));
    assert!(shown.starts_with("tensor([1., 1.], shape=(2,), dtype=f32, device=gpu"), "{shown}");
}

/// The pool reuses freed buffers: once the shapes have been seen, forward passes create none.
#[test]
fn the_buffer_pool_does_not_grow_over_1000_forward_passes() {
    if context().is_none() {
        return;
    }
    // A context of its own, so that tests running alongside do not touch its pool.
    let ctx = GpuContext::new(&GpuOptions::default()).unwrap();
    let dev = Device::Gpu(ctx.clone());
    let w1 = Tensor::randn((16, 32), Seed(1), &dev).mul_scalar(0.2);
    let b1 = Tensor::randn(32, Seed(2), &dev);
    let (gamma, beta) = (Tensor::ones(32, &dev), Tensor::zeros(32, &dev));
    let w2 = Tensor::randn((32, 8), Seed(3), &dev).mul_scalar(0.2);
    let forward = |x: &Tensor| -> f32 {
        let h = x.matmul(&w1).add(&b1).gelu_tanh().layer_norm(&gamma, &beta, 1e-5);
        let p = h.matmul(&w2).softmax(-1);
        p.max(-1).sum_all().to_scalar()
    };
    let x = Tensor::randn((4, 16), Seed(4), &dev);
    let expected = forward(&x);
    // Submits happen every 64 dispatches, so where they fall within a pass cycles with a
    // period of at most 64 passes, and so does the number of buffers waiting for a submit
    // to be recycled: warm up over a whole period, then no pass may create a buffer.
    for _ in 0..64 {
        forward(&x);
    }
    let warm = ctx.pool_stats();
    for pass in 0..1000 {
        assert_eq!(forward(&x), expected, "pass {pass}");
    }
    let after = ctx.pool_stats();
    assert_eq!(after.buffers_created, warm.buffers_created, "buffers created over 1000 passes: {warm:?} → {after:?}");
}

#[test]
#[should_panic(expected = "operands are on different devices: cpu and gpu")]
fn mixing_devices_in_one_op_panics_naming_both() {
    let Some(dev) = gpu() else { panic!("operands are on different devices: cpu and gpu (no adapter: skipped)") };
    Tensor::ones(3, &Device::Cpu).add(&Tensor::ones(3, &dev));
}

#[test]
#[should_panic(expected = "matmul: lhs is on gpu")]
fn matmul_across_devices_panics_naming_both() {
    let Some(dev) = gpu() else { panic!("matmul: lhs is on gpu (no adapter: skipped)") };
    Tensor::ones((2, 2), &dev).matmul(&Tensor::ones((2, 2), &Device::Cpu));
}

#[test]
fn converting_a_fraction_to_i32_on_the_gpu_names_the_element() {
    let Some(dev) = gpu() else { return };
    let x = Tensor::from_vec(vec![1.0f32, 2.0, 2.5, f32::NAN], 4, &dev).unwrap();
    let err = x.to_dtype(DType::I32).unwrap_err();
    assert!(matches!(err, Error::Conversion { index: 2, .. }), "{err}");
    assert!(err.to_string().contains("element 2 = 2.5"), "{err}");
}

#[test]
fn asking_for_a_missing_adapter_says_what_was_tried_and_seen() {
    let options = GpuOptions { adapter_name: Some("no-such-adapter-xyz".into()), ..GpuOptions::default() };
    let err = Device::gpu_with(&options).unwrap_err().to_string();
    assert!(err.contains("backends tried") && err.contains("no-such-adapter-xyz"), "{err}");
}

#[test]
fn a_lost_device_is_an_error_not_a_hang() {
    if context().is_none() {
        return;
    }
    // A context of its own: destroying it must not disturb the other tests.
    let ctx = GpuContext::new(&GpuOptions::default()).unwrap();
    let dev = Device::Gpu(ctx.clone());
    let x = Tensor::ones(4, &dev).relu();
    ctx.destroy();
    let err = x.to_device(&Device::Cpu).unwrap_err();
    assert!(matches!(err, Error::Gpu(GpuError::DeviceLost(_))), "{err}");
    assert!(Tensor::from_vec(vec![1.0f32], 1, &dev).is_err(), "uploads to a lost device fail");
}
