//! GPT-2 (transformers' `GPT2LMHeadModel`), top to bottom in one file, as nanoGPT reads.
//!
//! Modules nest as the checkpoint keys do (`wte`, `h.0.attn.c_attn`, `h.0.mlp.c_proj`,
//! `ln_f`). The one quirk: GPT-2's linear layers are `Conv1D` modules whose weights are stored
//! `[in, out]` ([`WeightLayout::InOut`]), so `y = x @ W + b` uses them as stored. The LM head
//! is tied to `wte`.
//!
//! One forward serves everything: training runs [`Gpt2::forward`] over whole sequences,
//! cached and batched decoding run the same blocks through [`CausalLm::decode_step`] with a
//! KV cache and a mask over the new positions.

use crate::attention::{self, attention, KvCache};
use crate::config::Gpt2Config;
use crate::error::Result;
use crate::layers::{Activation, Embedding, LayerNorm, Linear, Mlp, WeightLayout};
use crate::model::{checkpointed, CausalLm, DecodeInput, Model};
use crate::module::{Module, ParamSource};
use crate::weights::{Checkpoint, QuantLayout, WeightDtype};
use deltaw_autograd::Var;
use deltaw_tensor::{DType, Device, Tensor};
use std::path::Path;

/// Causal self-attention: q, k and v come out of one `c_attn` projection, side by side.
#[derive(Clone)]
pub struct Gpt2Attention {
    pub c_attn: Linear,
    pub c_proj: Linear,
    n_head: usize,
    /// Dropout on the attention probabilities (train mode only).
    attn_pdrop: f32,
}

impl Gpt2Attention {
    /// `x` `(B, t, C)` → `(B, t, C)`; `cache` holds the layer's earlier keys and values.
    pub fn forward(&self, x: &Var, mask: &Tensor, cache: Option<&mut Option<(Tensor, Tensor)>>) -> Var {
        let c = x.dims()[2];
        let qkv = self.c_attn.forward(x); // (B, t, 3C)
        let d = x.dims();
        let heads = |i: usize| qkv.narrow(-1, i * c, c).reshape((d[0], d[1], self.n_head, c / self.n_head));
        let (q, k, v) = (heads(0), heads(1), heads(2)); // (B, t, NH, HS)
        self.c_proj.forward(&attention((&q, &k, &v), mask, cache, self.attn_pdrop))
    }
}

impl Module for Gpt2Attention {
    fn children(&self) -> Vec<(String, &dyn Module)> {
        vec![("c_attn".into(), &self.c_attn), ("c_proj".into(), &self.c_proj)]
    }
    fn children_mut(&mut self) -> Vec<(String, &mut dyn Module)> {
        vec![("c_attn".into(), &mut self.c_attn), ("c_proj".into(), &mut self.c_proj)]
    }
}

/// One pre-norm block: `x + attn(ln_1(x))`, then `x + mlp(ln_2(x))`.
#[derive(Clone)]
pub struct Block {
    pub ln_1: LayerNorm,
    pub attn: Gpt2Attention,
    pub ln_2: LayerNorm,
    pub mlp: Mlp,
    /// Dropout on the two residual branches (train mode only).
    resid_pdrop: f32,
}

