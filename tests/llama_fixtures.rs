//! Llama-family models against transformers: the tiny random folders in `fixtures/llama/`
//! (made by `fixtures/llama.py`): Llama 3 with GQA 4:1 and llama3 rope in the old config form,
//! Qwen2 with q/k/v bias and GQA 3:1, Qwen3 with q/k norm and head_dim ≠ hidden/heads, and
//! Mistral with bf16 weights in four shards and a sliding window. For each, on each device:
//! every hidden state in forward order (the first diverging one is named), the logits, the
//! shifted LM loss, every parameter's gradient, 32-token greedy generation with and without
//! the KV cache, and batched left-padded generation. Then the rope types against
//! transformers' `ROPE_INIT_FUNCTIONS` in both config forms, and broken shard folders.

use deltaw_tensor::{Device, Tensor};
use deltaw_tests::{check_close, on_each_device, Case, Fixtures, Tol};
use deltaw_transformer::{causal_lm_loss, named_parameters, CausalLm, GenerateOptions, Llama, LlamaConfig};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// The reference ran in float64 from the stored weights (bf16-rounded ones for Mistral, so the
/// bf16 case needs no other bound); our f32 forward through two layers (RMSNorm, rope, a
/// softmax, matmuls with K ≤ 128) differs by a few e-6 of values of order 1, and gradients,
/// which sum over the batch and the vocabulary, by a few e-5 relative: GPT-2's bound.
/// Measured on the CPU and lavapipe: at most 1.1e-5 on logits of magnitude 7 (Qwen3), every
/// role within a fifth of this budget.
const MODEL: Tol = Tol { name: "MODEL", abs: 2e-5, rel: 1e-4 };
/// Rope frequencies: transformers computes them in f32 in a few steps (a power, a division,
/// llama3's and yarn's blends), so a few roundings, 4 ulp.
const ROPE_FREQ: Tol = Tol { name: "ROPE_FREQ", abs: 0.0, rel: 4.0 * f32::EPSILON };
/// cos/sin of `p · inv_freq` for p < 80: the f32 angle is formed the same way, so only libm's
/// ulp and an ulp of inv_freq times p (80 · 6e-8 ≈ 5e-6 rad) remain.
const ROPE_TABLE: Tol = Tol { name: "ROPE_TABLE", abs: 1e-5, rel: 0.0 };

const MODEL_CASES: [&str; 4] = ["llama3_gqa4", "qwen2_bias_gqa3", "qwen3_qknorm", "mistral_bf16_shards"];

fn fixture_dir(case: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures").join("llama").join(case)
}

fn load(case: &str, dev: &Device) -> Llama {
    Llama::from_dir(fixture_dir(case), dev).unwrap_or_else(|e| panic!("loading llama/{case}: {e}"))
}

fn model_case<'a>(fixtures: &'a Fixtures, name: &str) -> Case<'a> {
    let case = fixtures.cases().into_iter().find(|c| c.name == name);
    let case = case.unwrap_or_else(|| panic!("llama.safetensors has no case {name}"));
    assert_eq!(case.op(), "causal_lm", "{name}");
    case
}

/// Every fixture case is one this file checks: a new case in llama.py cannot go untested.
#[test]
fn every_fixture_case_is_checked() {
    let fixtures = Fixtures::load("llama.safetensors");
    for case in fixtures.cases() {
        match case.op() {
            "causal_lm" => assert!(MODEL_CASES.contains(&case.name.as_str()), "unchecked case {}", case.name),
            "rope" => assert!(case.name.starts_with("rope.")),
            other => panic!("case {}: unknown op {other}", case.name),
        }
    }
}

#[test]
fn llama3_gqa4_forward_loss_and_gradients_match_transformers() {
    check_forward_on_each_device("llama3_gqa4");
}

#[test]
fn qwen2_bias_gqa3_forward_loss_and_gradients_match_transformers() {
    check_forward_on_each_device("qwen2_bias_gqa3");
}

#[test]
fn qwen3_qknorm_forward_loss_and_gradients_match_transformers() {
    check_forward_on_each_device("qwen3_qknorm");
}

#[test]
fn mistral_bf16_shards_forward_loss_and_gradients_match_transformers() {
    check_forward_on_each_device("mistral_bf16_shards");
}

fn check_forward_on_each_device(name: &str) {
    let fixtures = Fixtures::load("llama.safetensors");
    on_each_device(|dev| check_forward_and_gradients(&model_case(&fixtures, name).on(dev)));
}

