//! BERT (transformers' `BertModel`): embeddings, a post-norm encoder, and the pooler.
//!
//! Field names follow the checkpoint keys (`embeddings.word_embeddings`,
//! `encoder.layer.0.attention.self.query`...), which HF writes bare for `BertModel` and with a
//! `bert.` prefix for head models; both load. Linear weights are stored `(out, in)`. Traps
//! written down once: the GELU is the erf form and layer norm's eps is 1e-12.

use crate::config::BertConfig;
use crate::error::Result;
use crate::layers::{self, multi_head_attention_dropout, LayerNorm, Linear, LinearModule};
use crate::weights::Checkpoint;
use deltaw_autograd::Var;
use deltaw_tensor::{DType, Device, Tensor};
use std::path::Path;

/// One encoder layer: `x = LN(x + attn(x))`, then `x = LN(x + ffn(x))` (post-norm).
pub struct BertLayer {
    pub query: Linear,
    pub key: Linear,
    pub value: Linear,
    pub attention_output: Linear,
    pub attention_norm: LayerNorm,
    pub intermediate: Linear,
    pub output: Linear,
    pub output_norm: LayerNorm,
    n_head: usize,
    /// Dropout on sublayer outputs and on attention probabilities (train mode only).
    hidden_dropout: f32,
    attn_dropout: f32,
}

impl BertLayer {
    fn load(ck: &mut Checkpoint, i: usize, cfg: &BertConfig) -> BertLayer {
        let (c, eps) = (cfg.hidden_size, cfg.layer_norm_eps);
        let p = |s: &str| format!("encoder.layer.{i}.{s}");
        BertLayer {
            query: Linear::load(ck, &p("attention.self.query"), (c, c)),
            key: Linear::load(ck, &p("attention.self.key"), (c, c)),
            value: Linear::load(ck, &p("attention.self.value"), (c, c)),
            attention_output: Linear::load(ck, &p("attention.output.dense"), (c, c)),
            attention_norm: LayerNorm::load(ck, &p("attention.output.LayerNorm"), c, eps),
            intermediate: Linear::load(ck, &p("intermediate.dense"), (c, cfg.intermediate_size)),
            output: Linear::load(ck, &p("output.dense"), (cfg.intermediate_size, c)),
            output_norm: LayerNorm::load(ck, &p("output.LayerNorm"), c, eps),
            n_head: cfg.num_attention_heads,
            hidden_dropout: cfg.hidden_dropout_prob,
            attn_dropout: cfg.attention_probs_dropout_prob,
        }
    }

    /// `x` is `(B, T, C)`; `mask` is 1.0 on padded keys, `(B, 1, 1, T)`.
    pub fn forward(&self, x: &Var, mask: &Tensor) -> Var {
        let (q, k, v) = (self.query.forward(x), self.key.forward(x), self.value.forward(x));
        let att = multi_head_attention_dropout(&q, &k, &v, self.n_head, mask, self.attn_dropout);
        let att = self.attention_output.forward(&att).dropout(self.hidden_dropout);
        let x = self.attention_norm.forward(&x.add(&att));
        let h = self.intermediate.forward(&x).gelu(); // (B, T, intermediate)
        self.output_norm.forward(&x.add(&self.output.forward(&h).dropout(self.hidden_dropout)))
    }

    fn parameters(&self) -> Vec<Var> {
        [&self.query, &self.key, &self.value, &self.attention_output]
            .into_iter()
            .flat_map(Linear::parameters)
            .chain(self.attention_norm.parameters())
            .chain(self.intermediate.parameters())
            .chain(self.output.parameters())
            .chain(self.output_norm.parameters())
            .collect()
    }
}

/// What a forward pass returns.
pub struct BertOutput {
    /// `[0]` = embeddings output (after their layer norm), `[i]` = output of layer i.
    pub hidden_states: Vec<Var>,
    /// `(B, T, C)`, the last of `hidden_states`.
    pub last_hidden_state: Var,
    /// `tanh(dense(h[:, 0]))`, `(B, C)`.
    pub pooler_output: Var,
}

/// BERT with its pooler.
pub struct Bert {
    pub config: BertConfig,
    pub word_embeddings: Var,
    pub position_embeddings: Var,
    pub token_type_embeddings: Var,
    pub embeddings_norm: LayerNorm,
    pub layers: Vec<BertLayer>,
    pub pooler: Linear,
}

