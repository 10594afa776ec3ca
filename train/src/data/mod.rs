//! Supervised fine-tuning data: files of conversations → masked token sequences → batches.
//!
//! ```text
//! file (JSON / JSONL) ─formats─► Conversation ─PromptTemplate + TextCodec─► Sample ─collate─► Batch
//! ```
//!
//! ## Formats
//! A JSON array or JSONL (the first non-blank character `[` means an array) of Alpaca
//! (`instruction`, `input`?, `output`, `system`?), ShareGPT (`conversations` of `from`/`value`,
//! `system`?) or OpenAI (`messages` of `role`/`content`) records; see [`DataFormat`]. Each
//! record becomes a [`Conversation`]: an optional system prompt, then user and assistant turns
//! that alternate and end with the assistant.
//!
//! ## Template
//! The default [`PromptTemplate`] is the Alpaca prompt (`tests/fixtures/sft.py` implements the
//! same default independently):
//!
//! | segment | text | when |
//! | --- | --- | --- |
//! | system | `{system}\n\n` | only when there is a system prompt |
//! | user | `### Instruction:\n{content}\n\n### Response:\n` | every user turn |
//! | assistant | `{content}`, then the EOS **id** (not its text) | every assistant turn |
//!
//! An Alpaca record's user content is its `instruction`, plus `"\n\n### Input:\n" + input` when
//! `input` is non-empty.
//!
//! ## Tokenisation and labels
//! Each segment is encoded on its own ([`TextCodec::encode`], no special tokens) and the ids are
//! concatenated in order; the EOS id follows every assistant segment. Encoding segments apart
//! makes the prompt/answer boundary a token boundary, so the mask is exact (a BPE merge can
//! never straddle it), and the EOS can never be spelled differently by the tokenizer.
//!
//! `labels` has one entry per input id, unshifted: the loss shifts them, as transformers does,
//! so the logits at position `i` are scored against `labels[i + 1]`. Labels are:
//! - `-100` ([`IGNORE_INDEX`]) on system and user segments,
//! - the ids themselves on assistant segments and their EOS;
//! - with `train_on_prompt`, the ids everywhere; with `mask_history`, `-100` on every assistant
//!   turn but the last (the two together are refused);
//! - then the sample is cut to its first `cutoff_len` tokens, and dropped (and counted in the
//!   [`LoadReport`]) if no trained label is left.
//!
//! ## Worked example
//! [`ByteCodec`] (ids are UTF-8 bytes, EOS is 256) and a short user segment, for readable ids:
//! ```
//! use deltaw_train::data::{ByteCodec, Conversation, PromptTemplate, SftOptions};
//! let conversation = Conversation::single_turn(None, "Hi".into(), "Yo".into());
//! let template = PromptTemplate { user: "Q: {content}\nA: ".into(), ..Default::default() };
//! let sample = template.encode(&conversation, &ByteCodec, &SftOptions::default())?;
//! //                             Q   :   ␣    H    i  \n   A   :   ␣   Y    o  EOS
//! assert_eq!(sample.input_ids, [81, 58, 32, 72, 105, 10, 65, 58, 32, 89, 111, 256]);
//! assert_eq!(sample.labels, [-100, -100, -100, -100, -100, -100, -100, -100, -100, 89, 111, 256]);
//! // The logits at the last prompt position (the space after "A:") are scored against 'Y'.
//! # Ok::<(), deltaw_train::Error>(())
//! ```

mod batch;
mod byte_tokenizer;
mod chat;
mod codec;
mod conversation;
mod dataset;
pub mod formats;
mod render;
mod shuffle;
mod template;
mod text;

pub use batch::{collate, Batch};
pub use chat::{assistant_spans, conversation_messages, encode_with_template};
pub use codec::{ByteCodec, HfCodec, TextCodec};
pub use conversation::{Conversation, Role};
pub(crate) use dataset::{parse_records, validation_mask};
pub use dataset::{LoadReport, Sample, SftDataset};
pub use formats::DataFormat;
pub use template::{PromptTemplate, SftOptions, IGNORE_INDEX};
pub use text::{TextDataset, TextReport};
