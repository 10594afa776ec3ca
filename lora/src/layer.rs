//! The adapter itself: `y = x W0ᵀ + b + scaling · dropout(x) Aᵀ Bᵀ` (Hu et al. 2021).
//!
//! The base layer computes `x W0ᵀ + b`; this adds the low-rank path. With `x` `(.., in)`,
//! `A` `(r, in)` and `B` `(out, r)`, the path costs `2·r·(in + out)` FLOPs per token instead of
//! materialising the `(out, in)` matrix `B A`. `B` starts at zero, so training starts exactly
//! at the pretrained model.

use deltaw_autograd::Var;
use deltaw_tensor::{Device, Seed, Tensor};
use deltaw_transformer::Adapter;

/// The low-rank path on one linear layer.
pub struct LoraAdapter {
    /// `A`, `(r, in)`: Kaiming-uniform at init.
    pub lora_a: Var,
    /// `B`, `(out, r)`: zeros at init.
    pub lora_b: Var,
    /// `α / r` (or `α / √r` with rsLoRA).
    pub scaling: f32,
    /// Dropout on the adapter's input, active only in train mode.
    pub dropout: f32,
}

impl LoraAdapter {
    /// PEFT's initialisation: `A ~ U(-1/√in, 1/√in)` (what `kaiming_uniform_(a=√5)` works out
    /// to: gain `√(2 / (1 + 5))` times `√(3 / in)`), `B = 0`.
    pub fn init(r: usize, (inp, out): (usize, usize), scaling: f32, dropout: f32, seed: Seed, dev: &Device) -> Self {
        let bound = 1.0 / (inp as f32).sqrt();
        let a = Tensor::rand((r, inp), seed, dev).mul_scalar(2.0 * bound).sub_scalar(bound);
        LoraAdapter::from_weights(a, Tensor::zeros((out, r), dev), scaling, dropout)
    }

    /// An adapter with given `A` `(r, in)` and `B` `(out, r)`, both trainable.
    ///
    /// # Panics
    /// If the ranks of `A` and `B` differ.
    #[track_caller]
    pub fn from_weights(a: Tensor, b: Tensor, scaling: f32, dropout: f32) -> Self {
        assert_eq!(a.dims()[0], b.dims()[1], "LoRA: A {:?} and B {:?} have different ranks", a.shape(), b.shape());
        LoraAdapter { lora_a: Var::parameter(a), lora_b: Var::parameter(b), scaling, dropout }
    }

    /// r
    pub fn rank(&self) -> usize {
        self.lora_a.dims()[0]
    }

    /// `ΔW = scaling · B A`, `(out, in)`: what merging adds to `W0` (transposed for a
    /// `fan_in_fan_out` layer).
    pub fn delta_weight(&self) -> Tensor {
        self.lora_b.value().matmul(&self.lora_a.value()).mul_scalar(self.scaling)
    }
}

impl Adapter for LoraAdapter {
    fn forward(&self, x: &Var) -> Var {
        // (.., in) -> (.., r) -> (.., out): never forms B A.
        x.dropout(self.dropout).matmul(&self.lora_a.t()).matmul(&self.lora_b.t()).mul_scalar(self.scaling)
    }
}
