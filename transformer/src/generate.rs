//! Text generation for any [`CausalLm`]: a KV cache so each new token costs one position's work, and
//! greedy, temperature, top-k, top-p and repetition-penalty decoding, seeded and reproducible.
//!
//! With the cache, step s feeds only the newest token: each layer appends its key and value
//! `(1, NH, 1, HS)` to the cached `(1, NH, T, HS)` ones, and the new query attends to all of
//! them (no causal mask is needed for a single query at the end).
//!
//! The logits stay on the model's device: the repetition penalty is applied there, and greedy
//! decoding takes the argmax there, so a step reads back one i32 per row. Sampling reads the
//! last position's logits `(V,)` per row and draws on the host, with a host RNG, so a seed
//! gives the same tokens on every device (up to the devices' rounding).

use crate::attention::KvCache;
use crate::error::{Error, Result};
use crate::model::{CausalLm, DecodeInput};
use deltaw_autograd::{eval_mode, no_grad};
use deltaw_tensor::{Device, Seed, Tensor};

/// How to pick each next token.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerateOptions {
    pub max_new_tokens: usize,
    /// 0 means greedy (argmax); otherwise logits are divided by it before sampling.
    pub temperature: f32,
    /// Keep only the k most likely tokens (sampling only).
    pub top_k: Option<usize>,
    /// Keep the smallest set of most likely tokens whose probability reaches p (sampling only).
    pub top_p: Option<f32>,
    /// transformers' CTRL-style penalty for tokens already present: a positive logit is
    /// divided by it, a negative one multiplied. 1.0 disables it.
    pub repetition_penalty: f32,
    /// Stop after emitting any of these tokens (Llama 3 ends a turn with `<|eot_id|>` and a
    /// text with `<|end_of_text|>`); empty: stop only at `max_new_tokens`.
    pub eos_token_ids: Vec<i32>,
    /// Stop when the decoded new text contains one of these; the text is cut before it. Only
    /// the text-level functions ([`crate::generate_text`], [`crate::generate_batch_text`]),
    /// which hold a tokenizer, can see text: the id-level `generate` ignores this field.
    pub stop_strings: Vec<String>,
    /// Seed of the sampler; the same seed and options give the same tokens.
    pub seed: u64,
    /// Use the KV cache (the default); without it every step recomputes the whole prefix.
    pub use_cache: bool,
}

impl GenerateOptions {
    /// Greedy decoding of `max_new_tokens` tokens, with the cache.
    pub fn greedy(max_new_tokens: usize) -> GenerateOptions {
        GenerateOptions {
            max_new_tokens,
            temperature: 0.0,
            top_k: None,
            top_p: None,
            repetition_penalty: 1.0,
            eos_token_ids: Vec::new(),
            stop_strings: Vec::new(),
            seed: 0,
            use_cache: true,
        }
    }
}

/// [`CausalLm::check_prompt`]: the prompt is not empty, its ids are in the vocabulary, and
/// it fits with the new tokens in the model's context.
pub(crate) fn check_prompt<M: CausalLm + ?Sized>(model: &M, prompt: &[i32], max_new_tokens: usize) -> Result<()> {
    if prompt.is_empty() {
        return Err(Error::Input("generate: the prompt is empty (it needs at least one token)".into()));
    }
    let v = model.vocab_size();
    if let Some((i, id)) = prompt.iter().enumerate().find(|(_, &id)| id < 0 || id as usize >= v) {
        return Err(Error::Input(format!(
            "generate: prompt token {i} has id {id}, outside the model's vocabulary of {v} (vocab_size)"
        )));
    }
    let limit = model.max_positions();
    if prompt.len() + max_new_tokens > limit {
        return Err(Error::Input(format!(
            "generate: {} prompt tokens + {max_new_tokens} new tokens = {} exceed the model's context of {limit} \
             positions (n_positions)",
            prompt.len(),
            prompt.len() + max_new_tokens
        )));
    }
    Ok(())
}

/// [`CausalLm::generate`]: one prompt, decoded step by step.
#[track_caller]
pub(crate) fn generate<M: CausalLm + ?Sized>(model: &M, prompt: &[i32], options: &GenerateOptions) -> Vec<i32> {
    generate_with(model, prompt, options, &mut |_| true)
}

/// [`generate`] that shows the new ids to `on_token` after every step; it returns false to
/// stop there (a stop string was written, the reader went away).
#[track_caller]
pub(crate) fn generate_with<M: CausalLm + ?Sized>(
    model: &M,
    prompt: &[i32],
    options: &GenerateOptions,
    on_token: &mut dyn FnMut(&[i32]) -> bool,
) -> Vec<i32> {
    assert!(!prompt.is_empty(), "generate: the prompt is empty");
    let limit = model.max_positions();
    assert!(
        prompt.len() + options.max_new_tokens <= limit,
        "generate: {} prompt tokens + {} new exceed the context of {limit}",
        prompt.len(),
        options.max_new_tokens
    );
    // No graph, and no dropout even inside a training scope: the cached steps and a full
    // forward must agree, and a sample drawn mid-training is the model's own answer.
    no_grad(|| {
        eval_mode(|| {
            let mut ids = prompt.to_vec();
            let mut cache = KvCache::new(model.num_layers());
            let mut logits =
                on_pool(&model.device(), || step_logits(model, &ids, options.use_cache.then_some(&mut cache))); // (1, V)
            for step in 0..options.max_new_tokens {
                let next = pick_tokens(&logits, &[ids.as_slice()], &[options], step)[0];
                ids.push(next);
                let go_on = on_token(&ids[prompt.len()..]);
                if !go_on || options.eos_token_ids.contains(&next) || step + 1 == options.max_new_tokens {
                    break;
                }
                logits = on_pool(&model.device(), || step_logits(model, &ids, options.use_cache.then_some(&mut cache)));
            }
            ids[prompt.len()..].to_vec()
        })
    })
}

