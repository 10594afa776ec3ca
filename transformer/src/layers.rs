//! The layers models share, with parameters named by their checkpoint keys.

use crate::weights::Checkpoint;
use deltaw_autograd::Var;
use deltaw_tensor::{DType, Device, Tensor};
use std::sync::Arc;

/// A trainable addition to a linear layer's output, injected from outside the model (LoRA's
/// `scaling · dropout(x) Aᵀ Bᵀ` in `deltaw-lora`). The layer computes `base(x) + adapter(x)`.
pub trait Adapter: Send + Sync {
    /// `(.., in) -> (.., out)`, the same shapes as the layer it sits on.
    fn forward(&self, x: &Var) -> Var;
}

/// What adapter code needs from any linear layer, whichever way its weight is stored.
pub trait LinearModule {
    /// `(in, out)` features.
    fn in_out(&self) -> (usize, usize);
    /// True when the weight is stored `(in, out)` (GPT-2's `Conv1D`), false for `(out, in)`.
    /// PEFT calls this `fan_in_fan_out`.
    fn fan_in_fan_out(&self) -> bool;
    fn weight(&self) -> &Var;
    fn bias(&self) -> &Var;
    fn adapter(&self) -> Option<&Arc<dyn Adapter>>;
    /// Installs (`Some`) or removes (`None`) the adapter.
    fn set_adapter(&mut self, adapter: Option<Arc<dyn Adapter>>);
}

/// `base + adapter(x)` when an adapter is installed.
fn with_adapter(base: Var, adapter: Option<&Arc<dyn Adapter>>, x: &Var) -> Var {
    match adapter {
        Some(a) => base.add(&a.forward(x)),
        None => base,
    }
}

/// The parameters `name.weight` (in its stored shape) and `name.bias` `(out,)`, named by key.
fn load_weight_bias(ck: &mut Checkpoint, name: &str, weight_shape: [usize; 2], out: usize) -> (Var, Var) {
    let weight = Var::parameter(ck.take(&format!("{name}.weight"), &weight_shape)).named(format!("{name}.weight"));
    let bias = Var::parameter(ck.take(&format!("{name}.bias"), &[out])).named(format!("{name}.bias"));
    (weight, bias)
}

/// `torch.nn.Linear`: `y = x @ weightᵀ + bias`, weight stored `(out, in)` (BERT's layout).
pub struct Linear {
    pub weight: Var,
    pub bias: Var,
    pub adapter: Option<Arc<dyn Adapter>>,
}

impl Linear {
    pub(crate) fn load(ck: &mut Checkpoint, name: &str, (inp, out): (usize, usize)) -> Linear {
        let (weight, bias) = load_weight_bias(ck, name, [out, inp], out);
        Linear { weight, bias, adapter: None }
    }

    /// `(.., in) -> (.., out)`; the transpose is a view, so the GEMM reads W in place.
    pub fn forward(&self, x: &Var) -> Var {
        with_adapter(x.matmul(&self.weight.t()).add(&self.bias), self.adapter.as_ref(), x)
    }

    pub(crate) fn parameters(&self) -> [Var; 2] {
        [self.weight.clone(), self.bias.clone()]
    }
}

/// A `Conv1D` layer: `y = x @ weight + bias`, weight `(in, out)`.
pub struct Conv1D {
    pub weight: Var,
    pub bias: Var,
    pub adapter: Option<Arc<dyn Adapter>>,
}

impl Conv1D {
    pub(crate) fn load(ck: &mut Checkpoint, name: &str, (inp, out): (usize, usize)) -> Conv1D {
        let (weight, bias) = load_weight_bias(ck, name, [inp, out], out);
        Conv1D { weight, bias, adapter: None }
    }

    /// `(.., in) -> (.., out)`.
    pub fn forward(&self, x: &Var) -> Var {
        with_adapter(x.matmul(&self.weight).add(&self.bias), self.adapter.as_ref(), x)
    }

    pub(crate) fn parameters(&self) -> [Var; 2] {
        [self.weight.clone(), self.bias.clone()]
    }
}

macro_rules! linear_module {
    ($ty:ty, $fan_in_fan_out:expr) => {
        impl LinearModule for $ty {
            fn in_out(&self) -> (usize, usize) {
                let d = self.weight.dims();
                if $fan_in_fan_out {
                    (d[0], d[1])
                } else {
                    (d[1], d[0])
                }
            }
            fn fan_in_fan_out(&self) -> bool {
                $fan_in_fan_out
            }
            fn weight(&self) -> &Var {
                &self.weight
            }
            fn bias(&self) -> &Var {
                &self.bias
            }
            fn adapter(&self) -> Option<&Arc<dyn Adapter>> {
                self.adapter.as_ref()
            }
            fn set_adapter(&mut self, adapter: Option<Arc<dyn Adapter>>) {
                self.adapter = adapter;
            }
        }
    };
}

linear_module!(Linear, false);
linear_module!(Conv1D, true);

/// Layer norm parameters `(C,)`.
pub struct LayerNorm {
    pub weight: Var,
    pub bias: Var,
    pub eps: f32,
}