fn check_forward_and_gradients(case: &Case) {
    let model = load(&case.name, case.device());
    let out = model.forward(&case.operand("input_ids"), Some(&case.operand("attention_mask")));
    let loss = causal_lm_loss(&out.logits, &case.operand("labels"));

    // In forward order, so the first failure is the first layer that diverges.
    let layers = case.int("layers") as usize;
    assert_eq!(out.hidden_states.len(), layers + 1, "{}: hidden_0 ..= hidden_{layers}", case.name);
    let mut checks: Vec<(String, Tensor)> =
        out.hidden_states.iter().enumerate().map(|(i, h)| (format!("hidden_{i}"), h.value())).collect();
    checks.push(("logits".into(), out.logits.value()));
    checks.push(("loss".into(), loss.value()));
    for (role, actual) in &checks {
        let expected = case.stored(role);
        assert_eq!(actual.dims(), expected.dims(), "{}: {role} shape", case.name);
        if let Err(report) = check_close(&actual.to_vec(), &expected.to_vec(), MODEL) {
            panic!("{}: first divergence from transformers at {role}: {report}", case.name);
        }
    }

    let grads = loss.backward().expect("backward");
    let params = named_parameters(&model);
    let ours: Vec<String> = params.iter().map(|(name, _)| format!("grad.{name}")).collect();
    let mut sorted = ours.clone();
    sorted.sort();
    assert_eq!(sorted, case.roles("grad."), "{}: parameter names are the checkpoint's keys", case.name);
    let mut failures = Vec::new();
    for (name, param) in &params {
        let expected = case.stored(&format!("grad.{name}"));
        let actual = grads.get(param).unwrap_or_else(|| panic!("{}: no gradient for {name}", case.name));
        assert_eq!(actual.dims(), expected.dims(), "{}: grad of {name} shape", case.name);
        if let Err(report) = check_close(&actual.to_vec(), &expected.to_vec(), MODEL) {
            failures.push(format!("grad of {name}: {report}"));
        }
    }
    assert!(failures.is_empty(), "{}: {} gradients differ:\n{}", case.name, failures.len(), failures.join("\n"));
}

/// Greedy decoding reproduces transformers' `generate(do_sample=False)` token for token over
/// 32 new tokens, with the KV cache (which holds only the key/value heads) and without it. The
/// fixture's prompts keep every step's top-2 logit gap ≥ 2e-3, far above f32 noise, and eos
/// (active here as there) is never generated.
#[test]
fn greedy_generation_matches_transformers_with_and_without_cache() {
    let fixtures = Fixtures::load("llama.safetensors");
    on_each_device(|dev| {
        for name in MODEL_CASES {
            let case = model_case(&fixtures, name);
            let model = load(name, dev);
            let prompt = case.stored("prompt_ids").to_vec_i32();
            for (use_cache, role) in [(true, "greedy"), (false, "greedy_nocache")] {
                let expected = case.stored(role).to_vec_i32();
                let options = GenerateOptions {
                    eos_token_ids: vec![case.int("eos_id") as i32],
                    use_cache,
                    ..GenerateOptions::greedy(expected.len() - prompt.len())
                };
                let new = model.generate(&prompt, &options);
                assert_eq!([prompt.clone(), new].concat(), expected, "{name}: {role}");
            }
        }
    });
}

/// Three prompts of 3, 5 and 7 tokens, left-padded into one batch (position ids from the mask,
/// padded keys hidden, Mistral's window counted over real positions): each row's new ids are
/// transformers', with the cache and without it.
#[test]
fn batched_left_padded_generation_matches_transformers() {
    let fixtures = Fixtures::load("llama.safetensors");
    on_each_device(|dev| {
        for name in MODEL_CASES {
            check_batched_generation(&model_case(&fixtures, name), &load(name, dev));
        }
    });
}

fn check_batched_generation(case: &Case, model: &Llama) {
    let (ids, mask) = (case.stored("batch_prompt_ids"), case.stored("batch_attention_mask"));
    let (b, t) = (ids.dims()[0], ids.dims()[1]);
    let expected = case.stored("batch_greedy");
    let width = expected.dims()[1];
    let (ids, mask, expected) = (ids.to_vec_i32(), mask.to_vec_i32(), expected.to_vec_i32());
    let prompts: Vec<Vec<i32>> =
        (0..b).map(|r| (0..t).filter(|&j| mask[r * t + j] == 1).map(|j| ids[r * t + j]).collect()).collect();
    assert!(prompts.iter().any(|p| p.len() < t), "{}: the batch must pad a row", case.name);
    for use_cache in [true, false] {
        let options = GenerateOptions {
            eos_token_ids: vec![case.int("eos_id") as i32],
            use_cache,
            ..GenerateOptions::greedy(width - t)
        };
        let new = model.generate_batch(&prompts, &options).expect("valid prompts");
        for r in 0..b {
            let row = [&ids[r * t..(r + 1) * t], new[r].as_slice()].concat();
            assert_eq!(row, &expected[r * width..(r + 1) * width], "{}: row {r} (use_cache {use_cache})", case.name);
        }
    }
}

