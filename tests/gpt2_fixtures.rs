//! GPT-2 against transformers: the tiny random model in `fixtures/tiny_gpt2` (made by
//! `fixtures/models.py`) on a right-padded batch of two. Every hidden state, the logits, the
//! shifted LM loss and every parameter's gradient must match `models.safetensors`; a
//! mismatch names the first layer that diverges. Every model test runs on each device of
//! `deltaw_tests::devices()` (the CPU, and the GPU where there is an adapter), failures
//! prefixed by the device.

use deltaw_tensor::{Device, Tensor};
use deltaw_tests::{check_close, on_each_device, Case, Fixtures, Tol};
use deltaw_transformer::{causal_lm_loss, CausalLm, GenerateOptions, Gpt2, Model};
use std::path::PathBuf;

/// The reference ran in float64; our f32 forward through two blocks (layer norms, a softmax,
/// matmuls with K ≤ 128) differs by a few e-6 of values of order 1, and gradients, which sum
/// over the batch, by a few e-5 relative.
const MODEL: Tol = Tol { name: "MODEL", abs: 2e-5, rel: 1e-4 };

fn tiny_gpt2(dev: &Device) -> Gpt2 {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures").join("tiny_gpt2");
    Gpt2::from_dir(&dir, dev).unwrap_or_else(|e| panic!("loading tiny_gpt2: {e}"))
}

/// An i32 `(1, T)` batch of `ids` on `dev`.
fn row(ids: Vec<i32>, dev: &Device) -> Tensor {
    let t = ids.len();
    Tensor::from_vec(ids, (1, t), dev).unwrap()
}

#[test]
fn gpt2_forward_loss_and_gradients_match_transformers() {
    let fixtures = Fixtures::load("models.safetensors");
    on_each_device(|dev| {
        let case = fixtures.cases().into_iter().find(|c| c.name == "gpt2_forward.batch2_padded");
        check_gpt2_forward_and_gradients(&case.expect("gpt2_forward case").on(dev));
    });
}

