//! GPT-2 (transformers' `GPT2LMHeadModel`), top to bottom in one file, as nanoGPT reads.
//!
//! Field names are the checkpoint's keys (`wte`, `h.0.attn.c_attn`, `ln_f`...). The one quirk:
//! GPT-2's linear layers are `Conv1D` modules whose weights are stored `[in, out]`, so
//! `y = x @ W + b` uses them as stored, with no transpose. The LM head is tied to `wte`.

use crate::config::Gpt2Config;
use crate::error::Result;
use crate::layers::{self, multi_head_attention_dropout, Conv1D, LayerNorm, LinearModule};
use crate::weights::Checkpoint;
use deltaw_autograd::Var;
use deltaw_tensor::{Device, Tensor};
use std::path::Path;

/// One pre-norm block: `x + attn(ln_1(x))`, then `x + mlp(ln_2(x))`.
pub struct Block {
    pub ln_1: LayerNorm,
    pub c_attn: Conv1D,
    pub attn_c_proj: Conv1D,
    pub ln_2: LayerNorm,
    pub c_fc: Conv1D,
    pub mlp_c_proj: Conv1D,
    pub(crate) n_head: usize,
    /// Dropout on the residual branches and on the attention probabilities (train mode only).
    pub(crate) resid_pdrop: f32,
    pub(crate) attn_pdrop: f32,
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
            resid_pdrop: cfg.resid_pdrop,
            attn_pdrop: cfg.attn_pdrop,
        }
    }

    pub(crate) fn n_head(&self) -> usize {
        self.n_head
    }

    /// `x` is `(B, T, C)`; `mask` is 1.0 where a query may not see a key, `(B, 1, T, T)`.
    pub fn forward(&self, x: &Var, mask: &Tensor) -> Var {
        let x = x.add(&self.attention(&self.ln_1.forward(x), mask).dropout(self.resid_pdrop));
        let h = self.c_fc.forward(&self.ln_2.forward(&x)).gelu_tanh(); // (B, T, 4C)
        x.add(&self.mlp_c_proj.forward(&h).dropout(self.resid_pdrop))
    }

    /// Causal self-attention: q, k and v come out of one `c_attn` projection, side by side.
    fn attention(&self, x: &Var, mask: &Tensor) -> Var {
        let c = x.dims()[2];
        let qkv = self.c_attn.forward(x); // (B, T, 3C)
        let (q, k, v) = (qkv.narrow(-1, 0, c), qkv.narrow(-1, c, c), qkv.narrow(-1, 2 * c, c));
        self.attn_c_proj.forward(&multi_head_attention_dropout(&q, &k, &v, self.n_head, mask, self.attn_pdrop))
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
        ck.skip_buffers(&[".attn.bias", ".attn.masked_bias"]); // causal masks, rebuilt here
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
            params
                .extend(b.ln_1.parameters().into_iter().chain(b.c_attn.parameters()).chain(b.attn_c_proj.parameters()));
            params.extend(b.ln_2.parameters().into_iter().chain(b.c_fc.parameters()).chain(b.mlp_c_proj.parameters()));
        }
        params.extend(self.ln_f.parameters());
        params
    }

    /// Every linear layer with its module path as transformers names it in
    /// `GPT2LMHeadModel` (`transformer.h.0.attn.c_attn`), which is also the path PEFT writes in
    /// adapter keys. The tied LM head is not listed: it is `wte`.
    pub fn linear_modules_mut(&mut self) -> Vec<(String, &mut dyn LinearModule)> {
        let mut out: Vec<(String, &mut dyn LinearModule)> = Vec::new();
        for (i, b) in self.h.iter_mut().enumerate() {
            let p = |s: &str| format!("transformer.h.{i}.{s}");
            out.push((p("attn.c_attn"), &mut b.c_attn));
            out.push((p("attn.c_proj"), &mut b.attn_c_proj));
            out.push((p("mlp.c_fc"), &mut b.c_fc));
            out.push((p("mlp.c_proj"), &mut b.mlp_c_proj));
        }
        out
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
        let mask = layers::attention_mask(b, t, attention_mask, true, &dev);
        self.run(input_ids, &positions, &mask)
    }

    /// Embeddings (token + position, then dropout), the blocks under `mask`, `ln_f` and the
    /// tied head: the body shared by [`Gpt2::forward`] and [`Gpt2::forward_with_positions`].
    pub(crate) fn run(&self, input_ids: &Tensor, positions: &Tensor, mask: &Tensor) -> Gpt2Output {
        let embedded = self.wte.embedding(input_ids).add(&self.wpe.embedding(positions)); // (B, T, C)
        let mut x = embedded.dropout(self.config.embd_pdrop);
        let mut hidden_states = vec![x.clone()];
        for (i, block) in self.h.iter().enumerate() {
            x = block.forward(&x, mask);
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