/// The folders carry what the cases claim: the old rope form for Llama 3, shards and bf16 for
/// Mistral, a tied head for the Qwens (no `lm_head` parameter), q/k norms for Qwen3.
#[test]
fn configs_read_as_the_fixture_folders_say() {
    let llama3 = LlamaConfig::from_dir(&fixture_dir("llama3_gqa4")).unwrap();
    assert_eq!((llama3.num_attention_heads, llama3.num_kv_heads(), llama3.head_size()), (8, 2, 8));
    assert!(llama3.raw.get("rope_scaling").is_some() && llama3.raw.get("rope_parameters").is_none());
    let qwen3 = LlamaConfig::from_dir(&fixture_dir("qwen3_qknorm")).unwrap();
    assert_eq!((qwen3.hidden_size, qwen3.num_attention_heads, qwen3.head_size()), (64, 4, 24));
    let mistral = fixture_dir("mistral_bf16_shards");
    assert!(mistral.join("model.safetensors.index.json").is_file() && !mistral.join("model.safetensors").exists());
    assert_eq!(LlamaConfig::from_dir(&mistral).unwrap().sliding_window, Some(6));

    for (name, tied) in
        [("llama3_gqa4", false), ("qwen2_bias_gqa3", true), ("qwen3_qknorm", true), ("mistral_bf16_shards", false)]
    {
        let model = load(name, &Device::Cpu);
        let names: Vec<String> = named_parameters(&model).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names.iter().any(|n| n == "lm_head.weight"), !tied, "{name}: lm_head.weight");
        let has = |key: &str| names.iter().any(|n| n == key);
        assert_eq!(has("model.layers.0.self_attn.q_proj.bias"), name == "qwen2_bias_gqa3", "{name}: q bias");
        assert_eq!(has("model.layers.0.self_attn.q_norm.weight"), name == "qwen3_qknorm", "{name}: q_norm");
    }
}

// ---------------------------------------------------------------------------------------------
// Rope
// ---------------------------------------------------------------------------------------------

/// A whole `config.json` around a rope case's parameters, in the new form (`rope_parameters`)
/// or the old one (`rope_theta` at the top, the rest in `rope_scaling`).
fn rope_config_json(case: &Case, old_form: bool) -> Value {
    let c = &case.params["config"];
    let mut raw = json!({
        "model_type": "llama", "vocab_size": 512, "hidden_size": c["hidden_size"],
        "intermediate_size": 128, "num_hidden_layers": 1,
        "num_attention_heads": c["num_attention_heads"], "num_key_value_heads": c["num_attention_heads"],
        "head_dim": c["head_dim"], "max_position_embeddings": c["max_position_embeddings"],
        "rms_norm_eps": 1e-5, "hidden_act": "silu",
    });
    let mut rope = c["rope_parameters"].as_object().expect("rope_parameters").clone();
    if old_form {
        raw["rope_theta"] = rope.remove("rope_theta").expect("rope_theta");
        raw["rope_scaling"] = Value::Object(rope);
    } else {
        raw["rope_parameters"] = Value::Object(rope);
    }
    raw
}

