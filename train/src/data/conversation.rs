//! A training example whatever file format it came from: an optional system prompt, then user
//! and assistant turns that alternate and end with the assistant (the part that is learned).

/// Who says a turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    /// The role for a `from` (ShareGPT: `human`, `gpt`) or `role` (OpenAI: `user`, `assistant`;
    /// Gemini: `model`) value; `None` for anything else.
    pub fn parse(name: &str) -> Option<Role> {
        match name {
            "system" => Some(Role::System),
            "human" | "user" => Some(Role::User),
            "gpt" | "assistant" | "model" => Some(Role::Assistant),
            _ => None,
        }
    }
}

/// One dialogue. Only `Role::User` and `Role::Assistant` appear in `turns`; [`validate`]
/// checks the shape that the template and the masking rely on.
///
/// [`validate`]: Conversation::validate
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conversation {
    pub system: Option<String>,
    pub turns: Vec<(Role, String)>,
}

impl Conversation {
    /// One instruction and its answer (an Alpaca record, after its `input` is joined on).
    pub fn single_turn(system: Option<String>, user: String, assistant: String) -> Conversation {
        Conversation { system, turns: vec![(Role::User, user), (Role::Assistant, assistant)] }
    }

    /// Messages in file order: a first `system` message becomes the system prompt (as does
    /// `system` given separately, e.g. ShareGPT's top-level field; both at once is an error),
    /// the rest must be turns in a valid order. The error says what is wrong, without location.
    pub fn from_messages(
        system: Option<String>,
        mut messages: Vec<(Role, String)>,
    ) -> std::result::Result<Conversation, String> {
        let mut system = system;
        if let Some((Role::System, _)) = messages.first() {
            let (_, text) = messages.remove(0);
            if system.is_some() {
                return Err("two system prompts: a 'system' field and a first system message".into());
            }
            system = Some(text);
        }
        let conversation = Conversation { system, turns: messages };
        conversation.validate()?;
        Ok(conversation)
    }

    /// Checks that turns start with the user, alternate user/assistant, and end with the
    /// assistant: every assistant turn then answers the user turn just before it, and the
    /// sample always has something to learn.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.turns.is_empty() {
            return Err("the conversation has no turns".into());
        }
        for (i, (role, _)) in self.turns.iter().enumerate() {
            let expected = if i % 2 == 0 { Role::User } else { Role::Assistant };
            if *role == Role::System {
                return Err(format!("turn {i} is a system message; only the first message may be one"));
            }
            if *role != expected {
                return Err(format!(
                    "turn {i} is {role:?} but {expected:?} was expected: turns must alternate user, assistant, ..."
                ));
            }
        }
        if self.turns.len() % 2 == 1 {
            return Err("the conversation ends with a user turn; it must end with the assistant".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turns(roles: &[Role]) -> Vec<(Role, String)> {
        roles.iter().map(|&r| (r, "x".to_string())).collect()
    }

    #[test]
    fn leading_system_message_becomes_the_system_prompt() {
        let c = Conversation::from_messages(None, turns(&[Role::System, Role::User, Role::Assistant])).unwrap();
        assert_eq!(c.system.as_deref(), Some("x"));
        assert_eq!(c.turns.len(), 2);
    }

    #[test]
    fn wrong_order_and_missing_answer_are_refused() {
        let cases = [
            (vec![Role::Assistant, Role::User], "turn 0"),
            (vec![Role::User, Role::User, Role::Assistant], "turn 1"),
            (vec![Role::User, Role::Assistant, Role::User], "ends with a user turn"),
            (vec![Role::User, Role::System, Role::Assistant], "system message"),
            (vec![], "no turns"),
        ];
        for (roles, expected) in cases {
            let err = Conversation::from_messages(None, turns(&roles)).unwrap_err();
            assert!(err.contains(expected), "{roles:?}: {err}");
        }
        let err = Conversation::from_messages(Some("s".into()), turns(&[Role::System, Role::User, Role::Assistant]));
        assert!(err.unwrap_err().contains("two system prompts"));
    }
}
