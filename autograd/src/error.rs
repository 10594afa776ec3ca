//! Errors of the backward pass: what was asked cannot be differentiated as asked.

/// Why `backward` refused to run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("backward: the output has shape {shape}, not a single element; pass an upstream gradient of that shape with backward_with")]
    NotScalar { shape: String },

    #[error("backward: nothing in this graph requires grad (it was computed from constants only, or under no_grad); make the trainable leaves with Var::parameter")]
    NoGradRequired,

    #[error("backward: the upstream gradient has shape {got} but the output has shape {expected}")]
    GradShape { expected: String, got: String },

    #[error("backward: the upstream gradient is on {got} but the output is on {expected}; move it with to_device")]
    GradDevice { expected: String, got: String },
}

pub type Result<T> = std::result::Result<T, Error>;
