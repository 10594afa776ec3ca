//! Held-out examples for evaluation: each record of an SFT file becomes the sample `sft` would
//! train on (for the loss on the outputs) plus the prompt a model answers and the reference
//! answer its text is scored against.
//!
//! The prompt is the conversation without its last assistant turn, ready for that turn: with a
//! chat template, rendered with `add_generation_prompt` and encoded as
//! `apply_chat_template(tokenize=True)` does; with a prompt template, its segments up to and
//! including the last user turn. The reference is the last assistant turn's text as the file
//! has it (not a decoding of its tokens).

use crate::data::{
    conversation_messages, encode_with_template, parse_records, validation_mask, Conversation, DataFormat, LoadReport,
    PromptTemplate, Sample, SftDataset, SftOptions, TextCodec,
};
use crate::error::{Error, Result};
use deltaw_transformer::{ChatTemplate, Tokenizer};
use std::path::Path;

/// How a conversation becomes token ids, as `sft` encodes it.
pub enum Encoder<'a> {
    /// A model's chat template (or a built-in one) and its tokenizer.
    Chat { template: &'a ChatTemplate, tokenizer: &'a Tokenizer },
    /// A prompt template (the Alpaca prompt by default) and a codec.
    Prompt { template: &'a PromptTemplate, codec: &'a dyn TextCodec },
}

impl Encoder<'_> {
    /// The whole conversation as a training sample, untruncated.
    fn sample(&self, conversation: &Conversation, options: &SftOptions) -> Result<Sample> {
        let untruncated = SftOptions { cutoff_len: None, ..options.clone() };
        match self {
            Encoder::Chat { template, tokenizer } => {
                encode_with_template(template, tokenizer, conversation, &untruncated)
            }
            Encoder::Prompt { template, codec } => template.encode_untruncated(conversation, *codec, &untruncated),
        }
    }

    /// The ids of everything before the last assistant turn, ending where its answer starts.
    fn prompt(&self, conversation: &Conversation) -> Result<Vec<i32>> {
        match self {
            Encoder::Chat { template, tokenizer } => {
                let messages = conversation_messages(conversation);
                let text = template.render(&messages[..messages.len() - 1], true, None)?;
                Ok(tokenizer.encode_plain(&text)?)
            }
            Encoder::Prompt { template, codec } => {
                let turns = conversation.turns[..conversation.turns.len() - 1].to_vec();
                let question = Conversation { system: conversation.system.clone(), turns };
                Ok(template.encode_untruncated(&question, *codec, &SftOptions::default())?.input_ids)
            }
        }
    }

    /// What joins an Alpaca record's `input` to its `instruction`.
    fn alpaca_input(&self) -> String {
        match self {
            Encoder::Chat { .. } => PromptTemplate::default().alpaca_input,
            Encoder::Prompt { template, .. } => template.alpaca_input.clone(),
        }
    }
}

/// One held-out example.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EvalExample {
    /// The sample `sft` trains on: the loss (and perplexity) is taken on its labelled tokens.
    pub sample: Sample,
    /// What the model is asked to continue.
    pub prompt_ids: Vec<i32>,
    /// The last assistant turn's text, which the generated answer is scored against.
    pub reference: String,
}

/// Held-out examples, in file order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EvalSet {
    pub examples: Vec<EvalExample>,
}

impl EvalSet {
    /// Reads `path` (the formats [`SftDataset::load`] reads) into examples.
    ///
    /// # Errors
    /// As [`SftDataset::load`]: an unreadable record names the file and its line (JSONL) or
    /// index (array) unless `options.skip_bad_lines`; `train_on_prompt`, which would leave no
    /// prompt to answer, is refused.
    pub fn load(
        path: impl AsRef<Path>,
        format: DataFormat,
        encoder: &Encoder,
        options: &SftOptions,
    ) -> Result<(EvalSet, LoadReport)> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
        EvalSet::parse(&text, path, format, encoder, options)
    }

    /// [`load`](Self::load) from text in memory; `path` is only named in errors.
    ///
    /// ```
    /// use deltaw_train::data::{ByteCodec, DataFormat, PromptTemplate, SftOptions};
    /// use deltaw_train::evaluation::{Encoder, EvalSet};
    /// use std::path::Path;
    /// let jsonl = r#"{"instruction": "Say hi.", "output": "Hi!"}"#;
    /// let template = PromptTemplate::default();
    /// let encoder = Encoder::Prompt { template: &template, codec: &ByteCodec };
    /// let (set, _) = EvalSet::parse(jsonl, Path::new("x.jsonl"), DataFormat::Auto, &encoder, &SftOptions::default())?;
    /// let example = &set.examples[0];
    /// assert_eq!(example.reference, "Hi!");
    /// // The prompt is the sample up to its answer; the answer and EOS are the labelled tokens.
    /// assert_eq!(example.sample.input_ids[..example.prompt_ids.len()], example.prompt_ids[..]);
    /// assert_eq!(example.sample.trained_tokens(), "Hi!".len() + 1);
    /// # Ok::<(), deltaw_train::Error>(())
    /// ```
    pub fn parse(
        text: &str,
        path: &Path,
        format: DataFormat,
        encoder: &Encoder,
        options: &SftOptions,
    ) -> Result<(EvalSet, LoadReport)> {
        if options.train_on_prompt {
            return Err(Error::Options("evaluation scores the answers: train_on_prompt does not apply".into()));
        }
        let encode = |c: &Conversation| {
            let reference = c.turns.last().map(|(_, text)| text.clone()).unwrap_or_default();
            Ok((encoder.sample(c, options)?, (encoder.prompt(c)?, reference)))
        };
        let (kept, report) = parse_records(text, path, format, &encoder.alpaca_input(), options, &encode)?;
        let examples = kept
            .into_iter()
            .map(|(sample, (prompt_ids, reference))| EvalExample { sample, prompt_ids, reference })
            .collect();
        Ok((EvalSet { examples }, report))
    }

    pub fn len(&self) -> usize {
        self.examples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }

    /// The samples alone, for training or for the loss.
    pub fn dataset(&self) -> SftDataset {
        SftDataset { samples: self.examples.iter().map(|e| e.sample.clone()).collect() }
    }

    /// The references, in order.
    pub fn references(&self) -> Vec<&str> {
        self.examples.iter().map(|e| e.reference.as_str()).collect()
    }

    /// The same split as [`SftDataset::split`] with the same arguments, so the validation
    /// examples are the validation samples `sft` held out.
    ///
    /// # Panics
    /// Unless `0 <= val_fraction < 1`.
    pub fn split(self, val_fraction: f64, seed: u64) -> (EvalSet, EvalSet) {
        assert!((0.0..1.0).contains(&val_fraction), "split: val_fraction {val_fraction} is not in [0, 1)");
        let is_val = validation_mask(self.examples.len(), val_fraction, seed);
        let (mut train, mut val) = (EvalSet::default(), EvalSet::default());
        for (example, to_val) in self.examples.into_iter().zip(is_val) {
            if to_val { &mut val } else { &mut train }.examples.push(example);
        }
        (train, val)
    }
}
