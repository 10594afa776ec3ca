//! A GPT-2 initialised from scratch, for pretraining: the same weights layout as a loaded
//! checkpoint, so everything downstream (training, LoRA, saving, generation) is shared.

use crate::config::Gpt2Config;
use crate::error::{Error, Result};
use crate::gpt2::{Block, Gpt2};
use crate::layers::{Conv1D, LayerNorm};
use deltaw_autograd::Var;
use deltaw_tensor::{Device, Seed, Tensor};
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
    /// model on any thread count.
    pub fn init(config: Gpt2Config, seed: Seed, device: &Device) -> Gpt2 {
        let mut stream = 0u64;
        let mut normal = |dims: Vec<usize>, std: f32, name: String| {
            stream += 1;
            Var::parameter(Tensor::randn(dims, seed.derive(stream), device).mul_scalar(std)).named(name)
        };
        let (c, v, l) = (config.n_embd, config.vocab_size, config.n_layer);
        let proj_std = 0.02 / (2.0 * l as f32).sqrt();
        let wte = normal(vec![v, c], 0.02, "wte.weight".into());
        let wpe = normal(vec![config.n_positions, c], 0.02, "wpe.weight".into());
        let zeros = |n: usize, name: String| Var::parameter(Tensor::zeros(n, device)).named(name);
        let norm = |name: String| LayerNorm {
            weight: Var::parameter(Tensor::ones(c, device)).named(format!("{name}.weight")),
            bias: zeros(c, format!("{name}.bias")),
            eps: config.layer_norm_epsilon,
        };
        let mut conv = |name: String, (inp, out): (usize, usize), std: f32| Conv1D {
            weight: normal(vec![inp, out], std, format!("{name}.weight")),
            bias: zeros(out, format!("{name}.bias")),
            adapter: None,
        };
        let h = (0..l)
            .map(|i| {
                let p = |s: &str| format!("h.{i}.{s}");
                Block {
                    ln_1: norm(p("ln_1")),
                    c_attn: conv(p("attn.c_attn"), (c, 3 * c), 0.02),
                    attn_c_proj: conv(p("attn.c_proj"), (c, c), proj_std),
                    ln_2: norm(p("ln_2")),
                    c_fc: conv(p("mlp.c_fc"), (c, config.inner()), 0.02),
                    mlp_c_proj: conv(p("mlp.c_proj"), (config.inner(), c), proj_std),
                    n_head: config.n_head,
                    resid_pdrop: config.resid_pdrop,
                    attn_pdrop: config.attn_pdrop,
                }
            })
            .collect();
        let ln_f = norm("ln_f".into());
        Gpt2 { config, wte, wpe, h, ln_f }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_is_seeded_and_shaped_like_a_checkpoint() {
        let config = Gpt2Config::new(50, 16, 32, 2, 4).unwrap();
        let a = Gpt2::init(config.clone(), Seed(1), &Device::Cpu);
        let b = Gpt2::init(config, Seed(1), &Device::Cpu);
        assert_eq!(a.parameters().len(), 2 + 2 * 12 + 2);
        for (p, q) in a.parameters().iter().zip(b.parameters()) {
            assert_eq!(p.value().to_vec(), q.value().to_vec(), "{:?}", p.name());
        }
        let w = a.h[0].c_fc.weight.value().to_vec();
        let std = (w.iter().map(|x| x * x).sum::<f32>() / w.len() as f32).sqrt();
        assert!((std - 0.02).abs() < 0.002, "std {std}");
        let ids = Tensor::from_vec(vec![1i32, 2, 3], (1, 3), &Device::Cpu).unwrap();
        assert_eq!(a.forward(&ids, None).logits.dims(), vec![1, 3, 50]);
        assert!(Gpt2Config::new(50, 16, 30, 2, 4).is_err());
    }
}
