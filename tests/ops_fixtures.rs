//! Every tensor op against PyTorch: iterates over the cases in `fixtures/ops.safetensors`
//! (made by `fixtures/generate.py`), runs the op named by each case's `"op"` parameter on the
//! stored inputs, and compares every output role with a named tolerance. One test per op
//! family, so a failure names the family; the message lists every failing case.

use deltaw_tensor::{DType, Device, Tensor};
use deltaw_tests::{check_close, devices, Case, Fixtures, Tol};
use std::panic::{catch_unwind, AssertUnwindSafe};

const UNARY: &[&str] =
    &["neg", "abs", "exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "relu", "silu", "gelu", "gelu_tanh", "powf"];
const BINARY: &[&str] = &["add", "sub", "mul", "div", "maximum", "minimum", "eq", "ne", "lt", "le", "gt", "ge"];
const SCALAR: &[&str] = &["add_scalar", "sub_scalar", "mul_scalar", "div_scalar", "where", "masked_fill"];
const REDUCE: &[&str] = &["sum", "mean", "max", "min", "argmax", "var", "sum_all", "mean_all", "max_all", "min_all"];
const NN: &[&str] = &["softmax", "log_softmax", "layer_norm", "embedding", "cross_entropy"];
const MATMUL: &[&str] = &["matmul"];
const VIEWS: &[&str] = &["transpose", "permute", "narrow", "reshape", "expand", "squeeze", "unsqueeze"];
const INDEX: &[&str] = &["cat", "stack", "index_select", "gather", "to_f16", "to_bf16"];
const LLAMA: &[&str] = &["rms_norm", "rope", "swiglu", "attention"];

/// The tolerance an op's outputs are held to (see `Tol` for each budget's justification).
/// The GPU gets the budgets of Vulkan's precision rules where they are looser than libm.
fn tolerance(op: &str, device: &Device) -> Tol {
    let host = match op {
        "sqrt" | "rsqrt" | "add" | "sub" | "mul" | "div" => Tol::IEEE,
        "add_scalar" | "sub_scalar" | "mul_scalar" | "div_scalar" => Tol::IEEE,
        "exp" | "log" | "tanh" | "sigmoid" | "silu" | "gelu" | "gelu_tanh" | "powf" => Tol::TRANSCENDENTAL,
        "sum" | "mean" | "var" | "sum_all" | "mean_all" | "cross_entropy" => Tol::REDUCTION,
        "softmax" | "log_softmax" => Tol::SOFTMAX,
        "layer_norm" => Tol::LAYER_NORM,
        // RMSNorm: a row sum of squares (up to 64 terms) and a scale, as layer norm's budget.
        "rms_norm" => Tol::LAYER_NORM,
        "rope" => Tol::ROPE,
        // silu(g)·u: an exponential, a division and two products.
        "swiglu" => Tol::TRANSCENDENTAL,
        // Two matmuls (k ≤ 8) around a softmax: the matmul budget covers probs and output.
        "matmul" | "attention" => Tol::MATMUL,
        _ => Tol::EXACT,
    };
    match host.name {
        "TRANSCENDENTAL" if device.is_gpu() => Tol::GPU_TRANSCENDENTAL,
        _ => host,
    }
}

/// Runs the case's op; returns `(output role, value)` pairs to compare with the fixture.
fn run(case: &Case) -> Vec<(&'static str, Tensor)> {
    let x = || case.operand("input");
    let y = || case.operand("other");
    let dim = || case.int("dim") as isize;
    let out = match case.op() {
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
        "add" => &x() + &y(),
        "sub" => &x() - &y(),
        "mul" => &x() * &y(),
        "div" => &x() / &y(),
        "maximum" => x().maximum(&y()),
        "minimum" => x().minimum(&y()),
        "eq" => x().eq(&y()),
        "ne" => x().ne(&y()),
        "lt" => x().lt(&y()),
        "le" => x().le(&y()),
        "gt" => x().gt(&y()),
        "ge" => x().ge(&y()),
        "add_scalar" => &x() + case.float("scalar") as f32,
        "sub_scalar" => &x() - case.float("scalar") as f32,
        "mul_scalar" => &x() * case.float("scalar") as f32,
        "div_scalar" => &x() / case.float("scalar") as f32,
        "where" => case.operand("cond").where_(&x(), &y()),
        "masked_fill" => x().masked_fill(&case.operand("mask"), case.float("value") as f32),
        "sum_all" => x().sum_all(),
        "mean_all" => x().mean_all(),
        "max_all" => x().max_all(),
        "min_all" => x().min_all(),
        op @ ("sum" | "mean" | "max" | "min" | "argmax" | "var") => reduce(op, &x(), dim(), case.flag("keepdim")),
        "softmax" => x().softmax(dim()),
        "log_softmax" => x().log_softmax(dim()),
        "layer_norm" => return layer_norm(case),
        "rms_norm" => {
            let out = x().rms_norm_with_stats(&case.operand("weight"), case.float("eps") as f32);
            return vec![("output", out.output), ("rstd", out.rstd)];
        }
        "rope" => x().rope(&case.operand("cos"), &case.operand("sin")),
        "swiglu" => x().swiglu(&y()),
        "attention" => {
            let (k, v, mask) = (case.operand("key"), case.operand("value"), case.operand("mask"));
            let out = x().attention(&k, &v, &mask, case.float("scale") as f32);
            return vec![("output", out.output), ("probs", out.probs)];
        }
        "embedding" => case.operand("weight").embedding(&case.operand("index")),
        "cross_entropy" => x().cross_entropy(&case.operand("target"), case.int("ignore_index") as i32),
        "matmul" => x().matmul(&y()),
        "cat" | "stack" => concat(case),
        "index_select" => x().index_select(dim(), &case.operand("index")),
        "gather" => x().gather(dim(), &case.operand("index")),
        "to_f16" => x().to_dtype(DType::F16).unwrap(),
        "to_bf16" => x().to_dtype(DType::BF16).unwrap(),
        _ => view(case, &x()),
    };
    vec![("output", out)]
}

fn reduce(op: &str, x: &Tensor, dim: isize, keepdim: bool) -> Tensor {
    let op = match op {
        "sum" => deltaw_tensor::ReduceOp::Sum,
        "mean" => deltaw_tensor::ReduceOp::Mean,
        "max" => deltaw_tensor::ReduceOp::Max,
        "min" => deltaw_tensor::ReduceOp::Min,
        "argmax" => deltaw_tensor::ReduceOp::ArgMax,
        _ => deltaw_tensor::ReduceOp::Var,
    };
    x.reduce(dim, op, keepdim)
}

fn layer_norm(case: &Case) -> Vec<(&'static str, Tensor)> {
    let eps = case.float("eps") as f32;
    let out = case.operand("input").layer_norm_with_stats(&case.operand("weight"), &case.operand("bias"), eps);
    vec![("output", out.output), ("mean", out.mean), ("rstd", out.rstd)]
}

fn concat(case: &Case) -> Tensor {
    let parts: Vec<Tensor> = (0..case.int("count")).map(|i| case.operand(&format!("input{i}"))).collect();
    let refs: Vec<&Tensor> = parts.iter().collect();
    let dim = case.int("dim") as isize;
    if case.op() == "cat" {
        Tensor::cat(&refs, dim)
    } else {
        Tensor::stack(&refs, dim)
    }
}

/// The view ops; the output is compared by value, so layout does not matter.
fn view(case: &Case, x: &Tensor) -> Tensor {
    let usizes = |key| case.ints(key).iter().map(|&d| d as usize).collect::<Vec<_>>();
    match case.op() {
        "transpose" => x.transpose(case.int("dim0") as isize, case.int("dim1") as isize),
        "permute" => x.permute(&case.ints("dims")),
        "narrow" => x.narrow(case.int("dim") as isize, case.int("start") as usize, case.int("length") as usize),
        "reshape" => x.reshape(resolve_minus_one(&case.ints("shape"), x.numel())),
        "expand" => x.expand(usizes("shape")),
        "squeeze" => x.squeeze(case.int("dim") as isize),
        "unsqueeze" => x.unsqueeze(case.int("dim") as isize),
        other => panic!("no runner for op '{other}': add it to ops_fixtures.rs"),
    }
}

/// PyTorch's `-1` in a shape: the size that makes the element count match.
fn resolve_minus_one(shape: &[i64], numel: usize) -> Vec<usize> {
    let known: i64 = shape.iter().filter(|&&d| d != -1).product();
    shape.iter().map(|&d| if d == -1 { numel / known as usize } else { d as usize }).collect()
}

/// Runs every case of the given ops on every device and panics with a list of all failures.
fn check_ops(ops: &[&str]) {
    let fixtures = Fixtures::load("ops.safetensors");
    let mut failures = Vec::new();
    let mut count = 0;
    for device in devices() {
        let cases: Vec<Case> =
            fixtures.cases().into_iter().filter(|c| ops.contains(&c.op())).map(|c| c.on(&device)).collect();
        assert!(!cases.is_empty(), "no fixture cases for {ops:?} in {}", fixtures.file.display());
        count += cases.len();
        failures.extend(cases.iter().filter_map(|case| check_case(case).err().map(|e| format!("[{device}] {e}"))));
    }
    if !failures.is_empty() {
        panic!(
            "{} of {count} cases (all devices) differ from PyTorch ({}):\n{}",
            failures.len(),
            fixtures.versions(),
            failures.join("\n")
        );
    }
}

fn check_case(case: &Case) -> Result<(), String> {
    let outputs = catch_unwind(AssertUnwindSafe(|| run(case))).map_err(|e| {
        let msg = e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()));
        format!("{}: panicked: {}", case.name, msg.unwrap_or_default())
    })?;
    for (role, actual) in outputs {
        let expected = case.stored(role);
        if actual.dims() != expected.dims() {
            return Err(format!("{}/{role}: shape {:?}, PyTorch {:?}", case.name, actual.shape(), expected.shape()));
        }
        check_close(&actual.to_vec(), &expected.to_vec(), tolerance(case.op(), case.device()))
            .map_err(|report| format!("{}/{role}: {report}", case.name))?;
    }
    Ok(())
}

