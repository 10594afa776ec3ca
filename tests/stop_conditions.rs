//! When generation stops, on the tiny GPT-2 fixture: at any of several EOS ids, at a stop
//! string (cut from the text, never streamed in part), and per row in a batch.

use deltaw_tensor::Device;
use deltaw_transformer::{generate_batch_text, generate_text, CausalLm, GenerateOptions, Gpt2, StopReason, Tokenizer};
use std::path::PathBuf;

fn tiny() -> (Gpt2, Tokenizer) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/tiny_gpt2");
    (Gpt2::from_dir(&dir, &Device::Cpu).unwrap(), Tokenizer::from_dir(&dir).unwrap())
}

#[test]
fn generation_stops_at_any_of_several_eos_ids() {
    let (model, tokenizer) = tiny();
    let prompt = [5, 17, 42];
    let free = model.generate(&prompt, &GenerateOptions::greedy(12));
    // The first token that did not come before: generation must stop right after it.
    let k = (1..free.len()).find(|&k| !free[..k].contains(&free[k])).expect("a new token in 12");
    let options = GenerateOptions { eos_token_ids: vec![100_000, free[k]], ..GenerateOptions::greedy(12) };
    assert_eq!(model.generate(&prompt, &options), free[..=k].to_vec());
    let text = generate_text(&model, &tokenizer, &prompt, &options, &mut |_| {}).unwrap();
    assert_eq!((text.ids, text.stop), (free[..=k].to_vec(), StopReason::Eos));
    let free_text = generate_text(&model, &tokenizer, &prompt, &GenerateOptions::greedy(12), &mut |_| {}).unwrap();
    assert_eq!(free_text.stop, StopReason::Length);
}

#[test]
fn a_stop_string_cuts_the_text_and_is_never_streamed() {
    let (model, tokenizer) = tiny();
    let prompt = tokenizer.encode("hello").unwrap();
    let free = generate_text(&model, &tokenizer, &prompt, &GenerateOptions::greedy(24), &mut |_| {}).unwrap();
    // A stop string from the middle of the free text, which may span tokens.
    let chars: Vec<char> = free.text.chars().collect();
    let stop: String = chars[5..8].iter().collect();
    let at = free.text.find(&stop).unwrap();
    let options =
        GenerateOptions { stop_strings: vec!["zzz-never".into(), stop.clone()], ..GenerateOptions::greedy(24) };
    let mut pieces = Vec::new();
    let cut = generate_text(&model, &tokenizer, &prompt, &options, &mut |p| pieces.push(p.to_string())).unwrap();
    assert_eq!(cut.text, &free.text[..at], "cut before {stop:?}");
    assert_eq!(cut.stop, StopReason::StopString);
    assert_eq!(pieces.concat(), cut.text, "what streamed is exactly the text");
    assert!(cut.ids.len() < free.ids.len() && free.ids.starts_with(&cut.ids), "it stopped early");
}

#[test]
fn batched_rows_stop_on_their_own_and_match_single_generation() {
    let (model, tokenizer) = tiny();
    // Greedy on tiny_gpt2: "a" → " tran pick pick…", "sat on the mat" → " tran tran tran tranoooo"
    // then id 94 ("mer") at step 9, "hello" → "ranran…" with neither.
    let prompts: Vec<Vec<i32>> =
        ["a", "sat on the mat", "hello"].iter().map(|p| tokenizer.encode(p).unwrap()).collect();
    let options =
        GenerateOptions { stop_strings: vec!["pick".into()], eos_token_ids: vec![94], ..GenerateOptions::greedy(16) };
    let batch = generate_batch_text(&model, &tokenizer, &prompts, &options).unwrap();
    for (r, prompt) in prompts.iter().enumerate() {
        let alone = generate_text(&model, &tokenizer, prompt, &options, &mut |_| {}).unwrap();
        assert_eq!(batch[r], alone, "row {r}");
    }
    let stops: Vec<StopReason> = batch.iter().map(|g| g.stop).collect();
    assert_eq!(stops, [StopReason::StopString, StopReason::Eos, StopReason::Length], "{batch:?}");
    assert_eq!(batch[0].text, " tran ", "cut before \"pick\"");
    assert_eq!(batch[2].ids.len(), 16);
}
