//! Neural-network ops with fused backward kernels: softmax and log-softmax (backward from the
//! saved output), layer norm (from the saved `mean` and `rstd`), cross-entropy with
//! `ignore_index`, embedding lookup (whose backward is a scatter-add into the table), scaled
//! dot-product attention as one op (backward from the saved probabilities, grouped-query heads
//! included), and the Llama family's RMSNorm (from the saved `rstd`), rotary embedding (whose
//! backward is the rotation by −θ) and SwiGLU.

use crate::grads::Grads;
use crate::op::{Family, Op};
use crate::var::Var;
use deltaw_tensor::{Dim, Tensor};

/// An nn op, its inputs, and what its forward saved for the backward.
pub(crate) enum Nn {
    Softmax { input: Var, dim: usize },
    LogSoftmax { input: Var, dim: usize },
    LayerNorm { input: Var, weight: Var, bias: Var, mean: Tensor, rstd: Tensor },
    CrossEntropy { logits: Var, targets: Tensor, ignore_index: i32 },
    Embedding { table: Var, ids: Tensor },
    Attention { q: Var, k: Var, v: Var, mask: Tensor, scale: f32, probs: Tensor },
    RmsNorm { input: Var, weight: Var, rstd: Tensor },
    Rope { input: Var, cos: Tensor, sin: Tensor },
    Swiglu { gate: Var, up: Var },
}

impl Var {
    /// Softmax along `dim`, as `torch.softmax`; saves its output for the backward.
    #[track_caller]
    pub fn softmax(&self, dim: impl Dim) -> Var {
        let x = self.value();
        let d = dim.resolve(x.rank().max(1), "softmax", x.shape());
        Var::from_op(x.softmax(d), Op::Nn(Nn::Softmax { input: self.clone(), dim: d }))
    }

    /// Log-softmax along `dim`; saves its output for the backward.
    #[track_caller]
    pub fn log_softmax(&self, dim: impl Dim) -> Var {
        let x = self.value();
        let d = dim.resolve(x.rank().max(1), "log_softmax", x.shape());
        Var::from_op(x.log_softmax(d), Op::Nn(Nn::LogSoftmax { input: self.clone(), dim: d }))
    }

    /// Layer norm over the last dim, as [`Tensor::layer_norm_with_stats`]: `x` `(.., C)`,
    /// `weight` and `bias` `(C,)`. Saves `x`, `weight`, and the per-row `mean` and `rstd`.
    #[track_caller]
    pub fn layer_norm(&self, weight: &Var, bias: &Var, eps: f32) -> Var {
        let out = self.value().layer_norm_with_stats(&weight.value(), &bias.value(), eps);
        let op = Nn::LayerNorm {
            input: self.clone(),
            weight: weight.clone(),
            bias: bias.clone(),
            mean: out.mean,
            rstd: out.rstd,
        };
        Var::from_op(out.output, Op::Nn(op))
    }

    /// Mean cross-entropy of logits `self` `(.., V)` against i32 `targets` `(..)`, skipping
    /// `ignore_index` (PyTorch's default is -100); a 0-d var.
    #[track_caller]
    pub fn cross_entropy(&self, targets: &Tensor, ignore_index: i32) -> Var {
        let value = self.value().cross_entropy(targets, ignore_index);
        Var::from_op(value, Op::Nn(Nn::CrossEntropy { logits: self.clone(), targets: targets.clone(), ignore_index }))
    }

    /// RMSNorm over the last dim, as [`Tensor::rms_norm_with_stats`] (transformers'
    /// `LlamaRMSNorm`): `x` `(.., C)`, `weight` `(C,)`. Saves `x`, `weight` and the per-row `rstd`.
    #[track_caller]
    pub fn rms_norm(&self, weight: &Var, eps: f32) -> Var {
        let out = self.value().rms_norm_with_stats(&weight.value(), eps);
        Var::from_op(out.output, Op::Nn(Nn::RmsNorm { input: self.clone(), weight: weight.clone(), rstd: out.rstd }))
    }