/// Every rope type, read from both config forms, gives transformers' `inv_freq` (after the
/// dynamic update for a sequence past `max_position_embeddings`, and before it),
/// `attention_scaling`, and cos/sin tables.
#[test]
fn rope_types_match_transformers_in_both_config_forms() {
    let fixtures = Fixtures::load("llama.safetensors");
    let cases: Vec<Case> = fixtures.cases().into_iter().filter(|c| c.op() == "rope").collect();
    let kinds: Vec<&str> = cases.iter().map(|c| c.params["rope_type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["default", "dynamic", "linear", "llama3", "yarn"]);
    for case in &cases {
        for old_form in [false, true] {
            let what = format!("{} ({} form)", case.name, if old_form { "old" } else { "new" });
            let path = Path::new(&case.name).join("config.json");
            let config = LlamaConfig::from_json(rope_config_json(case, old_form), &path)
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            let rope = config.rope().unwrap_or_else(|e| panic!("{what}: {e}"));
            check_rope(case, &rope, &what);
        }
    }
}

fn check_rope(case: &Case, rope: &deltaw_transformer::Rope, what: &str) {
    let seq_len = case.int("seq_len") as usize;
    let max_pos = case.params["config"]["max_position_embeddings"].as_u64().unwrap() as usize;
    let freq = rope.inv_freq(seq_len);
    if let Err(report) = check_close(&freq, &case.stored("inv_freq").to_vec(), ROPE_FREQ) {
        panic!("{what}: inv_freq at seq_len {seq_len}: {report}");
    }
    if let Err(report) = check_close(&rope.inv_freq(max_pos), &case.stored("inv_freq_init").to_vec(), ROPE_FREQ) {
        panic!("{what}: inv_freq at max_position_embeddings: {report}");
    }
    let scaling = case.float("attention_scaling") as f32;
    assert!((rope.attention_scaling() - scaling).abs() <= 2.0 * f32::EPSILON * scaling, "{what}: attention_scaling");

    // transformers' tables are cat(half, half) (rotate-half); ours are the half.
    let positions = case.stored("position_ids").to_vec_i32();
    let p = positions.len();
    let (cos, sin) = rope.tables(&positions, (1, p), &Device::Cpu);
    let half = freq.len();
    for (role, ours) in [("cos", cos), ("sin", sin)] {
        let full = case.stored(role).to_vec();
        let expected: Vec<f32> = (0..p).flat_map(|i| full[i * 2 * half..i * 2 * half + half].to_vec()).collect();
        let second: Vec<f32> = (0..p).flat_map(|i| full[i * 2 * half + half..(i + 1) * 2 * half].to_vec()).collect();
        assert_eq!(expected, second, "{what}: the fixture's {role} repeats its half");
        if let Err(report) = check_close(&ours.to_vec(), &expected, ROPE_TABLE) {
            panic!("{what}: {role} table: {report}");
        }
    }
}

/// A rope type deltaw does not know is an error naming it and the supported ones.
#[test]
fn unknown_rope_type_is_named_with_the_supported_ones() {
    let fixtures = Fixtures::load("llama.safetensors");
    let case = fixtures.cases().into_iter().find(|c| c.name == "rope.linear").expect("rope.linear");
    let mut raw = rope_config_json(&case, false);
    raw["rope_parameters"]["rope_type"] = json!("longrope");
    let path = Path::new("longrope/config.json");
    let err = match LlamaConfig::from_json(raw, path).and_then(|c| c.rope()) {
        Ok(_) => panic!("longrope must not load"),
        Err(e) => e.to_string(),
    };
    for needle in ["longrope", "default", "linear", "dynamic", "llama3", "yarn", "longrope/config.json"] {
        assert!(err.contains(needle), "missing '{needle}' in: {err}");
    }
}

// ---------------------------------------------------------------------------------------------
// Broken shard folders
// ---------------------------------------------------------------------------------------------

/// A copy of the sharded Mistral folder in a fresh temp dir, for breaking.
fn sharded_copy(tag: &str) -> PathBuf {
    let src = fixture_dir("mistral_bf16_shards");
    let dir = std::env::temp_dir().join(format!("deltaw-llama-shards-{tag}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    dir
}

fn load_error(dir: &Path) -> String {
    match Llama::from_dir(dir, &Device::Cpu) {
        Ok(_) => panic!("{} must not load", dir.display()),
        Err(e) => e.to_string(),
    }
}

fn edit_index(dir: &Path, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) {
    let path = dir.join("model.safetensors.index.json");
    let mut index: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(index["weight_map"].as_object_mut().expect("weight_map"));
    std::fs::write(&path, serde_json::to_string_pretty(&index).unwrap()).unwrap();
}

#[test]
fn missing_shard_and_unlisted_tensor_are_named() {
    let dir = sharded_copy("missing");
    std::fs::remove_file(dir.join("model-00002-of-00004.safetensors")).unwrap();
    let err = load_error(&dir);
    assert!(err.contains("model-00002-of-00004.safetensors"), "the missing shard is named: {err}");
    std::fs::remove_dir_all(&dir).ok();

    // The index forgets a tensor that its shard still holds: the tensor is named.
    let dir = sharded_copy("unlisted");
    edit_index(&dir, |map| drop(map.remove("model.norm.weight").expect("listed")));
    let err = load_error(&dir);
    assert!(err.contains("'model.norm.weight'"), "the unlisted tensor is named: {err}");
    std::fs::remove_dir_all(&dir).ok();

    // The index puts a tensor in a shard that does not hold it: both are named.
    let dir = sharded_copy("misplaced");
    let wrong = edit_misplace(&dir);
    let err = load_error(&dir);
    assert!(err.contains("'lm_head.weight'") && err.contains(&wrong), "tensor and shard named: {err}");
    std::fs::remove_dir_all(&dir).ok();

    // The intact copy loads: the errors above come from the breakage alone.
    let dir = sharded_copy("intact");
    Llama::from_dir(&dir, &Device::Cpu).unwrap_or_else(|e| panic!("intact copy: {e}"));
    std::fs::remove_dir_all(&dir).ok();
}

/// Points `lm_head.weight` at another shard than its own; returns that shard's name.
fn edit_misplace(dir: &Path) -> String {
    let mut wrong = String::new();
    edit_index(dir, |map| {
        let own = map["lm_head.weight"].as_str().unwrap().to_string();
        wrong = map.values().map(|v| v.as_str().unwrap().to_string()).find(|s| *s != own).expect("another shard");
        map.insert("lm_head.weight".into(), json!(wrong.clone()));
    });
    wrong
}