impl Block {
    /// Block `i`. Fresh weights follow transformers' `_init_weights`: `N(0, 0.02²)`, and the
    /// residual projections (`c_proj`) `N(0, (0.02 / √(2·n_layer))²)` so the residual
    /// stream's variance does not grow with depth.
    fn new(src: &mut dyn ParamSource, i: usize, cfg: &Gpt2Config) -> Block {
        let (c, eps) = (cfg.n_embd, cfg.layer_norm_epsilon);
        let proj_std = 0.02 / (2.0 * cfg.n_layer as f32).sqrt();
        let p = |s: &str| format!("h.{i}.{s}");
        let ln_1 = LayerNorm::new(src, &p("ln_1"), c, eps);
        let attn = Gpt2Attention {
            c_attn: Linear::new(src, &p("attn.c_attn"), (c, 3 * c), WeightLayout::InOut, 0.02),
            c_proj: Linear::new(src, &p("attn.c_proj"), (c, c), WeightLayout::InOut, proj_std),
            n_head: cfg.n_head,
            attn_pdrop: cfg.attn_pdrop,
        };
        let ln_2 = LayerNorm::new(src, &p("ln_2"), c, eps);
        let kind = (WeightLayout::InOut, Activation::GeluTanh);
        let mlp = Mlp::new(src, &p("mlp."), ["c_fc", "c_proj"], (c, cfg.inner()), kind, proj_std);
        Block { ln_1, attn, ln_2, mlp, resid_pdrop: cfg.resid_pdrop }
    }

    /// `x` is `(B, t, C)`; `mask` (from [`attention::attention_mask`]) is 1.0 where a query may not see a
    /// key; `cache`, when decoding, holds this layer's earlier keys and values.
    pub fn forward(&self, x: &Var, mask: &Tensor, cache: Option<&mut Option<(Tensor, Tensor)>>) -> Var {
        let x = x.add(&self.attn.forward(&self.ln_1.forward(x), mask, cache).dropout(self.resid_pdrop));
        x.add(&self.mlp.forward(&self.ln_2.forward(&x)).dropout(self.resid_pdrop))
    }
}

impl Module for Block {
    fn children(&self) -> Vec<(String, &dyn Module)> {
        let [a, b, c, d] = ["ln_1", "attn", "ln_2", "mlp"].map(String::from);
        vec![(a, &self.ln_1), (b, &self.attn), (c, &self.ln_2), (d, &self.mlp)]
    }
    fn children_mut(&mut self) -> Vec<(String, &mut dyn Module)> {
        let [a, b, c, d] = ["ln_1", "attn", "ln_2", "mlp"].map(String::from);
        vec![(a, &mut self.ln_1), (b, &mut self.attn), (c, &mut self.ln_2), (d, &mut self.mlp)]
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
    pub wte: Embedding,
    pub wpe: Embedding,
    pub h: Vec<Block>,
    pub ln_f: LayerNorm,
    /// Whether a recorded forward checkpoints each block ([`CausalLm::set_gradient_checkpointing`]).
    checkpointing: bool,
}

/// The GPT-2 weights a quantized base ([`WeightDtype::Quant`]) stores in blocks: the
/// `Conv1D` matrices of the blocks, held `(in, out)` (the embeddings and the tied head stay).
fn gpt2_quant_layout(name: &str) -> Option<QuantLayout> {
    let conv1d = [".attn.c_attn.weight", ".attn.c_proj.weight", ".mlp.c_fc.weight", ".mlp.c_proj.weight"];
    conv1d.iter().any(|s| name.ends_with(s)).then_some(QuantLayout::Transposed)
}

impl Gpt2 {
    /// Loads `config.json` and `model.safetensors` from a Hugging Face folder (keys with or
    /// without the `transformer.` prefix; f16/bf16 weights are widened to f32).
    ///
    /// # Errors
    /// A missing or malformed file, or a checkpoint whose tensors do not fit the config: every
    /// missing, mis-shaped and unexpected tensor is named in one message.
    pub fn from_dir(dir: impl AsRef<Path>, device: &Device) -> Result<Gpt2> {
        Gpt2::from_dir_with(dir, device, WeightDtype::F32)
    }

    /// [`Gpt2::from_dir`], holding the weights as `dtype` says (bf16/f16 kept for a frozen base).
    ///
    /// # Errors
    /// As [`Gpt2::from_dir`].
    pub fn from_dir_with(dir: impl AsRef<Path>, device: &Device, dtype: WeightDtype) -> Result<Gpt2> {
        let dir = dir.as_ref();
        let config = Gpt2Config::from_dir(dir)?;
        let mut ck = Checkpoint::load_as(dir, "transformer.", device, dtype, gpt2_quant_layout)?;
        ck.skip_buffers(&[".attn.bias", ".attn.masked_bias"]); // causal masks, rebuilt here
        let model = Gpt2::build(config, &mut ck);
        ck.finish()?;
        Ok(model)
    }

