//! Batched generation over prompts of different lengths, left-padded as transformers does,
//! so that every row continues exactly as it would alone.
//!
//! Left padding puts every row's last real token in the last column, so one step appends one
//! column for the whole batch and one KV cache serves every row. The pads must then change
//! nothing: they are hidden as keys, and positions count real tokens only,
//! `position_ids = cumsum(attention_mask) - 1` (a pad gets 1, transformers' filler, never read).
//!
//! One trap: a leading pad's query sees no key at all (its earlier keys are pads too), and a
//! softmax over nothing is NaN, which would reach real rows through the cache as `0 · NaN`.
//! So a query always sees its own key: pad positions hold finite values that no real token reads.

use crate::attention::KvCache;
use crate::error::{Error, Result};
use crate::generate::{on_pool, pick_tokens, GenerateOptions};
use crate::model::{CausalLm, DecodeInput};
use deltaw_autograd::{eval_mode, no_grad};
use deltaw_tensor::{DType, Tensor};

/// transformers' position ids for a padded batch: per row `cumsum(attention_mask) - 1`, and 1
/// where the mask is 0. `attention_mask` is `(B, T)` (1 = token, 0 = padding, any dtype);
/// returns i32 `(B, T)` on the mask's device. For a left-padded row `[0, 0, 1, 1, 1]` that is
/// `[1, 1, 0, 1, 2]`.
///
/// The cumulative sum is a matmul with the upper-triangular ones `U[i, j] = (i <= j)`, so it
/// runs on the mask's device; counts below 2²⁴ are exact in f32.
///
/// # Panics
/// If the mask is not 2-D.
#[track_caller]
pub fn position_ids_from_mask(attention_mask: &Tensor) -> Tensor {
    assert_eq!(
        attention_mask.rank(),
        2,
        "position_ids_from_mask: mask must be (B, T), got {:?}",
        attention_mask.shape()
    );
    let (t, dev) = (attention_mask.dims()[1], attention_mask.device());
    let real = attention_mask.to_dtype(DType::F32).expect("a 0/1 mask converts to f32").ne(&Tensor::scalar(0.0, &dev));
    let idx = Tensor::arange(0.0, t as f32, &dev);
    let upper = idx.reshape((t, 1)).le(&idx.reshape((1, t))); // (T, T): U[i, j] = 1 when i <= j
    let counts = real.matmul(&upper); // (B, T): real tokens up to and including j
    real.where_(&counts.sub_scalar(1.0), &Tensor::scalar(1.0, &dev)).to_dtype(DType::I32).expect("small integers")
}

/// [`CausalLm::generate_batch`]: checks every prompt (the error names the row), then decodes
/// the left-padded batch with one KV cache.
pub(crate) fn generate_batch<M: CausalLm + ?Sized>(
    model: &M,
    prompts: &[Vec<i32>],
    options: &GenerateOptions,
) -> Result<Vec<Vec<i32>>> {
    generate_batch_with(model, prompts, options, &mut |_, _| true)
}

/// [`generate_batch`] that shows row r's new ids to `on_token(r, ids)` after every step it
/// is still running; false stops that row (a stop string was written).
pub(crate) fn generate_batch_with<M: CausalLm + ?Sized>(
    model: &M,
    prompts: &[Vec<i32>],
    options: &GenerateOptions,
    on_token: &mut dyn FnMut(usize, &[i32]) -> bool,
) -> Result<Vec<Vec<i32>>> {
    for (r, prompt) in prompts.iter().enumerate() {
        model
            .check_prompt(prompt, options.max_new_tokens)
            .map_err(|e| Error::Input(format!("prompt {r} of the batch: {e}")))?;
    }
    if prompts.is_empty() || options.max_new_tokens == 0 {
        return Ok(vec![Vec::new(); prompts.len()]);
    }
    Ok(no_grad(|| eval_mode(|| decode_batch(model, prompts, options, on_token))))
    // no graph, no dropout
}

