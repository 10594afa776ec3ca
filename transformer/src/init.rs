//! A GPT-2 initialised from scratch, for pretraining: the same weights layout as a loaded
//! checkpoint, so everything downstream (training, LoRA, saving, generation) is shared.

use crate::config::Gpt2Config;
use crate::error::{Error, Result};
use crate::gpt2::Gpt2;
use crate::module::FreshInit;
use deltaw_tensor::{Device, Seed};
use std::path::PathBuf;

impl Gpt2Config {
    /// A GPT-2 config built in code (`model_type` "gpt2", GELU tanh, eps 1e-5, MLP 4·C, no
    /// dropout: small models trained from scratch learn faster without it, as in nanoGPT).
    ///
    /// # Errors
    /// When `n_embd` is not divisible by `n_head` or a size is zero.
    pub fn new(vocab_size: usize, n_positions: usize, n_embd: usize, n_layer: usize, n_head: usize) -> Result<Self> {
        let bad = |message: String| Err(Error::Config { path: PathBuf::from("<config built in code>"), message });
        if [vocab_size, n_positions, n_embd, n_layer, n_head].contains(&0) {
            return bad("every size must be at least 1".into());
        }
        if !n_embd.is_multiple_of(n_head) {
            return bad(format!("n_embd {n_embd} is not divisible by n_head {n_head}"));
        }
        let json = serde_json::json!({
            "model_type": "gpt2", "vocab_size": vocab_size, "n_positions": n_positions, "n_embd": n_embd,
            "n_layer": n_layer, "n_head": n_head, "n_inner": null, "architectures": ["GPT2LMHeadModel"],
            "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5, "tie_word_embeddings": true,
            "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0,
        });
        let mut config: Gpt2Config = serde_json::from_value(json.clone()).expect("every field is given");
        config.raw = json;
        Ok(config)
    }
}

impl Gpt2 {
    /// A randomly initialised GPT-2, as transformers' `GPT2PreTrainedModel._init_weights`:
    /// embeddings and linear weights `N(0, 0.02²)`, the residual projections (`c_proj`)
    /// `N(0, (0.02 / √(2·n_layer))²)` so the residual stream's variance does not grow with
    /// depth, biases 0, layer norms weight 1 and bias 0. Seeded: the same seed gives the same
    /// model on any thread count. Built by the same constructor as a loaded checkpoint.
    pub fn init(config: Gpt2Config, seed: Seed, device: &Device) -> Gpt2 {
        Gpt2::build(config, &mut FreshInit::new(seed, device))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Model;
    use deltaw_tensor::Tensor;

    #[test]
    fn init_is_seeded_and_shaped_like_a_checkpoint() {
        let config = Gpt2Config::new(50, 16, 32, 2, 4).unwrap();
        let a = Gpt2::init(config.clone(), Seed(1), &Device::Cpu);
        let b = Gpt2::init(config, Seed(1), &Device::Cpu);
        assert_eq!(a.parameters().len(), 2 + 2 * 12 + 2);
        for (p, q) in a.parameters().iter().zip(b.parameters()) {
            assert_eq!(p.value().to_vec(), q.value().to_vec(), "{:?}", p.name());
        }
        let w = a.h[0].mlp.fc.weight.value().to_vec();
        let std = (w.iter().map(|x| x * x).sum::<f32>() / w.len() as f32).sqrt();
        assert!((std - 0.02).abs() < 0.002, "std {std}");
        let ids = Tensor::from_vec(vec![1i32, 2, 3], (1, 3), &Device::Cpu).unwrap();
        assert_eq!(a.forward(&ids, None).logits.dims(), vec![1, 3, 50]);
        assert!(Gpt2Config::new(50, 16, 30, 2, 4).is_err());
    }
}
