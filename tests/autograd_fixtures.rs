//! Every backward rule against PyTorch: iterates over the cases in `fixtures/grads.safetensors`
//! (made by `fixtures/grads.py`), runs the case's op on `Var`s, backpropagates the stored
//! random upstream gradient `dout`, and compares the output and every `grad_<role>` with
//! PyTorch's (computed in float64 from the same float32 inputs). One test per op family, run
//! on every device (`deltaw_tests::devices`); a failure lists every failing case and its device.

use deltaw_autograd::Var;
use deltaw_tensor::Device;
use deltaw_tests::{check_close, devices, Case, Fixtures, Tol};
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Roles that are differentiable operands (become parameters); the rest are constants.
const DIFFERENTIABLE: &[&str] = &["input", "other", "weight", "bias", "input0", "input1", "input2", "key", "value"];

/// Gradient budgets. A gradient is a short chain of f32 ops on top of the forward, so each
/// family gets the forward's budget widened for the extra roundings:
/// - data movement (views, cat, index, masks): a gradient is a copy or a sum of at most five
///   terms, so a few ulp.
/// - elementwise: the local derivative (2–4 roundings, one transcendental) times `dout`.
/// - rows (softmax, log-softmax, layer norm, cross-entropy) and reductions: a dot product
///   over the row of up to 64 terms in f32, then a subtraction that can cancel: 1e-5 of the
///   row's scale plus 1e-5 absolute.
/// - matmul: `dout @ bᵀ` and `aᵀ @ dout` are matmuls with k ≤ 48, same budget as the forward.
const GRAD_COPY: Tol = Tol { name: "GRAD_COPY", abs: 1e-6, rel: 4.0 * f32::EPSILON };
const GRAD_ELEMENTWISE: Tol = Tol { name: "GRAD_ELEMENTWISE", abs: 1e-6, rel: 1e-5 };
const GRAD_ROWS: Tol = Tol { name: "GRAD_ROWS", abs: 1e-5, rel: 1e-4 };
/// Layer norm's forward on the `offset50` case: the row mean of values near 50 carries a few
/// ulp(50) ≈ 4e-6 of f32 error, which `(x - mean) · rstd · weight` scales by up to |weight| ≈ 3.
const LAYER_NORM_OUT: Tol = Tol { name: "LAYER_NORM_OUT", abs: 3e-5, rel: 1e-5 };
const GRAD_MATMUL: Tol = Tol { name: "GRAD_MATMUL", abs: 5e-5, rel: 1e-5 };

/// (output tolerance, gradient tolerance) for an op on `device`. The GPU's outputs get the
/// budget of Vulkan's precision rules where it is looser than libm's (see `Tol`).
fn tolerances(op: &str, device: &Device) -> (Tol, Tol) {
    let (out, grad) = host_tolerances(op);
    match out.name {
        "TRANSCENDENTAL" if device.is_gpu() => (Tol::GPU_TRANSCENDENTAL, grad),
        _ => (out, grad),
    }
}

/// (output tolerance, gradient tolerance) for an op on the CPU.
fn host_tolerances(op: &str) -> (Tol, Tol) {
    match op {
        "add" | "sub" | "mul" | "div" | "add_scalar" | "sub_scalar" | "mul_scalar" | "div_scalar" => {
            (Tol::IEEE, GRAD_ELEMENTWISE)
        }
        "maximum" | "minimum" | "neg" | "abs" | "relu" => (Tol::EXACT, GRAD_COPY),
        "exp" | "log" | "sqrt" | "rsqrt" | "tanh" | "sigmoid" | "silu" | "gelu" | "gelu_tanh" | "powf" => {
            (Tol::TRANSCENDENTAL, GRAD_ELEMENTWISE)
        }
        "sum" | "mean" | "var" | "sum_all" | "mean_all" => (Tol::REDUCTION, GRAD_ROWS),
        "max" | "min" | "max_all" | "min_all" => (Tol::EXACT, GRAD_COPY),
        "softmax" | "log_softmax" => (Tol::SOFTMAX, GRAD_ROWS),
        "layer_norm" => (LAYER_NORM_OUT, GRAD_ROWS),
        "cross_entropy" => (Tol::REDUCTION, GRAD_ROWS),
        "matmul" | "linear" => (Tol::MATMUL, GRAD_MATMUL),
        "rms_norm" => (LAYER_NORM_OUT, GRAD_ROWS),
        // The backward is the forward's rotation by −θ: the same budget.
        "rope" => (Tol::ROPE, Tol::ROPE),
        "swiglu" => (Tol::TRANSCENDENTAL, GRAD_ELEMENTWISE),
        // Four matmuls (k ≤ 8) and softmax's backward; dk, dv also sum over a group of ≤ 4 heads.
        "attention" => (Tol::MATMUL, GRAD_MATMUL),
        _ => (Tol::EXACT, GRAD_COPY),
    }
}

