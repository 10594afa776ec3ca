//! LoRA on every Llama linear against Python PEFT 0.21.2: the adapter in `fixtures/lora_llama`
//! (made by `fixtures/lora.py` on `fixtures/llama/llama3_gqa4`, targets q/k/v/o and
//! gate/up/down in both layers) loads here and gives PEFT's logits and loss within the issue's
//! 1e-5, and every lora_A / lora_B gradient; merging gives PEFT's merged weights for all 14
//! layers and the same outputs; unmerging restores W0; an adapter saved here has PEFT's keys
//! and config and reloads identically. On each device.

use deltaw_lora::Lora;
use deltaw_tensor::{safetensors, Device, Tensor};
use deltaw_tests::{check_close, on_each_device, Tol};
use deltaw_transformer::{causal_lm_loss, named_parameters, Llama, Model};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Logits and loss against PEFT's: the issue's round-trip bound. PEFT's own float32 run is
/// 3.0e-6 from the float64 reference (in the fixture's metadata), so 1e-5 leaves room for our
/// f32 summation order but not for a missed or mis-scaled adapter (which moves logits by 3).
const PEFT_BOUND: Tol = Tol { name: "PEFT_BOUND", abs: 1e-5, rel: 0.0 };
/// Gradients and merged weights: the model fixtures' f32-vs-float64 bound (two layers,
/// gradients summed over the batch).
const MODEL: Tol = Tol { name: "MODEL", abs: 2e-5, rel: 1e-4 };
/// Merged vs adapter outputs, both ours in f32: PEFT's own f32 merge moved its logits by
/// 3.9e-6; the issue's bound.
const MERGED: Tol = Tol { name: "MERGED", abs: 1e-5, rel: 0.0 };
/// Merge then unmerge: `(W0 + Δ) - Δ` in f32 is exact to one rounding of |W0 + Δ| ≲ 2.
const ROUND_TRIP: Tol = Tol { name: "ROUND_TRIP", abs: 1e-6, rel: 0.0 };

const TARGETS: [&str; 7] = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name)
}

fn base(dev: &Device) -> Llama {
    Llama::from_dir(fixture("llama").join("llama3_gqa4"), dev).unwrap_or_else(|e| panic!("llama3_gqa4: {e}"))
}

/// `lora.safetensors`' tensors of the `llama` case, without the `llama.` prefix.
fn reference() -> BTreeMap<String, Tensor> {
    let all = safetensors::load(fixture("lora.safetensors"), &Device::Cpu).unwrap_or_else(|e| panic!("{e}"));
    all.into_iter().filter_map(|(k, t)| k.strip_prefix("llama.").map(|k| (k.to_string(), t))).collect()
}

#[track_caller]
fn check(role: &str, actual: &Tensor, expected: &Tensor, tol: Tol) {
    assert_eq!(actual.dims(), expected.dims(), "{role}: shape");
    if let Err(report) = check_close(&actual.to_vec(), &expected.to_vec(), tol) {
        panic!("{role} differs from PEFT: {report}");
    }
}

/// The value of the parameter named `key` (a checkpoint key).
fn weight(model: &Llama, key: &str) -> Tensor {
    let found = named_parameters(model).into_iter().find(|(n, _)| n == key);
    found.unwrap_or_else(|| panic!("no parameter {key}")).1.value()
}

#[test]
fn llama_lora_on_every_linear_matches_peft_in_logits_loss_grads_and_merge() {
    let r = reference();
    on_each_device(|dev| check_against_peft(&r, dev));
}

