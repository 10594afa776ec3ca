//! Evaluation: token-weighted validation loss and perplexity, and exact match of greedy
//! answers against the references.

use super::metrics::EvalMetrics;
use crate::data::{collate, Sample, SftDataset, IGNORE_INDEX};
use crate::error::Result;
use deltaw_autograd::no_grad;
use deltaw_transformer::{causal_lm_loss, CausalLm, GenerateOptions};

/// Trained targets in a batch's loss: labels after the first position (the loss shifts by
/// one) that are not ignored.
pub(crate) fn target_count(samples: &[&Sample]) -> usize {
    samples.iter().map(|s| s.labels.iter().skip(1).filter(|&&l| l != IGNORE_INDEX).count()).sum()
}

/// Mean loss per trained token over the whole set (each batch's mean weighted by its token
/// count, so the result does not depend on the batch size).
pub(crate) fn validation_loss(model: &dyn CausalLm, val: &SftDataset, batch_size: usize, pad_id: i32) -> Result<f32> {
    let dev = model.device();
    no_grad(|| {
        let (mut sum, mut count) = (0.0f64, 0usize);
        for batch in val.batches(batch_size, None, 0) {
            let n = target_count(&batch);
            if n == 0 {
                continue;
            }
            let b = collate(&batch, pad_id, &dev)?;
            let logits = model.output(&b.input_ids, Some(&b.attention_mask));
            let loss = causal_lm_loss(&logits, &b.labels).value().to_vec()[0];
            sum += loss as f64 * n as f64;
            count += n;
        }
        Ok((sum / count.max(1) as f64) as f32)
    })
}

/// A sample split into its prompt (everything before the first trained token) and its first
/// answer (the contiguous run of trained tokens that follows, EOS included).
pub fn prompt_and_answer(sample: &Sample) -> Option<(&[i32], &[i32])> {
    let start = sample.labels.iter().position(|&l| l != IGNORE_INDEX)?;
    let len = sample.labels[start..].iter().take_while(|&&l| l != IGNORE_INDEX).count();
    Some((&sample.input_ids[..start], &sample.input_ids[start..start + len]))
}

/// Greedy answer for one sample's prompt, at most as long as its reference, stopping at EOS.
pub fn greedy_answer(model: &dyn CausalLm, prompt: &[i32], max_new: usize, eos_id: i32) -> Vec<i32> {
    let room = model.max_positions().saturating_sub(prompt.len());
    let options = GenerateOptions { eos_token_ids: vec![eos_id], ..GenerateOptions::greedy(max_new.min(room)) };
    if prompt.is_empty() || options.max_new_tokens == 0 {
        return Vec::new();
    }
    model.generate(prompt, &options)
}

/// Fraction of the first `limit` samples whose greedy answer equals the reference exactly.
pub fn exact_match(model: &dyn CausalLm, samples: &[Sample], limit: usize, eos_id: i32) -> f32 {
    let scored: Vec<bool> = samples
        .iter()
        .filter_map(prompt_and_answer)
        .take(limit)
        .map(|(prompt, answer)| greedy_answer(model, prompt, answer.len(), eos_id) == answer)
        .collect();
    scored.iter().filter(|&&ok| ok).count() as f32 / scored.len().max(1) as f32
}

/// Validation loss, perplexity and (when `exact_match_samples > 0`) exact match.
pub(crate) fn evaluate(
    model: &dyn CausalLm,
    val: &SftDataset,
    step: usize,
    batch_size: usize,
    (pad_id, eos_id): (i32, i32),
    exact_match_samples: usize,
) -> Result<EvalMetrics> {
    let val_loss = validation_loss(model, val, batch_size, pad_id)?;
    let em = (exact_match_samples > 0).then(|| exact_match(model, &val.samples, exact_match_samples, eos_id));
    Ok(EvalMetrics { step, val_loss, val_perplexity: val_loss.exp(), exact_match: em })
}
