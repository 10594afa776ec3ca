//! GPT-2 (transformers' `GPT2LMHeadModel`), top to bottom in one file, as nanoGPT reads.
//!
//! Field names are the checkpoint's keys (`wte`, `h.0.attn.c_attn`, `ln_f`...). The one quirk:
//! GPT-2's linear layers are `Conv1D` modules whose weights are stored `[in, out]`, so
//! `y = x @ W + b` uses them as stored, with no transpose. The LM head is tied to `wte`.

use crate::config::Gpt2Config;
use crate::error::Result;
use crate::weights::Checkpoint;
use deltaw_autograd::Var;
use deltaw_tensor::{Device, Tensor};
use std::path::Path;

/// A `Conv1D` layer: `y = x @ weight + bias`, weight `(in, out)`.
pub struct Conv1D {
    pub weight: Var,
    pub bias: Var,
}

impl Conv1D {
    fn load(ck: &mut Checkpoint, name: &str, (inp, out): (usize, usize)) -> Conv1D {
        let weight = Var::parameter(ck.take(&format!("{name}.weight"), &[inp, out])).named(format!("{name}.weight"));
        let bias = Var::parameter(ck.take(&format!("{name}.bias"), &[out])).named(format!("{name}.bias"));
        Conv1D { weight, bias }
    }

    /// `(.., in) -> (.., out)`.
    pub fn forward(&self, x: &Var) -> Var {
        x.matmul(&self.weight).add(&self.bias)
    }
}

/// Layer norm parameters `(C,)`.
pub struct LayerNorm {
    pub weight: Var,
    pub bias: Var,
    pub eps: f32,
}

impl LayerNorm {
    fn load(ck: &mut Checkpoint, name: &str, c: usize, eps: f32) -> LayerNorm {
        let weight = Var::parameter(ck.take(&format!("{name}.weight"), &[c])).named(format!("{name}.weight"));
        let bias = Var::parameter(ck.take(&format!("{name}.bias"), &[c])).named(format!("{name}.bias"));
        LayerNorm { weight, bias, eps }
    }

    pub fn forward(&self, x: &Var) -> Var {
        x.layer_norm(&self.weight, &self.bias, self.eps)
    }
}

/// One pre-norm block: `x + attn(ln_1(x))`, then `x + mlp(ln_2(x))`.
pub struct Block {
    pub ln_1: LayerNorm,
    pub c_attn: Conv1D,
    pub attn_c_proj: Conv1D,
    pub ln_2: LayerNorm,
    pub c_fc: Conv1D,
    pub mlp_c_proj: Conv1D,
    n_head: usize,
}

impl Block {
    fn load(ck: &mut Checkpoint, i: usize, cfg: &Gpt2Config) -> Block {
        let (c, eps) = (cfg.n_embd, cfg.layer_norm_epsilon);
        let p = |s: &str| format!("h.{i}.{s}");
        Block {
            ln_1: LayerNorm::load(ck, &p("ln_1"), c, eps),
            c_attn: Conv1D::load(ck, &p("attn.c_attn"), (c, 3 * c)),
            attn_c_proj: Conv1D::load(ck, &p("attn.c_proj"), (c, c)),
            ln_2: LayerNorm::load(ck, &p("ln_2"), c, eps),
            c_fc: Conv1D::load(ck, &p("mlp.c_fc"), (c, cfg.inner())),
            mlp_c_proj: Conv1D::load(ck, &p("mlp.c_proj"), (cfg.inner(), c)),
            n_head: cfg.n_head,
        }
    }

    /// `x` is `(B, T, C)`; `mask` is 1.0 where a query may not see a key, `(B, 1, T, T)`.
    pub fn forward(&self, x: &Var, mask: &Tensor) -> Var {
        let x = x.add(&self.attention(&self.ln_1.forward(x), mask));
        let h = self.c_fc.forward(&self.ln_2.forward(&x)).gelu_tanh(); // (B, T, 4C)
        x.add(&self.mlp_c_proj.forward(&h))
    }

    /// Causal multi-head self-attention: `softmax(q kᵀ / √HS + mask) v`, heads merged.
    fn attention(&self, x: &Var, mask: &Tensor) -> Var {
        let dims = x.dims();
        let (b, t, c) = (dims[0], dims[1], dims[2]);
        let (nh, hs) = (self.n_head, c / self.n_head);
        let qkv = self.c_attn.forward(x); // (B, T, 3C)
        let heads = |i: usize| qkv.narrow(-1, i * c, c).reshape((b, t, nh, hs)).permute(&[0, 2, 1, 3]); // (B, NH, T, HS)
        let (q, k, v) = (heads(0), heads(1), heads(2));
        let scores = q.matmul(&k.transpose(-2, -1)).mul_scalar(1.0 / (hs as f32).sqrt()); // (B, NH, T, T)
        let att = scores.masked_fill(mask, f32::NEG_INFINITY).softmax(-1);
        let y = att.matmul(&v).permute(&[0, 2, 1, 3]).reshape((b, t, c)); // (B, T, C)
        self.attn_c_proj.forward(&y)
    }
}

/// What a forward pass returns.
pub struct Gpt2Output {
    /// `hidden_states[0]` = token + position embeddings, `[i]` = output of block i - 1 for
    /// i < L, `[L]` = `ln_f` of the last block's output (as transformers reports them).
    pub hidden_states: Vec<Var>,
    /// The last block's output before `ln_f`.
    pub last_block: Var,
    /// `(B, T, V)`.
    pub logits: Var,
}

