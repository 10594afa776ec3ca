//! The Llama family (transformers' `LlamaForCausalLM`, `Qwen2ForCausalLM`,
//! `Qwen3ForCausalLM`, `MistralForCausalLM`), top to bottom in one file: one decoder layer
//! with config switches serves all four.
//!
//! A layer is pre-norm like GPT-2's block, with three changes: RMSNorm instead of layer norm,
//! rotary position embeddings applied to q and k inside attention (no position table), and a
//! gated SwiGLU MLP. Attention is grouped-query: NH query heads share NKV key/value heads, so
//! the KV cache holds only NKV heads. The switches:
//!
//! | switch | Llama | Qwen2 | Qwen3 | Mistral |
//! | --- | --- | --- | --- | --- |
//! | bias on q, k, v | `attention_bias` | always | `attention_bias` | no |
//! | RMSNorm on each head's q and k | no | no | yes | no |
//! | sliding window | no | `use_sliding_window` + `layer_types` | as Qwen2 | `sliding_window` |
//! | LM head | `tie_word_embeddings` decides, for all |
//!
//! Modules nest as the checkpoint keys do (`model.layers.0.self_attn.q_proj`,
//! `model.layers.0.mlp.gate_proj`, `model.norm`, `lm_head`).

use crate::attention::{self, attention, KvCache};
use crate::error::Result;
use crate::layers::{Embedding, GatedMlp, Linear, RmsNorm};
use crate::llama_config::{LlamaConfig, LlamaFamily};
use crate::model::{checkpointed, CausalLm, DecodeInput, Model};
use crate::module::{Module, ParamSource};
use crate::rope::Rope;
use crate::weights::{Checkpoint, QuantLayout, WeightDtype};
use deltaw_autograd::Var;
use deltaw_tensor::{Device, Tensor};
use std::path::Path;

/// What one forward shares across layers: the rotary tables and one mask per window size.
#[derive(Clone)]
struct Context {
    /// `(B, t, HS/2)` each.
    cos: Tensor,
    sin: Tensor,
    /// The full causal mask and, when some layer slides, the windowed one.
    full: Tensor,
    windowed: Option<(usize, Tensor)>,
}

impl Context {
    fn mask(&self, window: Option<usize>) -> &Tensor {
        match (&self.windowed, window) {
            (Some((w, m)), Some(want)) if *w == want => m,
            _ => &self.full,
        }
    }
}

/// Grouped-query self-attention with rotary embeddings.
#[derive(Clone)]
pub struct LlamaAttention {
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub o_proj: Linear,
    /// Qwen3: RMSNorm over each head's HS values of q and of k, before the rotation.
    pub q_norm: Option<RmsNorm>,
    pub k_norm: Option<RmsNorm>,
    n_head: usize,
    n_kv: usize,
    head_dim: usize,
    dropout: f32,
}

impl LlamaAttention {
    fn new(src: &mut dyn ParamSource, prefix: &str, cfg: &LlamaConfig) -> LlamaAttention {
        let (c, nh, nkv, hs) = (cfg.hidden_size, cfg.num_attention_heads, cfg.num_kv_heads(), cfg.head_size());
        let (qkv_bias, o_bias) = cfg.qkv_o_bias();
        let p = |s: &str| format!("{prefix}.{s}");
        let qk_norm = cfg.family() == LlamaFamily::Qwen3;
        let norm = |src: &mut dyn ParamSource, s: &str| qk_norm.then(|| RmsNorm::new(src, &p(s), hs, cfg.rms_norm_eps));
        LlamaAttention {
            q_proj: Linear::out_in(src, &p("q_proj"), (c, nh * hs), qkv_bias, 0.02),
            k_proj: Linear::out_in(src, &p("k_proj"), (c, nkv * hs), qkv_bias, 0.02),
            v_proj: Linear::out_in(src, &p("v_proj"), (c, nkv * hs), qkv_bias, 0.02),
            o_proj: Linear::out_in(src, &p("o_proj"), (nh * hs, c), o_bias, 0.02),
            q_norm: norm(src, "q_norm"),
            k_norm: norm(src, "k_norm"),
            n_head: nh,
            n_kv: nkv,
            head_dim: hs,
            dropout: cfg.attention_dropout,
        }
    }

