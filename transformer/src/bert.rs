//! BERT (transformers' `BertModel`): embeddings, a post-norm encoder, and the pooler.
//!
//! Modules nest as the checkpoint keys do (`embeddings.word_embeddings`,
//! `encoder.layer.0.attention.self.query`...), which HF writes bare for `BertModel` and with a
//! `bert.` prefix for head models; both load. Linear weights are stored `(out, in)`. Traps
//! written down once: the GELU is the erf form and layer norm's eps is 1e-12.

use crate::attention::{self, attention};
use crate::config::BertConfig;
use crate::error::Result;
use crate::layers::{Activation, Embedding, LayerNorm, Linear, Mlp, WeightLayout};
use crate::model::Model;
use crate::module::{Module, ParamSource};
use crate::weights::Checkpoint;
use deltaw_autograd::Var;
use deltaw_tensor::{DType, Device, Tensor};
use std::path::Path;

/// Bidirectional self-attention with separate `query`, `key`, `value` projections, then
/// `output.dense` (the residual add and `output.LayerNorm` are the layer's).
pub struct BertAttention {
    pub query: Linear,
    pub key: Linear,
    pub value: Linear,
    pub output: Linear,
    pub output_norm: LayerNorm,
    n_head: usize,
    /// Dropout on the attention probabilities (train mode only).
    attn_dropout: f32,
}

impl BertAttention {
    /// `x` `(B, T, C)` → `(B, T, C)`, before the residual add.
    pub fn forward(&self, x: &Var, mask: &Tensor) -> Var {
        let d = x.dims();
        let heads = |l: &Linear| l.forward(x).reshape((d[0], d[1], self.n_head, d[2] / self.n_head)); // (B, T, NH, HS)
        let (q, k, v) = (heads(&self.query), heads(&self.key), heads(&self.value));
        self.output.forward(&attention((&q, &k, &v), mask, None, self.attn_dropout))
    }
}

impl Module for BertAttention {
    fn children(&self) -> Vec<(String, &dyn Module)> {
        let [q, k, v, o, n] =
            ["self.query", "self.key", "self.value", "output.dense", "output.LayerNorm"].map(String::from);
        vec![(q, &self.query), (k, &self.key), (v, &self.value), (o, &self.output), (n, &self.output_norm)]
    }
    fn children_mut(&mut self) -> Vec<(String, &mut dyn Module)> {
        let [q, k, v, o, n] =
            ["self.query", "self.key", "self.value", "output.dense", "output.LayerNorm"].map(String::from);
        let out: Vec<(String, &mut dyn Module)> = vec![
            (q, &mut self.query),
            (k, &mut self.key),
            (v, &mut self.value),
            (o, &mut self.output),
            (n, &mut self.output_norm),
        ];
        out
    }
}

/// One encoder layer: `x = LN(x + attn(x))`, then `x = LN(x + mlp(x))` (post-norm).
pub struct BertLayer {
    pub attention: BertAttention,
    /// `intermediate.dense`, GELU (erf), `output.dense`.
    pub mlp: Mlp,
    /// `output.LayerNorm`.
    pub output_norm: LayerNorm,
    /// Dropout on sublayer outputs (train mode only).
    hidden_dropout: f32,
}

impl BertLayer {
    fn new(src: &mut dyn ParamSource, i: usize, cfg: &BertConfig) -> BertLayer {
        let (c, eps, std) = (cfg.hidden_size, cfg.layer_norm_eps, 0.02);
        let p = |s: &str| format!("encoder.layer.{i}.{s}");
        let linear = |src: &mut dyn ParamSource, key: &str| Linear::new(src, &p(key), (c, c), WeightLayout::OutIn, std);
        let attention = BertAttention {
            query: linear(src, "attention.self.query"),
            key: linear(src, "attention.self.key"),
            value: linear(src, "attention.self.value"),
            output: linear(src, "attention.output.dense"),
            output_norm: LayerNorm::new(src, &p("attention.output.LayerNorm"), c, eps),
            n_head: cfg.num_attention_heads,
            attn_dropout: cfg.attention_probs_dropout_prob,
        };
        let keys = ["intermediate.dense", "output.dense"];
        let kind = (WeightLayout::OutIn, Activation::Gelu);
        let mlp = Mlp::new(src, &p(""), keys, (c, cfg.intermediate_size), kind, std);
        let output_norm = LayerNorm::new(src, &p("output.LayerNorm"), c, eps);
        BertLayer { attention, mlp, output_norm, hidden_dropout: cfg.hidden_dropout_prob }
    }

    /// `x` is `(B, T, C)`; `mask` is 1.0 on padded keys, `(B, 1, 1, T)`.
    pub fn forward(&self, x: &Var, mask: &Tensor) -> Var {
        let att = self.attention.forward(x, mask).dropout(self.hidden_dropout);
        let x = self.attention.output_norm.forward(&x.add(&att));
        self.output_norm.forward(&x.add(&self.mlp.forward(&x).dropout(self.hidden_dropout)))
    }
}