fn check_against_peft(r: &BTreeMap<String, Tensor>, dev: &Device) {
    let mut model = base(dev);
    let mut lora = Lora::load_peft(&mut model, fixture("lora_llama"), dev).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(lora.modules.len(), 2 * TARGETS.len(), "every linear of both layers");
    let on = |key: &str| r[key].to_device(dev).unwrap();
    let (ids, mask) = (on("input_ids"), on("attention_mask"));
    let logits = model.forward(&ids, Some(&mask)).logits;
    let loss = causal_lm_loss(&logits, &on("labels"));
    check("logits", &logits.value(), &r["logits"], PEFT_BOUND);
    check("loss", &loss.value(), &r["loss"], PEFT_BOUND);

    let grads = loss.backward().unwrap();
    let params = lora.parameters();
    let expected = r.keys().filter(|k| k.starts_with("grad.")).count();
    assert_eq!(params.len(), expected, "one gradient per lora_A / lora_B");
    for p in &params {
        let key = p.name().expect("named by its PEFT key");
        let grad = grads.get(p).unwrap_or_else(|| panic!("no gradient for {key}"));
        check(&format!("grad of {key}"), grad, &r[&format!("grad.{key}")], MODEL);
    }
    for p in model.parameters() {
        assert!(grads.get(&p).is_none(), "frozen {} got a gradient", p.name().unwrap_or_default());
    }

    let w0 = weight(&model, "model.layers.1.mlp.down_proj.weight");
    let report = lora.merge(&mut model);
    assert!(report.max_weight_error < 1e-6, "{report}");
    let merged = model.forward(&ids, Some(&mask)).logits.value();
    check("merged logits vs adapter logits", &merged, &logits.value(), MERGED);
    check("merged logits", &merged, &r["merged_logits"], PEFT_BOUND);
    let merged_keys: Vec<&String> = r.keys().filter(|k| k.starts_with("merged.")).collect();
    assert_eq!(merged_keys.len(), 2 * TARGETS.len(), "the fixture has every merged weight");
    for key in merged_keys {
        let name = key.strip_prefix("merged.").unwrap();
        check(&format!("merged {name}"), &weight(&model, name), &r[key], MODEL);
    }
    lora.unmerge(&mut model);
    check("W0 after merge + unmerge", &weight(&model, "model.layers.1.mlp.down_proj.weight"), &w0, ROUND_TRIP);
    check("logits after unmerge", &model.forward(&ids, Some(&mask)).logits.value(), &logits.value(), MERGED);
}

/// Saved here, the adapter has PEFT's keys (`base_model.model.model.layers.0.self_attn.
/// q_proj.lora_A.weight`...), bit-identical tensors, PEFT's config fields, and reloads to the
/// same logits.
#[test]
fn llama_adapter_saved_here_has_peft_keys_and_reloads_identically() {
    let dev = Device::Cpu;
    let mut model = base(&dev);
    let lora = Lora::load_peft(&mut model, fixture("lora_llama"), &dev).unwrap();
    let dir = std::env::temp_dir().join(format!("deltaw-lora-llama-save-{}", std::process::id()));
    lora.save_peft(&dir, "tests/fixtures/llama/llama3_gqa4", model.model_type()).unwrap();

    let ours = safetensors::load(dir.join("adapter_model.safetensors"), &dev).unwrap();
    let peft = safetensors::load(fixture("lora_llama").join("adapter_model.safetensors"), &dev).unwrap();
    assert_eq!(ours.keys().collect::<Vec<_>>(), peft.keys().collect::<Vec<_>>(), "PEFT's key set");
    assert!(peft.contains_key("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"));
    for (k, t) in &peft {
        assert_eq!(ours[k].to_vec(), t.to_vec(), "{k} round-trips bit for bit");
    }
    let text = std::fs::read_to_string(dir.join("adapter_config.json")).unwrap();
    let config: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(config["peft_type"], "LORA");
    assert_eq!(config["task_type"], "CAUSAL_LM");
    assert_eq!(config["fan_in_fan_out"], false, "Llama's linears are (out, in)");
    assert_eq!((config["r"].as_u64(), config["lora_alpha"].as_f64()), (Some(4), Some(8.0)));
    let mut targets: Vec<&str> =
        config["target_modules"].as_array().expect("a list").iter().map(|v| v.as_str().unwrap()).collect();
    targets.sort();
    let mut expected = TARGETS.to_vec();
    expected.sort();
    assert_eq!(targets, expected);

    let mut again = base(&dev);
    Lora::load_peft(&mut again, &dir, &dev).unwrap();
    let ids = Tensor::from_vec(vec![1i32, 57, 300, 2, 511], (1, 5), &dev).unwrap();
    assert_eq!(model.forward(&ids, None).logits.value().to_vec(), again.forward(&ids, None).logits.value().to_vec());
    std::fs::remove_dir_all(&dir).ok();
}
