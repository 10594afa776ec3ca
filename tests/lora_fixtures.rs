//! LoRA against Python PEFT 0.21.2: the adapters in `fixtures/lora_*` (made by
//! `fixtures/lora.py` on the tiny GPT-2 and BERT) load here and give PEFT's logits, loss and
//! every lora_A / lora_B gradient; merging gives PEFT's merged weight and the same outputs;
//! unmerging restores W0; an adapter saved here has PEFT's keys and reloads identically.

use deltaw_autograd::Var;
use deltaw_lora::{Error, Lora, LoraConfig, TargetModules};
use deltaw_tensor::{safetensors, Device, Seed, Tensor};
use deltaw_tests::{check_close, Tol};
use deltaw_transformer::{causal_lm_loss, Bert, Gpt2, Model};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// As the model fixtures: PEFT ran in float64, we run f32 through two blocks.
const MODEL: Tol = Tol { name: "MODEL", abs: 2e-5, rel: 1e-4 };
/// Merged vs adapter outputs: the issue's bound. Both paths are f32 here; PEFT's own f32 merge
/// moved its logits by 4.3e-6.
const MERGED: Tol = Tol { name: "MERGED", abs: 1e-5, rel: 0.0 };
/// Merge then unmerge: `(W0 + Δ) - Δ` in f32 is exact to one rounding of |W0 + Δ| ≲ 1,
/// i.e. ≤ 6e-8; the issue's bound is 1e-6.
const ROUND_TRIP: Tol = Tol { name: "ROUND_TRIP", abs: 1e-6, rel: 0.0 };

fn fixture_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name)
}

fn reference() -> BTreeMap<String, Tensor> {
    let path = fixture_dir("lora.safetensors");
    safetensors::load(&path, &Device::Cpu).unwrap_or_else(|e| panic!("{e}")).into_iter().collect()
}

fn check(role: &str, actual: &Tensor, expected: &Tensor, tol: Tol) {
    assert_eq!(actual.dims(), expected.dims(), "{role}: shape");
    if let Err(report) = check_close(&actual.to_vec(), &expected.to_vec(), tol) {
        panic!("{role} differs from PEFT: {report}");
    }
}

fn check_lora_grads(prefix: &str, lora: &Lora, grads: &deltaw_autograd::Grads, reference: &BTreeMap<String, Tensor>) {
    let params = lora.parameters();
    let expected: Vec<&String> = reference.keys().filter(|k| k.starts_with(&format!("{prefix}.grad."))).collect();
    assert_eq!(params.len(), expected.len(), "{prefix}: one gradient per lora_A / lora_B");
    for p in &params {
        let key = p.name().expect("named by its PEFT key");
        let grad = grads.get(p).unwrap_or_else(|| panic!("no gradient for {key}"));
        check(&format!("grad of {key}"), grad, &reference[&format!("{prefix}.grad.{key}")], MODEL);
    }
}

fn gpt2_case(prefix: &str, adapter: &str) {
    let r = reference();
    let mut model = Gpt2::from_dir(fixture_dir("tiny_gpt2"), &Device::Cpu).unwrap();
    let w0 = model.h[0].attn.c_attn.weight.value();
    let mut lora = Lora::load_peft(&mut model, fixture_dir(adapter), &Device::Cpu).unwrap();
    let (ids, mask) = (&r[&format!("{prefix}.input_ids")], &r[&format!("{prefix}.attention_mask")]);
    let logits = model.forward(ids, Some(mask)).logits;
    let loss = causal_lm_loss(&logits, &r[&format!("{prefix}.labels")]);
    check("logits", &logits.value(), &r[&format!("{prefix}.logits")], MODEL);
    check("loss", &loss.value(), &r[&format!("{prefix}.loss")], MODEL);

    let grads = loss.backward().unwrap();
    check_lora_grads(prefix, &lora, &grads, &r);
    for p in model.parameters() {
        assert!(grads.get(&p).is_none(), "frozen {} got a gradient", p.name().unwrap());
    }

    let probe = |m: &Gpt2| m.forward(ids, Some(mask)).logits.value();
    let report = lora.merge_checked(&mut model, probe);
    assert!(report.max_weight_error < 1e-6, "{report}");
    let merged = model.forward(ids, Some(mask)).logits.value();
    check("merged logits vs adapter logits", &merged, &logits.value(), MERGED);
    check("merged logits", &merged, &r[&format!("{prefix}.merged_logits")], MODEL);
    let w = model.h[0].attn.c_attn.weight.value();
    check("merged c_attn weight", &w, &r[&format!("{prefix}.merged.transformer.h.0.attn.c_attn.weight")], MODEL);
    lora.unmerge(&mut model);
    check("W0 after merge + unmerge", &model.h[0].attn.c_attn.weight.value(), &w0, ROUND_TRIP);
    check("logits after unmerge", &model.forward(ids, Some(mask)).logits.value(), &logits.value(), MERGED);
}

