//! One batch through the whole stack, with the shape at every step: text → tokens → ids →
//! embeddings → blocks → logits → loss → backward → one AdamW step, on the tiny GPT-2 of the
//! test fixtures (V = 120, C = 32, 2 layers of NH = 4 heads, byte-level BPE `tokenizer.json`).
//! The spine of the internals guide: docs/guide/README.md.
//!
//! ```sh
//! cargo run -p deltaw-transformer --example one_batch
//! ```

use deltaw_autograd::{no_grad, AdamW, AdamWConfig};
use deltaw_tensor::{Device, Tensor};
use deltaw_transformer::{causal_lm_loss, Gpt2, Model, Tokenizer};
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tiny_gpt2");
    let dev = Device::Cpu;
    let tokenizer = Tokenizer::from_dir(&dir)?;
    let model = Gpt2::from_dir(&dir, &dev)?;
    let cfg = &model.config;
    println!("tiny GPT-2: V = {}, C = {}, NH = {}, layers = {}", cfg.vocab_size, cfg.n_embd, cfg.n_head, cfg.n_layer);

    // 1. Text to ids (01-tokens.md): byte-level BPE; 'Ġ' is the byte of a space.
    let texts = ["The model picks the next token", "We sat at the"];
    for text in texts {
        let ids = tokenizer.encode(text)?;
        let pieces: Vec<String> = ids.iter().map(|&id| tokenizer.decode(&[id]).unwrap_or_default()).collect();
        println!("  {text:?} -> {ids:?} = {pieces:?}");
        assert_eq!(tokenizer.decode(&ids)?, text, "decode(encode(text)) gives the text back");
    }
    let batch = tokenizer.encode_batch(&texts, cfg.n_positions, 0, &dev)?;
    let (b, t) = (batch.input_ids.dims()[0], batch.input_ids.dims()[1]);
    println!(
        "batch: input_ids {:?}, attention_mask rows {:?}",
        batch.input_ids.dims(),
        mask_rows(&batch.attention_mask, t)
    );

    // 2. Forward (03 to 05): embeddings, blocks, ln_f, tied head.
    let out = model.forward(&batch.input_ids, Some(&batch.attention_mask));
    println!("hidden_states: {} tensors of {:?}", out.hidden_states.len(), out.hidden_states[0].dims());
    println!("logits {:?}", out.logits.dims());
    assert_eq!(out.logits.dims(), vec![b, t, cfg.vocab_size]);

    // 3. Loss (06-loss.md): labels are the ids, -100 on padding; causal_lm_loss shifts them by one.
    let keep = batch.attention_mask.to_dtype(deltaw_tensor::DType::F32)?;
    let labels = keep.where_(&batch.input_ids.to_dtype(deltaw_tensor::DType::F32)?, &Tensor::scalar(-100.0, &dev));
    let labels = labels.to_dtype(deltaw_tensor::DType::I32)?; // (B, T)
    let loss = causal_lm_loss(&out.logits, &labels);
    let before = loss.value().to_scalar();
    println!(
        "loss (mean over {} scored positions) = {before:.4}; ln V = {:.4}",
        scored(&labels),
        (cfg.vocab_size as f32).ln()
    );

    // 4. Backward (07-backward.md): one gradient per parameter, shaped like it.
    let params = model.parameters();
    let grads = loss.backward()?;
    println!("backward: {} gradients, global norm {:.4}", grads.len(), grads.global_norm());
    for p in params.iter().filter(|p| p.name().is_some_and(|n| n.starts_with("wte") || n.contains("h.0.attn.c_attn"))) {
        let g = grads.get(p).expect("every parameter gets a gradient");
        println!("  d{:<22} {:?}", p.name().unwrap_or(""), g.dims());
        assert_eq!(g.dims(), p.dims().as_slice());
    }
    assert_eq!(grads.len(), params.len());

    // 5. One AdamW step (08-adamw.md), then the same batch again: the loss went down.
    let mut opt = AdamW::new(params, AdamWConfig { lr: 1e-2, ..Default::default() });
    opt.step(&grads);
    let after =
        no_grad(|| causal_lm_loss(&model.forward(&batch.input_ids, Some(&batch.attention_mask)).logits, &labels));
    let after = after.value().to_scalar();
    println!("after one AdamW step (lr 1e-2): loss {before:.4} -> {after:.4}");
    assert!(after < before, "one step on the same batch should lower its loss");
    println!("\nok: text -> ids -> logits -> loss -> gradients -> a step that lowers the loss");
    Ok(())
}

/// The attention mask as one string of 0/1 per row.
fn mask_rows(mask: &Tensor, t: usize) -> Vec<String> {
    mask.to_vec_i32().chunks(t).map(|row| row.iter().map(|m| m.to_string()).collect()).collect()
}

/// Positions the shifted loss scores: labels[:, 1:] that are not -100.
fn scored(labels: &Tensor) -> usize {
    let t = labels.dims()[1];
    labels.to_vec_i32().chunks(t).map(|row| row[1..].iter().filter(|&&l| l != -100).count()).sum()
}