/// Builds the case's op on `Var`s; `p` holds the differentiable operands by role.
fn forward(case: &Case, p: &BTreeMap<&str, Var>) -> Var {
    let x = || p["input"].clone();
    let y = || p["other"].clone();
    let dim = || case.int("dim") as isize;
    let usizes = |key: &str| case.ints(key).iter().map(|&d| d as usize).collect::<Vec<_>>();
    match case.op() {
        "neg" => x().neg(),
        "abs" => x().abs(),
        "exp" => x().exp(),
        "log" => x().log(),
        "sqrt" => x().sqrt(),
        "rsqrt" => x().rsqrt(),
        "tanh" => x().tanh(),
        "sigmoid" => x().sigmoid(),
        "relu" => x().relu(),
        "silu" => x().silu(),
        "gelu" => x().gelu(),
        "gelu_tanh" => x().gelu_tanh(),
        "powf" => x().powf(case.float("exponent") as f32),
        "add_scalar" => &x() + case.float("scalar") as f32,
        "sub_scalar" => &x() - case.float("scalar") as f32,
        "mul_scalar" => &x() * case.float("scalar") as f32,
        "div_scalar" => &x() / case.float("scalar") as f32,
        "add" => &x() + &y(),
        "sub" => &x() - &y(),
        "mul" => &x() * &y(),
        "div" => &x() / &y(),
        "maximum" => x().maximum(&y()),
        "minimum" => x().minimum(&y()),
        op @ ("sum" | "mean" | "max" | "min" | "var") => reduce(op, &x(), dim(), case.flag("keepdim")),
        "sum_all" => x().sum_all(),
        "mean_all" => x().mean_all(),
        "max_all" => x().max_all(),
        "min_all" => x().min_all(),
        "softmax" => x().softmax(dim()),
        "log_softmax" => x().log_softmax(dim()),
        "layer_norm" => x().layer_norm(&p["weight"], &p["bias"], case.float("eps") as f32),
        "cross_entropy" => x().cross_entropy(&case.operand("target"), case.int("ignore_index") as i32),
        "matmul" => x().matmul(&y()),
        "rms_norm" => x().rms_norm(&p["weight"], case.float("eps") as f32),
        "rope" => x().rope(&case.operand("cos"), &case.operand("sin")),
        "swiglu" => x().swiglu(&y()),
        "attention" => x().attention(&p["key"], &p["value"], &case.operand("mask"), case.float("scale") as f32),
        "linear" => &x().matmul(&p["weight"].t()) + &p["bias"],
        "embedding" => p["weight"].embedding(&case.operand("index")),
        "index_select" => x().index_select(dim(), &case.operand("index")),
        "gather" => x().gather(dim(), &case.operand("index")),
        "cat" => Var::cat(&[&p["input0"], &p["input1"], &p["input2"]], dim()),
        "stack" => Var::stack(&[&p["input0"], &p["input1"], &p["input2"]], dim()),
        "masked_fill" => x().masked_fill(&case.operand("mask"), case.float("value") as f32),
        "where" => Var::where_(&case.operand("cond"), &x(), &y()),
        "transpose" => x().transpose(case.int("dim0") as isize, case.int("dim1") as isize),
        "permute" => x().permute(&usizes("dims")),
        "narrow" => x().narrow(dim(), case.int("start") as usize, case.int("length") as usize),
        "reshape" => x().reshape(usizes("shape")),
        "expand" => x().expand(usizes("shape")),
        "squeeze" => x().squeeze(dim()),
        "unsqueeze" => x().unsqueeze(dim()),
        op => panic!("no autograd runner for op '{op}'"),
    }
}

fn reduce(op: &str, x: &Var, dim: isize, keepdim: bool) -> Var {
    match (op, keepdim) {
        ("sum", false) => x.sum(dim),
        ("sum", true) => x.sum_keepdim(dim),
        ("mean", false) => x.mean(dim),
        ("mean", true) => x.mean_keepdim(dim),
        ("max", false) => x.max(dim),
        ("max", true) => x.max_keepdim(dim),
        ("min", false) => x.min(dim),
        ("min", true) => x.min_keepdim(dim),
        ("var", false) => x.var(dim),
        _ => x.var_keepdim(dim),
    }
}

