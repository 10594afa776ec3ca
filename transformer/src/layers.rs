//! The layers models share, with parameters named by their checkpoint keys: linear (in both
//! storage orders), embedding, layer norm and the two-layer MLP.

use crate::module::{Init, Module, ParamSource};
use deltaw_autograd::Var;
use deltaw_tensor::Tensor;
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
    /// `None` for a layer without bias (Llama's projections).
    fn bias(&self) -> Option<&Var>;
    fn adapter(&self) -> Option<&Arc<dyn Adapter>>;
    /// Installs (`Some`) or removes (`None`) the adapter.
    fn set_adapter(&mut self, adapter: Option<Arc<dyn Adapter>>);
}

/// How a linear layer's weight is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightLayout {
    /// `torch.nn.Linear`: `(out, in)`, so `y = x @ weightᵀ + bias` (BERT, Llama).
    OutIn,
    /// GPT-2's `Conv1D`: `(in, out)`, so `y = x @ weight + bias`, the weight used as stored.
    InOut,
}

/// A linear layer `y = x Wᵀ + b` (or `x W + b` for GPT-2's `Conv1D` storage), the bias
/// optional, plus an optional adapter.
#[derive(Clone)]
pub struct Linear {
    pub weight: Var,
    pub bias: Option<Var>,
    pub layout: WeightLayout,
    pub adapter: Option<Arc<dyn Adapter>>,
}

impl Linear {
    /// `key.weight` in the shape `layout` stores and `key.bias` `(out,)`; a fresh weight is
    /// `N(0, std²)` and a fresh bias zero.
    pub fn new(
        src: &mut dyn ParamSource,
        key: &str,
        (inp, out): (usize, usize),
        layout: WeightLayout,
        std: f32,
    ) -> Linear {
        let shape = match layout {
            WeightLayout::OutIn => [out, inp],
            WeightLayout::InOut => [inp, out],
        };
        let weight = src.param(&format!("{key}.weight"), &shape, Init::Normal { std });
        let bias = Some(src.param(&format!("{key}.bias"), &[out], Init::Zeros));
        Linear { weight, bias, layout, adapter: None }
    }

    /// `torch.nn.Linear` storage `(out, in)`, with `key.bias` only when `bias` is set.
    pub fn out_in(src: &mut dyn ParamSource, key: &str, (inp, out): (usize, usize), bias: bool, std: f32) -> Linear {
        let weight = src.param(&format!("{key}.weight"), &[out, inp], Init::Normal { std });
        let bias = bias.then(|| src.param(&format!("{key}.bias"), &[out], Init::Zeros));
        Linear { weight, bias, layout: WeightLayout::OutIn, adapter: None }
    }

    /// `(.., in) -> (.., out)`. For `(out, in)` storage the transpose is a view, so the GEMM
    /// reads W in place; the bias is added in the GEMM's epilogue (`Var::matmul_bias`).
    pub fn forward(&self, x: &Var) -> Var {
        let w = match self.layout {
            WeightLayout::OutIn => self.weight.t(),
            WeightLayout::InOut => self.weight.clone(),
        };
        let base = match &self.bias {
            Some(b) if x.rank() >= 2 => x.matmul_bias(&w, b),
            Some(b) => x.matmul(&w).add(b),
            None => x.matmul(&w),
        };
        match &self.adapter {
            Some(a) => base.add(&a.forward(x)),
            None => base,
        }
    }

    /// [`Linear::forward`] of each of `layers` over the same `x`, with the same results, bit
    /// for bit. Outside autograd (decoding), layers stored `(out, in)` without adapters take
    /// `Tensor::matmul_t_many`: for one row of `x`, one parallel pass over all their weights
    /// (block-quantized ones with `x` quantized once) instead of one each. The query, key and
    /// value projections, or gate and up.
    ///
    /// ```
    /// use deltaw_autograd::{no_grad, Var};
    /// use deltaw_tensor::{DType, Device, QuantType, Tensor};
    /// use deltaw_transformer::{Linear, WeightLayout};
    /// let dev = Device::Cpu;
    /// let w = |n: usize| Tensor::full((n, 64), 0.25, &dev).to_dtype(DType::Quant(QuantType::Q8_0)).unwrap();
    /// let layer = |n: usize| Linear { weight: Var::constant(w(n)), bias: None, layout: WeightLayout::OutIn, adapter: None };
    /// let (a, b) = (layer(3), layer(2));
    /// let x = Var::constant(Tensor::full((1, 1, 64), 1.0, &dev));
    /// let [ya, yb] = no_grad(|| Linear::forward_shared([&a, &b], &x));
    /// assert_eq!(ya.dims(), [1, 1, 3]);
    /// assert_eq!(yb.value().to_vec(), b.forward(&x).value().to_vec());
    /// ```
    pub fn forward_shared<const N: usize>(layers: [&Linear; N], x: &Var) -> [Var; N] {
        let shared = !deltaw_autograd::is_grad_enabled()
            && layers.iter().all(|l| l.adapter.is_none() && l.layout == WeightLayout::OutIn);
        if !shared {
            return layers.map(|l| l.forward(x));
        }
        let weights = layers.map(|l| l.weight.value());
        let mut outs = x.value().matmul_t_many(&weights.each_ref()).into_iter();
        layers.map(|l| {
            let y = Var::constant(outs.next().expect("one product per layer"));
            match &l.bias {
                Some(b) => y.add(b), // `matmul_bias` adds the bias to the finished sums too
                None => y,
            }
        })
    }
}