/// The decoding loop of [`generate_batch`], on checked prompts. A finished row is fed a
/// filler id each step, marked as padding: no real token attends to it.
fn decode_batch<M: CausalLm + ?Sized>(
    model: &M,
    prompts: &[Vec<i32>],
    options: &GenerateOptions,
    on_token: &mut dyn FnMut(usize, &[i32]) -> bool,
) -> Vec<Vec<i32>> {
    let v = model.vocab_size();
    let pad = options.eos_token_ids.iter().copied().find(|&id| id >= 0 && (id as usize) < v).unwrap_or(0);
    let mut batch = PaddedBatch::left_padded(prompts, pad);
    let mut cache = KvCache::new(model.num_layers());
    let mut logits = on_pool(&model.device(), || batch_logits(model, &batch, options.use_cache.then_some(&mut cache))); // (B, V)
    let row_options: Vec<GenerateOptions> =
        (0..prompts.len()).map(|r| GenerateOptions { seed: row_seed(options.seed, r), ..options.clone() }).collect();
    let row_options: Vec<&GenerateOptions> = row_options.iter().collect();
    let mut contexts = prompts.to_vec();
    let mut finished = vec![false; prompts.len()];
    for step in 0..options.max_new_tokens {
        let mut column = vec![None; prompts.len()]; // None: filler for a finished row
        let rows: Vec<&[i32]> = contexts.iter().map(Vec::as_slice).collect();
        let picked = pick_tokens(&logits, &rows, &row_options, step); // one per row, finished ones too
        for (r, next) in picked.into_iter().enumerate() {
            if finished[r] {
                continue;
            }
            contexts[r].push(next);
            column[r] = Some(next);
            let go_on = on_token(r, &contexts[r][prompts[r].len()..]);
            finished[r] = !go_on || options.eos_token_ids.contains(&next);
        }
        if step + 1 == options.max_new_tokens || finished.iter().all(|&f| f) {
            break;
        }
        batch.push_column(&column, pad);
        logits = on_pool(&model.device(), || batch_logits(model, &batch, options.use_cache.then_some(&mut cache)));
    }
    contexts.iter().zip(prompts).map(|(all, prompt)| all[prompt.len()..].to_vec()).collect()
}

/// Logits `(B, V)` of the last column, on the model's device, feeding only the columns after
/// those `cache` already holds (every column without a cache).
fn batch_logits<M: CausalLm + ?Sized>(model: &M, batch: &PaddedBatch, cache: Option<&mut KvCache>) -> Tensor {
    let dev = model.device();
    let past = cache.as_ref().map_or(0, |c| c.len());
    let (b, t, n) = (batch.ids.len(), batch.width() - past, batch.width());
    let columns = |rows: &[Vec<i32>]| rows.iter().flat_map(|row| row[past..].iter().copied()).collect::<Vec<_>>();
    let ids = Tensor::from_vec(columns(&batch.ids), (b, t), &dev).expect("one id per slot");
    let positions = Tensor::from_vec(columns(&batch.positions), (b, t), &dev).expect("one position per slot");
    let key_real: Vec<f32> = batch.real.iter().flatten().map(|&real| f32::from(u8::from(real))).collect();
    let key_real = Tensor::from_vec(key_real, (b, n), &dev).expect("one flag per slot"); // (B, past + t)
    model.decode_step(&DecodeInput { ids: &ids, positions: &positions, key_real: Some(&key_real) }, cache)
}

/// The seed of row r: a large odd stride keeps the rows' per-step seeds (`seed + step`) apart.
fn row_seed(seed: u64, row: usize) -> u64 {
    seed.wrapping_add((row as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// Per row, every column so far: token ids, whether the slot is a real token, its position.
struct PaddedBatch {
    ids: Vec<Vec<i32>>,
    real: Vec<Vec<bool>>,
    positions: Vec<Vec<i32>>,
}

impl PaddedBatch {
    /// Prompts left-padded with `pad` to the longest; pads get position 1 (transformers').
    fn left_padded(prompts: &[Vec<i32>], pad: i32) -> PaddedBatch {
        let t = prompts.iter().map(Vec::len).max().unwrap_or(0);
        let mut batch = PaddedBatch { ids: Vec::new(), real: Vec::new(), positions: Vec::new() };
        for prompt in prompts {
            let n_pad = t - prompt.len();
            batch.ids.push(std::iter::repeat_n(pad, n_pad).chain(prompt.iter().copied()).collect());
            batch.real.push((0..t).map(|j| j >= n_pad).collect());
            batch.positions.push(std::iter::repeat_n(1, n_pad).chain(0..prompt.len() as i32).collect());
        }
        batch
    }

    fn width(&self) -> usize {
        self.ids.first().map_or(0, Vec::len)
    }

    /// Appends one column: a real token at the row's next position (its count of real
    /// tokens), or for a finished row (`None`) the filler `pad`, hidden as a key and at
    /// position 1 like the left pads.
    fn push_column(&mut self, column: &[Option<i32>], pad: i32) {
        for (r, &id) in column.iter().enumerate() {
            let next = self.real[r].iter().filter(|&&x| x).count() as i32;
            self.ids[r].push(id.unwrap_or(pad));
            self.real[r].push(id.is_some());
            self.positions[r].push(if id.is_some() { next } else { 1 });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltaw_tensor::Device;

    #[test]
    fn positions_count_real_tokens_and_pads_get_one() {
        let mask = Tensor::from_vec(vec![0i32, 0, 1, 1, 1, 1, 1, 1, 1, 1], (2, 5), &Device::Cpu).unwrap();
        assert_eq!(position_ids_from_mask(&mask).to_vec_i32(), vec![1, 1, 0, 1, 2, 0, 1, 2, 3, 4]);
    }
}
