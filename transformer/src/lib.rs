//! # deltaw-transformer
//!
//! Transformer models built from deltaw tensors and autograd, loaded from Hugging Face model
//! folders (`config.json` + `model.safetensors`). So far: GPT-2 (`GPT2LMHeadModel`), checked
//! layer by layer, in loss and in every parameter's gradient against transformers.
//!
//! ```no_run
//! use deltaw_tensor::{Device, Tensor};
//! use deltaw_transformer::Gpt2;
//! let model = Gpt2::from_dir("path/to/gpt2", &Device::Cpu)?;
//! let ids = Tensor::from_vec(vec![464i32, 3290, 318], (1, 3), &Device::Cpu)?;
//! let logits = model.forward(&ids, None).logits; // (1, 3, V)
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod config;
mod error;
mod gpt2;
mod weights;

pub use config::Gpt2Config;
pub use error::{Error, Result};
pub use gpt2::{Block, Conv1D, Gpt2, Gpt2Output, LayerNorm};
pub use weights::Checkpoint;

/// The README's examples, compiled (and run unless marked `no_run`) as doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