impl Module for BertLayer {
    fn children(&self) -> Vec<(String, &dyn Module)> {
        let [a, m, n] = ["attention", "", "output.LayerNorm"].map(String::from);
        vec![(a, &self.attention), (m, &self.mlp), (n, &self.output_norm)]
    }
    fn children_mut(&mut self) -> Vec<(String, &mut dyn Module)> {
        let [a, m, n] = ["attention", "", "output.LayerNorm"].map(String::from);
        vec![(a, &mut self.attention), (m, &mut self.mlp), (n, &mut self.output_norm)]
    }
}

/// Word, position and token-type embeddings, summed and normalised.
pub struct BertEmbeddings {
    pub word_embeddings: Embedding,
    pub position_embeddings: Embedding,
    pub token_type_embeddings: Embedding,
    /// `embeddings.LayerNorm`.
    pub layer_norm: LayerNorm,
}

impl Module for BertEmbeddings {
    fn children(&self) -> Vec<(String, &dyn Module)> {
        let [w, p, t, n] =
            ["word_embeddings", "position_embeddings", "token_type_embeddings", "LayerNorm"].map(String::from);
        vec![
            (w, &self.word_embeddings),
            (p, &self.position_embeddings),
            (t, &self.token_type_embeddings),
            (n, &self.layer_norm),
        ]
    }
    fn children_mut(&mut self) -> Vec<(String, &mut dyn Module)> {
        let [w, p, t, n] =
            ["word_embeddings", "position_embeddings", "token_type_embeddings", "LayerNorm"].map(String::from);
        let out: Vec<(String, &mut dyn Module)> = vec![
            (w, &mut self.word_embeddings),
            (p, &mut self.position_embeddings),
            (t, &mut self.token_type_embeddings),
            (n, &mut self.layer_norm),
        ];
        out
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
    pub embeddings: BertEmbeddings,
    /// `encoder.layer.{i}`.
    pub layers: Vec<BertLayer>,
    /// `pooler.dense`.
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
        let model = Bert::build(config, &mut ck);
        ck.finish()?;
        Ok(model)
    }

    /// The model with every parameter from `src`.
    fn build(config: BertConfig, src: &mut dyn ParamSource) -> Bert {
        let c = config.hidden_size;
        let table = |src: &mut dyn ParamSource, name: &str, rows: usize| {
            Embedding::new(src, &format!("embeddings.{name}"), (rows, c), 0.02)
        };
        let embeddings = BertEmbeddings {
            word_embeddings: table(src, "word_embeddings", config.vocab_size),
            position_embeddings: table(src, "position_embeddings", config.max_position_embeddings),
            token_type_embeddings: table(src, "token_type_embeddings", config.type_vocab_size),
            layer_norm: LayerNorm::new(src, "embeddings.LayerNorm", c, config.layer_norm_eps),
        };
        let layers = (0..config.num_hidden_layers).map(|i| BertLayer::new(src, i, &config)).collect();
        let pooler = Linear::new(src, "pooler.dense", (c, c), WeightLayout::OutIn, 0.02);
        Bert { config, embeddings, layers, pooler }
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
        let e = &self.embeddings;
        let embedded = e
            .word_embeddings
            .forward(input_ids)
            .add(&e.position_embeddings.forward(&positions))
            .add(&e.token_type_embeddings.forward(types)); // (B, T, C)
        let mut x = e.layer_norm.forward(&embedded).dropout(self.config.hidden_dropout_prob);
        if let Some(m) = attention_mask {
            assert_eq!(m.dims(), &[b, t], "attention_mask {:?} does not match ids ({b}, {t})", m.shape());
        }
        let mask = attention::attention_mask(t, 0, attention_mask, (false, None), &dev);
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

impl Module for Bert {
    fn children(&self) -> Vec<(String, &dyn Module)> {
        let mut out: Vec<(String, &dyn Module)> = vec![("embeddings".into(), &self.embeddings)];
        out.extend(self.layers.iter().enumerate().map(|(i, l)| (format!("encoder.layer.{i}"), l as &dyn Module)));
        out.push(("pooler.dense".into(), &self.pooler));
        out
    }
    fn children_mut(&mut self) -> Vec<(String, &mut dyn Module)> {
        let mut out: Vec<(String, &mut dyn Module)> = vec![("embeddings".into(), &mut self.embeddings)];
        out.extend(
            self.layers.iter_mut().enumerate().map(|(i, l)| (format!("encoder.layer.{i}"), l as &mut dyn Module)),
        );
        out.push(("pooler.dense".into(), &mut self.pooler));
        out
    }
}

impl Model for Bert {
    fn model_type(&self) -> &'static str {
        "bert"
    }
    fn key_prefix(&self) -> &'static str {
        ""
    }
    fn device(&self) -> Device {
        self.embeddings.word_embeddings.weight.value().device()
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
        self.forward(input_ids, None, attention_mask).last_hidden_state
    }
}