impl LayerNorm {
    pub(crate) fn load(ck: &mut Checkpoint, name: &str, c: usize, eps: f32) -> LayerNorm {
        let weight = Var::parameter(ck.take(&format!("{name}.weight"), &[c])).named(format!("{name}.weight"));
        let bias = Var::parameter(ck.take(&format!("{name}.bias"), &[c])).named(format!("{name}.bias"));
        LayerNorm { weight, bias, eps }
    }

    pub fn forward(&self, x: &Var) -> Var {
        x.layer_norm(&self.weight, &self.bias, self.eps)
    }

    pub(crate) fn parameters(&self) -> [Var; 2] {
        [self.weight.clone(), self.bias.clone()]
    }
}

/// Multi-head attention over projected `q`, `k`, `v` `(B, T, C)`:
/// `softmax(q kᵀ / √HS, masked) v` per head, heads merged back to `(B, T, C)`.
/// `mask` is 1.0 where a query may not see a key, broadcastable to `(B, NH, T, T)`.
pub fn multi_head_attention(q: &Var, k: &Var, v: &Var, n_head: usize, mask: &Tensor) -> Var {
    multi_head_attention_with_cache(q, k, v, n_head, mask, None).0
}

/// [`multi_head_attention`] for decoding with a KV cache: `past` holds the earlier keys and
/// values `(B, NH, T_past, HS)` (as tensors: generation records no graph); the new ones are
/// appended along the time axis. Returns the output `(B, T, C)` and the full keys and values
/// `(B, NH, T_past + T, HS)` to cache. `mask` is `(.., T, T_past + T)`.
pub fn multi_head_attention_with_cache(
    q: &Var,
    k: &Var,
    v: &Var,
    n_head: usize,
    mask: &Tensor,
    past: Option<(Tensor, Tensor)>,
) -> (Var, Var, Var) {
    attend(q, k, v, n_head, mask, past, 0.0)
}

/// [`multi_head_attention`] with dropout `attn_pdrop` on the attention probabilities, active
/// only in train mode (`deltaw_autograd::train_mode`), as transformers' `attn_dropout`.
pub fn multi_head_attention_dropout(q: &Var, k: &Var, v: &Var, n_head: usize, mask: &Tensor, attn_pdrop: f32) -> Var {
    attend(q, k, v, n_head, mask, None, attn_pdrop).0
}

fn attend(
    q: &Var,
    k: &Var,
    v: &Var,
    n_head: usize,
    mask: &Tensor,
    past: Option<(Tensor, Tensor)>,
    attn_pdrop: f32,
) -> (Var, Var, Var) {
    let dims = q.dims();
    let (b, t, c) = (dims[0], dims[1], dims[2]);
    let hs = c / n_head;
    let heads = |x: &Var| x.reshape((b, t, n_head, hs)).permute(&[0, 2, 1, 3]); // (B, NH, T, HS)
    let (q, mut k, mut v) = (heads(q), heads(k), heads(v));
    if let Some((pk, pv)) = past {
        k = Var::cat(&[&Var::constant(pk), &k], 2);
        v = Var::cat(&[&Var::constant(pv), &v], 2);
    }
    let scale = 1.0 / (hs as f32).sqrt();
    let y = if attn_pdrop > 0.0 && deltaw_autograd::is_training() {
        // Dropout acts on the probabilities themselves, so they are formed as a tensor of the
        // graph here: the same steps as the fused op, with a dropout before the weighted sum.
        let scores = q.matmul(&k.transpose(-2, -1)).mul_scalar(scale); // (B, NH, T, T_all)
        scores.masked_fill(mask, f32::NEG_INFINITY).softmax(-1).dropout(attn_pdrop).matmul(&v)
    } else {
        q.attention(&k, &v, mask, scale) // one op: softmax(q kᵀ · scale, masked) v, own backward
    };
    let y = y.permute(&[0, 2, 1, 3]).reshape((b, t, c)); // (B, T, C)
    (y, k, v)
}

/// The attention mask, 1.0 where query i may not attend key j: key j is padding
/// (`attention_mask[b, j] == 0`, any dtype), or, when `causal`, j > i. Shape `(B, 1, T, T)`
/// (or `(1, 1, T, T)` for a causal mask without padding).
///
/// # Panics
/// If `attention_mask` is not `(B, T)`.
#[track_caller]
pub fn attention_mask(b: usize, t: usize, attention_mask: Option<&Tensor>, causal: bool, dev: &Device) -> Tensor {
    let idx = Tensor::arange(0.0, t as f32, dev);
    let base = if causal {
        idx.reshape((1, 1, 1, t)).gt(&idx.reshape((1, 1, t, 1))) // (1, 1, T, T)
    } else {
        Tensor::zeros((1, 1, 1, t), dev)
    };
    match attention_mask {
        None => base,
        Some(m) => {
            assert_eq!(m.dims(), &[b, t], "attention_mask {:?} does not match ids ({b}, {t})", m.shape());
            let m = m.to_dtype(DType::F32).expect("an i32 or float mask converts to f32");
            let padded = m.eq(&Tensor::scalar(0.0, dev)).reshape((b, 1, 1, t)); // (B, 1, 1, T)
            base.maximum(&padded)
        }
    }
}
