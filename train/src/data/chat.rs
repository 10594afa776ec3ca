//! SFT samples through a model's own chat template: the conversation is rendered once by the
//! template ([`ChatTemplate`]) and tokenized once, and the loss sees only the assistant turns,
//! each with the end-of-turn text the template writes after it (`<|im_end|>\n`, `<|eot_id|>`).
//!
//! Assistant turn i (of messages `m`) spans the bytes
//! `[len(render(m[..i], add_generation_prompt)), len(render(m[..=i])))` of the full render,
//! which holds when the template is prefix-stable: rendering a longer conversation only
//! appends. That is checked for every turn, and a template that rewrites earlier turns (one
//! that drops past reasoning, say) is an error naming it. A token is trained when it starts
//! inside a span. As transformers' `apply_chat_template(tokenize=True)`, the text is encoded
//! without the tokenizer's own special tokens: the template writes the BOS where it wants it.

use super::conversation::{Conversation, Role};
use super::dataset::Sample;
use super::template::{SftOptions, IGNORE_INDEX};
use crate::error::{Error, Result};
use deltaw_transformer::{ChatTemplate, Message, Tokenizer};

/// The messages of a conversation, the system prompt first.
pub fn conversation_messages(conversation: &Conversation) -> Vec<Message> {
    let system = conversation.system.iter().map(|s| Message::new("system", s.as_str()));
    let turns = conversation.turns.iter().map(|(role, content)| {
        let role = match role {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        };
        Message::new(role, content.as_str())
    });
    system.chain(turns).collect()
}

/// The rendered text of a conversation and the byte spans of its assistant turns.
pub fn assistant_spans(template: &ChatTemplate, messages: &[Message]) -> Result<(String, Vec<(usize, usize)>)> {
    let full = template.render(messages, false, None)?;
    let mut spans = Vec::new();
    for (i, message) in messages.iter().enumerate().filter(|(_, m)| m.role == "assistant") {
        let before = template.render(&messages[..i], true, None)?;
        let through = template.render(&messages[..=i], false, None)?;
        if !(full.starts_with(&through) && through.starts_with(&before)) {
            return Err(Error::Options(format!(
                "chat template {} is not prefix-stable: rendering the conversation up to assistant turn {i} \
                 ({:?}) is not the start of rendering all of it, so the turn's tokens cannot be found",
                template.origin(),
                truncate(&message.content, 40)
            )));
        }
        spans.push((before.len(), through.len()));
    }
    Ok((full, spans))
}

/// The sample of `conversation` rendered by `template`: ids of the whole text; labels on
/// the tokens that start inside an assistant span (all of them with `train_on_prompt`, the
/// last span only with `mask_history`); then cut to `cutoff_len`.
pub fn encode_with_template(
    template: &ChatTemplate,
    tokenizer: &Tokenizer,
    conversation: &Conversation,
    options: &SftOptions,
) -> Result<Sample> {
    let messages = conversation_messages(conversation);
    let (text, mut spans) = assistant_spans(template, &messages)?;
    if options.mask_history {
        spans = spans.split_off(spans.len().saturating_sub(1));
    }
    let tokens = tokenizer.encode_plain_with_offsets(&text)?;
    let mut sample = Sample::default();
    for (id, start) in tokens {
        let trained = options.train_on_prompt || spans.iter().any(|&(a, b)| start >= a && start < b);
        sample.input_ids.push(id);
        sample.labels.push(if trained { id } else { IGNORE_INDEX });
    }
    if let Some(cutoff_len) = options.cutoff_len {
        sample.truncate(cutoff_len);
    }
    Ok(sample)
}

fn truncate(text: &str, chars: usize) -> String {
    text.chars().take(chars).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltaw_transformer::TokenizerConfig;

    #[test]
    fn spans_cover_each_answer_and_its_end_of_turn() {
        let template = ChatTemplate::builtin("chatml", &TokenizerConfig::default()).unwrap();
        let conversation = Conversation::single_turn(Some("S".into()), "Q".into(), "A".into());
        let (text, spans) = assistant_spans(&template, &conversation_messages(&conversation)).unwrap();
        assert_eq!(spans.len(), 1);
        assert_eq!(&text[spans[0].0..spans[0].1], "A<|im_end|>\n");
    }

    #[test]
    fn a_template_that_rewrites_history_is_refused() {
        // Drops every assistant turn but the last: not prefix-stable.
        let source =
            "{% for m in messages %}{% if m.role != 'assistant' or loop.last %}{{ m.content }}|{% endif %}{% endfor %}";
        let template = ChatTemplate::new("drop.jinja", source, &TokenizerConfig::default()).unwrap();
        let conversation = Conversation {
            system: None,
            turns: vec![
                (Role::User, "a".into()),
                (Role::Assistant, "b".into()),
                (Role::User, "c".into()),
                (Role::Assistant, "d".into()),
            ],
        };
        let err = assistant_spans(&template, &conversation_messages(&conversation)).unwrap_err().to_string();
        assert!(err.contains("drop.jinja") && err.contains("prefix-stable"), "{err}");
    }
}
