//! Finite-difference gradcheck for every differentiable op: the analytic vector-Jacobian
//! product from `backward_with(r)` against central differences of `f(x) = Σ r · op(x)`.
//!
//! Tolerance, for f32 ops: with step `h = 1e-2`, the central difference has truncation error
//! `h²/6 · |f'''|`, at most ~1e-4 relative for these smooth functions on inputs of size ~1,
//! and round-off `(ε · Σ|r · y|) / (2h)` with ε = 6e-8 and `Σ|r·y|` ≲ 50, about 1.5e-4.
//! So `|analytic - numeric| ≤ 1e-3 + 1e-2 · |numeric|` leaves a 5× margin while still
//! failing any wrong rule (a missing factor or a transposition is off by O(1)). Inputs keep
//! clear of kinks (relu, abs at 0; ties in max/min) by more than `h`.
//!
//! Every check runs on every device (`deltaw_tests::devices`), inputs made on that device
//! from the same seeds; a failure names the device.

use deltaw_autograd::{no_grad, Var};
use deltaw_tensor::{Device, Seed, Tensor};
use deltaw_tests::devices;

const H: f32 = 1e-2;
const ABS: f64 = 1e-3;
const REL: f64 = 1e-2;

type OpFn = Box<dyn Fn(&[Var]) -> Var>;
/// One check: a name, the inputs (all differentiated), and the function of them.
type Check = (&'static str, Vec<Tensor>, OpFn);

fn randn(dev: &Device, dims: &[usize], seed: u64) -> Tensor {
    Tensor::randn(dims.to_vec(), Seed(seed), dev)
}

/// Uniform in [0.5, 2.5): for log, sqrt, rsqrt, negative powers and denominators.
fn positive(dev: &Device, dims: &[usize], seed: u64) -> Tensor {
    Tensor::rand(dims.to_vec(), Seed(seed), dev).mul_scalar(2.0).add_scalar(0.5)
}

/// Magnitude in [0.5, 2.5) with a random sign: away from the kinks of relu and abs.
fn away_from_zero(dev: &Device, dims: &[usize], seed: u64) -> Tensor {
    let sign = Tensor::rand(dims.to_vec(), Seed(seed + 1000), dev)
        .gt(&Tensor::scalar(0.5, dev))
        .mul_scalar(2.0)
        .add_scalar(-1.0);
    positive(dev, dims, seed).mul(&sign)
}

/// Distinct values at least 0.3 apart (a shuffled ramp): no ties within `h` for max / min.
fn distinct(dev: &Device, dims: &[usize], seed: u64) -> Tensor {
    let n: usize = dims.iter().product();
    let keys = Tensor::rand(n, Seed(seed), dev).to_vec();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| keys[a].total_cmp(&keys[b]));
    let mut values = vec![0.0f32; n];
    for (rank, &i) in order.iter().enumerate() {
        values[i] = rank as f32 * 0.3 - n as f32 * 0.15;
    }
    Tensor::from_vec(values, dims.to_vec(), dev).unwrap()
}

fn ids(dev: &Device, values: &[i32], dims: &[usize]) -> Tensor {
    Tensor::from_vec(values.to_vec(), dims.to_vec(), dev).unwrap()
}

/// `Σ r · f(inputs)` in f64, evaluated without recording.
fn projected(f: &OpFn, inputs: &[Tensor], r: &[f32]) -> f64 {
    let vars: Vec<Var> = inputs.iter().map(|t| Var::constant(t.clone())).collect();
    let out = no_grad(|| f(&vars)).value().to_vec();
    out.iter().zip(r).map(|(&y, &w)| y as f64 * w as f64).sum()
}

