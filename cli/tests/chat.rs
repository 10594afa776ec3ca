//! `deltaw chat` and `deltaw generate --chat` end to end on the tiny GPT-2 with the built-in
//! ChatML template: lines piped into stdin, the transcript checked against the library.

mod support;

use deltaw_tensor::Device;
use deltaw_transformer::{generate_text, ChatTemplate, GenerateOptions, Gpt2, Message, Tokenizer};
use std::io::Write;
use std::process::{Command, Stdio};
use support::{deltaw, fixture, path, stdout_json};

/// Runs `deltaw chat` with `input` on stdin; returns stdout, failing on a non-zero exit.
fn chat(args: &[&str], input: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_deltaw"))
        .args([&["chat", "--model", &path("tiny_gpt2"), "--template", "chatml"], args].concat())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("deltaw runs");
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap(); // dropped: EOF, as Ctrl-D
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The library's greedy answer to `messages` through ChatML, at most `max_new` tokens.
fn expected_answer(messages: &[Message], max_new: usize) -> String {
    let dir = fixture("tiny_gpt2");
    let model = Gpt2::from_dir(&dir, &Device::Cpu).unwrap();
    let tokenizer = Tokenizer::from_dir(&dir).unwrap();
    let template = ChatTemplate::builtin("chatml", tokenizer.config()).unwrap();
    let ids = tokenizer.encode_plain(&template.render(messages, true, None).unwrap()).unwrap();
    // tiny_gpt2 ends text with id 0; "<|im_end|>" is not one of its tokens, so it is a stop string.
    let options = GenerateOptions {
        eos_token_ids: vec![0],
        stop_strings: vec!["<|im_end|>".into()],
        ..GenerateOptions::greedy(max_new.min(64 - ids.len())) // as the CLI: what fits in the context of 64
    };
    generate_text(&model, &tokenizer, &ids, &options, &mut |_| {}).unwrap().text
}

#[test]
fn chat_streams_answers_keeps_history_and_reset_clears_it() {
    let out = chat(&["--max-new-tokens", "6"], "the cat\nsat\n/reset\nsat\n");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("deltaw chat (built-in template \"chatml\")"), "{out}");
    let (user1, user2) = (Message::new("user", "the cat"), Message::new("user", "sat"));
    let first = expected_answer(std::slice::from_ref(&user1), 6);
    let history = [user1, Message::new("assistant", first.as_str()), user2.clone()];
    let second = expected_answer(&history, 6);
    let after_reset = expected_answer(std::slice::from_ref(&user2), 6);
    assert_eq!(lines[1], format!("> {first}"), "{out}");
    assert_eq!(lines[2], format!("> {second}"), "the second turn sees the first: {out}");
    assert_eq!(lines[3], "> (conversation cleared)", "{out}");
    assert_eq!(lines[4], format!("> {after_reset}"), "after /reset only the new turn counts: {out}");
    assert_eq!(lines[5], "> ", "EOF ends the session: {out}");
    assert_ne!(second, after_reset, "the history changed the answer, so the check above can fail");
}

#[test]
fn chat_system_command_sets_the_system_message() {
    let out = chat(&["--max-new-tokens", "4"], "/system be brief\nthe cat\n");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[1], "> (system message set)", "{out}");
    let messages = [Message::new("system", "be brief"), Message::new("user", "the cat")];
    assert_eq!(lines[2], format!("> {}", expected_answer(&messages, 4)), "{out}");
}

#[test]
fn generate_chat_runs_one_turn_through_the_template() {
    let args = ["generate", "--model", &path("tiny_gpt2"), "--prompt", "the cat", "--chat", "--template", "chatml"];
    let json = stdout_json(&deltaw(&[&args[..], &["--max-new-tokens", "5", "--json"]].concat()));
    assert_eq!(json["new_text"], expected_answer(&[Message::new("user", "the cat")], 5).as_str());
    let out = deltaw(&["generate", "--model", &path("tiny_gpt2"), "--prompt", "hi", "--chat"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("no chat template") && err.contains("chatml"), "{err}");
}

#[test]
fn generate_stop_string_cuts_the_text() {
    let base = ["generate", "--model", &path("tiny_gpt2"), "--prompt", "hello", "--json"];
    let full = stdout_json(&deltaw(&base));
    let full_text = full["new_text"].as_str().unwrap().to_string();
    let stop: String = full_text.chars().skip(3).take(2).collect();
    assert_eq!(stop.chars().count(), 2, "the greedy text is long enough: {full_text:?}");
    let cut = stdout_json(&deltaw(&[&base[..], &["--stop", &stop]].concat()));
    let at = full_text.find(&stop).unwrap();
    assert_eq!(cut["new_text"], &full_text[..at], "cut before the first occurrence of {stop:?}");
}
