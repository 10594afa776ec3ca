//! Gradient checkpointing changes memory, not results: with each layer checkpointed
//! (`CausalLm::set_gradient_checkpointing`), the loss and every gradient are the same bits as
//! without, for LoRA on a Llama fixture (adapters on all seven projections, dropout on, so the
//! masks must replay) and for full fine-tuning of GPT-2 (dropout everywhere, a tied embedding
//! that both the checkpointed blocks' outside and the head read). On each device.

use deltaw_autograd::{train_mode, Grads, Var};
use deltaw_lora::{Lora, LoraConfig, TargetModules};
use deltaw_tensor::{Device, Seed, Tensor};
use deltaw_tests::on_each_device;
use deltaw_transformer::{causal_lm_loss, CausalLm, Gpt2, Gpt2Config, Llama, Model};
use std::path::PathBuf;

fn ids(dev: &Device, vocab: usize) -> Tensor {
    let ids: Vec<i32> = (0..2 * 12).map(|i| ((i * 7919 + 11) % vocab) as i32).collect();
    Tensor::from_vec(ids, (2, 12), dev).unwrap()
}

/// Loss and gradients of one train-mode step (dropout seeded), checkpointing as `on` says.
fn step(model: &mut dyn CausalLm, params: &[Var], ids: &Tensor, on: bool) -> (Vec<f32>, Vec<Vec<f32>>) {
    model.set_gradient_checkpointing(on);
    let (loss, grads): (Var, Grads) = train_mode(5, || {
        let loss = causal_lm_loss(&model.output(ids, None), ids);
        let checkpoints = loss.graph().nodes.iter().filter(|n| n.op == "checkpoint").count();
        assert_eq!(checkpoints, if on { model.num_layers() } else { 0 }, "checkpointed layers");
        let grads = loss.backward().expect("backward");
        (loss, grads)
    });
    let grads = params.iter().map(|p| grads.get(p).unwrap_or_else(|| panic!("no gradient for {p:?}")).to_vec());
    (loss.value().to_vec(), grads.collect())
}

#[track_caller]
fn assert_same(what: &str, plain: (Vec<f32>, Vec<Vec<f32>>), checkpointed: (Vec<f32>, Vec<Vec<f32>>)) {
    assert_eq!(plain.0, checkpointed.0, "{what}: the loss changed with checkpointing");
    assert_eq!(plain.1.len(), checkpointed.1.len());
    for (i, (a, b)) in plain.1.iter().zip(&checkpointed.1).enumerate() {
        assert!(a.iter().any(|&g| g != 0.0), "{what}: parameter {i} got a zero gradient");
        assert_eq!(a, b, "{what}: parameter {i}'s gradient changed with checkpointing");
    }
}

#[test]
fn llama_lora_gradients_are_unchanged_by_checkpointing() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/llama/llama3_gqa4");
    on_each_device(|dev| {
        let mut model = Llama::from_dir(&dir, dev).unwrap_or_else(|e| panic!("{e}"));
        let config = LoraConfig {
            r: 4,
            lora_alpha: 8.0,
            lora_dropout: 0.1,
            target_modules: TargetModules::parse("all-linear"),
            use_rslora: false,
        };
        let lora = Lora::inject(&mut model, config, Seed(3)).expect("inject");
        // B starts at zero, which would leave A without gradient: give B values.
        for p in lora.parameters() {
            let v = p.value();
            p.set_value(Tensor::rand(v.dims().to_vec(), Seed(9), dev).sub_scalar(0.5));
        }
        let params = lora.parameters();
        let ids = ids(dev, model.vocab_size());
        let plain = step(&mut model, &params, &ids, false);
        let checkpointed = step(&mut model, &params, &ids, true);
        assert_same("llama LoRA", plain, checkpointed);
    });
}

#[test]
fn gpt2_full_gradients_are_unchanged_by_checkpointing() {
    on_each_device(|dev| {
        let mut config = Gpt2Config::new(96, 16, 32, 3, 4).unwrap();
        (config.embd_pdrop, config.attn_pdrop, config.resid_pdrop) = (0.1, 0.1, 0.1);
        let mut model = Gpt2::init(config, Seed(1), dev);
        let params: Vec<Var> = model.parameters();
        let ids = ids(dev, model.vocab_size());
        let plain = step(&mut model, &params, &ids, false);
        let checkpointed = step(&mut model, &params, &ids, true);
        assert_same("gpt2 full", plain, checkpointed);
    });
}
