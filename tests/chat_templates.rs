//! Chat templates and tokenizers against transformers: every conversation of
//! `fixtures/chat/renders.json` (made by `fixtures/chat.py`) renders to the same text and the
//! same ids as `apply_chat_template`, or fails with the template's own message; `encode`
//! gives the same ids with and without special tokens; streaming decode never splits a
//! character.

use deltaw_transformer::{ChatTemplate, GenerationConfig, Message, StreamDecoder, Tokenizer, TokenizerConfig};
use serde_json::Value;
use std::path::PathBuf;

const FAMILIES: [&str; 3] = ["llama3", "qwen2", "mistral"];

fn chat_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/chat")
}

fn renders() -> Value {
    let text = std::fs::read_to_string(chat_dir().join("renders.json")).expect("renders.json");
    serde_json::from_str(&text).expect("valid JSON")
}

fn messages(case: &Value) -> Vec<Message> {
    let list = case["messages"].as_array().expect("messages");
    list.iter().map(|m| Message::new(m["role"].as_str().unwrap(), m["content"].as_str().unwrap())).collect()
}

fn ids(value: &Value) -> Vec<i32> {
    value.as_array().expect("ids").iter().map(|v| v.as_i64().unwrap() as i32).collect()
}

#[test]
fn every_render_and_its_ids_match_transformers() {
    let all = renders();
    let mut failures = Vec::new();
    let mut checked = 0;
    for family in FAMILIES {
        let dir = chat_dir().join(family);
        let template = ChatTemplate::from_dir(&dir).unwrap().expect("the folder has a template");
        let tokenizer = Tokenizer::from_dir(&dir).unwrap();
        for case in all[family]["renders"].as_array().unwrap() {
            let name = format!("{family}/{}", case["name"].as_str().unwrap());
            let tools = (!case["tools"].is_null()).then_some(&case["tools"]);
            let gen = case["add_generation_prompt"].as_bool().unwrap();
            let rendered = template.render(&messages(case), gen, tools);
            match (rendered, case.get("error")) {
                (Ok(text), None) => {
                    checked += 1;
                    if text != case["text"].as_str().unwrap() {
                        failures.push(format!("{name}: text\n  ours  {text:?}\n  torch {:?}", case["text"]));
                    } else if tokenizer.encode_plain(&text).unwrap() != ids(&case["ids"]) {
                        failures.push(format!("{name}: ids differ"));
                    }
                }
                (Err(e), Some(expected)) => {
                    let (e, expected) = (e.to_string(), expected.as_str().unwrap());
                    if !(e.contains(expected) && e.contains(&format!("chat/{family}/"))) {
                        failures.push(format!("{name}: error {e:?} should name the file and say {expected:?}"));
                    }
                }
                (Ok(text), Some(_)) => failures.push(format!("{name}: rendered {text:?} but transformers raised")),
                (Err(e), None) => failures.push(format!("{name}: {e}")),
            }
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
    assert!(checked >= 30, "only {checked} renders checked");
}

#[test]
fn encode_matches_transformers_with_and_without_special_tokens() {
    let all = renders();
    for family in FAMILIES {
        let tokenizer = Tokenizer::from_dir(chat_dir().join(family)).unwrap();
        assert_eq!(tokenizer.vocab_size() as u64, all[family]["vocab_size"].as_u64().unwrap(), "{family}");
        for case in all[family]["encode"].as_array().unwrap() {
            let text = case["text"].as_str().unwrap();
            let ours = if case["add_special_tokens"].as_bool().unwrap() {
                tokenizer.encode(text).unwrap()
            } else {
                tokenizer.encode_plain(text).unwrap()
            };
            assert_eq!(ours, ids(&case["ids"]), "{family}: {text:?} {}", case["add_special_tokens"]);
        }
    }
}

#[test]
fn llama3_stops_on_two_eos_ids_and_qwen_has_no_bos() {
    let llama3 = GenerationConfig::from_dir(chat_dir().join("llama3")).unwrap();
    let tokenizer = Tokenizer::from_dir(chat_dir().join("llama3")).unwrap();
    let expected = vec![tokenizer.token_id("<|end_of_text|>").unwrap(), tokenizer.token_id("<|eot_id|>").unwrap()];
    assert_eq!(llama3.eos_token_ids, expected);
    let qwen = TokenizerConfig::from_dir(chat_dir().join("qwen2")).unwrap();
    assert_eq!((qwen.bos_token, qwen.eos_token.as_deref()), (None, Some("<|im_end|>")));
    assert!(qwen.chat_template_path.unwrap().ends_with("chat_template.jinja"));
}

#[test]
fn streaming_decode_emits_whole_characters_and_adds_up_to_the_text() {
    for family in FAMILIES {
        let tokenizer = Tokenizer::from_dir(chat_dir().join(family)).unwrap();
        let text = "Grüße aus Köln! 日本語 🙂 ok";
        let ids = tokenizer.encode_plain(text).unwrap();
        let mut stream = StreamDecoder::new(&tokenizer);
        let mut pieces = Vec::new();
        for &id in &ids {
            pieces.push(stream.push(id).unwrap());
        }
        pieces.push(stream.finish().unwrap());
        assert!(pieces.iter().all(|p| !p.contains('\u{FFFD}')), "{family}: {pieces:?}");
        assert_eq!(pieces.concat(), tokenizer.decode(&ids).unwrap(), "{family}");
        assert_eq!(pieces.concat(), text, "{family}");
        assert!(pieces.iter().filter(|p| p.is_empty()).count() > 0, "{family}: some ids end mid-character");
    }
}

#[test]
fn broken_and_raising_templates_give_clear_errors() {
    let tokens = TokenizerConfig::default();
    let err = ChatTemplate::new("my_template.jinja", "{% for m in messages %}{{ m.content }", &tokens).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("my_template.jinja") && msg.contains("line 1"), "{msg}");
    let raising = "{{ raise_exception('roles must alternate') }}";
    let template = ChatTemplate::new("t.jinja", raising, &tokens).unwrap();
    let msg = template.render(&[Message::new("user", "hi")], true, None).unwrap_err().to_string();
    assert!(msg.contains("t.jinja") && msg.contains("roles must alternate"), "{msg}");
}

#[test]
fn sft_samples_through_the_template_match_transformers_ids_and_train_on_assistant_turns() {
    use deltaw_train::data::{encode_with_template, Conversation, Role, SftOptions};
    let all = renders();
    for family in FAMILIES {
        let dir = chat_dir().join(family);
        let (template, tokenizer) =
            (ChatTemplate::from_dir(&dir).unwrap().unwrap(), Tokenizer::from_dir(&dir).unwrap());
        let case = &all[family]["sft"];
        let turns = messages(case).into_iter().map(|m| (Role::parse(&m.role).unwrap(), m.content)).collect();
        let conversation = Conversation::from_messages(None, turns).unwrap();
        let sample = encode_with_template(&template, &tokenizer, &conversation, &SftOptions::default()).unwrap();
        assert_eq!(sample.input_ids, ids(&case["ids"]), "{family}: ids");
        assert_eq!(sample.labels, ids(&case["labels"]), "{family}: labels");
        // The end-of-turn token after each answer is trained: the one after the first answer.
        let trained: Vec<i32> = sample.labels.iter().copied().filter(|&l| l != -100).collect();
        let answer = tokenizer.encode_plain("It is sunny and warm.").unwrap();
        assert!(trained.len() > 2 * answer.len(), "{family}: both answers and their end of turn");
        let last_only = SftOptions { mask_history: true, ..SftOptions::default() };
        let masked = encode_with_template(&template, &tokenizer, &conversation, &last_only).unwrap();
        assert!(masked.trained_tokens() < sample.trained_tokens() && masked.trained_tokens() > 0, "{family}");
    }
}

#[test]
fn a_sharegpt_file_loads_through_the_folder_template() {
    use deltaw_train::data::{encode_with_template, Conversation, DataFormat, SftDataset, SftOptions};
    let dir = chat_dir().join("qwen2");
    let (template, tokenizer) = (ChatTemplate::from_dir(&dir).unwrap().unwrap(), Tokenizer::from_dir(&dir).unwrap());
    let line = r#"{"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}]}"#;
    let file = std::env::temp_dir().join(format!("deltaw-chat-sft-{}.jsonl", std::process::id()));
    std::fs::write(&file, format!("{line}\n")).unwrap();
    let (data, report) =
        SftDataset::load_chat(&file, DataFormat::Auto, &template, &tokenizer, &SftOptions::default()).unwrap();
    std::fs::remove_file(&file).ok();
    let conversation = Conversation::single_turn(None, "Hi".into(), "Hello!".into());
    let expected = encode_with_template(&template, &tokenizer, &conversation, &SftOptions::default()).unwrap();
    assert_eq!((report.samples, &data.samples[0]), (1, &expected));
}