fn check_gpt2_forward_and_gradients(case: &Case) {
    let model = tiny_gpt2(case.device());
    let ids = case.operand("input_ids");
    let out = model.forward(&ids, Some(&case.operand("attention_mask")));
    let loss = causal_lm_loss(&out.logits, &case.operand("labels"));

    // In forward order, so the first failure is the first layer that diverges.
    let n = out.hidden_states.len();
    let mut checks: Vec<(String, Tensor)> =
        out.hidden_states[..n - 1].iter().enumerate().map(|(i, h)| (format!("hidden_{i}"), h.value())).collect();
    checks.push(("block_out_last".into(), out.last_block.value()));
    checks.push((format!("hidden_{}", n - 1), out.hidden_states[n - 1].value()));
    checks.push(("logits".into(), out.logits.value()));
    checks.push(("loss".into(), loss.value()));
    for (role, actual) in &checks {
        let expected = case.stored(role);
        assert_eq!(actual.dims(), expected.dims(), "{role}: shape");
        if let Err(report) = check_close(&actual.to_vec(), &expected.to_vec(), MODEL) {
            panic!("first divergence from transformers at {role}: {report}");
        }
    }

    let grads = loss.backward().expect("backward");
    let mut failures = Vec::new();
    for param in model.parameters() {
        let name = format!("transformer.{}", param.name().expect("named parameter"));
        let expected = case.stored(&format!("grad/{name}"));
        let actual = grads.get(&param).unwrap_or_else(|| panic!("no gradient for {name}"));
        if let Err(report) = check_close(&actual.to_vec(), &expected.to_vec(), MODEL) {
            failures.push(format!("grad of {name}: {report}"));
        }
    }
    assert!(failures.is_empty(), "{} gradients differ:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn checkpoint_problems_are_reported_by_name() {
    on_each_device(check_checkpoint_problems);
}

fn check_checkpoint_problems(dev: &Device) {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures").join("tiny_gpt2");
    let tag = if dev.is_gpu() { "gpu" } else { "cpu" };
    let dir = std::env::temp_dir().join(format!("deltaw-gpt2-bad-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(src.join("config.json"), dir.join("config.json")).unwrap();
    let mut tensors = deltaw_tensor::safetensors::load(src.join("model.safetensors"), &Device::Cpu).unwrap();
    tensors.remove("transformer.ln_f.bias");
    tensors.insert("transformer.wpe.weight".into(), Tensor::zeros((3, 3), &Device::Cpu));
    tensors.insert("transformer.extra".into(), Tensor::zeros(1, &Device::Cpu));
    deltaw_tensor::safetensors::save(tensors.iter().map(|(k, v)| (k.as_str(), v)), None, dir.join("model.safetensors"))
        .unwrap();
    let err = Gpt2::from_dir(&dir, dev).err().expect("a bad checkpoint must not load").to_string();
    for needle in [
        "'transformer.ln_f.bias' is missing",
        "'transformer.wpe.weight' has shape (3, 3)",
        "'transformer.extra' is unexpected",
    ] {
        assert!(err.contains(needle), "{err}");
    }
    std::fs::write(dir.join("config.json"), r#"{"model_type": "bert"}"#).unwrap();
    let err = Gpt2::from_dir(&dir, dev).err().expect("wrong config").to_string();
    assert!(err.contains("config.json: invalid config"), "{err}");
    std::fs::remove_dir_all(dir).ok();
}

/// Greedy decoding reproduces transformers' `generate(do_sample=False)` token for token over
/// 32 new tokens, with the KV cache and without it; the fixture records the smallest top-2
/// logit gap along the way (≥ 0.03), far above f32 noise.
#[test]
fn greedy_generation_matches_transformers_with_and_without_cache() {
    let fixtures = Fixtures::load("models.safetensors");
    on_each_device(|dev| {
        let model = tiny_gpt2(dev);
        for case in fixtures.cases().iter().filter(|c| c.name.starts_with("gpt2_generate.prompt")) {
            let prompt = case.stored("input_ids").to_vec_i32();
            let expected = case.stored("output_ids").to_vec_i32();
            for use_cache in [true, false] {
                let max_new_tokens = case.int("max_new_tokens") as usize;
                let options = GenerateOptions { use_cache, ..GenerateOptions::greedy(max_new_tokens) };
                let new = model.generate(&prompt, &options);
                assert_eq!([prompt.clone(), new].concat(), expected, "{} (use_cache {use_cache})", case.name);
            }
        }
    });
}

#[test]
fn sampling_is_seeded_and_top_k_1_is_greedy() {
    on_each_device(check_sampling);
}

fn check_sampling(dev: &Device) {
    let model = tiny_gpt2(dev);
    let prompt = [5, 17, 42];
    let sample = |seed| {
        let options = GenerateOptions { temperature: 1.0, top_p: Some(0.9), seed, ..GenerateOptions::greedy(12) };
        model.generate(&prompt, &options)
    };
    assert_eq!(sample(7), sample(7), "the same seed must give the same tokens");
    let top1 = GenerateOptions { temperature: 0.7, top_k: Some(1), seed: 3, ..GenerateOptions::greedy(12) };
    assert_eq!(model.generate(&prompt, &top1), model.generate(&prompt, &GenerateOptions::greedy(12)));
    let eos = model.generate(&prompt, &GenerateOptions::greedy(1))[0];
    let stop = GenerateOptions { eos_token_ids: vec![eos], ..GenerateOptions::greedy(12) };
    assert_eq!(model.generate(&prompt, &stop), vec![eos], "generation stops at eos");
    let penalised = GenerateOptions { repetition_penalty: 1.5, ..GenerateOptions::greedy(12) };
    assert_eq!(model.generate(&prompt, &penalised).len(), 12);
}

/// The folder's byte-level BPE `tokenizer.json` gives the prompt ids transformers used, and
/// decodes them back to the text.
#[test]
fn tokenizer_reproduces_the_prompt_ids() {
    let fixtures = Fixtures::load("models.safetensors");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures").join("tiny_gpt2");
    let tokenizer = deltaw_transformer::Tokenizer::from_dir(&dir).expect("tokenizer.json");
    for case in fixtures.cases().iter().filter(|c| c.name.starts_with("gpt2_generate.prompt")) {
        let text = case.params["prompt"].as_str().expect("prompt text");
        let ids = tokenizer.encode(text).expect("encode");
        assert_eq!(ids, case.stored("input_ids").to_vec_i32(), "{}", case.name);
        assert_eq!(tokenizer.decode(&ids).expect("decode"), text);
    }
    assert!(deltaw_transformer::Tokenizer::from_dir("/no/such/dir").is_err());
}

/// Batched generation reproduces transformers' `generate` on both prompts left-padded into one
/// batch (position ids from the mask, padded keys hidden), token for token, with the KV cache
/// and without it: each row's new ids are the fixture's, and its padded row is the fixture's.
#[test]
fn batched_left_padded_generation_matches_transformers() {
    let fixtures = Fixtures::load("models.safetensors");
    let cases = fixtures.cases();
    let case = cases.iter().find(|c| c.name == "gpt2_generate.batch2_left_padded").expect("batch case");
    on_each_device(|dev| check_batched_generation(case, &tiny_gpt2(dev)));
}

fn check_batched_generation(case: &Case, model: &Gpt2) {
    let (ids, mask) = (case.stored("input_ids"), case.stored("attention_mask"));
    let (b, t) = (ids.dims()[0], ids.dims()[1]);
    let expected = case.stored("output_ids");
    let width = expected.dims()[1];
    let (ids, mask, expected) = (ids.to_vec_i32(), mask.to_vec_i32(), expected.to_vec_i32());
    let prompts: Vec<Vec<i32>> =
        (0..b).map(|r| (0..t).filter(|&j| mask[r * t + j] == 1).map(|j| ids[r * t + j]).collect()).collect();
    assert!(prompts[0].len() != prompts[1].len(), "the case must actually pad a row");
    let eos = case.int("eos_id") as i32;
    for use_cache in [true, false] {
        let options = GenerateOptions {
            eos_token_ids: vec![eos],
            use_cache,
            ..GenerateOptions::greedy(case.int("max_new_tokens") as usize)
        };
        let new = model.generate_batch(&prompts, &options).expect("valid prompts");
        for r in 0..b {
            let row = [&ids[r * t..(r + 1) * t], new[r].as_slice()].concat();
            assert_eq!(row, &expected[r * width..(r + 1) * width], "row {r} (use_cache {use_cache})");
        }
    }
    let too_long = GenerateOptions::greedy(64);
    let err = model.generate_batch(&prompts, &too_long).expect_err("over n_positions").to_string();
    assert!(err.contains("prompt 0") && err.contains("64"), "{err}");
}

/// A left-padded row run through `forward_with_positions` (positions from the mask) gives, at
/// its real positions, the logits of the same prompt alone.
#[test]
fn left_padded_forward_with_mask_positions_matches_the_unpadded_row() {
    on_each_device(check_left_padded_forward);
}

fn check_left_padded_forward(dev: &Device) {
    let model = tiny_gpt2(dev);
    let alone = row(vec![5, 17, 42], dev);
    let padded = row(vec![0, 0, 5, 17, 42], dev);
    let mask = row(vec![0, 0, 1, 1, 1], dev);
    let positions = deltaw_transformer::position_ids_from_mask(&mask);
    assert_eq!(positions.device(), *dev, "positions stay on the mask's device");
    assert_eq!(positions.to_vec_i32(), vec![1, 1, 0, 1, 2]);
    let expected = model.forward(&alone, None).logits.value().to_vec();
    let logits = model.forward_with_positions(&padded, Some(&mask), &positions).logits.value();
    let actual = logits.narrow(1, 2, 3).contiguous().to_vec();
    assert!(actual.iter().all(|x| x.is_finite()));
    if let Err(report) = check_close(&actual, &expected, Tol::MATMUL) {
        panic!("padded vs alone: {report}");
    }
}

/// Prompts from outside are checked, not trusted: each error names the numbers and the limit.
#[test]
fn try_generate_refuses_bad_prompts_with_the_limit_named() {
    on_each_device(check_try_generate);
}

fn check_try_generate(dev: &Device) {
    let model = tiny_gpt2(dev);
    let options = GenerateOptions::greedy(4);
    let err = |prompt: &[i32], options: &GenerateOptions| model.try_generate(prompt, options).unwrap_err().to_string();
    assert!(err(&[], &options).contains("empty"));
    let e = err(&[5, 120], &options);
    assert!(e.contains("id 120") && e.contains("vocabulary of 120"), "{e}");
    let e = err(&[5; 10], &GenerateOptions::greedy(60));
    assert!(e.contains("10 prompt tokens + 60 new tokens = 70") && e.contains("64"), "{e}");
    assert_eq!(model.try_generate(&[5, 17], &options).unwrap(), model.generate(&[5, 17], &options));
}

/// Each row of a batch yields what `generate` yields for it alone: sampled with its row seed
/// (row 0: the seed itself), and stopping at eos on its own while the other row goes on.
#[test]
fn batch_rows_sample_and_stop_as_they_would_alone() {
    on_each_device(check_batch_rows);
}

fn check_batch_rows(dev: &Device) {
    let model = tiny_gpt2(dev);
    let prompts = vec![vec![5, 17, 42, 8, 9], vec![33, 2]];
    let sampled = GenerateOptions { temperature: 0.9, top_k: Some(20), seed: 11, ..GenerateOptions::greedy(10) };
    let batch = model.generate_batch(&prompts, &sampled).unwrap();
    let row1 = GenerateOptions { seed: 11u64.wrapping_add(0x9E37_79B9_7F4A_7C15), ..sampled.clone() };
    assert_eq!(batch, vec![model.generate(&prompts[0], &sampled), model.generate(&prompts[1], &row1)]);

    let eos = model.generate(&prompts[1], &GenerateOptions::greedy(1))[0];
    let stop = GenerateOptions { eos_token_ids: vec![eos], ..GenerateOptions::greedy(10) };
    let batch = model.generate_batch(&prompts, &stop).unwrap();
    assert_eq!(batch[1], vec![eos], "row 1 stops at once");
    assert_eq!(batch[0], model.generate(&prompts[0], &stop), "row 0 goes on as alone");
    assert!(model.generate_batch(&[], &stop).unwrap().is_empty());
}

#[test]
fn dropout_acts_only_in_train_mode_and_is_seeded() {
    on_each_device(check_dropout);
}

fn check_dropout(dev: &Device) {
    let model = tiny_gpt2(dev); // config.json: resid, embd and attn dropout 0.1
    assert_eq!(model.config.resid_pdrop, 0.1);
    let ids = row(vec![5, 9, 2, 44, 17, 3], dev);
    let eval = model.forward(&ids, None).logits.value().to_vec();
    let train = |seed| deltaw_autograd::train_mode(seed, || model.forward(&ids, None).logits.value().to_vec());
    assert_ne!(train(1), eval, "dropout changes the logits in train mode");
    assert_eq!(train(1), train(1), "the same seed gives the same masks");
    assert_ne!(train(1), train(2));
    assert_eq!(model.forward(&ids, None).logits.value().to_vec(), eval, "eval mode is deterministic");
    // Generation shares the training forward but never drops out, even inside train mode.
    let (prompt, greedy) = ([5, 9, 2], GenerateOptions::greedy(4));
    let in_training = deltaw_autograd::train_mode(1, || model.generate(&prompt, &greedy));
    assert_eq!(in_training, model.generate(&prompt, &greedy), "generation inside train mode");
}

/// A tensor missing or mis-shaped against a huge `config.json` size is reported by
/// `finish`, not allocated: the stand-in handed out meanwhile is one broadcast element.
#[test]
fn a_bad_tensor_of_a_huge_config_size_is_reported_not_allocated() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures").join("tiny_gpt2");
    let mut ck = deltaw_transformer::Checkpoint::load(&dir, "transformer.", &Device::Cpu).unwrap();
    let huge = [1usize << 40, 1 << 20]; // 2^60 f32s: no machine holds them
    assert_eq!(ck.take("wte.weight", &huge).dims(), huge);
    assert_eq!(ck.take("no_such.weight", &huge).dims(), huge);
    let err = ck.finish().expect_err("problems were recorded").to_string();
    assert!(
        err.contains("'transformer.wte.weight' has shape") && err.contains("'transformer.no_such.weight' is missing"),
        "{err}"
    );
}
