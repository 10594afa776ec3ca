//! Collating samples of different lengths into the `(B, T)` tensors a training step takes.

use super::dataset::Sample;
use super::template::IGNORE_INDEX;
use crate::error::Result;
use deltaw_tensor::{Device, Tensor};

/// One training batch: `(B, T)` i32 tensors, right-padded to the longest sample.
#[derive(Clone, Debug)]
pub struct Batch {
    /// Token ids; `pad_id` after each sample's end.
    pub input_ids: Tensor,
    /// 1 on tokens, 0 on padding, so attention never looks at padding.
    pub attention_mask: Tensor,
    /// Unshifted targets; -100 on padding as well as on untrained positions.
    pub labels: Tensor,
}

/// Right-pads `samples` to the longest with `pad_id` (any id: padding is masked from attention
/// and from the loss, so GPT-2's habit of padding with EOS is harmless).
///
/// # Panics
/// If `samples` is empty: there is no batch of zero samples to train on.
pub fn collate(samples: &[&Sample], pad_id: i32, device: &Device) -> Result<Batch> {
    assert!(!samples.is_empty(), "collate: no samples");
    let (b, t) = (samples.len(), samples.iter().map(|s| s.len()).max().unwrap_or(0));
    let mut input_ids = Vec::with_capacity(b * t);
    let mut attention_mask = Vec::with_capacity(b * t);
    let mut labels = Vec::with_capacity(b * t);
    for sample in samples {
        // row i of the (B, T) tensors: the sample's n tokens, then t - n of padding
        let pad = t - sample.len();
        input_ids.extend(sample.input_ids.iter().copied().chain(std::iter::repeat_n(pad_id, pad)));
        attention_mask.extend(std::iter::repeat_n(1i32, sample.len()).chain(std::iter::repeat_n(0, pad)));
        labels.extend(sample.labels.iter().copied().chain(std::iter::repeat_n(IGNORE_INDEX, pad)));
    }
    Ok(Batch {
        input_ids: Tensor::from_vec(input_ids, (b, t), device)?,
        attention_mask: Tensor::from_vec(attention_mask, (b, t), device)?,
        labels: Tensor::from_vec(labels, (b, t), device)?,
    })
}
