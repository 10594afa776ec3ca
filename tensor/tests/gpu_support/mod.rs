//! Helpers shared by the GPU kernel tests: named tolerances, `assert_close`, the shared
//! context (or a skip notice), random data and upload / read-back shorthands.
// Each test binary that includes this module uses a subset of it.
#![allow(dead_code)]

use std::sync::OnceLock;

use deltaw_tensor::gpu::{self, GpuContext, GpuOptions};
use deltaw_tensor::{Device, Layout, Seed, Tensor, UnaryOp};

/// Named tolerances: |actual - expected| <= abs + rel · |expected|.
#[derive(Clone, Copy, Debug)]
pub struct Tol {
    pub abs: f32,
    pub rel: f32,
}

impl Tol {
    /// Same operations in the same order: IEEE arithmetic is exact up to the last bit.
    pub const EXACT: Tol = Tol { abs: 0.0, rel: 0.0 };
    /// Arithmetic where the GPU may contract to fma or use a reciprocal: a few ulps.
    pub const ARITH: Tol = Tol { abs: 1e-7, rel: 1e-6 };
    /// exp/log/pow/tanh: Vulkan allows 3 + 2|x| ulp for exp and 3 ulp for log, and the GELU
    /// erfc fit is itself 1.2e-7 relative; 1e-5 relative covers these on |x| < 4.
    pub const TRANSCENDENTAL: Tol = Tol { abs: 1e-6, rel: 1e-5 };
    /// Sums of up to ~1000 N(0,1) terms in a different order (tree vs 16 partial sums): the
    /// error grows like ε·√n·max|partial| ≈ 1e-7 · 30 · 30.
    pub const REDUCTION: Tol = Tol { abs: 1e-4, rel: 1e-5 };
    /// GEMM with k ≤ 100 and N(0,1) inputs: fma order differs from the CPU micro-kernel.
    pub const MATMUL: Tol = Tol { abs: 1e-4, rel: 1e-5 };
}

/// Fails with the worst element, its index and the first pairs. NaN matches NaN.
pub fn assert_close(actual: &[f32], expected: &[f32], tol: Tol, what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: lengths differ");
    let mut worst: Option<(usize, f32)> = None;
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        let bad = if e.is_nan() || a.is_nan() {
            a.is_nan() != e.is_nan()
        } else if e.is_infinite() {
            a != e
        } else {
            (a - e).abs() > tol.abs + tol.rel * e.abs()
        };
        let excess = if bad { (a - e).abs().max(f32::MIN_POSITIVE) } else { 0.0 };
        if bad && worst.is_none_or(|(_, w)| excess > w || excess.is_nan()) {
            worst = Some((i, excess));
        }
    }
    if let Some((i, _)) = worst {
        let pairs: Vec<_> = actual.iter().zip(expected).take(6).collect();
        panic!(
            "{what}: element {i} is {} but expected {} ({tol:?}); first (gpu, cpu) pairs: {pairs:?}",
            actual[i], expected[i]
        );
    }
}

/// The shared context, or `None` (after a notice) when no adapter exists and none is required.
pub fn context() -> Option<&'static GpuContext> {
    static CTX: OnceLock<Option<GpuContext>> = OnceLock::new();
    CTX.get_or_init(new_context).as_ref()
}

pub fn new_context() -> Option<GpuContext> {
    match GpuContext::new(&GpuOptions::default()) {
        Ok(ctx) => Some(ctx),
        Err(e) if std::env::var("DELTAW_REQUIRE_GPU").as_deref() == Ok("1") => panic!("DELTAW_REQUIRE_GPU=1 but {e}"),
        Err(e) => {
            eprintln!("skipping GPU kernel tests: {e}");
            None
        }
    }
}

pub fn randn(n: usize, seed: u64) -> Vec<f32> {
    Tensor::randn(n, Seed(seed), &Device::Cpu).to_vec()
}

/// A view of a fresh contiguous tensor of `dims` (for its layout) and the tensor's data.
pub fn view(dims: &[usize], seed: u64, make: impl Fn(Tensor) -> Tensor) -> (Vec<f32>, Layout) {
    let data = randn(dims.iter().product(), seed);
    let t = Tensor::from_vec(data.clone(), dims, &Device::Cpu).unwrap();
    (data, make(t).layout().clone())
}

pub fn up(ctx: &GpuContext, data: &[f32]) -> gpu::GpuBuffer {
    ctx.upload(data).unwrap()
}

pub fn down(ctx: &GpuContext, buffer: &gpu::GpuBuffer, len: usize) -> Vec<f32> {
    ctx.read_back(buffer, len).unwrap()
}

/// Every unary op, with several exponents and scalars.
pub const UNARY_OPS: [UnaryOp; 20] = [
    UnaryOp::Neg,
    UnaryOp::Abs,
    UnaryOp::Exp,
    UnaryOp::Log,
    UnaryOp::Sqrt,
    UnaryOp::Rsqrt,
    UnaryOp::Tanh,
    UnaryOp::Sigmoid,
    UnaryOp::Relu,
    UnaryOp::Silu,
    UnaryOp::Gelu,
    UnaryOp::GeluTanh,
    UnaryOp::Powf(2.0),
    UnaryOp::Powf(3.0),
    UnaryOp::Powf(0.5),
    UnaryOp::Powf(-1.0),
    UnaryOp::AddScalar(0.25),
    UnaryOp::MulScalar(-3.0),
    UnaryOp::DivScalar(7.0),
    UnaryOp::ScalarDiv(2.0),
];