#[test]
fn gpt2_lora_matches_peft_in_logits_loss_grads_and_merge() {
    gpt2_case("gpt2", "lora_gpt2");
}

#[test]
fn gpt2_rslora_on_every_conv1d_matches_peft() {
    gpt2_case("gpt2_rslora", "lora_gpt2_rslora");
}

#[test]
fn bert_lora_matches_peft_in_hidden_states_grads_and_merge() {
    let r = reference();
    let mut model = Bert::from_dir(fixture_dir("tiny_bert"), &Device::Cpu).unwrap();
    let mut lora = Lora::load_peft(&mut model, fixture_dir("lora_bert"), &Device::Cpu).unwrap();
    let (ids, mask) = (&r["bert.input_ids"], &r["bert.attention_mask"]);
    let h = model.forward(ids, None, Some(mask)).last_hidden_state;
    check("last_hidden_state", &h.value(), &r["bert.last_hidden_state"], MODEL);
    let grads = h.mul(&Var::constant(r["bert.dout"].clone())).sum_all().backward().unwrap();
    check_lora_grads("bert", &lora, &grads, &r);
    lora.merge(&mut model);
    let merged = model.forward(ids, None, Some(mask)).last_hidden_state.value();
    check("merged vs adapter", &merged, &h.value(), MERGED);
    check("merged_last_hidden_state", &merged, &r["bert.merged_last_hidden_state"], MODEL);
    let q = model.layers[0].attention.query.weight.value();
    check("merged query weight", &q, &r["bert.merged.encoder.layer.0.attention.self.query.weight"], MODEL);
}

#[test]
fn adapter_saved_here_has_peft_keys_and_reloads_identically() {
    let mut model = Gpt2::from_dir(fixture_dir("tiny_gpt2"), &Device::Cpu).unwrap();
    let lora = Lora::load_peft(&mut model, fixture_dir("lora_gpt2_rslora"), &Device::Cpu).unwrap();
    let dir = std::env::temp_dir().join(format!("deltaw-lora-save-{}", std::process::id()));
    lora.save_peft(&dir, "tests/fixtures/tiny_gpt2", "gpt2").unwrap();

    let ours = safetensors::load(dir.join("adapter_model.safetensors"), &Device::Cpu).unwrap();
    let peft =
        safetensors::load(fixture_dir("lora_gpt2_rslora").join("adapter_model.safetensors"), &Device::Cpu).unwrap();
    assert_eq!(ours.keys().collect::<Vec<_>>(), peft.keys().collect::<Vec<_>>(), "PEFT's key set");
    for (k, t) in &peft {
        assert_eq!(ours[k].to_vec(), t.to_vec(), "{k} round-trips bit for bit");
    }
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("adapter_config.json")).unwrap()).unwrap();
    assert_eq!(config["peft_type"], "LORA");
    assert_eq!(config["task_type"], "CAUSAL_LM");
    assert_eq!(config["fan_in_fan_out"], true);
    assert_eq!(config["use_rslora"], true);
    assert_eq!(config["r"], 4);
    assert_eq!(config["lora_alpha"], 8);

    let mut again = Gpt2::from_dir(fixture_dir("tiny_gpt2"), &Device::Cpu).unwrap();
    Lora::load_peft(&mut again, &dir, &Device::Cpu).unwrap();
    let ids = Tensor::from_vec(vec![1i32, 5, 9, 2], (1, 4), &Device::Cpu).unwrap();
    assert_eq!(model.forward(&ids, None).logits.value().to_vec(), again.forward(&ids, None).logits.value().to_vec());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn injection_starts_at_the_base_model_freezes_it_and_reports_counts() {
    let mut model = Gpt2::from_dir(fixture_dir("tiny_gpt2"), &Device::Cpu).unwrap();
    let ids = Tensor::from_vec(vec![3i32, 7, 11, 2, 5], (1, 5), &Device::Cpu).unwrap();
    let base = model.forward(&ids, None).logits.value().to_vec();
    let config = LoraConfig { r: 2, lora_alpha: 4.0, lora_dropout: 0.1, ..LoraConfig::new("gpt2") };
    let lora = Lora::inject(&mut model, config, Seed(0)).unwrap();
    assert_eq!(model.forward(&ids, None).logits.value().to_vec(), base, "B = 0: the adapter adds nothing yet");
    // c_attn 32 -> 96 in 2 layers at r = 2: 2 · 2 · (32 + 96) = 512 trainable.
    let count = lora.param_count(&model);
    assert_eq!(count.trainable, 512);
    assert!(count.to_string().starts_with("trainable params: 512 || all params: "), "{count}");
    assert!(model.parameters().iter().all(|p| !p.requires_grad()), "the base is frozen");
    let a = lora.modules[0].adapter.lora_a.value().to_vec();
    let bound = 1.0 / 32f32.sqrt();
    assert!(a.iter().all(|v| v.abs() <= bound) && a.iter().any(|v| v.abs() > bound / 2.0), "Kaiming-uniform A");

    lora.remove(&mut model);
    assert!(model.parameters().iter().all(|p| p.requires_grad()), "removing unfreezes");
    assert_eq!(model.forward(&ids, None).logits.value().to_vec(), base);
}