    /// `x` `(B, t, C)` → `(B, t, C)`.
    fn forward(&self, x: &Var, ctx: &Context, mask: &Tensor, cache: Option<&mut Option<(Tensor, Tensor)>>) -> Var {
        let d = x.dims();
        let [q, k, v] = Linear::forward_shared([&self.q_proj, &self.k_proj, &self.v_proj], x);
        let split = |y: Var, n: usize| y.reshape((d[0], d[1], n, self.head_dim)); // (B, t, n, HS)
        let (mut q, mut k, v) = (split(q, self.n_head), split(k, self.n_kv), split(v, self.n_kv));
        if let (Some(qn), Some(kn)) = (&self.q_norm, &self.k_norm) {
            (q, k) = (qn.forward(&q), kn.forward(&k));
        }
        let (q, k) = (q.rope(&ctx.cos, &ctx.sin), k.rope(&ctx.cos, &ctx.sin));
        self.o_proj.forward(&attention((&q, &k, &v), mask, cache, self.dropout))
    }
}

impl Module for LlamaAttention {
    fn children(&self) -> Vec<(String, &dyn Module)> {
        let mut out: Vec<(String, &dyn Module)> = vec![
            ("q_proj".into(), &self.q_proj),
            ("k_proj".into(), &self.k_proj),
            ("v_proj".into(), &self.v_proj),
            ("o_proj".into(), &self.o_proj),
        ];
        out.extend(self.q_norm.iter().map(|n| ("q_norm".to_string(), n as &dyn Module)));
        out.extend(self.k_norm.iter().map(|n| ("k_norm".to_string(), n as &dyn Module)));
        out
    }
    fn children_mut(&mut self) -> Vec<(String, &mut dyn Module)> {
        let mut out: Vec<(String, &mut dyn Module)> = vec![
            ("q_proj".into(), &mut self.q_proj),
            ("k_proj".into(), &mut self.k_proj),
            ("v_proj".into(), &mut self.v_proj),
            ("o_proj".into(), &mut self.o_proj),
        ];
        out.extend(self.q_norm.iter_mut().map(|n| ("q_norm".to_string(), n as &mut dyn Module)));
        out.extend(self.k_norm.iter_mut().map(|n| ("k_norm".to_string(), n as &mut dyn Module)));
        out
    }
}

/// One decoder layer: `x + attn(norm(x))`, then `x + mlp(norm(x))`.
#[derive(Clone)]
pub struct DecoderLayer {
    pub input_layernorm: RmsNorm,
    pub self_attn: LlamaAttention,
    pub post_attention_layernorm: RmsNorm,
    pub mlp: GatedMlp,
    /// This layer's sliding window, if any.
    window: Option<usize>,
}

impl DecoderLayer {
    fn new(src: &mut dyn ParamSource, i: usize, cfg: &LlamaConfig) -> DecoderLayer {
        let p = format!("model.layers.{i}");
        let (c, eps) = (cfg.hidden_size, cfg.rms_norm_eps);
        DecoderLayer {
            input_layernorm: RmsNorm::new(src, &format!("{p}.input_layernorm"), c, eps),
            self_attn: LlamaAttention::new(src, &format!("{p}.self_attn"), cfg),
            post_attention_layernorm: RmsNorm::new(src, &format!("{p}.post_attention_layernorm"), c, eps),
            mlp: GatedMlp::new(src, &format!("{p}.mlp"), (c, cfg.intermediate_size), cfg.mlp_bias, 0.02),
            window: cfg.layer_window(i),
        }
    }

    fn forward(&self, x: &Var, ctx: &Context, cache: Option<&mut Option<(Tensor, Tensor)>>) -> Var {
        let attn = self.self_attn.forward(&self.input_layernorm.forward(x), ctx, ctx.mask(self.window), cache);
        let x = x.add(&attn);
        x.add(&self.mlp.forward(&self.post_attention_layernorm.forward(&x)))
    }
}

impl Module for DecoderLayer {
    fn children(&self) -> Vec<(String, &dyn Module)> {
        let [a, b, c, d] = ["input_layernorm", "self_attn", "post_attention_layernorm", "mlp"].map(String::from);
        vec![(a, &self.input_layernorm), (b, &self.self_attn), (c, &self.post_attention_layernorm), (d, &self.mlp)]
    }
    fn children_mut(&mut self) -> Vec<(String, &mut dyn Module)> {
        let [a, b, c, d] = ["input_layernorm", "self_attn", "post_attention_layernorm", "mlp"].map(String::from);
        vec![
            (a, &mut self.input_layernorm),
            (b, &mut self.self_attn),
            (c, &mut self.post_attention_layernorm),
            (d, &mut self.mlp),
        ]
    }
}

/// The decoder stack under the `model.` key prefix.
pub struct LlamaModel {
    pub embed_tokens: Embedding,
    pub layers: Vec<DecoderLayer>,
    pub norm: RmsNorm,
}

