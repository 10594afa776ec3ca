//! The prompt template and label masking: a [`Conversation`] becomes one [`Sample`] of
//! `input_ids` and `labels`. The rules are in the module docs of [`crate::data`].

use super::codec::TextCodec;
use super::conversation::{Conversation, Role};
use super::dataset::Sample;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// The label of a position the loss ignores, as PyTorch's `cross_entropy(ignore_index=-100)`.
pub const IGNORE_INDEX: i32 = -100;

/// The text put around each part of a conversation. `{system}` and `{content}` are replaced by
/// the message; everything else is literal. The default is the Alpaca prompt, and
/// `tests/fixtures/sft.py` implements the same default: change both together.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PromptTemplate {
    /// Before the first turn, only when there is a system prompt. Default `"{system}\n\n"`.
    pub system: String,
    /// Every user turn. Default `"### Instruction:\n{content}\n\n### Response:\n"`.
    pub user: String,
    /// Every assistant turn, all of it trained; the EOS id follows it. Default `"{content}"`.
    pub assistant: String,
    /// Joins an Alpaca record's non-empty `input` to its `instruction`.
    /// Default `"\n\n### Input:\n"`.
    pub alpaca_input: String,
}

impl Default for PromptTemplate {
    fn default() -> PromptTemplate {
        PromptTemplate {
            system: "{system}\n\n".into(),
            user: "### Instruction:\n{content}\n\n### Response:\n".into(),
            assistant: "{content}".into(),
            alpaca_input: "\n\n### Input:\n".into(),
        }
    }
}

/// How samples are made from conversations.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SftOptions {
    /// Train on every token, the prompt included (labels = ids everywhere).
    pub train_on_prompt: bool,
    /// Train only on the last assistant turn; earlier answers become context, as the model's
    /// own earlier replies in a chat would be.
    pub mask_history: bool,
    /// Keep the first `cutoff_len` tokens of each sample (`None`: keep all). A sample left with
    /// nothing to train on is dropped and counted in the [`super::LoadReport`].
    pub cutoff_len: Option<usize>,
    /// Skip records that cannot be read (bad JSON, missing field, unknown role, turns out of
    /// order) and count them, instead of failing on the first one.
    pub skip_bad_lines: bool,
}

impl SftOptions {
    /// Refuses combinations that have no sensible meaning.
    pub fn validate(&self) -> Result<()> {
        if self.train_on_prompt && self.mask_history {
            return Err(Error::Options("train_on_prompt trains every token, so mask_history cannot apply".into()));
        }
        if self.cutoff_len == Some(0) {
            return Err(Error::Options("cutoff_len must be at least 1".into()));
        }
        Ok(())
    }
}

impl PromptTemplate {
    /// The sample of `conversation`: segments encoded one by one and concatenated, labels
    /// masked as `options` say, then cut to `options.cutoff_len`. The sample may end up with
    /// no trained label; [`super::SftDataset::load`] drops such samples.
    pub fn encode(&self, conversation: &Conversation, codec: &dyn TextCodec, options: &SftOptions) -> Result<Sample> {
        let mut sample = self.encode_untruncated(conversation, codec, options)?;
        if let Some(cutoff_len) = options.cutoff_len {
            sample.truncate(cutoff_len);
        }
        Ok(sample)
    }

    /// [`encode`](Self::encode) without the cutoff, so the loader can count what was cut.
    pub(crate) fn encode_untruncated(
        &self,
        conversation: &Conversation,
        codec: &dyn TextCodec,
        options: &SftOptions,
    ) -> Result<Sample> {
        let mut sample = Sample::default();
        if let Some(system) = &conversation.system {
            let ids = codec.encode(&self.system.replace("{system}", system))?;
            sample.push(&ids, options.train_on_prompt);
        }
        let last = conversation.turns.len().saturating_sub(1);
        for (i, (role, content)) in conversation.turns.iter().enumerate() {
            match role {
                Role::Assistant => {
                    let mut ids = codec.encode(&self.assistant.replace("{content}", content))?;
                    ids.push(codec.eos_id());
                    sample.push(&ids, options.train_on_prompt || !options.mask_history || i == last);
                }
                // `Conversation::validate` keeps system messages out of the turns; were one
                // there, it is prompt, never a target.
                Role::User | Role::System => {
                    let ids = codec.encode(&self.user.replace("{content}", content))?;
                    sample.push(&ids, options.train_on_prompt);
                }
            }
        }
        Ok(sample)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::ByteCodec;

    fn chat() -> Conversation {
        let turns = vec![(Role::User, "a".into()), (Role::Assistant, "b".into())];
        let mut turns2 = turns.clone();
        turns2.extend([(Role::User, "c".into()), (Role::Assistant, "d".into())]);
        Conversation { system: Some("s".into()), turns: turns2 }
    }

    fn tiny() -> PromptTemplate {
        PromptTemplate { system: "{system}|".into(), user: "<{content}>".into(), ..Default::default() }
    }

    #[test]
    fn prompt_is_masked_and_answers_with_eos_are_trained() {
        let s = tiny().encode(&chat(), &ByteCodec, &SftOptions::default()).unwrap();
        let ids = ByteCodec.encode("s|<a>b").unwrap();
        assert_eq!(&s.input_ids[..6], &ids[..]);
        assert_eq!(s.input_ids[6], 256);
        assert_eq!(s.labels, vec![-100, -100, -100, -100, -100, 98, 256, -100, -100, -100, 100, 256]);
    }

    #[test]
    fn mask_history_trains_only_the_last_answer_and_train_on_prompt_everything() {
        let options = SftOptions { mask_history: true, ..Default::default() };
        let s = tiny().encode(&chat(), &ByteCodec, &options).unwrap();
        assert_eq!(s.labels.iter().filter(|&&l| l != IGNORE_INDEX).count(), 2);
        let options = SftOptions { train_on_prompt: true, ..Default::default() };
        let s = tiny().encode(&chat(), &ByteCodec, &options).unwrap();
        assert_eq!(s.labels, s.input_ids);
    }

    #[test]
    fn cutoff_keeps_the_first_tokens() {
        let options = SftOptions { cutoff_len: Some(6), ..Default::default() };
        let s = tiny().encode(&chat(), &ByteCodec, &options).unwrap();
        assert_eq!(s.input_ids.len(), 6);
        assert_eq!(s.labels[5], 98);
    }

    #[test]
    fn contradictory_options_are_refused() {
        let both = SftOptions { train_on_prompt: true, mask_history: true, ..Default::default() };
        assert!(both.validate().is_err());
        assert!(SftOptions { cutoff_len: Some(0), ..Default::default() }.validate().is_err());
    }

    #[test]
    fn template_reads_from_partial_json_with_defaults() {
        let t: PromptTemplate = serde_json::from_str(r#"{"user": "Q: {content}\nA: "}"#).unwrap();
        assert_eq!(t.user, "Q: {content}\nA: ");
        assert_eq!(t.system, PromptTemplate::default().system);
    }
}