/// Runs one case on its device; `Err` lists what did not match.
fn check_case(case: &Case) -> Result<(), String> {
    let params: BTreeMap<&str, Var> =
        DIFFERENTIABLE.iter().filter(|r| case.has(r)).map(|&r| (r, Var::parameter(case.operand(r)))).collect();
    let out = forward(case, &params);
    let grads = out.backward_with(&case.operand("dout")).map_err(|e| e.to_string())?;
    let (out_tol, grad_tol) = tolerances(case.op(), case.device());
    let mut problems = Vec::new();
    if let Err(e) = check_close(&out.value().to_vec(), &case.stored("output").to_vec(), out_tol) {
        problems.push(format!("output: {e}"));
    }
    for (role, var) in &params {
        let expected = case.stored(&format!("grad_{role}"));
        let Some(actual) = grads.get(var) else {
            problems.push(format!("grad_{role}: backward produced no gradient"));
            continue;
        };
        if actual.dims() != expected.dims() {
            problems.push(format!("grad_{role}: shape {:?}, expected {:?}", actual.shape(), expected.shape()));
        } else if let Err(e) = check_close(&actual.to_vec(), &expected.to_vec(), grad_tol) {
            problems.push(format!("grad_{role}: {e}"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// Runs every case whose op is in `ops` on every device, panicking with all failures at once.
fn check_family(ops: &[&str]) {
    let fixtures = Fixtures::load("grads.safetensors");
    let mut failures = Vec::new();
    let mut count = 0;
    for device in devices() {
        let cases: Vec<Case> =
            fixtures.cases().into_iter().filter(|c| ops.contains(&c.op())).map(|c| c.on(&device)).collect();
        assert!(!cases.is_empty(), "no cases for {ops:?} in {}", fixtures.file.display());
        count += cases.len();
        for case in &cases {
            let result = catch_unwind(AssertUnwindSafe(|| check_case(case))).unwrap_or_else(|p| {
                Err(format!(
                    "panicked: {}",
                    p.downcast_ref::<String>().cloned().unwrap_or_else(|| format!("{:?}", p.downcast_ref::<&str>()))
                ))
            });
            if let Err(e) = result {
                failures.push(format!("  [{device}] {}: {e}", case.name));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {count} cases (all devices) failed (fixtures from {}):\n{}",
        failures.len(),
        fixtures.versions(),
        failures.join("\n")
    );
}

#[test]
fn elementwise_grads_match_torch() {
    check_family(&[
        "neg",
        "abs",
        "exp",
        "log",
        "sqrt",
        "rsqrt",
        "tanh",
        "sigmoid",
        "relu",
        "silu",
        "gelu",
        "gelu_tanh",
        "powf",
        "add_scalar",
        "sub_scalar",
        "mul_scalar",
        "div_scalar",
    ]);
}

#[test]
fn broadcasting_binary_grads_match_torch() {
    check_family(&["add", "sub", "mul", "div", "maximum", "minimum"]);
}

#[test]
fn reduction_grads_match_torch() {
    check_family(&["sum", "mean", "max", "min", "var", "sum_all", "mean_all", "max_all", "min_all"]);
}

#[test]
fn softmax_layer_norm_and_cross_entropy_grads_match_torch() {
    check_family(&["softmax", "log_softmax", "layer_norm", "cross_entropy"]);
}

#[test]
fn matmul_and_linear_grads_match_torch() {
    check_family(&["matmul", "linear"]);
}

#[test]
fn llama_family_grads_match_torch_incl_grouped_query_attention() {
    check_family(&["rms_norm", "rope", "swiglu", "attention"]);
}

#[test]
fn indexing_grads_match_torch() {
    check_family(&["embedding", "index_select", "gather", "cat", "stack", "masked_fill", "where"]);
}

#[test]
fn view_grads_match_torch() {
    check_family(&["transpose", "permute", "narrow", "reshape", "expand", "squeeze", "unsqueeze"]);
}

#[test]
fn every_fixture_op_has_a_test() {
    let tested = [
        "neg",
        "abs",
        "exp",
        "log",
        "sqrt",
        "rsqrt",
        "tanh",
        "sigmoid",
        "relu",
        "silu",
        "gelu",
        "gelu_tanh",
        "powf",
        "add_scalar",
        "sub_scalar",
        "mul_scalar",
        "div_scalar",
        "add",
        "sub",
        "mul",
        "div",
        "maximum",
        "minimum",
        "sum",
        "mean",
        "max",
        "min",
        "var",
        "sum_all",
        "mean_all",
        "max_all",
        "min_all",
        "softmax",
        "log_softmax",
        "layer_norm",
        "cross_entropy",
        "matmul",
        "linear",
        "embedding",
        "index_select",
        "gather",
        "cat",
        "stack",
        "masked_fill",
        "where",
        "transpose",
        "permute",
        "narrow",
        "reshape",
        "expand",
        "squeeze",
        "unsqueeze",
        "rms_norm",
        "rope",
        "swiglu",
        "attention",
    ];
    let fixtures = Fixtures::load("grads.safetensors");
    for case in fixtures.cases() {
        assert!(tested.contains(&case.op()), "case {} has op '{}', which no test runs", case.name, case.op());
    }
}
