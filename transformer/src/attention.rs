//! Multi-head attention, written once: the mask every model builds ([`attention_mask`]), the
//! one attention entry point ([`attention`]) with an optional KV cache and dropout, and the
//! cache itself ([`KvCache`]).
//!
//! Training, cached decoding and left-padded batched decoding differ only in their inputs: how
//! many positions are new (`t`), how many are already cached (`past`), and which keys are real
//! tokens. The mask and the attention take exactly those.

use deltaw_autograd::Var;
use deltaw_tensor::{DType, Device, Tensor};

/// The attention mask, 1.0 where new query i (absolute position `past + i`) may not see key j
/// (`0 <= j < past + t`); shape `(B, 1, t, past + t)`, or `(1, 1, t, past + t)` without
/// `key_real`, or `(B, 1, 1, T)` for a bidirectional mask with padding.
///
/// - `causal`: key j is hidden when it comes later, `j > past + i`; with a `window`, also when
///   it is `window` or more positions back, `j <= past + i − window` (Mistral's sliding window).
/// - `key_real` `(B, past + t)` (any dtype, nonzero = a real token): padded keys are hidden
///   from every query, as transformers does.
/// - One exception keeps the softmax finite: a causal query that would see no key at all (a
///   leading pad of a left-padded row, whose earlier keys are pads too) sees its own slot, so
///   its output is finite and, being a pad, read by no real token. Every other row is exactly
///   the causal-and-padding mask.
///
/// # Panics
/// If `key_real` is not 2-D with `past + t` columns.
#[track_caller]
pub fn attention_mask(
    t: usize,
    past: usize,
    key_real: Option<&Tensor>,
    (causal, window): (bool, Option<usize>),
    dev: &Device,
) -> Tensor {
    let n = past + t;
    let keys = Tensor::arange(0.0, n as f32, dev).reshape((1, 1, 1, n));
    let queries = Tensor::arange(past as f32, n as f32, dev).reshape((1, 1, t, 1));
    let base = match (causal, window) {
        (false, _) => Tensor::zeros((1, 1, 1, n), dev), // (1, 1, 1, n)
        (true, None) => keys.gt(&queries),              // (1, 1, t, n)
        (true, Some(w)) => keys.gt(&queries).maximum(&keys.le(&queries.sub_scalar(w as f32))),
    };
    let Some(real) = key_real else { return base };
    assert!(
        real.rank() == 2 && real.dims()[1] == n,
        "attention_mask: key mask {:?} must be (B, {n}) for {past} cached + {t} new positions",
        real.shape()
    );
    let b = real.dims()[0];
    let real = real.to_dtype(DType::F32).expect("an i32 or float mask converts to f32");
    let padding = real.eq(&Tensor::scalar(0.0, dev)).reshape((b, 1, 1, n)); // (B, 1, 1, n)
    let hidden = base.maximum(&padding);
    if !causal {
        return hidden;
    }
    // Rows hiding every key (sum = n) get their own slot back: hidden - empty · own.
    let empty = hidden.sum(-1).eq(&Tensor::scalar(n as f32, dev)).reshape((b, 1, t, 1)); // (B, 1, t, 1)
    let own = keys.eq(&queries); // (1, 1, t, n)
    hidden.sub(&empty.mul(&own))
}

/// Per layer, the keys and values of every position so far, `(B, NH, T, HS)` (tensors:
/// decoding records no graph).
pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
}

impl KvCache {
    /// An empty cache for `n_layers` layers.
    pub fn new(n_layers: usize) -> KvCache {
        KvCache { layers: vec![None; n_layers] }
    }

    /// Layers, one slot each.
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// Positions cached so far (0 when empty).
    pub fn len(&self) -> usize {
        self.layers.first().and_then(|l| l.as_ref()).map_or(0, |(k, _)| k.dims()[2])
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// One slot per layer, in order, for the blocks to read and extend.
    pub fn slots_mut(&mut self) -> impl Iterator<Item = &mut Option<(Tensor, Tensor)>> {
        self.layers.iter_mut()
    }

    /// What each of a model's `n` layers gets: its slot of `cache`, or `None` for every layer
    /// without one (a full-sequence forward).
    ///
    /// # Panics
    /// If the cache has a slot count other than `n` (`model` names the caller).
    #[track_caller]
    pub fn layer_slots<'c>(
        cache: Option<&'c mut KvCache>,
        n: usize,
        model: &str,
    ) -> Vec<Option<&'c mut Option<(Tensor, Tensor)>>> {
        match cache {
            Some(cache) => {
                assert_eq!(
                    cache.num_layers(),
                    n,
                    "{model}: a KV cache of {} layers for {n} layers",
                    cache.num_layers()
                );
                cache.slots_mut().map(Some).collect()
            }
            None => (0..n).map(|_| None).collect(),
        }
    }
}

