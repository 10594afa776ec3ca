//! One Llama batch by hand, each step against deltaw's own op: RMSNorm; the rotary embedding,
//! and why llama.cpp's interleaved pairs are the same model as Hugging Face's rotate-half up to
//! a row permutation of W_q and W_k; grouped-query attention; SwiGLU. Then a tiny `Llama`
//! built in code runs a forward, a loss, and a cached decode whose KV cache holds only the
//! key/value heads.
//!
//! Shapes are Qwen2.5-0.5B's for the chapter's batch: B = 2 sequences of T = 8 tokens,
//! C = 896, NH = 14 query heads sharing NKV = 2 key/value heads of HS = 64, MLP width 4864.
//! Guide: docs/guide/12-llama.md.
//!
//! ```sh
//! cargo run -p deltaw-transformer --example llama_by_hand
//! ```

use deltaw_autograd::{no_grad, Var};
use deltaw_tensor::{Device, Seed, Tensor};
use deltaw_transformer::{
    attention, attention_mask, causal_lm_loss, named_parameters, CausalLm, DecodeInput, FreshInit, KvCache, Llama,
    LlamaConfig, Rope, RopeScaling,
};
use std::path::Path;

const B: usize = 2;
const T: usize = 8;
const C: usize = 896;
const NH: usize = 14;
const NKV: usize = 2;
const HS: usize = 64;
const INNER: usize = 4864;
const EPS: f32 = 1e-6; // Qwen2.5's rms_norm_eps
const THETA: f64 = 1_000_000.0; // Qwen2.5's rope_theta

/// Tolerances, relative to the largest |expected| (see `rel_diff`).
/// Same arithmetic in the same order: the two sides may differ only if a GEMM blocks the
/// columns differently, a few ulps.
const SAME_ORDER: f32 = 1e-6;
/// The same sums taken in another order (a mean over C = 896, a dot product over HS = 64
/// with permuted terms, a softmax over 8 keys): a few ulps per term, ~1e-7 relative each.
const REORDERED: f32 = 1e-5;
/// Rotary angles `p · θᵢ` formed at positions 5 apart: cos and sin of different f32
/// arguments, each rounded to ~1 ulp of the angle (up to 12 rad here, ~1e-6 absolute).
const SHIFTED_ANGLES: f32 = 1e-5;
/// A fresh model's loss above ln V: each logit dots a unit-RMS hidden state (C = 32) with a
/// row of std 0.02 (std ~0.11; the tied head adds the input token's own row), so the softmax
/// is near uniform and the loss sits within a few hundredths of ln V.
const FRESH_LOSS_ABOVE_LN_V: f32 = 0.1;

/// max |a − b| / max |b|: a relative error that does not blow up on entries near 0.
fn rel_diff(a: &Tensor, b: &Tensor) -> f32 {
    a.sub(b).abs().max_all().to_scalar() / b.abs().max_all().to_scalar().max(f32::MIN_POSITIVE)
}

fn check(what: &str, diff: f32, tol: f32) {
    println!("  {what}: relative diff {diff:.1e} (tolerance {tol:.0e})");
    assert!(diff <= tol, "{what}: relative diff {diff} over {tol}");
}

/// (a) `x / sqrt(mean(x²) + eps) · w` over the last dim, with tensor ops; also returns `rstd`.
fn rms_norm_by_hand(x: &Tensor, w: &Tensor) -> (Tensor, Tensor) {
    let rstd = x.mul(x).mean_keepdim(-1).add_scalar(EPS).rsqrt(); // (B, T, 1)
    (x.mul(&rstd).mul(w), rstd) // (B, T, C)
}

/// The rotary tables at `positions` (row-major `(B, T)`), each `(B, T, HS/2)`:
/// `cos(p · θ^(−2i/HS))`, `sin(..)`.
fn tables(positions: &[i32], dev: &Device) -> (Tensor, Tensor) {
    let rope = Rope { theta: THETA, dim: HS, max_position_embeddings: 32_768, scaling: RopeScaling::Default };
    rope.tables(positions, (B, T), dev)
}

