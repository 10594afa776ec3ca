//! Generation at the level of text: the id-level loops of `generate.rs` and
//! `generate_batch.rs` with a tokenizer beside them, so that text streams out as ids arrive
//! and generation stops at a stop string (`GenerateOptions::stop_strings`) as well as at an
//! EOS id.
//!
//! A stop string can span several tokens and can begin inside one, so it is looked for in the
//! decoded text after every id, and the text is cut where the earliest one starts. While the
//! end of the text could still grow into a stop string (`"<|"` when `"<|user|>"` is one), that
//! end is held back from the stream: what was streamed is never taken back.

use crate::error::Result;
use crate::generate::{generate_with, GenerateOptions};
use crate::generate_batch::generate_batch_with;
use crate::model::CausalLm;
use crate::tokenizer::{StreamDecoder, Tokenizer};

/// Why generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// It emitted one of `eos_token_ids`.
    Eos,
    /// The text reached one of `stop_strings`.
    StopString,
    /// `max_new_tokens` were generated.
    Length,
}

/// New tokens and their text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeneratedText {
    /// Every generated id, the EOS and the tokens of a stop string included.
    pub ids: Vec<i32>,
    /// Their text without special tokens, cut before the stop string.
    pub text: String,
    pub stop: StopReason,
}

/// Continues `prompt` and calls `on_text` with each new piece of text as it is decided.
///
/// # Errors
/// A prompt that [`CausalLm::check_prompt`] refuses, or ids the tokenizer cannot decode.
pub fn generate_text<M: CausalLm + ?Sized>(
    model: &M,
    tokenizer: &Tokenizer,
    prompt: &[i32],
    options: &GenerateOptions,
    on_text: &mut dyn FnMut(&str),
) -> Result<GeneratedText> {
    model.check_prompt(prompt, options.max_new_tokens)?;
    let mut stream = TextStream::new(tokenizer, &options.stop_strings);
    let ids = generate_with(model, prompt, options, &mut |ids| stream.push(ids[ids.len() - 1], on_text));
    stream.finish(ids, options, on_text)
}

/// [`CausalLm::generate_batch`] with stop strings: each row stops at its own EOS id or stop
/// string (the other rows go on), and comes back with its text.
///
/// # Errors
/// A prompt that [`CausalLm::check_prompt`] refuses (naming the row), or undecodable ids.
pub fn generate_batch_text<M: CausalLm + ?Sized>(
    model: &M,
    tokenizer: &Tokenizer,
    prompts: &[Vec<i32>],
    options: &GenerateOptions,
) -> Result<Vec<GeneratedText>> {
    let mut streams: Vec<TextStream> =
        prompts.iter().map(|_| TextStream::new(tokenizer, &options.stop_strings)).collect();
    let rows =
        generate_batch_with(model, prompts, options, &mut |r, ids| streams[r].push(ids[ids.len() - 1], &mut |_| {}))?;
    streams.into_iter().zip(rows).map(|(stream, ids)| stream.finish(ids, options, &mut |_| {})).collect()
}

/// The text of one row as it grows: decoded ids, stop-string search, what has been streamed.
struct TextStream<'a> {
    decoder: StreamDecoder<'a>,
    stop_strings: &'a [String],
    /// Complete characters decoded so far (cut before a stop string once one is found).
    text: String,
    /// Bytes of `text` already given to `on_text`.
    shown: usize,
    stopped: bool,
    /// The first decoding error, returned by `finish` (the loop can only be told to stop).
    error: Option<crate::Error>,
}

impl<'a> TextStream<'a> {
    fn new(tokenizer: &'a Tokenizer, stop_strings: &'a [String]) -> TextStream<'a> {
        let decoder = StreamDecoder::new(tokenizer);
        TextStream { decoder, stop_strings, text: String::new(), shown: 0, stopped: false, error: None }
    }

    /// Takes one id; streams what is decided; false once a stop string is reached.
    fn push(&mut self, id: i32, on_text: &mut dyn FnMut(&str)) -> bool {
        match self.decoder.push(id) {
            Ok(piece) => self.text.push_str(&piece),
            Err(e) => {
                self.error = Some(e);
                return false;
            }
        }
        let earliest =
            self.stop_strings.iter().filter(|s| !s.is_empty()).filter_map(|s| self.text.find(s.as_str())).min();
        if let Some(at) = earliest {
            self.text.truncate(at);
            self.stopped = true;
        }
        let decided = if self.stopped { self.text.len() } else { self.text.len() - self.held_back() };
        if decided > self.shown {
            on_text(&self.text[self.shown..decided]);
            self.shown = decided;
        }
        !self.stopped
    }

    /// Bytes at the end of the text that are the start of some stop string (the longest such
    /// end), so that they may still become one.
    fn held_back(&self) -> usize {
        let text = self.text.as_str();
        (1..=text.len())
            .rev()
            .filter(|&n| text.is_char_boundary(text.len() - n))
            .find(|&n| self.stop_strings.iter().any(|s| s.len() > n && s.starts_with(&text[text.len() - n..])))
            .unwrap_or(0)
    }

    /// Streams the rest and names why generation ended.
    fn finish(
        mut self,
        ids: Vec<i32>,
        options: &GenerateOptions,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<GeneratedText> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if !self.stopped {
            self.text.push_str(&self.decoder.finish()?);
        }
        if self.text.len() > self.shown {
            on_text(&self.text[self.shown..]);
        }
        let stop = match ids.last() {
            _ if self.stopped => StopReason::StopString,
            Some(id) if options.eos_token_ids.contains(id) => StopReason::Eos,
            _ => StopReason::Length,
        };
        Ok(GeneratedText { ids, text: self.text, stop })
    }
}