    /// The model with every parameter from `src` (a checkpoint, or a fresh initialisation:
    /// embeddings `N(0, 0.02²)`, layer norms weight 1 and bias 0, biases 0).
    pub(crate) fn build(config: Gpt2Config, src: &mut dyn ParamSource) -> Gpt2 {
        let c = config.n_embd;
        let wte = Embedding::new(src, "wte", (config.vocab_size, c), 0.02);
        let wpe = Embedding::new(src, "wpe", (config.n_positions, c), 0.02);
        let h = (0..config.n_layer).map(|i| Block::new(src, i, &config)).collect();
        let ln_f = LayerNorm::new(src, "ln_f", c, config.layer_norm_epsilon);
        Gpt2 { config, wte, wpe, h, ln_f, checkpointing: false }
    }

    /// `input_ids` is i32 `(B, T)`; `attention_mask` (1 = token, 0 = padding, any dtype) hides
    /// padded keys. Positions are `0..T` for every row.
    ///
    /// # Panics
    /// If T exceeds `n_positions` or the mask's shape differs from the ids'.
    #[track_caller]
    pub fn forward(&self, input_ids: &Tensor, attention_mask: Option<&Tensor>) -> Gpt2Output {
        let t = input_ids.dims()[1];
        assert!(t <= self.config.n_positions, "gpt2: {t} tokens exceed n_positions {}", self.config.n_positions);
        let dev = input_ids.device();
        let positions = Tensor::arange(0.0, t as f32, &dev).to_dtype(DType::I32).expect("small ints");
        self.run(input_ids, attention_mask, &positions)
    }

    /// [`Gpt2::forward`] with explicit `position_ids` i32 `(B, T)`, for left-padded batches
    /// (see [`crate::position_ids_from_mask`]). `attention_mask` (1 = token, 0 = padding) hides
    /// padded keys; every real position matches transformers. A padded query sees the real
    /// keys before it, or only itself when there are none (a leading pad), so its output is
    /// finite and read by no real token ([`crate::attention_mask`]).
    ///
    /// # Panics
    /// If a shape differs from the ids' or a position is not below `n_positions`.
    #[track_caller]
    pub fn forward_with_positions(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        position_ids: &Tensor,
    ) -> Gpt2Output {
        let (b, t) = (input_ids.dims()[0], input_ids.dims()[1]);
        assert_eq!(position_ids.dims(), &[b, t], "gpt2: position_ids {:?} vs ids ({b}, {t})", position_ids.shape());
        // A bad id would index outside `wpe`: checked here, at the cost of one read back.
        let limit = self.config.n_positions as i32;
        let bad = position_ids.to_vec_i32().into_iter().find(|&p| p < 0 || p >= limit);
        assert!(bad.is_none(), "gpt2: position id {} is outside 0..{limit} (n_positions)", bad.unwrap_or_default());
        self.run(input_ids, attention_mask, position_ids)
    }

    /// The full-sequence forward behind [`Gpt2::forward`] and [`Gpt2::forward_with_positions`]:
    /// the mask, the blocks, `ln_f` and the tied head over every position.
    #[track_caller]
    fn run(&self, input_ids: &Tensor, attention_mask: Option<&Tensor>, positions: &Tensor) -> Gpt2Output {
        let (b, t) = (input_ids.dims()[0], input_ids.dims()[1]);
        if let Some(m) = attention_mask {
            assert_eq!(m.dims(), &[b, t], "attention_mask {:?} does not match ids ({b}, {t})", m.shape());
        }
        let mask = attention::attention_mask(t, 0, attention_mask, (true, None), &input_ids.device());
        let (mut hidden_states, last_block) = self.blocks(input_ids, positions, &mask, None);
        let normed = self.ln_f.forward(&last_block);
        hidden_states.push(normed.clone());
        let logits = normed.matmul(&self.wte.weight.t()); // (B, T, V): the head is tied to wte
        Gpt2Output { hidden_states, last_block, logits }
    }