/// GPT-2 with its tied LM head.
pub struct Gpt2 {
    pub config: Gpt2Config,
    pub wte: Var,
    pub wpe: Var,
    pub h: Vec<Block>,
    pub ln_f: LayerNorm,
}

impl Gpt2 {
    /// Loads `config.json` and `model.safetensors` from a Hugging Face folder (keys with or
    /// without the `transformer.` prefix; f16/bf16 weights are widened to f32).
    ///
    /// # Errors
    /// A missing or malformed file, or a checkpoint whose tensors do not fit the config: every
    /// missing, mis-shaped and unexpected tensor is named in one message.
    pub fn from_dir(dir: impl AsRef<Path>, device: &Device) -> Result<Gpt2> {
        let dir = dir.as_ref();
        let config = Gpt2Config::from_dir(dir)?;
        let mut ck = Checkpoint::load(dir, "transformer.", device)?;
        let (v, c) = (config.vocab_size, config.n_embd);
        let wte = Var::parameter(ck.take("wte.weight", &[v, c])).named("wte.weight");
        let wpe = Var::parameter(ck.take("wpe.weight", &[config.n_positions, c])).named("wpe.weight");
        let h = (0..config.n_layer).map(|i| Block::load(&mut ck, i, &config)).collect();
        let ln_f = LayerNorm::load(&mut ck, "ln_f", c, config.layer_norm_epsilon);
        ck.finish()?;
        Ok(Gpt2 { config, wte, wpe, h, ln_f })
    }

    /// Every parameter with its checkpoint name.
    pub fn parameters(&self) -> Vec<Var> {
        let mut params = vec![self.wte.clone(), self.wpe.clone()];
        for b in &self.h {
            for l in [&b.ln_1, &b.ln_2] {
                params.extend([l.weight.clone(), l.bias.clone()]);
            }
            for l in [&b.c_attn, &b.attn_c_proj, &b.c_fc, &b.mlp_c_proj] {
                params.extend([l.weight.clone(), l.bias.clone()]);
            }
        }
        params.extend([self.ln_f.weight.clone(), self.ln_f.bias.clone()]);
        params
    }

    /// `input_ids` is i32 `(B, T)`; `attention_mask` (1 = token, 0 = padding, any dtype) hides
    /// padded keys. Positions are `0..T` for every row.
    ///
    /// # Panics
    /// If T exceeds `n_positions` or the mask's shape differs from the ids'.
    #[track_caller]
    pub fn forward(&self, input_ids: &Tensor, attention_mask: Option<&Tensor>) -> Gpt2Output {
        let (b, t) = (input_ids.dims()[0], input_ids.dims()[1]);
        assert!(t <= self.config.n_positions, "gpt2: {t} tokens exceed n_positions {}", self.config.n_positions);
        let dev = input_ids.device();
        let positions = Tensor::arange(0.0, t as f32, &dev).to_dtype(deltaw_tensor::DType::I32).expect("small ints");
        let mut x = self.wte.embedding(input_ids).add(&self.wpe.embedding(&positions)); // (B, T, C)
        let mask = attention_mask_for(b, t, attention_mask, &dev);
        let mut hidden_states = vec![x.clone()];
        for (i, block) in self.h.iter().enumerate() {
            x = block.forward(&x, &mask);
            if i + 1 < self.h.len() {
                hidden_states.push(x.clone());
            }
        }
        let last_block = x.clone();
        let normed = self.ln_f.forward(&x);
        hidden_states.push(normed.clone());
        let logits = normed.matmul(&self.wte.t()); // (B, T, V): the head is tied to wte
        Gpt2Output { hidden_states, last_block, logits }
    }

    /// transformers' LM loss: mean cross-entropy of `logits[:, :-1]` against
    /// `labels[:, 1:]` (i32 `(B, T)`), skipping -100.
    pub fn loss(logits: &Var, labels: &Tensor) -> Var {
        let dims = logits.dims();
        let (b, t, v) = (dims[0], dims[1], dims[2]);
        let shifted = logits.narrow(1, 0, t - 1).reshape((b * (t - 1), v));
        let targets = labels.narrow(1, 1, t - 1).contiguous().reshape(b * (t - 1));
        shifted.cross_entropy(&targets, -100)
    }
}

/// 1.0 where query i may not attend key j: j > i (causal) or key j is padding. `(B, 1, T, T)`.
#[track_caller]
fn attention_mask_for(b: usize, t: usize, attention_mask: Option<&Tensor>, dev: &Device) -> Tensor {
    let idx = Tensor::arange(0.0, t as f32, dev);
    let causal = idx.reshape((1, 1, 1, t)).gt(&idx.reshape((1, 1, t, 1))); // (1, 1, T, T)
    match attention_mask {
        None => causal,
        Some(m) => {
            assert_eq!(m.dims(), &[b, t], "gpt2: attention_mask {:?} does not match ids ({b}, {t})", m.shape());
            let m = m.to_dtype(deltaw_tensor::DType::F32).expect("mask values are small");
            let padded = m.eq(&Tensor::scalar(0.0, dev)).reshape((b, 1, 1, t)); // (B, 1, 1, T)
            causal.maximum(&padded)
        }
    }
}