impl Module for LlamaModel {
    fn children(&self) -> Vec<(String, &dyn Module)> {
        let mut out: Vec<(String, &dyn Module)> = vec![("embed_tokens".into(), &self.embed_tokens)];
        out.extend(self.layers.iter().enumerate().map(|(i, l)| (format!("layers.{i}"), l as &dyn Module)));
        out.push(("norm".into(), &self.norm));
        out
    }
    fn children_mut(&mut self) -> Vec<(String, &mut dyn Module)> {
        let mut out: Vec<(String, &mut dyn Module)> = vec![("embed_tokens".into(), &mut self.embed_tokens)];
        out.extend(self.layers.iter_mut().enumerate().map(|(i, l)| (format!("layers.{i}"), l as &mut dyn Module)));
        out.push(("norm".into(), &mut self.norm));
        out
    }
}

/// What a forward pass returns.
pub struct LlamaOutput {
    /// As transformers' `output_hidden_states`: `[0]` the token embeddings, `[i]` the output
    /// of layer i − 1 for i < L, `[L]` the final norm of the last layer's output.
    pub hidden_states: Vec<Var>,
    /// `(B, T, V)`.
    pub logits: Var,
}

/// A Llama-family causal LM.
pub struct Llama {
    pub config: LlamaConfig,
    pub model: LlamaModel,
    /// `None` when the head is tied to `model.embed_tokens`.
    pub lm_head: Option<Linear>,
    rope: Rope,
    /// Whether a recorded forward checkpoints each decoder layer ([`CausalLm::set_gradient_checkpointing`]).
    checkpointing: bool,
}

/// The weights a quantized base ([`WeightDtype::Quant`]) stores in blocks: the seven
/// projections of each decoder layer (the embeddings and the head stay as stored).
fn llama_quant_layout(name: &str) -> Option<QuantLayout> {
    (name.contains("layers.") && name.ends_with("_proj.weight")).then_some(QuantLayout::Rows)
}

impl Llama {
    /// Loads `config.json` and the weights (`model.safetensors`, or the shards that
    /// `model.safetensors.index.json` lists) from a Hugging Face folder.
    ///
    /// # Errors
    /// A missing or malformed file, a missing shard, or tensors that do not fit the config:
    /// every missing, mis-shaped and unexpected tensor is named in one message.
    pub fn from_dir(dir: impl AsRef<Path>, device: &Device) -> Result<Llama> {
        Llama::from_dir_with(dir, device, WeightDtype::F32)
    }

    /// [`Llama::from_dir`], holding the weights as `dtype` says (bf16 kept for a frozen base).
    ///
    /// # Errors
    /// As [`Llama::from_dir`].
    pub fn from_dir_with(dir: impl AsRef<Path>, device: &Device, dtype: WeightDtype) -> Result<Llama> {
        let dir = dir.as_ref();
        let config = LlamaConfig::from_dir(dir)?;
        let mut ck = Checkpoint::load_as(dir, "", device, dtype, llama_quant_layout)?;
        ck.skip_buffers(&["rotary_emb.inv_freq"]); // older checkpoints stored the frequencies
        let model = Llama::build(config, &mut ck)?;
        ck.finish()?;
        Ok(model)
    }

    /// The model with every parameter from `src` (a checkpoint, or a fresh initialisation as
    /// transformers': linear and embedding weights `N(0, 0.02²)`, norms 1, biases 0).
    ///
    /// # Errors
    /// A config without a rope (one built in code must set [`LlamaConfig::rope`]).
    pub fn build(config: LlamaConfig, src: &mut dyn ParamSource) -> Result<Llama> {
        let rope = config.rope()?;
        let (c, v) = (config.hidden_size, config.vocab_size);
        let embed_tokens = Embedding::new(src, "model.embed_tokens", (v, c), 0.02);
        let layers = (0..config.num_hidden_layers).map(|i| DecoderLayer::new(src, i, &config)).collect();
        let norm = RmsNorm::new(src, "model.norm", c, config.rms_norm_eps);
        let lm_head = (!config.tie_word_embeddings).then(|| Linear::out_in(src, "lm_head", (c, v), false, 0.02));
        Ok(Llama { config, model: LlamaModel { embed_tokens, layers, norm }, lm_head, rope, checkpointing: false })
    }

    /// `input_ids` i32 `(B, T)` at positions `0..T` (transformers' default, also for a
    /// right-padded batch); `attention_mask` (1 = token, 0 = padding) hides padded keys.
    ///
    /// # Panics
    /// If the mask's shape differs from the ids'.
    #[track_caller]
    pub fn forward(&self, input_ids: &Tensor, attention_mask: Option<&Tensor>) -> LlamaOutput {
        let (b, t) = (input_ids.dims()[0], input_ids.dims()[1]);
        if let Some(m) = attention_mask {
            assert_eq!(m.dims(), &[b, t], "attention_mask {:?} does not match ids ({b}, {t})", m.shape());
        }
        let positions: Vec<i32> = (0..b).flat_map(|_| 0..t as i32).collect();
        let ctx = self.context(&positions, (b, t), 0, attention_mask, &input_ids.device());
        let (mut hidden_states, last) = self.layers(input_ids, &ctx, None);
        let normed = self.model.norm.forward(&last);
        hidden_states.push(normed.clone());
        LlamaOutput { hidden_states, logits: self.head(&normed) }
    }