/// Compares every input's analytic gradient with central differences; returns the failures.
fn gradcheck(name: &str, inputs: Vec<Tensor>, f: OpFn) -> Vec<String> {
    let params: Vec<Var> = inputs.iter().map(|t| Var::parameter(t.clone())).collect();
    let out = f(&params);
    let dev = out.value().device();
    let r_tensor = randn(&dev, out.value().dims(), 99);
    let r = r_tensor.to_vec();
    let grads = out.backward_with(&r_tensor).expect("backward");
    let mut failures = Vec::new();
    for (k, input) in inputs.iter().enumerate() {
        let analytic = grads.get(&params[k]).map(Tensor::to_vec).unwrap_or_else(|| vec![0.0; input.numel()]);
        let base = input.to_vec();
        for i in 0..base.len() {
            let shifted = |delta: f32| {
                let mut v = base.clone();
                v[i] += delta;
                let mut moved = inputs.clone();
                moved[k] = Tensor::from_vec(v, input.dims().to_vec(), &dev).unwrap();
                projected(&f, &moved, &r)
            };
            let numeric = (shifted(H) - shifted(-H)) / (2.0 * H as f64);
            let a = analytic[i] as f64;
            if (a - numeric).abs() > ABS + REL * numeric.abs() {
                failures.push(format!("{name}: input {k} element {i}: analytic {a:.6}, numeric {numeric:.6}"));
            }
        }
    }
    failures
}