/// `op` (one decoding step's forward) on a worker of the CPU pool, without a graph or dropout
/// there too, since both switches are per thread: one handover to the pool per step instead of
/// one per parallel kernel. For a model on the CPU the other workers are kept awake (no
/// sleeping and waking between the kernels); a model on a GPU leaves them asleep, since its
/// kernels do not use them ([`deltaw_tensor::cpu::on_pool_for`]).
pub(crate) fn on_pool<R: Send>(device: &Device, op: impl FnOnce() -> R + Send) -> R {
    deltaw_tensor::cpu::on_pool_for(device, || no_grad(|| eval_mode(op)))
}

/// Logits `(1, V)` of the last of `ids`, on the model's device, feeding only the ids after
/// those `cache` already holds (all of them without a cache).
fn step_logits<M: CausalLm + ?Sized>(model: &M, ids: &[i32], cache: Option<&mut KvCache>) -> Tensor {
    let dev = model.device();
    let past = cache.as_ref().map_or(0, |c| c.len());
    let t = ids.len() - past;
    let new = Tensor::from_vec(ids[past..].to_vec(), (1, t), &dev).expect("length matches");
    let positions = Tensor::from_vec((past..past + t).map(|p| p as i32).collect(), (1, t), &dev).expect("length");
    model.decode_step(&DecodeInput { ids: &new, positions: &positions, key_real: None }, cache)
}

/// The next token of every row from the last position's logits `(B, V)` (on any device):
/// `contexts[r]` is row r's prompt and tokens so far (for the repetition penalty), `options[r]`
/// its decoding options (rows differ only in their seeds). Greedy rows read back only the
/// argmax, one i32 per row; when any row samples, the logits are read back once.
pub(crate) fn pick_tokens(logits: &Tensor, contexts: &[&[i32]], options: &[&GenerateOptions], step: usize) -> Vec<i32> {
    let penalty = options[0].repetition_penalty;
    let logits = if penalty == 1.0 { logits.clone() } else { penalize(logits, contexts, penalty) };
    if options.iter().all(|o| o.temperature <= 0.0) {
        return logits.argmax(-1).to_vec_i32(); // (B,): the first maximum, as on the host
    }
    let v = logits.dims()[1];
    let values = logits.to_vec(); // (B·V)
    values.chunks(v).zip(options).map(|(row, o)| sample(row, o, step)).collect()
}

/// transformers' CTRL-style repetition penalty on the device: where token j occurs in row r's
/// context, a positive logit is divided by `penalty` and a negative one multiplied. The
/// occurrence flags `(B, V)` are built on the host and uploaded (no read back).
fn penalize(logits: &Tensor, contexts: &[&[i32]], penalty: f32) -> Tensor {
    let (b, v) = (logits.dims()[0], logits.dims()[1]);
    let mut seen = vec![0.0f32; b * v]; // row r of (B, V): 1.0 at every id of context r
    for (r, context) in contexts.iter().enumerate() {
        for &id in context.iter() {
            seen[r * v + id as usize] = 1.0;
        }
    }
    let dev = logits.device();
    let seen = Tensor::from_vec(seen, (b, v), &dev).expect("one flag per logit");
    let positive = logits.gt(&Tensor::scalar(0.0, &dev));
    let penalised = positive.where_(&logits.div_scalar(penalty), &logits.mul_scalar(penalty)); // (B, V)
    seen.where_(&penalised, logits)
}

/// Samples one token from a row's logits `(V,)`: temperature, then top-k and top-p over the
/// tokens sorted by probability, then a draw from what is kept.
fn sample(logits: &[f32], options: &GenerateOptions, step: usize) -> i32 {
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    let scaled: Vec<f32> = order.iter().map(|&i| logits[i] / options.temperature).collect();
    let max = scaled[0];
    let mut probs: Vec<f32> = scaled.iter().map(|&l| (l - max).exp()).collect();
    let total: f32 = probs.iter().sum();
    probs.iter_mut().for_each(|p| *p /= total);
    let mut keep = options.top_k.unwrap_or(probs.len()).clamp(1, probs.len());
    if let Some(p) = options.top_p {
        let mut cumulative = 0.0;
        let nucleus = probs.iter().take_while(|&&q| {
            let inside = cumulative < p;
            cumulative += q;
            inside
        });
        keep = keep.min(nucleus.count().max(1));
    }
    let kept = &probs[..keep];
    // The host RNG whatever the model's device: the same seed draws the same number everywhere.
    let u = Tensor::rand(1, Seed(options.seed.wrapping_add(step as u64)), &Device::Cpu).to_vec()[0]
        * kept.iter().sum::<f32>();
    let mut acc = 0.0;
    for (rank, &q) in kept.iter().enumerate() {
        acc += q;
        if u < acc {
            return order[rank] as i32;
        }
    }
    order[keep - 1] as i32
}