    /// The rotary tables for host `positions` `(B, t)` and the masks over `past + t` keys.
    fn context(
        &self,
        positions: &[i32],
        (b, t): (usize, usize),
        past: usize,
        real: Option<&Tensor>,
        dev: &Device,
    ) -> Context {
        let (cos, sin) = self.rope.tables(positions, (b, t), dev);
        let full = attention::attention_mask(t, past, real, (true, None), dev);
        let window = (0..self.config.num_hidden_layers).find_map(|i| self.config.layer_window(i));
        let windowed = window.map(|w| (w, attention::attention_mask(t, past, real, (true, Some(w)), dev)));
        Context { cos, sin, full, windowed }
    }

    /// The embeddings and the layers, each reading and extending its slot of `cache`. Returns
    /// the embeddings and every layer's output but the last, and the last layer's output.
    fn layers(&self, ids: &Tensor, ctx: &Context, cache: Option<&mut KvCache>) -> (Vec<Var>, Var) {
        let mut x = self.model.embed_tokens.forward(ids); // (B, t, C)
        let mut hidden_states = vec![x.clone()];
        let n = self.model.layers.len();
        let checkpoint = self.checkpointing && cache.is_none();
        let mut slots = KvCache::layer_slots(cache, n, "llama");
        for (i, (layer, slot)) in self.model.layers.iter().zip(slots.iter_mut()).enumerate() {
            x = if checkpoint {
                let (layer, ctx) = (layer.clone(), ctx.clone());
                checkpointed(&x, move |x| layer.forward(x, &ctx, None))
            } else {
                layer.forward(&x, ctx, slot.take())
            };
            if i + 1 < n {
                hidden_states.push(x.clone());
            }
        }
        (hidden_states, x)
    }

    /// The LM head over normed hidden states `(B, t, C)` → `(B, t, V)`.
    fn head(&self, normed: &Var) -> Var {
        match &self.lm_head {
            Some(head) => head.forward(normed),
            None => normed.matmul(&self.model.embed_tokens.weight.t()),
        }
    }
}

impl Module for Llama {
    fn children(&self) -> Vec<(String, &dyn Module)> {
        let mut out: Vec<(String, &dyn Module)> = vec![("model".into(), &self.model)];
        out.extend(self.lm_head.iter().map(|h| ("lm_head".to_string(), h as &dyn Module)));
        out
    }
    fn children_mut(&mut self) -> Vec<(String, &mut dyn Module)> {
        let mut out: Vec<(String, &mut dyn Module)> = vec![("model".into(), &mut self.model)];
        out.extend(self.lm_head.iter_mut().map(|h| ("lm_head".to_string(), h as &mut dyn Module)));
        out
    }
}

impl Model for Llama {
    fn model_type(&self) -> &'static str {
        self.config.family().as_str()
    }
    fn key_prefix(&self) -> &'static str {
        ""
    }
    fn device(&self) -> Device {
        self.model.embed_tokens.weight.value().device()
    }
    fn config_json(&self) -> serde_json::Value {
        self.config.to_json()
    }
    fn vocab_size(&self) -> usize {
        self.config.vocab_size
    }
    fn max_positions(&self) -> usize {
        self.config.max_position_embeddings
    }
    fn output(&self, input_ids: &Tensor, attention_mask: Option<&Tensor>) -> Var {
        self.forward(input_ids, attention_mask).logits
    }
}

impl CausalLm for Llama {
    fn set_gradient_checkpointing(&mut self, on: bool) {
        self.checkpointing = on;
    }
    fn num_layers(&self) -> usize {
        self.model.layers.len()
    }
    fn decode_step(&self, input: &DecodeInput, cache: Option<&mut KvCache>) -> Tensor {
        let (b, t) = (input.ids.dims()[0], input.ids.dims()[1]);
        let past = cache.as_ref().map_or(0, |c| c.len());
        let positions = input.positions.to_vec_i32(); // host values for the rotary tables
        let ctx = self.context(&positions, (b, t), past, input.key_real, &input.ids.device());
        let (_, x) = self.layers(input.ids, &ctx, cache);
        let last = self.model.norm.forward(&x.narrow(1, t - 1, 1)); // (B, 1, C)
        self.head(&last).value().reshape((b, self.config.vocab_size)) // (B, V)
    }
}