    /// Rotary position embedding (rotate-half), as [`Tensor::rope`]: `self` = `x`
    /// `(B, T, NH, HS)`, `cos` and `sin` the half tables broadcastable to `(B, T, HS/2)`. The
    /// tables are constants (no gradient); the backward rotates `dout` by −θ.
    #[track_caller]
    pub fn rope(&self, cos: &Tensor, sin: &Tensor) -> Var {
        let value = self.value().rope(cos, sin);
        Var::from_op(value, Op::Nn(Nn::Rope { input: self.clone(), cos: cos.clone(), sin: sin.clone() }))
    }

    /// SwiGLU `silu(self) · up`, as [`Tensor::swiglu`]: `self` = gate, `up` of the same shape.
    /// Saves both inputs.
    #[track_caller]
    pub fn swiglu(&self, up: &Var) -> Var {
        let value = self.value().swiglu(&up.value());
        Var::from_op(value, Op::Nn(Nn::Swiglu { gate: self.clone(), up: up.clone() }))
    }

    /// Scaled dot-product attention as one op, as [`Tensor::attention`]: `self` = queries
    /// `(B, NH, T, HS)`, `k`, `v` `(B, NKV, S, HS)` with `NH % NKV == 0` (grouped-query
    /// attention: query head `h` reads key/value head `h / (NH / NKV)`; `NKV = NH` is plain
    /// multi-head attention), `mask` broadcastable to `(B, NH, T, S)`
    /// (nonzero = may not attend). Saves q, k, v and the probabilities `(B, NH, T, S)`; the
    /// backward is [`Tensor::attention_backward`] (no scores or masked copies are kept).
    #[track_caller]
    pub fn attention(&self, k: &Var, v: &Var, mask: &Tensor, scale: f32) -> Var {
        let out = self.value().attention(&k.value(), &v.value(), mask, scale);
        let op =
            Nn::Attention { q: self.clone(), k: k.clone(), v: v.clone(), mask: mask.clone(), scale, probs: out.probs };
        Var::from_op(out.output, Op::Nn(op))
    }

    /// Embedding lookup: `self` is the `(V, C)` table, `ids` i32 of any shape; the result is
    /// `ids.shape + (C,)`.
    #[track_caller]
    pub fn embedding(&self, ids: &Tensor) -> Var {
        let value = self.value().embedding(ids);
        Var::from_op(value, Op::Nn(Nn::Embedding { table: self.clone(), ids: ids.clone() }))
    }
}

/// The backward rules; the maths of each lives with its kernel in the tensor crate.
fn nn_backward(op: &Nn, y: &Tensor, dout: &Tensor, grads: &mut Grads) {
    match op {
        // dx = y · (dout - Σ_dim dout · y)
        Nn::Softmax { input, dim } => grads.accumulate(input, y.softmax_backward(dout, *dim)),
        // dx = dout - exp(y) · Σ_dim dout
        Nn::LogSoftmax { input, dim } => grads.accumulate(input, y.log_softmax_backward(dout, *dim)),
        Nn::LayerNorm { input, weight, bias, mean, rstd } => {
            let (dx, dweight, dbias) = input.value().layer_norm_backward(dout, &weight.value(), mean, rstd);
            grads.accumulate(input, dx);
            grads.accumulate(weight, dweight);
            grads.accumulate(bias, dbias);
        }
        // dlogits = (softmax(logits) - onehot(target)) · dloss / n_kept, 0 on ignored rows
        Nn::CrossEntropy { logits, targets, ignore_index } => {
            grads.accumulate(logits, logits.value().cross_entropy_backward(targets, *ignore_index, dout))
        }
        // dtable[ids[i]] += dout[i]: rows looked up several times sum their gradients
        Nn::Embedding { table, ids } => {
            let table_value = table.value();
            let c = table_value.dim(1);
            let rows = dout.reshape((ids.numel(), c));
            grads.defer_rows(table, ids.flatten_all(), rows);
        }
        // dV = Pᵀ·dO, dS = P ⊙ (dO·Vᵀ − rowsum), dQ = scale·dS·K, dK = scale·dSᵀ·Q
        Nn::Attention { q, k, v, scale, probs, .. } => {
            let (dq, dk, dv) = q.value().attention_backward(&k.value(), &v.value(), probs, dout, *scale);
            grads.accumulate(q, dq);
            grads.accumulate(k, dk);
            grads.accumulate(v, dv);
        }
        // dx = rstd · (w⊙dy − xhat · mean_C(xhat⊙w⊙dy)), dweight = Σ_rows dy⊙xhat
        Nn::RmsNorm { input, weight, rstd } => {
            let (dx, dweight) = input.value().rms_norm_backward(dout, &weight.value(), rstd);
            grads.accumulate(input, dx);
            grads.accumulate(weight, dweight);
        }
        // dx = dout rotated by −θ (a rotation's transpose is its inverse)
        Nn::Rope { input, cos, sin } => grads.accumulate(input, dout.rope_backward(cos, sin)),
        // dgate = dout·up·σ(g)(1 + g(1 − σ(g))), dup = dout·silu(g)
        Nn::Swiglu { gate, up } => {
            let (dgate, dup) = gate.value().swiglu_backward(&up.value(), dout);
            grads.accumulate(gate, dgate);
            grads.accumulate(up, dup);
        }
    }
}

