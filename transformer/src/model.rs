//! The model interface: what the trainer, generation, LoRA injection and the CLI need from a
//! model, so GPT-2, BERT and the families to come plug in the same way and nothing above this
//! crate has to name a concrete model.

use crate::attention::KvCache;
use crate::config::ModelType;
use crate::error::Result;
use crate::generate::{self, GenerateOptions};
use crate::layers::LinearModule;
use crate::module::{self, Module};
use crate::weights::WeightDtype;
use crate::{Bert, Gpt2, Llama};
use deltaw_autograd::Var;
use deltaw_tensor::{Device, Tensor};
use std::path::Path;
use std::sync::Arc;

/// Any model: a module tree with a type, a device and a Hugging Face folder format.
pub trait Model: Module + Send + Sync {
    /// transformers' `model_type` (`"gpt2"`, `"bert"`): picks LoRA's default targets and
    /// PEFT's task type.
    fn model_type(&self) -> &'static str;
    /// The module transformers puts the model under in its checkpoints and PEFT in adapter
    /// keys (`"transformer"` for GPT-2's `GPT2LMHeadModel`), or `""` when keys are bare.
    fn key_prefix(&self) -> &'static str;
    /// Where the parameters live.
    fn device(&self) -> Device;
    /// V, the rows of the token embedding.
    fn vocab_size(&self) -> usize;
    /// The longest sequence the model can place (rows of its position table).
    fn max_positions(&self) -> usize;
    /// The model's main output for i32 `input_ids` `(B, T)` at positions `0..T`: logits
    /// `(B, T, V)` for a causal LM, the last hidden state `(B, T, C)` for an encoder.
    /// `attention_mask` (1 = token, 0 = padding, any dtype) hides padded keys.
    fn output(&self, input_ids: &Tensor, attention_mask: Option<&Tensor>) -> Var;
    /// The model's `config.json` as it should be saved: the file it was read from, with the
    /// typed fields' current values.
    fn config_json(&self) -> serde_json::Value;

    /// Writes `dir/config.json` and the weights as transformers' `save_pretrained` does
    /// (`model.safetensors`, or shards and an index above 5 GB), every file atomically; `dir`
    /// is created if needed.
    ///
    /// # Errors
    /// When a file cannot be written (the message names it).
    fn save_dir(&self, dir: &Path) -> Result<()> {
        crate::save::save_folder(self, dir, self.config_json(), crate::save::DEFAULT_MAX_SHARD_BYTES)
    }
    /// [`Model::save_dir`] with shards of at most `max_shard_bytes` (one file when the
    /// weights fit).
    ///
    /// # Errors
    /// When a file cannot be written (the message names it).
    fn save_dir_sharded(&self, dir: &Path, max_shard_bytes: u64) -> Result<()> {
        crate::save::save_folder(self, dir, self.config_json(), max_shard_bytes)
    }

    /// Every parameter, named by its checkpoint key (without [`Model::key_prefix`]).
    fn parameters(&self) -> Vec<Var> {
        module::named_parameters(self).into_iter().map(|(_, p)| p).collect()
    }
    /// Every linear layer with its module path as transformers names it
    /// (`transformer.h.0.attn.c_attn`), which is also the path PEFT writes in adapter keys.
    fn linear_modules_mut(&mut self) -> Vec<(String, &mut dyn LinearModule)> {
        let prefix = self.key_prefix();
        module::linear_modules_mut(self, prefix)
    }
}

/// The new positions of one decoding step.
pub struct DecodeInput<'a> {
    /// i32 `(B, t)`: the new tokens.
    pub ids: &'a Tensor,
    /// i32 `(B, t)`: their positions.
    pub positions: &'a Tensor,
    /// `(B, past + t)`, nonzero where a key is a real token (`None`: all are); `past` is the
    /// positions the cache holds (0 without one).
    pub key_real: Option<&'a Tensor>,
}

/// A decoder that predicts the next token: what training and generation need. Its
/// [`Model::output`] is the logits `(B, T, V)`.
pub trait CausalLm: Model {
    /// Layers, one KV cache slot each.
    fn num_layers(&self) -> usize;
    /// Gradient checkpointing (transformers' `gradient_checkpointing_enable`): a recorded
    /// forward keeps only each layer's input and runs the layer again in backward
    /// ([`deltaw_autograd::checkpoint`]). About a third more compute per step for activation
    /// memory of one layer instead of all; gradients are unchanged. Off by default.
    fn set_gradient_checkpointing(&mut self, on: bool);
    /// Logits `(B, V)` of the last new position, on the model's device, feeding only the new
    /// positions when `cache` holds the earlier ones (and extending it). It runs the training
    /// forward's blocks, so the caller picks the mode: generation wraps it in `no_grad` and
    /// `eval_mode` (no graph, no dropout).
    ///
    /// # Panics
    /// If `cache` has a slot count other than [`CausalLm::num_layers`].
    fn decode_step(&self, input: &DecodeInput, cache: Option<&mut KvCache>) -> Tensor;