/// Makes the checks on every device, runs them, and reports every failure at once.
fn run_all(make: impl Fn(&Device) -> Vec<Check>) {
    let mut failures = Vec::new();
    for device in devices() {
        for (name, inputs, f) in make(&device) {
            failures.extend(gradcheck(name, inputs, f).into_iter().map(|e| format!("[{device}] {e}")));
        }
    }
    assert!(failures.is_empty(), "{} gradcheck failures:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn unary_ops_pass_gradcheck() {
    run_all(|dev: &Device| -> Vec<Check> {
        let x = || randn(dev, &[2, 3], 1);
        let pos = || positive(dev, &[2, 3], 2);
        let away = || away_from_zero(dev, &[2, 3], 3);
        vec![
            ("neg", vec![x()], Box::new(|v: &[Var]| v[0].neg())),
            ("abs", vec![away()], Box::new(|v: &[Var]| v[0].abs())),
            ("exp", vec![x()], Box::new(|v: &[Var]| v[0].exp())),
            ("log", vec![pos()], Box::new(|v: &[Var]| v[0].log())),
            ("sqrt", vec![pos()], Box::new(|v: &[Var]| v[0].sqrt())),
            ("rsqrt", vec![pos()], Box::new(|v: &[Var]| v[0].rsqrt())),
            ("tanh", vec![x()], Box::new(|v: &[Var]| v[0].tanh())),
            ("sigmoid", vec![x()], Box::new(|v: &[Var]| v[0].sigmoid())),
            ("relu", vec![away()], Box::new(|v: &[Var]| v[0].relu())),
            ("silu", vec![x()], Box::new(|v: &[Var]| v[0].silu())),
            ("gelu", vec![x()], Box::new(|v: &[Var]| v[0].gelu())),
            ("gelu_tanh", vec![x()], Box::new(|v: &[Var]| v[0].gelu_tanh())),
            ("powf(2)", vec![x()], Box::new(|v: &[Var]| v[0].powf(2.0))),
            ("powf(-1.5)", vec![pos()], Box::new(|v: &[Var]| v[0].powf(-1.5))),
            ("add_scalar", vec![x()], Box::new(|v: &[Var]| &v[0] + 2.5)),
            ("sub_scalar", vec![x()], Box::new(|v: &[Var]| &v[0] - 0.5)),
            ("mul_scalar", vec![x()], Box::new(|v: &[Var]| &v[0] * -1.5)),
            ("div_scalar", vec![x()], Box::new(|v: &[Var]| &v[0] / 4.0)),
        ]
    });
}

#[test]
fn broadcasting_binary_ops_pass_gradcheck() {
    run_all(|dev: &Device| -> Vec<Check> {
        let a = randn(dev, &[2, 3], 4);
        let shifted = a.add(&Tensor::from_vec(vec![0.5f32, -0.5, 0.7, -0.7, 0.4, -0.4], (2, 3), dev).unwrap());
        vec![
            ("add (2,3)+(3,)", vec![randn(dev, &[2, 3], 1), randn(dev, &[3], 2)], Box::new(|v: &[Var]| &v[0] + &v[1])),
            (
                "sub (3,1)-(1,4)",
                vec![randn(dev, &[3, 1], 1), randn(dev, &[1, 4], 2)],
                Box::new(|v: &[Var]| &v[0] - &v[1]),
            ),
            (
                "mul (2,3)*(2,1)",
                vec![randn(dev, &[2, 3], 1), randn(dev, &[2, 1], 2)],
                Box::new(|v: &[Var]| &v[0] * &v[1]),
            ),
            ("mul by 0-d", vec![randn(dev, &[2, 3], 1), randn(dev, &[], 2)], Box::new(|v: &[Var]| &v[0] * &v[1])),
            (
                "div (2,3)/(3,)",
                vec![randn(dev, &[2, 3], 1), away_from_zero(dev, &[3], 2)],
                Box::new(|v: &[Var]| &v[0] / &v[1]),
            ),
            ("maximum", vec![a.clone(), shifted.clone()], Box::new(|v: &[Var]| v[0].maximum(&v[1]))),
            ("minimum", vec![a, shifted], Box::new(|v: &[Var]| v[0].minimum(&v[1]))),
        ]
    });
}

#[test]
fn reductions_pass_gradcheck() {
    run_all(|dev: &Device| -> Vec<Check> {
        vec![
            ("sum(1)", vec![randn(dev, &[2, 3, 2], 1)], Box::new(|v: &[Var]| v[0].sum(1))),
            ("mean(0, keepdim)", vec![randn(dev, &[3, 4], 2)], Box::new(|v: &[Var]| v[0].mean_keepdim(0))),
            ("max(-1)", vec![distinct(dev, &[3, 4], 3)], Box::new(|v: &[Var]| v[0].max(-1))),
            ("min(0, keepdim)", vec![distinct(dev, &[3, 4], 4)], Box::new(|v: &[Var]| v[0].min_keepdim(0))),
            ("var(1)", vec![randn(dev, &[3, 4], 5)], Box::new(|v: &[Var]| v[0].var(1))),
            ("sum_all", vec![randn(dev, &[2, 3], 6)], Box::new(|v: &[Var]| v[0].sum_all())),
            ("mean_all", vec![randn(dev, &[2, 3], 7)], Box::new(|v: &[Var]| v[0].mean_all())),
            ("max_all", vec![distinct(dev, &[2, 3], 8)], Box::new(|v: &[Var]| v[0].max_all())),
        ]
    });
}

#[test]
fn nn_ops_pass_gradcheck() {
    run_all(|dev: &Device| -> Vec<Check> {
        let targets = ids(dev, &[2, -100, 0, 4], &[4]);
        vec![
            ("softmax(-1)", vec![randn(dev, &[3, 5], 1)], Box::new(|v: &[Var]| v[0].softmax(-1))),
            ("softmax(0)", vec![randn(dev, &[3, 5], 2)], Box::new(|v: &[Var]| v[0].softmax(0))),
            ("log_softmax(-1)", vec![randn(dev, &[2, 2, 4], 3)], Box::new(|v: &[Var]| v[0].log_softmax(-1))),
            (
                "layer_norm",
                vec![randn(dev, &[3, 6], 4), randn(dev, &[6], 5), randn(dev, &[6], 6)],
                Box::new(|v: &[Var]| v[0].layer_norm(&v[1], &v[2], 1e-5)),
            ),
            (
                "cross_entropy",
                vec![randn(dev, &[4, 5], 7)],
                Box::new(move |v: &[Var]| v[0].cross_entropy(&targets, -100)),
            ),
        ]
    });
}

#[test]
fn matmuls_pass_gradcheck() {
    run_all(|dev: &Device| -> Vec<Check> {
        vec![
            (
                "matmul 2-D",
                vec![randn(dev, &[2, 3], 1), randn(dev, &[3, 4], 2)],
                Box::new(|v: &[Var]| v[0].matmul(&v[1])),
            ),
            (
                "matmul batched broadcast",
                vec![randn(dev, &[2, 1, 2, 3], 3), randn(dev, &[2, 3, 2], 4)],
                Box::new(|v: &[Var]| v[0].matmul(&v[1])),
            ),
            (
                "matmul linear xWᵀ",
                vec![randn(dev, &[2, 2, 3], 5), randn(dev, &[4, 3], 6)],
                Box::new(|v: &[Var]| v[0].matmul(&v[1].t())),
            ),
            (
                "matmul vec @ mat",
                vec![randn(dev, &[3], 7), randn(dev, &[3, 2], 8)],
                Box::new(|v: &[Var]| v[0].matmul(&v[1])),
            ),
            (
                "matmul mat @ vec",
                vec![randn(dev, &[2, 3], 9), randn(dev, &[3], 10)],
                Box::new(|v: &[Var]| v[0].matmul(&v[1])),
            ),
            ("matmul dot", vec![randn(dev, &[4], 11), randn(dev, &[4], 12)], Box::new(|v: &[Var]| v[0].matmul(&v[1]))),
        ]
    });
}

#[test]
fn indexing_ops_pass_gradcheck() {
    run_all(|dev: &Device| -> Vec<Check> {
        let tokens = ids(dev, &[1, 1, 3, 0], &[2, 2]);
        let picks = ids(dev, &[2, 0, 2], &[3]);
        let gather_idx = ids(dev, &[0, 2, 1, 1, 3, 3], &[3, 2]);
        let mask = Tensor::from_vec(vec![0.0f32, 1.0, 0.0, 1.0], (1, 4), dev).unwrap();
        let cond = Tensor::from_vec(vec![1.0f32, 0.0, 1.0], 3, dev).unwrap();
        vec![
            ("embedding", vec![randn(dev, &[4, 3], 1)], Box::new(move |v: &[Var]| v[0].embedding(&tokens))),
            ("index_select(1)", vec![randn(dev, &[2, 3], 2)], Box::new(move |v: &[Var]| v[0].index_select(1, &picks))),
            ("gather(1)", vec![randn(dev, &[3, 4], 3)], Box::new(move |v: &[Var]| v[0].gather(1, &gather_idx))),
            (
                "cat(1)",
                vec![randn(dev, &[2, 1], 4), randn(dev, &[2, 3], 5)],
                Box::new(|v: &[Var]| Var::cat(&[&v[0], &v[1]], 1)),
            ),
            (
                "stack(0)",
                vec![randn(dev, &[3], 6), randn(dev, &[3], 7)],
                Box::new(|v: &[Var]| Var::stack(&[&v[0], &v[1]], 0)),
            ),
            ("masked_fill", vec![randn(dev, &[2, 4], 8)], Box::new(move |v: &[Var]| v[0].masked_fill(&mask, -3.0))),
            (
                "where",
                vec![randn(dev, &[2, 3], 9), randn(dev, &[3], 10)],
                Box::new(move |v: &[Var]| Var::where_(&cond, &v[0], &v[1])),
            ),
        ]
    });
}

#[test]
fn views_pass_gradcheck() {
    run_all(|dev: &Device| -> Vec<Check> {
        vec![
            ("transpose", vec![randn(dev, &[2, 3, 2], 1)], Box::new(|v: &[Var]| v[0].transpose(0, 2).exp())),
            ("permute", vec![randn(dev, &[2, 3, 2], 2)], Box::new(|v: &[Var]| v[0].permute(&[2, 0, 1]).exp())),
            ("narrow", vec![randn(dev, &[4, 3], 3)], Box::new(|v: &[Var]| v[0].narrow(0, 1, 2))),
            ("reshape of a transpose", vec![randn(dev, &[2, 3], 4)], Box::new(|v: &[Var]| v[0].t().reshape(6).exp())),
            ("expand", vec![randn(dev, &[3, 1], 5)], Box::new(|v: &[Var]| v[0].expand((2, 3, 4)).tanh())),
            (
                "squeeze / unsqueeze",
                vec![randn(dev, &[3, 1], 6)],
                Box::new(|v: &[Var]| v[0].squeeze(1).unsqueeze(0).exp()),
            ),
        ]
    });
}

/// A whole causal attention head: every rule above composed, with reuse of `x` (three paths)
/// so gradient accumulation is exercised too.
#[test]
fn causal_attention_head_passes_gradcheck() {
    run_all(|dev: &Device| -> Vec<Check> {
        let causal = Tensor::from_vec(vec![0.0f32, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0], (3, 3), dev).unwrap();
        let head = move |v: &[Var]| {
            let (x, wq, wk, wv) = (&v[0], &v[1], &v[2], &v[3]); // x (T, C), w* (C, HS)
            let (q, k, val) = (x.matmul(wq), x.matmul(wk), x.matmul(wv)); // (T, HS)
            let att = (&q.matmul(&k.t()) * 0.5).masked_fill(&causal, -1e9).softmax(-1); // (T, T)
            att.matmul(&val).gelu_tanh()
        };
        let inputs =
            vec![randn(dev, &[3, 4], 1), randn(dev, &[4, 2], 2), randn(dev, &[4, 2], 3), randn(dev, &[4, 2], 4)];
        vec![("attention head", inputs, Box::new(head))]
    });
}