impl LinearModule for Linear {
    fn in_out(&self) -> (usize, usize) {
        let d = self.weight.dims();
        match self.layout {
            WeightLayout::OutIn => (d[1], d[0]),
            WeightLayout::InOut => (d[0], d[1]),
        }
    }
    fn fan_in_fan_out(&self) -> bool {
        self.layout == WeightLayout::InOut
    }
    fn weight(&self) -> &Var {
        &self.weight
    }
    fn bias(&self) -> Option<&Var> {
        self.bias.as_ref()
    }
    fn adapter(&self) -> Option<&Arc<dyn Adapter>> {
        self.adapter.as_ref()
    }
    fn set_adapter(&mut self, adapter: Option<Arc<dyn Adapter>>) {
        self.adapter = adapter;
    }
}

impl Module for Linear {
    fn own_parameters(&self) -> Vec<(&'static str, &Var)> {
        let mut own = vec![("weight", &self.weight)];
        own.extend(self.bias.as_ref().map(|b| ("bias", b)));
        own
    }
    fn as_linear_mut(&mut self) -> Option<&mut dyn LinearModule> {
        Some(self)
    }
}

/// A lookup table `(rows, C)`: `weight[ids]`.
#[derive(Clone)]
pub struct Embedding {
    pub weight: Var,
}

impl Embedding {
    /// `key.weight` `(rows, c)`, fresh `N(0, std²)`.
    pub fn new(src: &mut dyn ParamSource, key: &str, (rows, c): (usize, usize), std: f32) -> Embedding {
        Embedding { weight: src.param(&format!("{key}.weight"), &[rows, c], Init::Normal { std }) }
    }

    /// i32 ids of any shape `(..)` → `(.., C)`.
    pub fn forward(&self, ids: &Tensor) -> Var {
        self.weight.embedding(ids)
    }
}

impl Module for Embedding {
    fn own_parameters(&self) -> Vec<(&'static str, &Var)> {
        vec![("weight", &self.weight)]
    }
}

/// Layer norm over the last dimension with parameters `(C,)`.
#[derive(Clone)]
pub struct LayerNorm {
    pub weight: Var,
    pub bias: Var,
    pub eps: f32,
}

impl LayerNorm {
    /// `key.weight` (fresh: ones) and `key.bias` (fresh: zeros), `(c,)`.
    pub fn new(src: &mut dyn ParamSource, key: &str, c: usize, eps: f32) -> LayerNorm {
        let weight = src.param(&format!("{key}.weight"), &[c], Init::Ones);
        let bias = src.param(&format!("{key}.bias"), &[c], Init::Zeros);
        LayerNorm { weight, bias, eps }
    }

    pub fn forward(&self, x: &Var) -> Var {
        x.layer_norm(&self.weight, &self.bias, self.eps)
    }
}

impl Module for LayerNorm {
    fn own_parameters(&self) -> Vec<(&'static str, &Var)> {
        vec![("weight", &self.weight), ("bias", &self.bias)]
    }
}

/// The nonlinearity between an MLP's two layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// The erf form (BERT's `gelu`).
    Gelu,
    /// The tanh approximation (GPT-2's `gelu_new`).
    GeluTanh,
}

