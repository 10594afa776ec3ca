//! # deltaw-lora
//!
//! Low-rank adapters (Hu et al. 2021) for deltaw's GPT-2 and BERT: fine-tuning keeps the
//! pretrained weight `W0` frozen and learns only `ΔW = scaling · B A`, with `A` `(r, in)` and
//! `B` `(out, r)` for a small rank r. For GPT-2's `c_attn` (768 → 2304) at r = 8 that is 24,576
//! trainable numbers instead of 1.77 million.
//!
//! - [`Lora::inject`] puts an adapter on every linear layer the target modules match (PEFT's
//!   rules and defaults) and freezes the base model.
//! - [`Lora::merge`] folds `W0 + s·BA` into the weights for inference at full speed and
//!   reports the drift; [`Lora::unmerge`] takes it out again.
//! - [`Lora::save_peft`] / [`Lora::load_peft`] read and write PEFT's adapter folders, so
//!   adapters move between deltaw and Python PEFT.
//! - [`quantize_base`] makes QLoRA's frozen base: the linear weights block-quantized.
//!
//! ```no_run
//! use deltaw_lora::{Lora, LoraConfig};
//! use deltaw_tensor::{Device, Seed};
//! use deltaw_transformer::{Gpt2, Model};
//! let mut model = Gpt2::from_dir("path/to/gpt2", &Device::Cpu)?;
//! let mut lora = Lora::inject(&mut model, LoraConfig::new("gpt2"), Seed(0))?;
//! println!("{}", lora.param_count(&model)); // trainable params: 294,912 || all params: ...
//! // ... train lora.parameters() ...
//! lora.save_peft("out/adapter", "gpt2", "gpt2")?;
//! let report = lora.merge(&mut model);   // W0 + s·BA, adapters detached
//! println!("{report}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]

mod config;
mod error;
mod layer;
mod merge;
mod model;
mod peft;
mod qlora;

pub use config::{LoraConfig, TargetModules};
pub use error::{Error, Result};
pub use layer::LoraAdapter;
pub use merge::{MergeReport, OutputDrift};
pub use model::{commas, Lora, LoraModule, ParamCount};
pub use peft::{CONFIG_FILE, WEIGHTS_FILE};
pub use qlora::{quantize_base, QuantizedBase};