impl Bert {
    /// Loads `config.json` and `model.safetensors` from a Hugging Face folder.
    ///
    /// # Errors
    /// A missing or malformed file, or a checkpoint whose tensors do not fit the config (every
    /// missing, mis-shaped and unexpected tensor is named).
    pub fn from_dir(dir: impl AsRef<Path>, device: &Device) -> Result<Bert> {
        let dir = dir.as_ref();
        let config = BertConfig::from_dir(dir)?;
        let mut ck = Checkpoint::load(dir, "bert.", device)?;
        ck.skip_buffers(&["embeddings.position_ids"]);
        let c = config.hidden_size;
        let mut table = |name: &str, rows: usize| Var::parameter(ck.take(name, &[rows, c])).named(name);
        let word_embeddings = table("embeddings.word_embeddings.weight", config.vocab_size);
        let position_embeddings = table("embeddings.position_embeddings.weight", config.max_position_embeddings);
        let token_type_embeddings = table("embeddings.token_type_embeddings.weight", config.type_vocab_size);
        let embeddings_norm = LayerNorm::load(&mut ck, "embeddings.LayerNorm", c, config.layer_norm_eps);
        let layers = (0..config.num_hidden_layers).map(|i| BertLayer::load(&mut ck, i, &config)).collect();
        let pooler = Linear::load(&mut ck, "pooler.dense", (c, c));
        ck.finish()?;
        Ok(Bert {
            config,
            word_embeddings,
            position_embeddings,
            token_type_embeddings,
            embeddings_norm,
            layers,
            pooler,
        })
    }

    /// Every parameter, named by its checkpoint key.
    pub fn parameters(&self) -> Vec<Var> {
        let mut params = vec![self.word_embeddings.clone(), self.position_embeddings.clone()];
        params.push(self.token_type_embeddings.clone());
        params.extend(self.embeddings_norm.parameters());
        params.extend(self.layers.iter().flat_map(BertLayer::parameters));
        params.extend(self.pooler.parameters());
        params
    }

    /// Every linear layer with its module path as transformers names it in `BertModel`
    /// (`encoder.layer.0.attention.self.query`), the path PEFT writes in adapter keys.
    pub fn linear_modules_mut(&mut self) -> Vec<(String, &mut dyn LinearModule)> {
        let mut out: Vec<(String, &mut dyn LinearModule)> = Vec::new();
        for (i, l) in self.layers.iter_mut().enumerate() {
            let p = |s: &str| format!("encoder.layer.{i}.{s}");
            out.push((p("attention.self.query"), &mut l.query));
            out.push((p("attention.self.key"), &mut l.key));
            out.push((p("attention.self.value"), &mut l.value));
            out.push((p("attention.output.dense"), &mut l.attention_output));
            out.push((p("intermediate.dense"), &mut l.intermediate));
            out.push((p("output.dense"), &mut l.output));
        }
        out.push(("pooler.dense".into(), &mut self.pooler));
        out
    }

    /// `input_ids` i32 `(B, T)`; `token_type_ids` (default all 0) and `attention_mask`
    /// (1 = token, 0 = padding; default all tokens) of the same shape. Positions are `0..T`.
    ///
    /// # Panics
    /// If T exceeds `max_position_embeddings` or a shape differs from the ids'.
    #[track_caller]
    pub fn forward(
        &self,
        input_ids: &Tensor,
        token_type_ids: Option<&Tensor>,
        attention_mask: Option<&Tensor>,
    ) -> BertOutput {
        let (b, t) = (input_ids.dims()[0], input_ids.dims()[1]);
        assert!(
            t <= self.config.max_position_embeddings,
            "bert: {t} tokens exceed {}",
            self.config.max_position_embeddings
        );
        let dev = input_ids.device();
        let zeros = Tensor::zeros((b, t), &dev).to_dtype(DType::I32).expect("zeros");
        let types = token_type_ids.unwrap_or(&zeros);
        let positions = Tensor::arange(0.0, t as f32, &dev).to_dtype(DType::I32).expect("small ints");
        let embedded = self
            .word_embeddings
            .embedding(input_ids)
            .add(&self.position_embeddings.embedding(&positions))
            .add(&self.token_type_embeddings.embedding(types)); // (B, T, C)
        let mut x = self.embeddings_norm.forward(&embedded).dropout(self.config.hidden_dropout_prob);
        let mask = layers::attention_mask(b, t, attention_mask, false, &dev);
        let mut hidden_states = vec![x.clone()];
        for layer in &self.layers {
            x = layer.forward(&x, &mask);
            hidden_states.push(x.clone());
        }
        let cls = x.narrow(1, 0, 1).squeeze(1); // (B, C): the [CLS] position
        let pooler_output = self.pooler.forward(&cls).tanh();
        BertOutput { hidden_states, last_hidden_state: x, pooler_output }
    }
}
