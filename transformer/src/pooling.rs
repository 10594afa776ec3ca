//! Sentence embeddings from token states, as sentence-transformers computes them for
//! mean-pooling models such as all-MiniLM-L6-v2 (`1_Pooling` with `pooling_mode_mean_tokens`,
//! then `Normalize`).

use deltaw_tensor::{DType, Tensor};

/// Mean of the token states over the positions where `attention_mask` is 1, then L2
/// normalisation: `e = Σ_t m_t h_t / max(Σ_t m_t, 1e-9)`, `e / max(‖e‖, 1e-12)`.
/// Shapes: `hidden` `(B, T, C)`, `attention_mask` `(B, T)` (any dtype); returns `(B, C)`.
/// The clamps are sentence-transformers' (an all-padding row gives zeros, not NaN).
///
/// # Panics
/// If the mask's shape is not `hidden`'s first two dims.
#[track_caller]
pub fn mean_pool_normalize(hidden: &Tensor, attention_mask: &Tensor) -> Tensor {
    let (b, t) = (hidden.dims()[0], hidden.dims()[1]);
    assert_eq!(
        attention_mask.dims(),
        &[b, t],
        "mean_pool: mask {:?} vs hidden {:?}",
        attention_mask.shape(),
        hidden.shape()
    );
    let dev = hidden.device();
    let mask = attention_mask.to_dtype(DType::F32).expect("a 0/1 mask converts").reshape((b, t, 1)); // (B, T, 1)
    let summed = hidden.mul(&mask).sum(1); // (B, C)
    let count = mask.sum(1).maximum(&Tensor::scalar(1e-9, &dev)); // (B, 1)
    let mean = summed.div(&count);
    let norm = mean.mul(&mean).sum_keepdim(-1).sqrt().maximum(&Tensor::scalar(1e-12, &dev)); // (B, 1)
    mean.div(&norm)
}