/// The position-wise MLP `proj(act(fc(x)))`, `(.., C) -> (.., inner) -> (.., C)`. GPT-2 keys
/// its layers `mlp.c_fc` / `mlp.c_proj`, BERT `intermediate.dense` / `output.dense`: the keys
/// are kept beside the layers so the walk names them as the checkpoint does.
#[derive(Clone)]
pub struct Mlp {
    pub fc: Linear,
    pub proj: Linear,
    pub activation: Activation,
    keys: [&'static str; 2],
}

impl Mlp {
    /// Builds `fc` under `keys[0]` (fresh `N(0, 0.02²)`) and `proj` under `keys[1]` (fresh
    /// `N(0, proj_std²)`), relative to `prefix`.
    pub fn new(
        src: &mut dyn ParamSource,
        prefix: &str,
        keys: [&'static str; 2],
        (c, inner): (usize, usize),
        (layout, activation): (WeightLayout, Activation),
        proj_std: f32,
    ) -> Mlp {
        let fc = Linear::new(src, &format!("{prefix}{}", keys[0]), (c, inner), layout, 0.02);
        let proj = Linear::new(src, &format!("{prefix}{}", keys[1]), (inner, c), layout, proj_std);
        Mlp { fc, proj, activation, keys }
    }

    /// `(.., C) -> (.., C)`.
    pub fn forward(&self, x: &Var) -> Var {
        let h = self.fc.forward(x); // (.., inner)
        let h = match self.activation {
            Activation::Gelu => h.gelu(),
            Activation::GeluTanh => h.gelu_tanh(),
        };
        self.proj.forward(&h)
    }
}

impl Module for Mlp {
    fn children(&self) -> Vec<(String, &dyn Module)> {
        vec![(self.keys[0].into(), &self.fc), (self.keys[1].into(), &self.proj)]
    }
    fn children_mut(&mut self) -> Vec<(String, &mut dyn Module)> {
        vec![(self.keys[0].into(), &mut self.fc), (self.keys[1].into(), &mut self.proj)]
    }
}

/// Root-mean-square norm over the last dimension (Llama's `RMSNorm`): `x / rms(x) · weight`,
/// no mean subtracted, no bias.
#[derive(Clone)]
pub struct RmsNorm {
    pub weight: Var,
    pub eps: f32,
}

impl RmsNorm {
    /// `key.weight` `(c,)`, fresh: ones.
    pub fn new(src: &mut dyn ParamSource, key: &str, c: usize, eps: f32) -> RmsNorm {
        RmsNorm { weight: src.param(&format!("{key}.weight"), &[c], Init::Ones), eps }
    }

    /// `(.., C) -> (.., C)`.
    pub fn forward(&self, x: &Var) -> Var {
        x.rms_norm(&self.weight, self.eps)
    }
}

impl Module for RmsNorm {
    fn own_parameters(&self) -> Vec<(&'static str, &Var)> {
        vec![("weight", &self.weight)]
    }
}

/// Llama's gated MLP: `down(silu(gate(x)) ⊙ up(x))`, `(.., C) -> (.., inner) -> (.., C)`,
/// with the fused SwiGLU in the middle.
#[derive(Clone)]
pub struct GatedMlp {
    pub gate_proj: Linear,
    pub up_proj: Linear,
    pub down_proj: Linear,
}

impl GatedMlp {
    /// `prefix.{gate_proj, up_proj, down_proj}`, with biases when `bias` is set; fresh weights
    /// `N(0, std²)`.
    pub fn new(src: &mut dyn ParamSource, prefix: &str, (c, inner): (usize, usize), bias: bool, std: f32) -> GatedMlp {
        GatedMlp {
            gate_proj: Linear::out_in(src, &format!("{prefix}.gate_proj"), (c, inner), bias, std),
            up_proj: Linear::out_in(src, &format!("{prefix}.up_proj"), (c, inner), bias, std),
            down_proj: Linear::out_in(src, &format!("{prefix}.down_proj"), (inner, c), bias, std),
        }
    }

    /// `(.., C) -> (.., C)`.
    pub fn forward(&self, x: &Var) -> Var {
        let [gate, up] = Linear::forward_shared([&self.gate_proj, &self.up_proj], x);
        let h = gate.swiglu(&up); // (.., inner)
        self.down_proj.forward(&h)
    }
}

impl Module for GatedMlp {
    fn children(&self) -> Vec<(String, &dyn Module)> {
        let [g, u, d] = ["gate_proj", "up_proj", "down_proj"].map(String::from);
        vec![(g, &self.gate_proj), (u, &self.up_proj), (d, &self.down_proj)]
    }
    fn children_mut(&mut self) -> Vec<(String, &mut dyn Module)> {
        let [g, u, d] = ["gate_proj", "up_proj", "down_proj"].map(String::from);
        vec![(g, &mut self.gate_proj), (u, &mut self.up_proj), (d, &mut self.down_proj)]
    }
}
