//! Causal self-attention by hand, one tensor op per step, against the fused kernel
//! (`Tensor::attention`) and the model's own `attention` (what every GPT-2 and BERT block calls),
//! then the KV-cache path of generation.
//!
//! Shapes are GPT-2 small's for the guide's batch: B = 2 sequences of T = 8 tokens, C = 768,
//! NH = 12 heads of HS = 64. The second sequence has 3 padded positions at its end.
//! Guide: docs/guide/04-attention.md.
//!
//! ```sh
//! cargo run -p deltaw-transformer --example attention_by_hand
//! ```

use deltaw_autograd::Var;
use deltaw_tensor::{Device, Seed, Tensor};
use deltaw_transformer::{attention, attention_mask};

const B: usize = 2;
const T: usize = 8;
const C: usize = 768;
const NH: usize = 12;
const HS: usize = C / NH;

/// Largest |a - b| over all elements.
fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    a.sub(b).abs().max_all().to_scalar()
}

/// Splits C into NH heads of HS and moves the head dim forward (views, no copies).
fn heads(x: &Tensor) -> Tensor {
    x.reshape((B, T, NH, HS)).permute(&[0, 2, 1, 3]) // (B, NH, T, HS)
}

/// The attention of `deltaw_transformer::attention`, written out step by step on plain tensors;
/// returns the output `(B, T, C)` and the probabilities `(B, NH, T, T)`.
fn attention_by_hand(q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor) -> (Tensor, Tensor) {
    // 1. heads
    let (q, k, v) = (heads(q), heads(k), heads(v));
    println!("  q, k, v per head          {:?}", q.dims());
    // 2. scores[b, h, i, j] = q_i · k_j / √HS
    let scores = q.matmul(&k.transpose(-2, -1)).mul_scalar(1.0 / (HS as f32).sqrt()); // (B, NH, T, T)
    println!("  scores = q kᵀ / √{HS}       {:?}", scores.dims());
    // 3. masked keys (the future, and padding) get -inf, so exp() makes them exactly 0
    let masked = scores.masked_fill(mask, f32::NEG_INFINITY);
    // 4. softmax over the keys, by hand: exp(s - max) / Σ exp(s - max)
    let shifted = masked.sub(&masked.max_keepdim(-1)).exp(); // (B, NH, T, T)
    let att = shifted.div(&shifted.sum_keepdim(-1));
    println!("  att = softmax(masked)     {:?}, rows sum to 1", att.dims());
    // 5. weighted sum of the values, heads merged back into C
    let y = att.matmul(&v); // (B, NH, T, HS)
    println!("  att v                     {:?}", y.dims());
    (y.permute(&[0, 2, 1, 3]).reshape((B, T, C)), att) // (B, T, C), (B, NH, T, T)
}

fn main() {
    let dev = Device::Cpu;
    let [q, k, v] = [1, 2, 3].map(|s| Tensor::randn((B, T, C), Seed(s), &dev));
    println!("q, k, v (B, T, C) = {:?}, NH = {NH}, HS = {HS}", q.dims());

    // 1.0 where query i may not see key j: j > i (causal), or key j is padding.
    let padding = Tensor::from_vec([[1i32; T], [1, 1, 1, 1, 1, 0, 0, 0]].concat(), (B, T), &dev).expect("B·T ids");
    let mask = attention_mask(T, 0, Some(&padding), (true, None), &dev); // (B, 1, T, T)
    let row = |b: usize, i: usize| mask.narrow(0, b, 1).narrow(2, i, 1).to_vec();
    println!("mask {:?}, 1 = hidden; query 2 of sequence 0 (causal): {:?}", mask.dims(), row(0, 2));
    println!("  query 7 of sequence 0: {:?}, of sequence 1 (3 padded keys): {:?}", row(0, 7), row(1, 7));

    println!("\nby hand:");
    let (ours, att) = attention_by_hand(&q, &k, &v, &mask);

    // The fused kernel: the same steps one head at a time, the (T, T) block in a buffer of its own.
    let fused = heads(&q).attention(&heads(&k), &heads(&v), &mask, 1.0 / (HS as f32).sqrt());
    let fused_out = fused.output.permute(&[0, 2, 1, 3]).reshape((B, T, C));
    let (d_out, d_probs) = (max_diff(&ours, &fused_out), max_diff(&att, &fused.probs));
    println!("\nby hand vs Tensor::attention (fused): output max |diff| = {d_out:.2e}, probabilities {d_probs:.2e}");
    assert!(d_out < 1e-5 && d_probs < 1e-6, "attention by hand differs from the fused kernel");

    // `attention` takes the projected heads (B, t, NH, HS) and merges them back to (B, t, C).
    let split = |x: &Tensor| Var::constant(x.reshape((B, x.dims()[1], NH, HS)));
    let (qv, kv, vv) = (split(&q), split(&k), split(&v));
    let theirs = attention((&qv, &kv, &vv), &mask, None, 0.0).value();
    let diff = max_diff(&ours, &theirs);
    println!("by hand vs attention: max |diff| = {diff:.2e}");
    assert!(diff < 1e-5, "attention by hand differs from the model's attention by {diff}");

    // Causality: changing the last token's key and value cannot change any earlier output.
    let bump = |x: &Tensor| Tensor::cat(&[&x.narrow(1, 0, T - 1), &x.narrow(1, T - 1, 1).add_scalar(5.0)], 1);
    let (kb, vb) = (split(&bump(&k)), split(&bump(&v)));
    let bumped = attention((&qv, &kb, &vb), &mask, None, 0.0).value();
    let earlier = max_diff(&bumped.narrow(1, 0, T - 1), &theirs.narrow(1, 0, T - 1));
    println!("changing position {}'s k, v moves positions 0..{} by {earlier:.1e}", T - 1, T - 1);
    assert_eq!(earlier, 0.0, "a future key leaked into an earlier position");

    // KV cache: run the first T - 1 positions, keep their keys and values (B, NH, T - 1, HS),
    // then feed only the last position. Its one query sees every key, so its mask is all zeros.
    let first = |x: &Tensor| split(&x.narrow(1, 0, T - 1).contiguous());
    let last = |x: &Tensor| split(&x.narrow(1, T - 1, 1).contiguous());
    let mut cache = None; // this layer's slot: keys and values (B, NH, positions so far, HS)
    let prefix_mask = attention_mask(T - 1, 0, None, (true, None), &dev);
    attention((&first(&q), &first(&k), &first(&v)), &prefix_mask, Some(&mut cache), 0.0);
    let cached = |c: &Option<(Tensor, Tensor)>| c.as_ref().map(|(k, _)| k.dims().to_vec()).unwrap_or_default();
    println!("\nKV cache after {} positions: keys {:?}", T - 1, cached(&cache));
    let step_mask = attention_mask(1, T - 1, None, (true, None), &dev); // (1, 1, 1, T): all zeros
    let y_last = attention((&last(&q), &last(&k), &last(&v)), &step_mask, Some(&mut cache), 0.0);
    let causal = attention_mask(T, 0, None, (true, None), &dev);
    let full = attention((&qv, &kv, &vv), &causal, None, 0.0).value().narrow(1, T - 1, 1);
    let diff = max_diff(&y_last.value(), &full);
    println!(
        "last position with the cache {:?} (keys now {:?}) vs without: max |diff| = {diff:.2e}",
        y_last.dims(),
        cached(&cache)
    );
    assert!(diff < 1e-5, "the cached step differs from the full pass by {diff}");
    println!("\nok: by hand = fused kernel = attention, causal, and the KV cache agrees");
}
