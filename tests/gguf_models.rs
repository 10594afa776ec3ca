//! GGUF files as models: tiny Llama, Qwen2, Qwen3 and GPT-2 models written in llama.cpp's
//! layout (permuted q/k rows for `llama`, GPT-2's transposed Conv1D weights, tokenizer and chat
//! template in the metadata) by tests/fixtures/gguf_llama.py, in f32 and Q8_0. deltaw must
//! generate exactly the greedy tokens transformers generates on the same weights (for Q8_0,
//! the dequantized ones), and tokenize as the Hugging Face tokenizer of the same vocabulary.
//!
//! Greedy tokens are compared exactly: the fixture records the smallest gap between the best
//! and second-best logit over the generated steps (`min_margin`, ≥ 0.005 in every case), far
//! above the ~1e-5 by which f32 logits of two implementations differ at these sizes.

use deltaw_tensor::gguf::GgufFile;
use deltaw_tensor::{quant, DType, Device, QuantType};
use deltaw_transformer::gguf::{export_gguf, unpermute_rows, GgufModel, GgufQuant, GgufVocab};
use deltaw_transformer::{
    named_parameters, ChatTemplate, GenerateOptions, LlamaConfig, Message, Tokenizer, WeightDtype,
};
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

/// A model folder in the temp dir: the files of `tests/fixtures/llama/<model>` and the tokenizer
/// files of `tests/fixtures/chat/<tokenizer>`.
fn model_folder(model: &str, tokenizer: &str) -> PathBuf {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let dir = std::env::temp_dir().join(format!("deltaw-gguf-export-{model}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for src in [fixtures.join("llama").join(model), fixtures.join("chat").join(tokenizer)] {
        for entry in std::fs::read_dir(src).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_file() {
                std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
            }
        }
    }
    dir
}

#[test]
fn exported_tokenizer_metadata_encodes_as_the_folder() {
    let chat = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/chat");
    let texts = ["Hello world", "  two  spaces\nand a line", "héllo 你好 <s>x</s>", "<|im_start|>user\nhi<|im_end|>"];
    for name in ["mistral", "qwen2", "llama3"] {
        let folder = Tokenizer::from_dir(chat.join(name)).unwrap();
        let vocab = GgufVocab::from_tokenizer_dir(&chat.join(name)).unwrap();
        assert_eq!(vocab.model, if name == "mistral" { "llama" } else { "gpt2" });
        let back = vocab.tokenizer("x.gguf").unwrap();
        for text in texts {
            assert_eq!(back.encode(text).unwrap(), folder.encode(text).unwrap(), "{name}: {text:?}");
        }
        assert_eq!(back.config().chat_template, folder.config().chat_template, "{name}");
    }
}

/// Largest |difference| of the two models' logits on one prompt, over the largest |logit|.
fn logit_gap(folder: &Path, gguf: &Path) -> f32 {
    let reference = deltaw_transformer::load_causal_lm(folder, &Device::Cpu).unwrap();
    let lm = GgufModel::load(gguf, &Device::Cpu, WeightDtype::F32).unwrap();
    let ids = deltaw_tensor::Tensor::from_vec(vec![1i32, 50, 300, 7, 99, 4], (1, 6), &Device::Cpu).unwrap();
    let a: Vec<f32> = reference.output(&ids, None).value().to_vec();
    let b: Vec<f32> = lm.model.output(&ids, None).value().to_vec();
    let scale = a.iter().map(|x| x.abs()).fold(0.0, f32::max);
    a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max) / scale
}

/// Every parameter of the model loaded from `gguf` equals the folder's, rounded as `quant`
/// stores matrices (f16, or Q8_0 quantized and dequantized by llama.cpp's arithmetic); vectors
/// stay f32. Exact: the same values, whatever the file's layout was on the way.
fn assert_weights_round_trip(folder: &Path, gguf: &Path, quant: GgufQuant) {
    let reference = deltaw_transformer::load_causal_lm(folder, &Device::Cpu).unwrap();
    let lm = GgufModel::load(gguf, &Device::Cpu, WeightDtype::F32).unwrap();
    let got: std::collections::BTreeMap<String, Vec<f32>> =
        named_parameters(lm.model.as_ref()).into_iter().map(|(k, v)| (k, v.value().to_vec())).collect();
    let want = named_parameters(reference.as_ref());
    assert_eq!(got.len(), want.len());
    for (key, var) in want {
        let t = var.value().to_dtype(DType::F32).unwrap();
        let w: Vec<f32> = t.to_vec();
        let rounded = match (t.rank(), quant) {
            (1, _) => w,
            // A row that is not whole Q8_0 blocks (Qwen2's width 48) is written f16 instead.
            (_, GgufQuant::F16) => t.to_dtype(DType::F16).unwrap().to_dtype(DType::F32).unwrap().to_vec(),
            (_, GgufQuant::Q8_0) if t.dims()[1] % 32 != 0 => {
                t.to_dtype(DType::F16).unwrap().to_dtype(DType::F32).unwrap().to_vec()
            }
            (_, GgufQuant::Q8_0) => {
                let mut back = vec![0.0; w.len()];
                quant::dequantize(QuantType::Q8_0, &quant::quantize(QuantType::Q8_0, &w).unwrap(), &mut back);
                back
            }
            _ => unreachable!("only f16 and q8_0 here"),
        };
        assert!(got[&key] == rounded, "{key}: the loaded weight is not the folder's rounded as {quant:?}");
    }
}

