//! # deltaw-train
//!
//! Supervised fine-tuning for deltaw models. So far the data side ([`data`]): Alpaca,
//! ShareGPT and OpenAI-messages files (JSON or JSONL) read into conversations, put through a
//! prompt template, tokenized with a Hugging Face tokenizer or raw bytes, masked so that only
//! the answers are trained, split for validation, shuffled reproducibly and padded into
//! batches. The same data serves full fine-tuning and LoRA.
//!
//! ```
//! use deltaw_tensor::Device;
//! use deltaw_train::data::{collate, ByteCodec, DataFormat, PromptTemplate, SftDataset, SftOptions};
//! use std::path::Path;
//!
//! let jsonl = r#"{"instruction": "Say hi.", "output": "Hi!"}
//! {"conversations": [{"from": "human", "value": "Count to 2."}, {"from": "gpt", "value": "1 2"}]}
//! {"instruction": "Add.", "input": "1 + 1", "output": "2"}"#;
//! let (template, options) = (PromptTemplate::default(), SftOptions::default());
//! let (data, report) =
//!     SftDataset::parse(jsonl, Path::new("inline.jsonl"), DataFormat::Auto, &ByteCodec, &template, &options)?;
//! assert_eq!(report.samples, 3);
//! let (train, val) = data.split(0.3, 42);                  // seeded: same split every run
//! assert_eq!((train.len(), val.len()), (2, 1));
//! for batch in train.batches(2, Some(7), 0) {              // shuffled by (seed, epoch)
//!     let batch = collate(&batch, ByteCodec::EOS_ID, &Device::Cpu)?;
//!     assert_eq!(batch.input_ids.dims()[0], 2);            // (B, T), right-padded
//! }
//! println!("{}", train.samples[0].render(&ByteCodec));     // tokens, trained ones [bracketed]
//! # Ok::<(), deltaw_train::Error>(())
//! ```

#![forbid(unsafe_code)]

pub mod clean;
pub mod data;
pub mod distributed;
mod error;
pub mod evaluation;
pub mod synthetic;
pub mod trainer;

pub use data::{ByteCodec, DataFormat, HfCodec, PromptTemplate, Sample, SftDataset, SftOptions, TextCodec};
pub use error::{Error, Location, Result};
pub use trainer::{TrainSummary, Trainer, TrainerConfig};