/// llama.cpp's (and Meta's original) rotary convention: plane i is the pair `(2i, 2i + 1)`.
/// `x` `(B, T, heads, HS)`, tables `(B, T, HS/2)`.
fn rope_interleaved(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Tensor {
    let heads = x.dims()[2];
    let pairs = x.reshape((B, T, heads, HS / 2, 2)); // (B, T, heads, HS/2, 2)
    let even = pairs.narrow(-1, 0, 1).reshape((B, T, heads, HS / 2)); // x[2i]
    let odd = pairs.narrow(-1, 1, 1).reshape((B, T, heads, HS / 2)); // x[2i + 1]
    let (c, s) = (cos.reshape((B, T, 1, HS / 2)), sin.reshape((B, T, 1, HS / 2))); // over heads
    let out_even = even.mul(&c).sub(&odd.mul(&s));
    let out_odd = odd.mul(&c).add(&even.mul(&s));
    Tensor::stack(&[&out_even, &out_odd], -1).reshape((B, T, heads, HS)) // pairs back in place
}

/// σ within one head: rotate-half's slot j holds interleaved slot σ(j), with σ(i) = 2i and
/// σ(i + HS/2) = 2i + 1 for i < HS/2.
fn sigma(j: usize) -> usize {
    if j < HS / 2 {
        2 * j
    } else {
        2 * (j - HS / 2) + 1
    }
}

/// The row permutation P of a `(heads·HS, C)` projection, σ applied inside every head.
fn permute_rows(heads: usize, dev: &Device) -> Tensor {
    let rows: Vec<i32> = (0..heads * HS).map(|r| (r / HS * HS + sigma(r % HS)) as i32).collect();
    Tensor::from_vec(rows, heads * HS, dev).expect("heads·HS indices")
}

/// `(B, T, heads, HS)` → `(B, heads, T, HS)`, each key/value head repeated for its group of
/// NH/NKV query heads (transformers' `repeat_kv`).
fn heads_repeated(x: &Tensor) -> Tensor {
    let x = x.permute(&[0, 2, 1, 3]); // (B, heads, T, HS)
    let heads = x.dims()[1];
    x.unsqueeze(2).expand((B, heads, NH / heads, T, HS)).reshape((B, NH, T, HS))
}

/// Attention scores `q·kᵀ` per query head, `(B, NH, T, T)`, query head h against key head
/// `h / (NH/NKV)`.
fn scores(q: &Tensor, k: &Tensor) -> Tensor {
    heads_repeated(q).matmul(&heads_repeated(k).transpose(-2, -1))
}

/// (b) The permutation argument, and rope's relative-position property.
fn rotary(x: &Tensor, dev: &Device) -> (Tensor, Tensor) {
    println!("\n(b) rotary embedding, HS = {HS}: planes (i, i + {}) vs llama.cpp's (2i, 2i + 1)", HS / 2);
    // An interleaved checkpoint W' (Meta's original layout, GGUF's), and the same one with the
    // rows of each q and k head permuted for Hugging Face's rotate-half.
    let wq_il = Tensor::randn((NH * HS, C), Seed(3), dev).mul_scalar(1.0 / (C as f32).sqrt()); // (NH·HS, C)
    let wk_il = Tensor::randn((NKV * HS, C), Seed(4), dev).mul_scalar(1.0 / (C as f32).sqrt()); // (NKV·HS, C)
    let wq = wq_il.index_select(0, &permute_rows(NH, dev)); // W_q = P·W'_q
    let wk = wk_il.index_select(0, &permute_rows(NKV, dev));
    let positions: Vec<i32> = (0..B).flat_map(|_| 0..T as i32).collect();
    let (cos, sin) = tables(&positions, dev); // (B, T, HS/2)
    println!("  cos, sin tables {:?}; W_q {:?}, W_k {:?}", cos.dims(), wq.dims(), wk.dims());
    let project = |w: &Tensor, heads: usize| x.matmul(&w.t()).reshape((B, T, heads, HS)); // (B, T, heads, HS)
    let (q, k) = (project(&wq, NH).rope(&cos, &sin), project(&wk, NKV).rope(&cos, &sin));
    let q_il = rope_interleaved(&project(&wq_il, NH), &cos, &sin);
    let k_il = rope_interleaved(&project(&wk_il, NKV), &cos, &sin);
    let slots: Vec<i32> = (0..HS).map(|j| sigma(j) as i32).collect();
    let slots = Tensor::from_vec(slots, HS, dev).expect("HS indices");
    check(
        "rope(x·(P·W'_q)ᵀ) = P applied to rope_interleaved(x·W'_qᵀ)",
        rel_diff(&q, &q_il.index_select(-1, &slots)),
        SAME_ORDER,
    );
    let (s, s_il) = (scores(&q, &k), scores(&q_il, &k_il)); // (B, NH, T, T)
    check("q·kᵀ (rotate-half, permuted rows) = q'·k'ᵀ (interleaved)", rel_diff(&s, &s_il), REORDERED);
    let unpermuted = scores(&project(&wq_il, NH).rope(&cos, &sin), &project(&wk_il, NKV).rope(&cos, &sin));
    let off = rel_diff(&unpermuted, &s_il);
    println!("  without the permutation the scores are another model's: relative diff {off:.2}");
    assert!(off > 0.1, "rotate-half on unpermuted rows should not match, got {off}");

    // Rotations compose: q at m and k at n score R(mθ)q·R(nθ)k = q·R((n − m)θ)k, offset only.
    let shifted: Vec<i32> = positions.iter().map(|p| p + 5).collect();
    let (cos5, sin5) = tables(&shifted, dev);
    let s5 = scores(&project(&wq, NH).rope(&cos5, &sin5), &project(&wk, NKV).rope(&cos5, &sin5));
    check("every position + 5 leaves q·kᵀ unchanged (offsets only)", rel_diff(&s5, &s), SHIFTED_ANGLES);
    (q, k)
}

/// (c) Grouped-query attention: the fused op reads each key/value head for its query group
/// in place; by hand, the heads are repeated and the attention written out.
fn grouped_query(q: &Tensor, k: &Tensor, dev: &Device) {
    println!("\n(c) grouped-query attention, NH = {NH} query heads over NKV = {NKV} key/value heads");
    let v = Tensor::randn((B, T, NKV, HS), Seed(5), dev); // (B, T, NKV, HS)
    let mask = attention_mask(T, 0, None, (true, None), dev); // (1, 1, T, T), 1 = hidden
    let scale = 1.0 / (HS as f32).sqrt();
    let s = scores(q, k).mul_scalar(scale).masked_fill(&mask, f32::NEG_INFINITY); // (B, NH, T, T)
    let by_hand = s.softmax(-1).matmul(&heads_repeated(&v)); // (B, NH, T, HS)
    let by_hand = by_hand.permute(&[0, 2, 1, 3]).reshape((B, T, NH * HS)); // (B, T, NH·HS)
    let (qv, kv, vv) = (Var::constant(q.clone()), Var::constant(k.clone()), Var::constant(v.clone()));
    let mut slot = None; // one layer's cache slot
    let ours = attention((&qv, &kv, &vv), &mask, Some(&mut slot), 0.0).value();
    println!("  q {:?}, k and v {:?} -> output {:?}", q.dims(), k.dims(), ours.dims());
    check("attention (groups in place) = attention over repeated K/V heads", rel_diff(&ours, &by_hand), REORDERED);
    let (ck, _) = slot.expect("attention filled the slot");
    assert_eq!(ck.dims(), [B, NKV, T, HS], "the cache holds the key/value heads only");
    let (gqa, mha) = (2 * NKV * HS, 2 * NH * HS);
    println!("  cached keys {:?}: {gqa} floats per token and layer instead of {mha} (1/{})", ck.dims(), mha / gqa);
}

/// (d) SwiGLU: the fused op and its backward against `silu(g) ⊙ u` through autograd.
fn swiglu(dev: &Device) {
    println!("\n(d) SwiGLU over the MLP width {INNER}");
    let (g, u) = (Tensor::randn((B, T, INNER), Seed(6), dev), Tensor::randn((B, T, INNER), Seed(7), dev));
    let dy = Tensor::randn((B, T, INNER), Seed(8), dev); // a random upstream gradient, not ones
    let (gf, uf) = (Var::parameter(g.clone()), Var::parameter(u.clone()));
    let fused = gf.swiglu(&uf);
    let (gs, us) = (Var::parameter(g.clone()), Var::parameter(u.clone()));
    let unfused = gs.silu().mul(&us);
    check("swiglu(g, u) = silu(g) ⊙ u", rel_diff(&fused.value(), &unfused.value()), SAME_ORDER);
    check("silu(g) = g ⊙ σ(g)", rel_diff(&g.silu(), &g.mul(&g.sigmoid())), SAME_ORDER);
    let (df, du) = (fused.backward_with(&dy).expect("backward"), unfused.backward_with(&dy).expect("backward"));
    let grad = |grads: &deltaw_autograd::Grads, v: &Var| grads.get(v).expect("a gradient").clone();
    check("dgate, fused = autograd of silu·mul", rel_diff(&grad(&df, &gf), &grad(&du, &gs)), REORDERED);
    check("dup, fused = autograd of silu·mul", rel_diff(&grad(&df, &uf), &grad(&du, &us)), SAME_ORDER);
}

/// (e) A tiny Qwen2 (q/k/v bias, tied head, GQA 2:1) built in code.
fn tiny_llama(dev: &Device) -> Result<(), Box<dyn std::error::Error>> {
    let json = serde_json::json!({
        "model_type": "qwen2", "vocab_size": 64, "hidden_size": 32, "intermediate_size": 64,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "max_position_embeddings": 64, "rope_theta": 10000.0, "rms_norm_eps": 1e-6,
        "tie_word_embeddings": true
    });
    let cfg = LlamaConfig::from_json(json, Path::new("inline"))?;
    let (nh, nkv, hs, v) = (cfg.num_attention_heads, cfg.num_kv_heads(), cfg.head_size(), cfg.vocab_size);
    let model = Llama::build(cfg, &mut FreshInit::new(Seed(0), dev))?;
    println!("\n(e) a tiny qwen2 built in code: C = 32, NH = {nh}, NKV = {nkv}, HS = {hs}, V = {v}, 2 layers");
    for (name, p) in named_parameters(&model).iter().filter(|(n, _)| n.starts_with("model.layers.0.")) {
        println!("  {name:45} {:?}", p.dims());
    }
    let ids: Vec<i32> = (0..(B * T) as i32).map(|i| (i * 7 + 3) % v as i32).collect();
    let ids = Tensor::from_vec(ids, (B, T), dev)?; // (B, T)
    let out = model.forward(&ids, None);
    assert_eq!(out.logits.dims(), [B, T, v], "logits (B, T, V)");
    assert_eq!(out.hidden_states.len(), 3, "embeddings, layer 0's output, the final norm");
    let loss = causal_lm_loss(&out.logits, &ids).value().to_scalar();
    println!(
        "  logits {:?}, loss {loss:.4} (ln V = {:.4}: weights N(0, 0.02²) barely move it)",
        out.logits.dims(),
        (v as f32).ln()
    );
    let above = loss - (v as f32).ln();
    assert!(above.abs() < FRESH_LOSS_ABOVE_LN_V, "a fresh model's loss {loss} should sit near ln V");

    // Cached decode: the prompt's T − 1 positions fill the cache, then the last token alone.
    let mut cache = KvCache::new(model.num_layers());
    let step = |start: usize, len: usize, cache: &mut KvCache| {
        let new = ids.narrow(1, start, len).contiguous(); // (B, len)
        let pos: Vec<i32> = (0..B).flat_map(|_| start as i32..(start + len) as i32).collect();
        let positions = Tensor::from_vec(pos, (B, len), dev).expect("B·len positions");
        no_grad(|| model.decode_step(&DecodeInput { ids: &new, positions: &positions, key_real: None }, Some(cache)))
    };
    step(0, T - 1, &mut cache);
    let last = step(T - 1, 1, &mut cache); // (B, V)
    let keys = cache.slots_mut().next().and_then(|s| s.as_ref().map(|(k, _)| k.dims().to_vec())).unwrap_or_default();
    println!("  KV cache after {} positions: keys {keys:?} = (B, NKV, T, HS)", cache.len());
    assert_eq!(keys, [B, nkv, T, hs], "the cache stores NKV heads, not NH");
    let full = out.logits.value().narrow(1, T - 1, 1).reshape((B, v)); // (B, V)
    check("cached last step = the full forward's last position", rel_diff(&last, &full), REORDERED);
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dev = Device::Cpu;
    println!("the batch: B = {B}, T = {T}, C = {C}, NH = {NH}, NKV = {NKV}, HS = {HS} (Qwen2.5-0.5B)");

    println!("\n(a) RMSNorm, eps = {EPS}");
    let x = Tensor::randn((B, T, C), Seed(1), &dev).mul_scalar(3.0).add_scalar(0.5); // (B, T, C)
    let w = Tensor::randn(C, Seed(2), &dev); // (C,)
    let out = x.rms_norm_with_stats(&w, EPS);
    let (by_hand, rstd) = rms_norm_by_hand(&x, &w);
    println!(
        "  x {:?}, weight {:?} -> y {:?}, rstd {:?} (saved for backward)",
        x.dims(),
        w.dims(),
        out.output.dims(),
        out.rstd.dims()
    );
    check("rms_norm = x / sqrt(mean(x²) + eps) · w", rel_diff(&out.output, &by_hand), REORDERED);
    check("saved rstd = 1 / sqrt(mean(x²) + eps)", rel_diff(&out.rstd, &rstd.reshape((B, T))), REORDERED);
    let scaled = x.mul_scalar(4.0).rms_norm(&w, EPS);
    check("no mean, no bias: rms_norm(4x) = rms_norm(x)", rel_diff(&scaled, &out.output), REORDERED);

    let (q, k) = rotary(&out.output, &dev);
    grouped_query(&q, &k, &dev);
    swiglu(&dev);
    tiny_llama(&dev)?;
    println!("\nok: RMSNorm, both rope conventions, GQA, SwiGLU and the tiny Llama's cache agree");
    Ok(())
}

/// `cargo test` runs the example (`test = true` in transformer/Cargo.toml), so CI checks every
/// claim above, not only that it compiles.
#[test]
fn every_claim_of_the_chapter_holds() {
    main().expect("the example runs");
}
