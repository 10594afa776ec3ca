//! Op descriptors: what an elementwise, reduction or optimizer op computes, independent of the
//! device. The front end (`ops/`) picks one, and both backends (`cpu/`, `gpu/`) read it: the
//! CPU kernels `match` on it, the GPU glue turns it into a WGSL op code (its index here).

/// A one-input elementwise function. Scalar-parameter variants carry their constant.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryOp {
    Neg,
    Abs,
    Exp,
    Log,
    Sqrt,
    Rsqrt,
    Tanh,
    Sigmoid,
    Relu,
    Silu,
    /// GELU with the exact erf CDF (BERT).
    Gelu,
    /// GELU's tanh approximation (GPT-2).
    GeluTanh,
    Powf(f32),
    AddScalar(f32),
    MulScalar(f32),
    DivScalar(f32),
    /// `s / x`.
    ScalarDiv(f32),
}

impl UnaryOp {
    /// The op's name in profiles.
    pub fn name(self) -> &'static str {
        match self {
            UnaryOp::Neg => "neg",
            UnaryOp::Abs => "abs",
            UnaryOp::Exp => "exp",
            UnaryOp::Log => "log",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Rsqrt => "rsqrt",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Sigmoid => "sigmoid",
            UnaryOp::Relu => "relu",
            UnaryOp::Silu => "silu",
            UnaryOp::Gelu => "gelu",
            UnaryOp::GeluTanh => "gelu_tanh",
            UnaryOp::Powf(_) => "powf",
            UnaryOp::AddScalar(_) => "add_scalar",
            UnaryOp::MulScalar(_) => "mul_scalar",
            UnaryOp::DivScalar(_) => "div_scalar",
            UnaryOp::ScalarDiv(_) => "scalar_div",
        }
    }
}

/// A two-input elementwise function; comparisons return 1.0 for true and 0.0 for false.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    /// Elementwise max; NaN in either input gives NaN, as `torch.maximum`.
    Maximum,
    Minimum,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl BinaryOp {
    /// The op's name in profiles.
    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Maximum => "maximum",
            BinaryOp::Minimum => "minimum",
            BinaryOp::Eq => "eq",
            BinaryOp::Ne => "ne",
            BinaryOp::Lt => "lt",
            BinaryOp::Le => "le",
            BinaryOp::Gt => "gt",
            BinaryOp::Ge => "ge",
        }
    }
}

/// What to compute over the reduced dim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceOp {
    Sum,
    Mean,
    Max,
    Min,
    /// Variance with Bessel's correction (divide by d - 1), as `torch.var`'s default.
    Var,
    /// Index of the first maximum (returned as f32 here; the front end converts to i32).
    ArgMax,
}

impl ReduceOp {
    /// The op's name in profiles.
    pub fn name(self) -> &'static str {
        match self {
            ReduceOp::Sum => "sum",
            ReduceOp::Mean => "mean",
            ReduceOp::Max => "max",
            ReduceOp::Min => "min",
            ReduceOp::Var => "var",
            ReduceOp::ArgMax => "argmax",
        }
    }
}

/// Sizes of the `(outer, d, inner)` view.
#[derive(Clone, Copy, Debug)]
pub struct ReduceDims {
    pub outer: usize,
    pub d: usize,
    pub inner: usize,
}

/// The update's scalars, each computed in f64 by the caller and rounded once to f32.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWScalars {
    /// `1 - lr · weight_decay`, applied to p first (decoupled decay); `None` when there is none.
    pub decay: Option<f32>,
    /// `1 - β1`
    pub one_minus_beta1: f32,
    pub beta2: f32,
    /// `1 - β2`
    pub one_minus_beta2: f32,
    /// `√(1 - β2ᵗ)`
    pub bias2_sqrt: f32,
    pub eps: f32,
    /// `-lr / (1 - β1ᵗ)`
    pub step_size: f32,
}