impl Family for Nn {
    fn name(&self) -> String {
        match self {
            Nn::Softmax { dim, .. } => format!("softmax(dim={dim})"),
            Nn::LogSoftmax { dim, .. } => format!("log_softmax(dim={dim})"),
            Nn::LayerNorm { .. } => "layer_norm".into(),
            Nn::CrossEntropy { ignore_index, .. } => format!("cross_entropy(ignore_index={ignore_index})"),
            Nn::Embedding { .. } => "embedding".into(),
            Nn::Attention { scale, .. } => format!("attention(scale={scale})"),
            Nn::RmsNorm { .. } => "rms_norm".into(),
            Nn::Rope { .. } => "rope".into(),
            Nn::Swiglu { .. } => "swiglu".into(),
        }
    }

    fn inputs(&self) -> Vec<&Var> {
        match self {
            Nn::Softmax { input, .. } | Nn::LogSoftmax { input, .. } => vec![input],
            Nn::LayerNorm { input, weight, bias, .. } => vec![input, weight, bias],
            Nn::CrossEntropy { logits, .. } => vec![logits],
            Nn::Embedding { table, .. } => vec![table],
            Nn::Attention { q, k, v, .. } => vec![q, k, v],
            Nn::RmsNorm { input, weight, .. } => vec![input, weight],
            Nn::Rope { input, .. } => vec![input],
            Nn::Swiglu { gate, up } => vec![gate, up],
        }
    }

    fn saved(&self, out: &Tensor) -> Vec<Tensor> {
        match self {
            Nn::Softmax { .. } | Nn::LogSoftmax { .. } => vec![out.clone()],
            Nn::LayerNorm { input, weight, mean, rstd, .. } => {
                vec![input.value(), weight.value(), mean.clone(), rstd.clone()]
            }
            Nn::CrossEntropy { logits, targets, .. } => vec![logits.value(), targets.clone()],
            Nn::Embedding { ids, .. } => vec![ids.clone()],
            Nn::Attention { q, k, v, mask, probs, .. } => {
                vec![q.value(), k.value(), v.value(), mask.clone(), probs.clone()]
            }
            Nn::RmsNorm { input, weight, rstd } => vec![input.value(), weight.value(), rstd.clone()],
            Nn::Rope { cos, sin, .. } => vec![cos.clone(), sin.clone()],
            Nn::Swiglu { gate, up } => vec![gate.value(), up.value()],
        }
    }

    fn backward(&self, out: &Tensor, dout: &Tensor, grads: &mut Grads) {
        nn_backward(self, out, dout, grads)
    }
}
