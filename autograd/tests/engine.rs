//! The engine's contract: errors, grad mode, detach, accumulation across backward calls,
//! shared subgraphs, deep graphs, the finiteness check, clipping, the graph dump, and SGD's
//! update rules worked by hand. `devices.rs` checks the device side of it on a GPU.

use deltaw_autograd::{no_grad, Error, Grads, Sgd, SgdConfig, Var};
use deltaw_tensor::{Device, Seed, Tensor};

fn t(values: &[f32], dims: &[usize]) -> Tensor {
    Tensor::from_vec(values.to_vec(), dims.to_vec(), &Device::Cpu).unwrap()
}

#[test]
fn backward_of_a_non_scalar_without_upstream_gradient_is_an_error() {
    let x = Var::parameter(t(&[1.0, 2.0], &[2]));
    let err = x.exp().backward().err().expect("must fail");
    assert!(matches!(err, Error::NotScalar { .. }), "{err}");
    assert!(err.to_string().contains("(2,)"), "{err}");
}

#[test]
fn backward_with_no_grad_leaf_is_an_error() {
    let x = Var::constant(t(&[1.0, 2.0], &[2]));
    let err = x.exp().sum_all().backward().err().expect("must fail");
    assert!(matches!(err, Error::NoGradRequired), "{err}");
}

#[test]
fn upstream_gradient_of_the_wrong_shape_is_an_error() {
    let x = Var::parameter(t(&[1.0, 2.0], &[2]));
    let err = x.exp().backward_with(&t(&[1.0], &[1])).err().expect("must fail");
    assert!(matches!(err, Error::GradShape { .. }), "{err}");
}

#[test]
fn no_grad_records_nothing_and_restores_the_mode() {
    let w = Var::parameter(t(&[1.0, 2.0], &[2]));
    let y = no_grad(|| w.exp().sum_all());
    assert!(y.is_leaf() && !y.requires_grad());
    assert!(deltaw_autograd::is_grad_enabled());
    assert!(!w.exp().is_leaf());
}

#[test]
fn detach_stops_the_gradient() {
    let w = Var::parameter(t(&[3.0], &[1]));
    // y = w · detach(w): dy/dw = detach(w) = 3, not 2w = 6.
    let y = (&w * &w.detach()).sum_all();
    let grads = y.backward().unwrap();
    assert_eq!(grads.get(&w).unwrap().to_vec(), vec![3.0]);
}

#[test]
fn gradients_accumulate_across_backward_calls_until_zero_grad() {
    let w = Var::parameter(t(&[2.0], &[1]));
    let mut grads = Grads::new();
    (&w * 3.0).sum_all().backward_accumulate(&mut grads).unwrap();
    (&w * &w).sum_all().backward_accumulate(&mut grads).unwrap();
    assert_eq!(grads.get(&w).unwrap().to_vec(), vec![3.0 + 4.0]);
    grads.zero_grad();
    assert!(grads.get(&w).is_none());
}

#[test]
fn a_var_used_twice_sums_both_paths() {
    let x = Var::parameter(t(&[1.0, -2.0], &[2]));
    let h = x.exp();
    // loss = Σ h·x + Σ h, d/dx = h·x + h + h = e^x (x + 2)
    let loss = (&(&h * &x) + &h).sum_all();
    let g = loss.backward().unwrap().get(&x).unwrap().to_vec();
    for (gi, xi) in g.iter().zip([1.0f32, -2.0]) {
        assert!((gi - xi.exp() * (xi + 2.0)).abs() < 1e-5, "{g:?}");
    }
}

#[test]
fn a_deep_chain_backpropagates_and_drops_without_overflowing_the_stack() {
    let w = Var::parameter(t(&[1.0], &[1]));
    let mut y = w.clone();
    for _ in 0..100_000 {
        y = &y * 1.0;
    }
    let grads = y.sum_all().backward().unwrap();
    assert_eq!(grads.get(&w).unwrap().to_vec(), vec![1.0]);
    drop(y); // 100k nodes: a recursive drop would overflow the test thread's stack
}

#[test]
fn all_finite_detects_nan_and_inf() {
    let w = Var::parameter(t(&[0.0, 1.0], &[2]));
    let grads = w.log().sum_all().backward().unwrap(); // d log x = 1/x: inf at 0
    assert!(!grads.all_finite());
    let grads = w.exp().sum_all().backward().unwrap();
    assert!(grads.all_finite());
}

