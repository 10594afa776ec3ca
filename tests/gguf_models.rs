//! GGUF files as models: tiny Llama, Qwen2, Qwen3 and GPT-2 models written in llama.cpp's
//! layout (permuted q/k rows for `llama`, GPT-2's transposed Conv1D weights, tokenizer and chat
//! template in the metadata) by tests/fixtures/gguf_llama.py, in f32 and Q8_0. deltaw must
//! generate exactly the greedy tokens transformers generates on the same weights (for Q8_0,
//! the dequantized ones), and tokenize as the Hugging Face tokenizer of the same vocabulary.
//!
//! Greedy tokens are compared exactly: the fixture records the smallest gap between the best
//! and second-best logit over the generated steps (`min_margin`, ≥ 0.005 in every case), far
//! above the ~1e-5 by which f32 logits of two implementations differ at these sizes.

use deltaw_tensor::Device;
use deltaw_transformer::gguf::{unpermute_rows, GgufModel};
use deltaw_transformer::{ChatTemplate, GenerateOptions, Message, Tokenizer, WeightDtype};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/gguf_models")
}

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir().join("expected.json")).unwrap()).unwrap()
}

fn ids(v: &Value) -> Vec<i32> {
    v.as_array().unwrap().iter().map(|x| x.as_i64().unwrap() as i32).collect()
}

const CASES: [&str; 8] = [
    "llama_mistral",
    "llama_mistral_q8_0",
    "qwen2_qwen2",
    "qwen2_qwen2_q8_0",
    "qwen3_qwen2",
    "qwen3_qwen2_q8_0",
    "gpt2_llama3",
    "gpt2_llama3_q8_0",
];

#[test]
fn greedy_tokens_match_transformers() {
    let all = expected();
    for case in CASES {
        let want = &all[case];
        assert!(want["min_margin"].as_f64().unwrap() > 0.005, "{case}: the fixture's greedy choices are near a tie");
        let lm = GgufModel::load(dir().join(format!("{case}.gguf")), &Device::Cpu, WeightDtype::Stored).unwrap();
        let prompt = lm.tokenizer.encode(want["prompt"].as_str().unwrap()).unwrap();
        assert_eq!(prompt, ids(&want["prompt_ids"]), "{case}: prompt ids");
        let new = lm.model.try_generate(&prompt, &GenerateOptions::greedy(12)).unwrap();
        assert_eq!(new, ids(&want["new_tokens"]), "{case}: greedy tokens");
    }
}

#[test]
fn tokenizer_from_metadata_encodes_as_hugging_face() {
    let all = expected();
    // One file per tokenizer: SentencePiece-style (`llama`) and two byte-level BPEs (`gpt2`).
    for case in ["llama_mistral", "qwen2_qwen2", "gpt2_llama3"] {
        let lm = GgufModel::load(dir().join(format!("{case}.gguf")), &Device::Cpu, WeightDtype::F32).unwrap();
        for pair in all[case]["texts"].as_array().unwrap() {
            let text = pair[0].as_str().unwrap();
            let got = lm.tokenizer.encode(text).unwrap();
            assert_eq!(got, ids(&pair[1]), "{case}: {text:?}");
        }
        // The tokenizer from the metadata decodes what the folder's tokenizer decodes.
        let folder = Tokenizer::from_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(match case {
            "llama_mistral" => "fixtures/chat/mistral",
            "qwen2_qwen2" => "fixtures/chat/qwen2",
            _ => "fixtures/chat/llama3",
        }))
        .unwrap();
        let ids = folder.encode("Hello world, 你好 there").unwrap();
        assert_eq!(lm.tokenizer.decode(&ids).unwrap(), folder.decode(&ids).unwrap(), "{case}");
    }
}

#[test]
fn chat_template_and_special_tokens_come_from_the_metadata() {
    let lm = GgufModel::load(dir().join("qwen2_qwen2.gguf"), &Device::Cpu, WeightDtype::F32).unwrap();
    let config = lm.tokenizer.config();
    let source = config.chat_template.as_deref().expect("tokenizer.chat_template");
    let template = ChatTemplate::new("qwen2_qwen2.gguf", source, config).unwrap();
    let folder =
        ChatTemplate::from_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/chat/qwen2")).unwrap().unwrap();
    let messages = [Message::new("user", "hi")];
    assert_eq!(template.render(&messages, true, None).unwrap(), folder.render(&messages, true, None).unwrap());
    let mistral = GgufModel::load(dir().join("llama_mistral.gguf"), &Device::Cpu, WeightDtype::F32).unwrap();
    assert_eq!(mistral.tokenizer.config().bos_token.as_deref(), Some("<s>"));
    assert_eq!(mistral.generation.eos_token_ids, vec![mistral.tokenizer.token_id("</s>").unwrap()]);
}

#[test]
fn unpermuting_inverts_the_converters_permutation() {
    // llama.cpp's permute on 2 heads of 4 rows: rows (h, 2, 2) -> (h, 2, 2) swapped.
    let original: Vec<u8> = (0..8).collect();
    let permuted = [0, 2, 1, 3, 4, 6, 5, 7];
    assert_eq!(unpermute_rows(&permuted, 8, 2).unwrap(), original);
    assert!(unpermute_rows(&permuted, 8, 3).unwrap_err().contains("3 heads"));
}

#[test]
fn a_file_that_is_not_a_model_names_what_is_missing() {
    let tmp = std::env::temp_dir().join(format!("deltaw-gguf-models-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let path = tmp.join("empty.gguf");
    let mut w = deltaw_tensor::gguf::GgufWriter::new();
    w.add_metadata("general.architecture", deltaw_tensor::gguf::GgufValue::String("mamba".into())).unwrap();
    w.write(&path).unwrap();
    let err = GgufModel::load(&path, &Device::Cpu, WeightDtype::F32).err().unwrap().to_string();
    assert!(err.contains("general.architecture") && err.contains("mamba"), "{err}");
    let mut w = deltaw_tensor::gguf::GgufWriter::new();
    w.add_metadata("general.architecture", deltaw_tensor::gguf::GgufValue::String("llama".into())).unwrap();
    w.write(&path).unwrap();
    let err = GgufModel::load(&path, &Device::Cpu, WeightDtype::F32).err().unwrap().to_string();
    assert!(err.contains("tokenizer.ggml.model"), "{err}");
    std::fs::remove_dir_all(&tmp).unwrap();
}