    /// Embeddings (token + position, then dropout) and the blocks under `mask`, each reading
    /// and extending its slot of `cache` when there is one. Returns the embeddings and every
    /// block's output but the last, and the last block's output.
    fn blocks(&self, ids: &Tensor, positions: &Tensor, mask: &Tensor, cache: Option<&mut KvCache>) -> (Vec<Var>, Var) {
        let embedded = self.wte.forward(ids).add(&self.wpe.forward(positions)); // (B, t, C)
        let mut x = embedded.dropout(self.config.embd_pdrop);
        let mut hidden_states = vec![x.clone()];
        let checkpoint = self.checkpointing && cache.is_none();
        let mut slots = KvCache::layer_slots(cache, self.h.len(), "gpt2");
        for (i, (block, slot)) in self.h.iter().zip(slots.iter_mut()).enumerate() {
            x = if checkpoint {
                let (block, mask) = (block.clone(), mask.clone());
                checkpointed(&x, move |x| block.forward(x, &mask, None))
            } else {
                block.forward(&x, mask, slot.take())
            };
            if i + 1 < self.h.len() {
                hidden_states.push(x.clone());
            }
        }
        (hidden_states, x)
    }
}

impl Module for Gpt2 {
    fn children(&self) -> Vec<(String, &dyn Module)> {
        let mut out: Vec<(String, &dyn Module)> = vec![("wte".into(), &self.wte), ("wpe".into(), &self.wpe)];
        out.extend(self.h.iter().enumerate().map(|(i, b)| (format!("h.{i}"), b as &dyn Module)));
        out.push(("ln_f".into(), &self.ln_f));
        out
    }
    fn children_mut(&mut self) -> Vec<(String, &mut dyn Module)> {
        let mut out: Vec<(String, &mut dyn Module)> =
            vec![("wte".into(), &mut self.wte), ("wpe".into(), &mut self.wpe)];
        out.extend(self.h.iter_mut().enumerate().map(|(i, b)| (format!("h.{i}"), b as &mut dyn Module)));
        out.push(("ln_f".into(), &mut self.ln_f));
        out
    }
}

impl Model for Gpt2 {
    fn model_type(&self) -> &'static str {
        "gpt2"
    }
    fn key_prefix(&self) -> &'static str {
        "transformer"
    }
    fn device(&self) -> Device {
        self.wte.weight.value().device()
    }
    fn config_json(&self) -> serde_json::Value {
        self.config.to_json()
    }
    fn vocab_size(&self) -> usize {
        self.config.vocab_size
    }
    fn max_positions(&self) -> usize {
        self.config.n_positions
    }
    fn output(&self, input_ids: &Tensor, attention_mask: Option<&Tensor>) -> Var {
        self.forward(input_ids, attention_mask).logits
    }
}

impl CausalLm for Gpt2 {
    fn set_gradient_checkpointing(&mut self, on: bool) {
        self.checkpointing = on;
    }
    fn num_layers(&self) -> usize {
        self.h.len()
    }
    fn decode_step(&self, input: &DecodeInput, cache: Option<&mut KvCache>) -> Tensor {
        let (b, t) = (input.ids.dims()[0], input.ids.dims()[1]);
        let past = cache.as_ref().map_or(0, |c| c.len());
        let mask = attention::attention_mask(t, past, input.key_real, (true, None), &input.ids.device());
        let (_, x) = self.blocks(input.ids, input.positions, &mask, cache);
        let last = self.ln_f.forward(&x.narrow(1, t - 1, 1)); // (B, 1, C)
        last.matmul(&self.wte.weight.t()).value().reshape((b, self.config.vocab_size))
        // (B, V)
    }
}