#[test]
fn clip_global_norm_scales_to_max_norm_and_returns_the_old_norm() {
    let (a, b) = (Var::parameter(t(&[0.0], &[1])), Var::parameter(t(&[0.0, 0.0], &[2])));
    let mut grads = Grads::new();
    grads.insert(&a, t(&[3.0], &[1]));
    grads.insert(&b, t(&[0.0, 4.0], &[2]));
    let norm = grads.clip_global_norm(1.0);
    assert_eq!(norm, 5.0);
    assert!((grads.global_norm() - 1.0).abs() < 1e-5);
    assert!((grads.get(&a).unwrap().to_vec()[0] - 0.6).abs() < 1e-6);
    assert_eq!(grads.clip_global_norm(10.0), grads.global_norm()); // under the limit: unchanged
}

#[test]
fn global_norm_does_not_depend_on_the_order_gradients_were_stored() {
    let vars: Vec<Var> = (0..16).map(|_| Var::parameter(t(&[0.0], &[1]))).collect();
    let norm_of = |order: &mut dyn Iterator<Item = usize>| {
        let mut grads = Grads::new();
        order.for_each(|i| grads.insert(&vars[i], t(&[1.0 / (i as f32 + 3.0)], &[1])));
        grads.global_norm()
    };
    let forward = norm_of(&mut (0..16));
    assert_eq!(norm_of(&mut (0..16).rev()).to_bits(), forward.to_bits());
    assert_eq!(norm_of(&mut (0..16).map(|i| (i * 7) % 16)).to_bits(), forward.to_bits());
}

#[test]
fn graph_exports_ops_shapes_and_saved_bytes() {
    let x = Var::constant(Tensor::randn((4, 3), Seed(0), &Device::Cpu)).named("x");
    let w = Var::parameter(Tensor::randn((3, 2), Seed(1), &Device::Cpu)).named("w");
    let b = Var::parameter(Tensor::zeros(2, &Device::Cpu)).named("b");
    let loss = (&x.matmul(&w) + &b).gelu().mean_all();
    let graph = loss.graph();
    let ops: Vec<&str> = graph.nodes.iter().map(|n| n.op.as_str()).collect();
    assert_eq!(ops, ["leaf", "leaf", "matmul", "leaf", "expand", "add", "gelu", "reshape", "mean(dim=0)"]);
    let matmul = &graph.nodes[2];
    assert_eq!((matmul.shape.clone(), matmul.saved_bytes), (vec![4, 2], 12 * 4)); // x for dw; w is not needed: x is constant
    let dot = graph.to_dot();
    assert!(dot.contains("digraph") && dot.contains("matmul") && dot.contains("-> n"), "{dot}");
    let json: serde_json::Value = serde_json::from_str(&graph.to_json()).unwrap();
    assert_eq!(json["nodes"].as_array().unwrap().len(), 9);
    // Parameters w (24 B) and b (8 B); input x (48 B); activations: matmul, add, gelu (32 B
    // each), the expand of b is b's buffer, reshape shares gelu's, and the 0-d mean (4 B).
    let m = &graph.memory;
    assert_eq!((m.parameter_bytes, m.input_bytes, m.activation_bytes), (32, 48, 3 * 32 + 4));
    assert_eq!(m.saved_activation_bytes, 32); // gelu reads add's output
}

#[test]
fn sgd_with_momentum_weight_decay_and_nesterov_follows_torch_rules() {
    // Two steps by hand with g = 1, p0 = 1, lr = 0.1, μ = 0.9, wd = 0.5:
    // step 1: d = 1 + 0.5·1 = 1.5, buf = 1.5; nesterov: d = 1.5 + 0.9·1.5 = 2.85; p = 0.715
    // step 2: d = 1 + 0.5·0.715 = 1.3575, buf = 0.9·1.5 + 1.3575 = 2.7075,
    //         d = 1.3575 + 0.9·2.7075 = 3.79425; p = 0.715 - 0.379425 = 0.335575
    let p = Var::parameter(t(&[1.0], &[1]));
    let config = SgdConfig { lr: 0.1, momentum: 0.9, nesterov: true, weight_decay: 0.5, ..Default::default() };
    let mut opt = Sgd::new(vec![p.clone()], config);
    let mut grads = Grads::new();
    grads.insert(&p, t(&[1.0], &[1]));
    opt.step(&grads);
    assert!((p.value().to_vec()[0] - 0.715).abs() < 1e-6);
    opt.step(&grads);
    assert!((p.value().to_vec()[0] - 0.335_575).abs() < 1e-6, "{:?}", p.value().to_vec());
    assert_eq!(opt.state_bytes(), 4);
}

#[test]
fn a_parameter_without_a_gradient_is_left_alone() {
    let (p, q) = (Var::parameter(t(&[1.0], &[1])), Var::parameter(t(&[1.0], &[1])));
    let mut opt = Sgd::new(vec![p.clone(), q.clone()], SgdConfig { lr: 0.5, ..Default::default() });
    let grads = (&p * 2.0).sum_all().backward().unwrap();
    opt.step(&grads);
    assert_eq!((p.value().to_vec()[0], q.value().to_vec()[0]), (0.0, 1.0));
}