#[test]
fn export_writes_files_that_load_back_as_the_same_model() {
    // Mistral (written as `llama`: q/k permuted on the way out, un-permuted on the way in) and
    // Qwen2 (biases, not permuted). Weights are compared exactly; the f16 logits besides,
    // relative to the largest: f16 keeps 11 significant bits (2^-11 ≈ 5e-4 relative per
    // weight): measured 3e-7 for Mistral (bf16 weights, exact in f16) and 7.6e-4 for Qwen2
    // (f32 weights); 2e-3 allows that and fails on a misplaced row (gaps of order 1).
    for (model, tokenizer) in [("mistral_bf16_shards", "mistral"), ("qwen2_bias_gqa3", "qwen2")] {
        let dir = model_folder(model, tokenizer);
        for quant in [GgufQuant::F16, GgufQuant::Q8_0] {
            let out = dir.join(format!("{quant:?}.gguf"));
            let report = export_gguf(&dir, &out, quant).unwrap();
            let fell_back = model.starts_with("qwen2") && quant == GgufQuant::Q8_0;
            assert_eq!(!report.fallbacks.is_empty(), fell_back, "{model}: {report:?}");
            // The Mistral fixture's sliding window (6) has no GGUF key: the report says so.
            let windowed = report.notes.iter().any(|n| n.contains("sliding_window 6"));
            assert_eq!(windowed, model.starts_with("mistral"), "{model}: {report:?}");
            // One token per embedding row, as llama.cpp requires: the fixtures' 512 rows hold
            // fewer tokens, padded with unused [PAD{i}] entries as llama.cpp's converter does.
            let file = GgufFile::open(&out).unwrap();
            let tokens = file.metadata().get_str_array("tokenizer.ggml.tokens").unwrap();
            assert_eq!(tokens.len(), 512, "{model}");
            assert_eq!(tokens[511], "[PAD511]", "{model}");
            assert_weights_round_trip(&dir, &out, quant);
        }
        let gap = logit_gap(&dir, &dir.join("F16.gguf"));
        assert!(gap < 2e-3, "{model}: f16 logits differ by {gap} of the largest");
        // Q4_K needs rows of 256: these tiny widths fall back to f16, and the report says so.
        let report = export_gguf(&dir, &dir.join("q4km.gguf"), GgufQuant::Q4KM).unwrap();
        assert!(report.fallbacks.iter().any(|n| n == "blk.0.attn_q.weight"), "{report:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn a_llama3_rope_travels_as_rope_freqs_and_reads_back_as_the_same_scaling() {
    // llama.cpp keeps Llama 3's rope bands as one factor per frequency (`rope_freqs.weight`);
    // the export writes them, the reader fits the llama3 parameters back.
    let dir = model_folder("llama3_gqa4", "llama3");
    let out = dir.join("f16.gguf");
    export_gguf(&dir, &out, GgufQuant::F16).unwrap();
    let folder = LlamaConfig::from_dir(&dir).unwrap().rope().unwrap();
    let file = GgufFile::open(&out).unwrap();
    let factors = deltaw_transformer::gguf::rope_freqs(&file).unwrap().expect("a rope_freqs.weight tensor");
    assert_eq!(factors, folder.freq_factors().unwrap());
    let lm = GgufModel::load(&out, &Device::Cpu, WeightDtype::F32).unwrap();
    let config = lm.model.config_json();
    assert_eq!(config["rope_scaling"]["rope_type"], "llama3", "{config}");
    let back = LlamaConfig::from_json(config, &out).unwrap().rope().unwrap();
    for (a, b) in back.inv_freq(256).iter().zip(folder.inv_freq(256)) {
        assert!((a - b).abs() <= 1e-6 * b, "frequencies {a} and {b}");
    }
    // The same model: f16 logits within 2e-3 of the largest, as for the other families.
    let gap = logit_gap(&dir, &out);
    assert!(gap < 2e-3, "f16 logits differ by {gap} of the largest");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_file_without_a_usable_tokenizer_still_loads_as_a_model() {
    // Benchmark files carry `tokenizer.ggml.model = "none"` and are driven by token ids:
    // `gguf::load_causal_lm` reads the model alone, the same weights `GgufModel::load` reads.
    let dir = model_folder("qwen2_bias_gqa3", "qwen2");
    let full = dir.join("q8.gguf");
    export_gguf(&dir, &full, GgufQuant::Q8_0).unwrap();
    let file = GgufFile::open(&full).unwrap();
    let mut w = deltaw_tensor::gguf::GgufWriter::new();
    for (key, value) in file.metadata().iter().filter(|(k, _)| !k.starts_with("tokenizer.")) {
        w.add_metadata(key, value.clone()).unwrap();
    }
    w.add_metadata("tokenizer.ggml.model", deltaw_tensor::gguf::GgufValue::String("none".into())).unwrap();
    for info in file.tensor_infos() {
        w.add_tensor(&info.name, &file.tensor(&info.name, &Device::Cpu).unwrap()).unwrap();
    }
    let bare = dir.join("bare.gguf");
    w.write(&bare).unwrap();
    let err = GgufModel::load(&bare, &Device::Cpu, WeightDtype::Stored).err().unwrap().to_string();
    assert!(err.contains("none"), "{err}");
    let model = deltaw_transformer::gguf::load_causal_lm(&bare, &Device::Cpu, WeightDtype::Stored).unwrap();
    let reference = GgufModel::load(&full, &Device::Cpu, WeightDtype::Stored).unwrap().model;
    let ids = deltaw_tensor::Tensor::from_vec(vec![3i32, 17, 99, 4], (1, 4), &Device::Cpu).unwrap();
    let (a, b) = (model.output(&ids, None).value().to_vec(), reference.output(&ids, None).value().to_vec());
    assert_eq!(a, b, "the same weights, kept in their blocks");
    std::fs::remove_dir_all(&dir).unwrap();
}
