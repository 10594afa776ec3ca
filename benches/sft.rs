//! Shared setup of the fine-tuning step benchmarks: GPT-2 124M (random weights), a fixed
//! batch of B = 4 sequences of T = 64 tokens, and one optimizer step (forward, backward,
//! AdamW) of full fine-tuning or of LoRA r = 8 on `c_attn`, on the CPU or, with
//! `DELTAW_BENCH_DEVICE=gpu`, the GPU ([`crate::bench_device`]).

use deltaw_autograd::{AdamW, AdamWConfig, Var};
use deltaw_lora::{Lora, LoraConfig};
use deltaw_tensor::{Seed, Tensor};
use deltaw_transformer::{causal_lm_loss, Gpt2, Gpt2Config, Model};

/// B and T of the target.
pub const BATCH: usize = 4;
pub const SEQ: usize = 64;

/// Full fine-tuning or LoRA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Full,
    Lora,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "full" => Some(Mode::Full),
            "lora" => Some(Mode::Lora),
            _ => None,
        }
    }
}

/// A model, its trainable parameters and an optimizer over them.
pub struct Setup {
    pub model: Gpt2,
    pub params: Vec<Var>,
    pub opt: AdamW,
    pub ids: Tensor,
    /// Kept so the adapters live as long as the model.
    pub lora: Option<Lora>,
}

/// GPT-2 124M: V = 50257, 1024 positions, C = 768, 12 layers, 12 heads.
pub fn setup(mode: Mode) -> Setup {
    let config = Gpt2Config::new(50257, 1024, 768, 12, 12).expect("GPT-2 124M config");
    let device = crate::bench_device();
    let mut model = Gpt2::init(config, Seed(0), &device);
    let lora = (mode == Mode::Lora).then(|| {
        let config = LoraConfig { r: 8, lora_alpha: 16.0, lora_dropout: 0.0, ..LoraConfig::new("gpt2") };
        Lora::inject(&mut model, config, Seed(1)).expect("c_attn exists")
    });
    let params = lora.as_ref().map_or_else(|| model.parameters(), Lora::parameters);
    let opt = AdamW::new(params.clone(), AdamWConfig { lr: 1e-4, weight_decay: 0.0, ..Default::default() });
    let ids: Vec<i32> = (0..BATCH * SEQ).map(|i| ((i * 7919 + 11) % 50257) as i32).collect();
    let ids = Tensor::from_vec(ids, (BATCH, SEQ), &device).expect("ids");
    Setup { model, params, opt, ids, lora }
}

/// One training step; returns the loss. It runs on a worker of the CPU pool, the others kept
/// awake for a model on the CPU (`deltaw_tensor::cpu::on_pool_for`), as the trainer runs its
/// forward and backward.
pub fn step(s: &mut Setup) -> f32 {
    let device = s.ids.device();
    deltaw_tensor::cpu::on_pool_for(&device, || step_on_pool(s))
}

fn step_on_pool(s: &mut Setup) -> f32 {
    let logits = s.model.forward(&s.ids, None).logits;
    let loss = causal_lm_loss(&logits, &s.ids);
    let grads = loss.backward().expect("backward");
    let value = loss.value().to_vec()[0];
    // The graph goes before the update, as in the trainer: while it holds the parameters'
    // tensors, AdamW cannot write into their buffers and takes new ones.
    drop((logits, loss));
    s.opt.step(&grads);
    value
}