#[test]
fn bad_targets_and_mismatched_adapters_are_clear_errors() {
    let mut model = Gpt2::from_dir(fixture_dir("tiny_gpt2"), &Device::Cpu).unwrap();
    let config = LoraConfig { target_modules: TargetModules::parse("q_proj"), ..LoraConfig::new("gpt2") };
    let err = Lora::inject(&mut model, config, Seed(0)).err().expect("no layer is called q_proj");
    assert!(matches!(err, Error::NoTarget { .. }));
    assert!(err.to_string().contains("transformer.h.0.attn.c_attn"), "{err}");
    assert!(model.parameters().iter().all(|p| p.requires_grad()), "a failed injection freezes nothing");

    // A BERT adapter does not fit GPT-2: its keys name layers GPT-2 does not have.
    let err = Lora::load_peft(&mut model, fixture_dir("lora_bert"), &Device::Cpu).err().unwrap().to_string();
    assert!(err.contains("adapter_model.safetensors") && err.contains("does not fit"), "{err}");

    let dir = std::env::temp_dir().join(format!("deltaw-lora-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(fixture_dir("lora_gpt2").join("adapter_model.safetensors"), dir.join("adapter_model.safetensors"))
        .unwrap();
    let config = std::fs::read_to_string(fixture_dir("lora_gpt2").join("adapter_config.json")).unwrap();
    std::fs::write(dir.join("adapter_config.json"), config.replace("\"r\": 4", "\"r\": 8")).unwrap();
    let err = Lora::load_peft(&mut model, &dir, &Device::Cpu).err().unwrap().to_string();
    assert!(err.contains("do not fit r = 8"), "{err}");
    std::fs::write(dir.join("adapter_config.json"), config.replace("\"use_dora\": false", "\"use_dora\": true"))
        .unwrap();
    let err = Lora::load_peft(&mut model, &dir, &Device::Cpu).err().unwrap().to_string();
    assert!(err.contains("adapter_config.json") && err.contains("DoRA"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

/// The adapter of the export checks: the tiny GPT-2 with LoRA on `c_attn` and `c_fc`
/// (r = 4, alpha 16), A from `Seed(1)` and a trained-looking B (random, not zeros).
fn exported_adapter() -> (Gpt2, Lora) {
    let mut model = Gpt2::from_dir(fixture_dir("tiny_gpt2"), &Device::Cpu).unwrap();
    let config = LoraConfig { r: 4, lora_alpha: 16.0, lora_dropout: 0.0, ..LoraConfig::new("gpt2") };
    let config = LoraConfig { target_modules: TargetModules::parse("c_attn,c_fc"), ..config };
    let lora = Lora::inject(&mut model, config, Seed(1)).unwrap();
    for (i, m) in lora.modules.iter().enumerate() {
        m.adapter
            .lora_b
            .set_value(Tensor::randn(m.adapter.lora_b.dims(), Seed(100 + i as u64), &Device::Cpu).mul_scalar(0.1));
    }
    (model, lora)
}

/// The input of `fixtures/peft_export.py`: with `DELTAW_PEFT_EXPORT=DIR` set, writes
/// [`exported_adapter`] and our logits on a batch to DIR. The script loads the adapter in
/// PEFT, checks PEFT's logits against ours, and saves PEFT's own adapter of the same weights
/// as `fixtures/peft_export/`, which the next test compares with.
#[test]
fn export_an_adapter_for_peft_check() {
    let Some(out) = std::env::var_os("DELTAW_PEFT_EXPORT").map(PathBuf::from) else { return };
    let (model, lora) = exported_adapter();
    lora.save_peft(out.join("adapter"), "tests/fixtures/tiny_gpt2", "gpt2").unwrap();
    let ids = Tensor::from_vec(vec![1i32, 17, 42, 99, 3, 64, 8, 23], (2, 4), &Device::Cpu).unwrap();
    let logits = model.forward(&ids, None).logits.value();
    safetensors::save([("input_ids", &ids), ("logits", &logits)], None, out.join("logits.safetensors")).unwrap();
}

/// The deltaw → PEFT direction in CI: the adapter saved here equals, file for file, the one
/// PEFT's `save_pretrained` wrote from the same weights (`fixtures/peft_export/`, made by
/// `fixtures/peft_export.py`): the same tensor keys, dtypes and shapes, values within 1e-6
/// (both are the same f32 numbers, so in fact equal), and the same config fields: every field
/// we write has PEFT's value, and every field PEFT writes that we leave out holds PEFT's
/// default (so omitting it means the same to PEFT).
#[test]
fn an_adapter_saved_here_matches_what_peft_saves_for_the_same_weights() {
    let (_, lora) = exported_adapter();
    let dir = std::env::temp_dir().join(format!("deltaw-peft-export-{}", std::process::id()));
    lora.save_peft(&dir, "tests/fixtures/tiny_gpt2", "gpt2").unwrap();
    let peft_dir = fixture_dir("peft_export");
    let file = "adapter_model.safetensors";
    let ours = safetensors::load(dir.join(file), &Device::Cpu).unwrap();
    let peft = safetensors::load(peft_dir.join(file), &Device::Cpu).unwrap();
    assert_eq!(ours.keys().collect::<Vec<_>>(), peft.keys().collect::<Vec<_>>(), "tensor keys");
    for (key, want) in &peft {
        let got = &ours[key];
        assert_eq!((got.dtype(), got.dims()), (want.dtype(), want.dims()), "{key}: dtype and shape");
        check(key, got, want, Tol { name: "EXPORT", abs: 1e-6, rel: 0.0 });
    }
    let read = |d: &PathBuf| -> serde_json::Map<String, serde_json::Value> {
        serde_json::from_str(&std::fs::read_to_string(d.join("adapter_config.json")).unwrap()).unwrap()
    };
    let (ours, peft) = (read(&dir), read(&peft_dir));
    for (field, value) in &ours {
        assert_eq!(Some(value), peft.get(field), "adapter_config.json field {field}: ours vs PEFT's");
    }
    // PEFT 0.21.2's defaults for the fields it writes and we do not.
    let defaults = serde_json::json!({
        "megatron_core": "megatron.core", "qalora_group_size": 16, "ensure_weight_tying": false,
        "lora_bias": false, "use_qalora": false, "loftq_config": {},
    });
    for (field, value) in peft.iter().filter(|(f, _)| !ours.contains_key(*f) && *f != "peft_version") {
        let default = defaults.get(field).cloned().unwrap_or(serde_json::Value::Null);
        assert_eq!(value, &default, "PEFT wrote {field} = {value}, which we leave out (meaning {default})");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// An adapter whose second layer does not fit fails to load and leaves the model unchanged:
/// no layer holds an adapter, the base still trains, and the outputs are the base's.
#[test]
fn a_failed_adapter_load_leaves_the_model_unchanged() {
    let mut model = Gpt2::from_dir(fixture_dir("tiny_gpt2"), &Device::Cpu).unwrap();
    let ids = Tensor::from_vec(vec![3i32, 7, 11, 2, 5], (1, 5), &Device::Cpu).unwrap();
    let base = model.forward(&ids, None).logits.value().to_vec();
    let dir = std::env::temp_dir().join(format!("deltaw-lora-half-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = fixture_dir("lora_gpt2");
    std::fs::copy(src.join("adapter_config.json"), dir.join("adapter_config.json")).unwrap();
    let mut tensors = safetensors::load(src.join("adapter_model.safetensors"), &Device::Cpu).unwrap();
    let late = "base_model.model.transformer.h.1.attn.c_attn.lora_A.weight";
    tensors.insert(late.into(), Tensor::zeros((4, 31), &Device::Cpu)); // in 31, not 32
    safetensors::save(tensors.iter().map(|(k, v)| (k.as_str(), v)), None, dir.join("adapter_model.safetensors"))
        .unwrap();
    assert!(Lora::load_peft(&mut model, &dir, &Device::Cpu).is_err(), "layer 1 does not fit");
    std::fs::remove_dir_all(&dir).ok();
    assert!(model.linear_modules_mut().iter().all(|(_, l)| l.adapter().is_none()), "no adapter was installed");
    assert!(model.parameters().iter().all(|p| p.requires_grad()), "nothing was frozen");
    assert_eq!(model.forward(&ids, None).logits.value().to_vec(), base);
}