    /// Checks that `prompt` can be continued by `max_new_tokens` tokens: it is not empty,
    /// every id is inside the vocabulary, and prompt + new tokens fit in the context.
    ///
    /// # Errors
    /// [`crate::Error::Input`] naming the numbers and the limit they break.
    fn check_prompt(&self, prompt: &[i32], max_new_tokens: usize) -> Result<()> {
        generate::check_prompt(self, prompt, max_new_tokens)
    }
    /// Continues `prompt` (token ids) and returns only the new ids.
    ///
    /// # Panics
    /// If the prompt is empty or prompt + new tokens exceed the context; use
    /// [`CausalLm::try_generate`] for prompts from outside.
    #[track_caller]
    fn generate(&self, prompt: &[i32], options: &GenerateOptions) -> Vec<i32> {
        generate::generate(self, prompt, options)
    }
    /// [`CausalLm::generate`] for inputs from outside: checks the prompt first.
    ///
    /// # Errors
    /// An empty prompt, an id outside the vocabulary, or prompt + new tokens over the context.
    fn try_generate(&self, prompt: &[i32], options: &GenerateOptions) -> Result<Vec<i32>> {
        self.check_prompt(prompt, options.max_new_tokens)?;
        Ok(self.generate(prompt, options))
    }
    /// Continues every prompt of a batch at once and returns each row's new ids (up to and
    /// including the first of `eos_token_ids`, after which the row stops). Rows are left-padded to the
    /// longest prompt, positions come from the mask ([`crate::position_ids_from_mask`]) and one
    /// KV cache holds every row, so row r yields what [`CausalLm::generate`] yields for it
    /// alone: the same tokens when greedy, and when sampling the tokens drawn with seed
    /// `options.seed + r·0x9E3779B97F4A7C15`. The repetition penalty sees a row's own tokens.
    ///
    /// # Errors
    /// A prompt that [`CausalLm::check_prompt`] refuses; the message names the row.
    fn generate_batch(&self, prompts: &[Vec<i32>], options: &GenerateOptions) -> Result<Vec<Vec<i32>>> {
        crate::generate_batch::generate_batch(self, prompts, options)
    }
}

/// `layer(x)` as one checkpointed op ([`deltaw_autograd::checkpoint`]): what a decoder runs per
/// layer under [`CausalLm::set_gradient_checkpointing`]. `layer` owns what it reads (a cheap
/// clone of the layer, the masks), since backward runs it again.
pub(crate) fn checkpointed(x: &Var, layer: impl Fn(&Var) -> Var + Send + Sync + 'static) -> Var {
    deltaw_autograd::checkpoint(std::slice::from_ref(x), Arc::new(move |xs: &[Var]| layer(&xs[0])))
}

/// transformers' causal LM loss: mean cross-entropy of `logits[:, :-1]` `(B, T, V)` against
/// `labels[:, 1:]` (i32 `(B, T)`), skipping -100.
///
/// Computed over all `B·T` rows of the logits, as they lie, against the labels shifted left
/// by one with -100 at each row's last position (which predicts nothing): the same rows count,
/// and neither the `(B, T-1, V)` slice of the logits nor its gradient padded back to
/// `(B, T, V)` is ever copied (each is B·T·V floats: 148 MiB at B·T = 256 with a 152k vocab).
#[track_caller]
pub fn causal_lm_loss(logits: &Var, labels: &Tensor) -> Var {
    let dims = logits.dims();
    let (b, t, v) = (dims[0], dims[1], dims[2]);
    assert_eq!(labels.dims(), &[b, t], "causal_lm_loss: labels {:?} for logits {:?}", labels.shape(), logits.shape());
    // On the labels' device, no read-back: each row's labels 1..T, then -100.
    let ignored = Tensor::from_vec(vec![-100i32; b], (b, 1), &labels.device()).expect("B ignored labels");
    let targets = Tensor::cat(&[&labels.narrow(1, 1, t - 1), &ignored], 1).reshape(b * t);
    logits.reshape((b * t, v)).cross_entropy(&targets, -100)
}

/// Loads the decoder in a Hugging Face folder, whatever its family (by `config.json`'s
/// `model_type`).
///
/// # Errors
/// A missing or malformed folder, or a model type that is not a decoder (the message names
/// it and the supported ones).
pub fn load_causal_lm(dir: impl AsRef<Path>, device: &Device) -> Result<Box<dyn CausalLm>> {
    load_causal_lm_with(dir, device, WeightDtype::F32)
}

/// [`load_causal_lm`], holding the weights as `dtype` says: [`WeightDtype::Stored`] keeps a
/// bf16/f16 base in its dtype, frozen (inference, LoRA).
///
/// # Errors
/// As [`load_causal_lm`].
pub fn load_causal_lm_with(dir: impl AsRef<Path>, device: &Device, dtype: WeightDtype) -> Result<Box<dyn CausalLm>> {
    let dir = dir.as_ref();
    match ModelType::from_dir(dir)? {
        ModelType::Gpt2 => Ok(Box::new(Gpt2::from_dir_with(dir, device, dtype)?)),
        ModelType::Llama(_) => Ok(Box::new(Llama::from_dir_with(dir, device, dtype)?)),
        other => Err(crate::Error::Input(format!(
            "{}: model_type \"{}\" is not a causal language model (supported: gpt2, llama, qwen2, qwen3, mistral)",
            dir.join("config.json").display(),
            other.as_str()
        ))),
    }
}

/// Loads the model in a Hugging Face folder, whatever its family.
///
/// # Errors
/// A missing or malformed folder, or an unsupported model type.
pub fn load_model(dir: impl AsRef<Path>, device: &Device) -> Result<Box<dyn Model>> {
    let dir = dir.as_ref();
    match ModelType::from_dir(dir)? {
        ModelType::Gpt2 => Ok(Box::new(Gpt2::from_dir(dir, device)?)),
        ModelType::Bert => Ok(Box::new(Bert::from_dir(dir, device)?)),
        ModelType::Llama(_) => Ok(Box::new(Llama::from_dir(dir, device)?)),
    }
}
