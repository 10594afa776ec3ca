//! # deltaw-transformer
//!
//! Transformer models built from deltaw tensors and autograd, loaded from Hugging Face model
//! folders (`config.json` + `model.safetensors`). So far: GPT-2 (`GPT2LMHeadModel`) and BERT
//! (`BertModel` with its pooler), checked layer by layer, in loss and in every parameter's
//! gradient against transformers.
//!
//! ```no_run
//! use deltaw_tensor::{Device, Tensor};
//! use deltaw_transformer::Gpt2;
//! let model = Gpt2::from_dir("path/to/gpt2", &Device::Cpu)?;
//! let ids = Tensor::from_vec(vec![464i32, 3290, 318], (1, 3), &Device::Cpu)?;
//! let logits = model.forward(&ids, None).logits; // (1, 3, V)
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]

mod attention;
mod bert;
mod chat_template;
mod config;
mod config_check;
mod error;
mod generate;
mod generate_batch;
mod generate_text;
pub mod gguf;
mod gpt2;
mod init;
mod layers;
mod llama;
mod llama_config;
mod model;
mod module;
mod pooling;
mod rope;
mod rope_factors;
mod save;
mod sentence;
mod tokenizer;
mod tokenizer_config;
mod weights;

pub use attention::{attention, attention_mask, KvCache};
pub use bert::{Bert, BertAttention, BertEmbeddings, BertLayer, BertOutput};
pub use chat_template::{ChatTemplate, Message, BUILTIN_TEMPLATES};
pub use config::{BertConfig, Gpt2Config, ModelType};
pub use error::{Error, Result};
pub use generate::GenerateOptions;
pub use generate_batch::position_ids_from_mask;
pub use generate_text::{generate_batch_text, generate_text, GeneratedText, StopReason};
pub use gpt2::{Block, Gpt2, Gpt2Attention, Gpt2Output};
pub use layers::{
    Activation, Adapter, Embedding, GatedMlp, LayerNorm, Linear, LinearModule, Mlp, RmsNorm, WeightLayout,
};
pub use llama::{DecoderLayer, Llama, LlamaAttention, LlamaModel, LlamaOutput};
pub use llama_config::{LlamaConfig, LlamaFamily};
pub use model::{causal_lm_loss, load_causal_lm, load_causal_lm_with, load_model, CausalLm, DecodeInput, Model};
pub use module::{linear_modules_mut, named_parameters, FreshInit, Init, Module, ParamSource};
pub use pooling::{find_module, mean_pool_normalize, pool, read_modules, PoolingConfig, PoolingMode, SentenceModule};
pub use rope::{Rope, RopeScaling, ROPE_TYPES};
pub use rope_factors::llama3_from_factors;
pub use sentence::{SentenceEmbedder, DEFAULT_MAX_SEQ_LENGTH};
pub use tokenizer::{Encoding, StreamDecoder, Tokenizer};
pub use tokenizer_config::{GenerationConfig, TokenizerConfig};
pub use weights::{Checkpoint, QuantLayout, WeightDtype};

/// The README's examples, compiled (and run unless marked `no_run`) as doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