/// Multi-head attention over projected heads: `q` `(B, t, NH, HS)`, `k` and `v`
/// `(B, t, NKV, HS)`, with NKV dividing NH (grouped-query attention: query head h reads
/// key/value head `h / (NH/NKV)`, as transformers' `repeat_kv` orders them). Per head
/// `softmax(q kᵀ / √HS, masked) v`, heads merged back to `(B, t, NH·HS)`.
///
/// - `mask` (from [`attention_mask`]) is 1.0 where a query may not see a key, broadcastable
///   to `(B, NH, t, past + t)`.
/// - `cache`: when given, the layer's earlier keys and values `(B, NKV, past, HS)` are put
///   before the new ones, and the slot then holds all `past + t` of them: only the key/value
///   heads are stored.
/// - `dropout` acts on the attention probabilities in train mode only
///   (`deltaw_autograd::train_mode`), as transformers' `attn_dropout`. Then the probabilities
///   must be a tensor of the graph, so the steps run unfused; otherwise one fused op
///   ([`Var::attention`]) computes them with its own backward. The two agree to the bit.
///
/// # Panics
/// If the shapes do not fit (the message names them).
#[track_caller]
pub fn attention(
    (q, k, v): (&Var, &Var, &Var),
    mask: &Tensor,
    cache: Option<&mut Option<(Tensor, Tensor)>>,
    dropout: f32,
) -> Var {
    let (qd, kd) = (q.dims(), k.dims());
    let fits = q.rank() == 4 && k.rank() == 4 && k.dims() == v.dims() && qd[..2] == kd[..2] && qd[3] == kd[3];
    assert!(
        fits && kd[2] > 0 && qd[2] % kd[2] == 0,
        "attention: q {:?} needs k and v (B, t, NKV, HS) with NKV dividing its heads, got {:?} and {:?}",
        q.shape(),
        k.shape(),
        v.shape()
    );
    let (b, t, nh, hs) = (qd[0], qd[1], qd[2], qd[3]);
    let heads = |x: &Var| x.permute(&[0, 2, 1, 3]); // (B, heads, t, HS)
    let (q, mut k, mut v) = (heads(q), heads(k), heads(v));
    if let Some(slot) = cache {
        if let Some((pk, pv)) = slot.take() {
            k = Var::cat(&[&Var::constant(pk), &k], 2); // (B, NKV, past + t, HS)
            v = Var::cat(&[&Var::constant(pv), &v], 2);
        }
        *slot = Some((k.value(), v.value()));
    }
    let scale = 1.0 / (hs as f32).sqrt();
    let y = if dropout > 0.0 && deltaw_autograd::is_training() {
        let (k, v) = (repeat_kv(&k, nh), repeat_kv(&v, nh));
        let scores = q.matmul(&k.transpose(-2, -1)).mul_scalar(scale); // (B, NH, t, past + t)
        scores.masked_fill(mask, f32::NEG_INFINITY).softmax(-1).dropout(dropout).matmul(&v)
    } else {
        q.attention(&k, &v, mask, scale) // one op: softmax(q kᵀ · scale, masked) v, groups read in place
    };
    y.permute(&[0, 2, 1, 3]).reshape((b, t, nh * hs)) // (B, t, NH·HS)
}

/// `(B, NKV, S, HS)` → `(B, NH, S, HS)`, each key/value head repeated for its query group
/// (only for the unfused dropout path: the fused op reads the groups in place).
fn repeat_kv(x: &Var, nh: usize) -> Var {
    let d = x.dims();
    let (b, nkv, s, hs) = (d[0], d[1], d[2], d[3]);
    if nkv == nh {
        return x.clone();
    }
    x.unsqueeze(2).expand((b, nkv, nh / nkv, s, hs)).reshape((b, nh, s, hs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(t: usize, past: usize, real: Option<Vec<f32>>, causal: bool) -> Vec<f32> {
        let real = real.map(|r| Tensor::from_vec(r.clone(), (1, r.len()), &Device::Cpu).unwrap());
        attention_mask(t, past, real.as_ref(), (causal, None), &Device::Cpu).to_vec()
    }

    #[test]
    fn causal_mask_hides_later_keys_after_the_cached_ones() {
        assert_eq!(mask(2, 0, None, true), vec![0.0, 1.0, 0.0, 0.0]);
        assert_eq!(mask(1, 2, None, true), vec![0.0, 0.0, 0.0]); // one new query sees all three
    }

    #[test]
    fn a_leading_pad_sees_only_itself_and_real_queries_skip_pads() {
        let got = mask(3, 0, Some(vec![0.0, 1.0, 1.0]), true);
        assert_eq!(got, vec![0.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
        assert_eq!(mask(1, 2, Some(vec![0.0, 1.0, 1.0]), true), vec![1.0, 0.0, 0.0]);
    }

    #[test]
    fn a_trailing_pad_sees_the_real_keys_before_it_as_transformers() {
        let got = mask(3, 0, Some(vec![1.0, 1.0, 0.0]), true);
        assert_eq!(got, vec![0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0]);
    }

    #[test]
    fn a_sliding_window_hides_keys_window_or_more_back() {
        let got = attention_mask(3, 0, None, (true, Some(2)), &Device::Cpu).to_vec();
        assert_eq!(got, vec![0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
        let cached = attention_mask(1, 3, None, (true, Some(2)), &Device::Cpu).to_vec();
        assert_eq!(cached, vec![1.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn a_bidirectional_mask_hides_only_padding() {
        assert_eq!(mask(3, 0, Some(vec![1.0, 1.0, 0.0]), false), vec![0.0, 0.0, 1.0]);
        assert_eq!(mask(2, 0, None, false), vec![0.0, 0.0]);
    }
}