#[test]
fn unary_ops_match_torch() {
    check_ops(UNARY);
}

#[test]
fn binary_ops_and_comparisons_match_torch_with_broadcasting() {
    check_ops(BINARY);
}

#[test]
fn scalar_ops_where_and_masked_fill_match_torch() {
    check_ops(SCALAR);
}

#[test]
fn reductions_match_torch_along_every_dim() {
    check_ops(REDUCE);
}

#[test]
fn nn_ops_match_torch() {
    check_ops(NN);
}

#[test]
fn matmul_matches_torch_incl_batched_and_transposed() {
    check_ops(MATMUL);
}

#[test]
fn llama_ops_match_transformers_incl_grouped_query_attention() {
    check_ops(LLAMA);
}

#[test]
fn views_match_torch() {
    check_ops(VIEWS);
}

#[test]
fn cat_stack_index_and_dtype_ops_match_torch() {
    check_ops(INDEX);
}

/// A new op in the fixtures must get a runner and a family here, or this fails.
#[test]
fn every_fixture_op_belongs_to_a_tested_family() {
    let fixtures = Fixtures::load("ops.safetensors");
    let families = [UNARY, BINARY, SCALAR, REDUCE, NN, MATMUL, VIEWS, INDEX, LLAMA].concat();
    let mut missing: Vec<String> =
        fixtures.cases().iter().map(|c| c.op().to_string()).filter(|op| !families.contains(&op.as_str())).collect();
    missing.dedup();
    assert!(missing.is_empty(), "fixture ops without a test family: {missing:?}");
}
