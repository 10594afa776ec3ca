//! BERT against transformers: the tiny random `BertModel` in `fixtures/tiny_bert` (made by
//! `fixtures/models.py`) on a right-padded batch with a sentence pair (token types 0 and 1).
//! Every hidden state, the pooler output, a scalar loss and every parameter's gradient must
//! match `models.safetensors`; a mismatch names the first layer that diverges. It runs on
//! each device of `deltaw_tests::devices()`, failures prefixed by the device.

use deltaw_autograd::Var;
use deltaw_tensor::Device;
use deltaw_tests::{check_close, on_each_device, Case, Fixtures, Tol};
use deltaw_transformer::{Bert, Model, PoolingConfig, PoolingMode, SentenceEmbedder};
use std::path::PathBuf;

/// As for GPT-2: a float64 reference, our f32 through two post-norm layers (eps 1e-12, so
/// rstd amplifies rounding in rows of small variance a little more), gradients summed over
/// the batch.
const MODEL: Tol = Tol { name: "MODEL", abs: 2e-5, rel: 1e-4 };

#[test]
fn bert_hidden_states_pooler_and_gradients_match_transformers() {
    let fixtures = Fixtures::load("models.safetensors");
    on_each_device(|dev| {
        let case = fixtures.cases().into_iter().find(|c| c.name == "bert_forward.batch2_padded");
        check_bert(&case.expect("bert_forward case").on(dev));
    });
}

fn check_bert(case: &Case) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures").join("tiny_bert");
    let model = Bert::from_dir(&dir, case.device()).unwrap_or_else(|e| panic!("loading tiny_bert: {e}"));
    let out = model.forward(
        &case.operand("input_ids"),
        Some(&case.operand("token_type_ids")),
        Some(&case.operand("attention_mask")),
    );
    // The fixture's scalar: Σ last_hidden_state·dout + Σ pooler_output·dout_pooler.
    let dot = |v: &Var, role: &str| v.mul(&Var::constant(case.operand(role))).sum_all();
    let loss = dot(&out.last_hidden_state, "dout").add(&dot(&out.pooler_output, "dout_pooler"));

    let mut checks: Vec<(String, Var)> =
        out.hidden_states.iter().enumerate().map(|(i, h)| (format!("hidden_{i}"), h.clone())).collect();
    checks.push(("pooler_output".into(), out.pooler_output.clone()));
    checks.push(("loss".into(), loss.clone()));
    for (role, actual) in &checks {
        let (actual, expected) = (actual.value(), case.stored(role));
        assert_eq!(actual.dims(), expected.dims(), "{role}: shape");
        if let Err(report) = check_close(&actual.to_vec(), &expected.to_vec(), MODEL) {
            panic!("first divergence from transformers at {role}: {report}");
        }
    }

    let grads = loss.backward().expect("backward");
    let mut failures = Vec::new();
    for param in model.parameters() {
        let name = param.name().expect("named parameter").to_string();
        let expected = case.stored(&format!("grad/{name}"));
        let actual = grads.get(&param).unwrap_or_else(|| panic!("no gradient for {name}"));
        if let Err(report) = check_close(&actual.to_vec(), &expected.to_vec(), MODEL) {
            failures.push(format!("grad of {name}: {report}"));
        }
    }
    assert!(failures.is_empty(), "{} gradients differ:\n{}", failures.len(), failures.join("\n"));
}

/// Text to sentence embeddings (tokenize, BERT, CLS + max + mean pooling, L2) on each device
/// gives the CPU's embeddings, in batches of 3 (so two padded widths) as in one pass.
#[test]
fn sentence_embeddings_agree_across_devices() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures").join("tiny_bert");
    let texts = ["the cat sat", "a dog", "the dog sat on the mat", "cat"];
    let pooling = PoolingConfig { modes: vec![PoolingMode::Cls, PoolingMode::Max, PoolingMode::Mean], normalize: true };
    let embed = |dev: &Device, batch_size: usize| {
        let mut embedder = SentenceEmbedder::from_dir(&dir, dev).unwrap_or_else(|e| panic!("loading tiny_bert: {e}"));
        embedder.pooling = pooling.clone();
        embedder.batch_size = batch_size;
        let embeddings = embedder.embed(&texts).expect("embed"); // (4, 3·32)
        assert_eq!((embeddings.dims(), embeddings.device()), (&[4, 96][..], dev.clone()));
        embeddings.to_vec()
    };
    let reference = embed(&Device::Cpu, 32);
    on_each_device(|dev| {
        if let Err(report) = check_close(&embed(dev, 3), &reference, MODEL) {
            panic!("embeddings differ from the CPU's in one pass: {report}");
        }
    });
}
