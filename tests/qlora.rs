//! QLoRA's quantized base: loading a folder with `WeightDtype::Quant` quantizes exactly the
//! projections (embeddings and head kept), the same blocks as quantizing the f32 model in
//! memory (`quantize_base`), for both storage orientations (Llama's `(out, in)`, GPT-2's
//! `Conv1D` `(in, out)`); the adapters' gradients on the quantized base are those on its
//! dequantized f32 weights; and merging into f32 reproduces the adapter path.

use deltaw_autograd::{no_grad, Var};
use deltaw_lora::{quantize_base, Lora, LoraConfig, TargetModules};
use deltaw_tensor::quant::{dequantize, quantize};
use deltaw_tensor::{DType, Device, QuantType, Seed, Tensor};
use deltaw_transformer::{causal_lm_loss, named_parameters, Gpt2, Llama, Model, WeightDtype};
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name)
}

/// Ids `(1, t)` spread over the vocabulary.
fn ids(t: usize, vocab: usize) -> Tensor {
    let v: Vec<i32> = (0..t).map(|i| ((i * 37 + 5) % vocab) as i32).collect();
    Tensor::from_vec(v, (1, t), &Device::Cpu).unwrap()
}

/// The largest |a − b| over the largest |b|.
fn rel_diff(a: &Tensor, b: &Tensor) -> f32 {
    let scale = b.abs().max_all().to_vec()[0].max(f32::MIN_POSITIVE);
    a.sub(b).abs().max_all().to_vec()[0] / scale
}

#[test]
fn a_quantized_llama_load_holds_exactly_the_projections_in_blocks() {
    let dir = fixture("llama/llama3_gqa4");
    let q = Llama::from_dir_with(&dir, &Device::Cpu, WeightDtype::Quant(QuantType::Q8_0)).unwrap();
    let mut quantized = 0;
    for (name, p) in named_parameters(&q) {
        let dtype = p.value().dtype();
        if name.contains("_proj.weight") {
            assert_eq!(dtype, DType::Quant(QuantType::Q8_0), "{name}");
            assert!(!p.requires_grad(), "{name} is frozen");
            quantized += 1;
        } else {
            assert_eq!(dtype, DType::F32, "{name} stays as stored");
        }
    }
    assert_eq!(quantized, 2 * 7, "seven projections in each of the two layers");

    // The same blocks as quantizing the f32 model in memory: identical logits.
    let mut f = Llama::from_dir(&dir, &Device::Cpu).unwrap();
    let report = quantize_base(&mut f, QuantType::Q8_0).unwrap();
    assert_eq!(report.quantized, 14, "{report}");
    let x = ids(20, q.config.vocab_size);
    let (a, b) = (q.forward(&x, None).logits.value(), f.forward(&x, None).logits.value());
    assert_eq!(a.to_vec(), b.to_vec(), "loading quantized and quantizing in memory differ");

    // The logits move by the weights' rounding: Q8_0's step is 1/16 of Q4_0's (|w|max/127
    // against |w|max/8 per 32 values), so its change is well under Q4_0's (8x leaves room for
    // the errors averaging differently over 20 positions), and not zero.
    let full = Llama::from_dir(&dir, &Device::Cpu).unwrap().forward(&x, None).logits.value();
    let q4 = Llama::from_dir_with(&dir, &Device::Cpu, WeightDtype::Quant(QuantType::Q4_0)).unwrap();
    let (d8, d4) = (rel_diff(&a, &full), rel_diff(&q4.forward(&x, None).logits.value(), &full));
    assert!(d8 > 0.0 && 8.0 * d8 < d4, "logit change of Q8_0 {d8} against Q4_0 {d4} (of the largest logit)");
}

#[test]
fn a_quantized_gpt2_keeps_blocks_along_the_input_axis_of_its_conv1d_weights() {
    let dir = fixture("tiny_gpt2"); // n_embd 32: one Q8_0 block per input row of c_attn
    let q = Gpt2::from_dir_with(&dir, &Device::Cpu, WeightDtype::Quant(QuantType::Q8_0)).unwrap();
    let w = q.h[0].attn.c_attn.weight.value();
    assert_eq!((w.dims(), w.dtype()), (&[32, 96][..], DType::Quant(QuantType::Q8_0)));
    // The (in, out) parameter is the view (Q)ᵀ of Q (out, in), whose first row is W's first
    // column as one block: the bytes of quantizing that column, read back through the view.
    let f = Gpt2::from_dir(&dir, &Device::Cpu).unwrap();
    let column: Vec<f32> = f.h[0].attn.c_attn.weight.value().narrow(1, 0, 1).to_vec();
    let q_rows = w.t();
    let (ty, bytes) = q_rows.quant_bytes().expect("Q is row-major blocks");
    assert_eq!((ty, &bytes[..34]), (QuantType::Q8_0, &quantize(QuantType::Q8_0, &column).unwrap()[..]));
    let mut want = vec![0.0f32; 32];
    dequantize(QuantType::Q8_0, &bytes[..34], &mut want);
    assert_eq!(w.narrow(1, 0, 1).to_vec(), want, "the strided view widens block by block");
    let x = ids(12, f.config.vocab_size);
    let mut g = Gpt2::from_dir(&dir, &Device::Cpu).unwrap();
    quantize_base(&mut g, QuantType::Q8_0).unwrap();
    assert_eq!(q.forward(&x, None).logits.value().to_vec(), g.forward(&x, None).logits.value().to_vec());
}

/// Both models with the same adapters (B random, so A gets a gradient too) on every linear
/// layer, and the loss's gradients for them.
fn adapter_grads(model: &mut Llama, x: &Tensor) -> (Lora, Vec<Tensor>) {
    let config = LoraConfig { r: 4, target_modules: TargetModules::parse("all-linear"), ..LoraConfig::new("llama") };
    let lora = Lora::inject(model, config, Seed(1)).unwrap();
    for (i, m) in lora.modules.iter().enumerate() {
        let b = &m.adapter.lora_b;
        b.set_value(Tensor::randn(b.dims(), Seed(10 + i as u64), &Device::Cpu).mul_scalar(0.05));
    }
    let logits = model.forward(x, None).logits;
    let grads = causal_lm_loss(&logits, x).backward().unwrap();
    for p in model.parameters().iter().filter(|p| p.value().dtype().quant_type().is_some()) {
        assert!(grads.get(p).is_none(), "the frozen quantized {:?} got a gradient", p.name());
    }
    let g = lora.parameters().iter().map(|p: &Var| grads.get(p).expect("an adapter gradient").clone()).collect();
    (lora, g)
}

#[test]
fn adapter_gradients_on_a_quantized_base_are_those_on_its_dequantized_weights() {
    let dir = fixture("llama/llama3_gqa4");
    let mut q = Llama::from_dir_with(&dir, &Device::Cpu, WeightDtype::Quant(QuantType::Q4_0)).unwrap();
    // The f32 twin: every quantized weight replaced by its dequantized values.
    let mut f = Llama::from_dir(&dir, &Device::Cpu).unwrap();
    let widened: Vec<(String, Tensor)> = named_parameters(&q)
        .into_iter()
        .filter(|(_, p)| p.value().dtype().quant_type().is_some())
        .map(|(n, p)| (n, p.value().to_dtype(DType::F32).unwrap()))
        .collect();
    for (name, p) in named_parameters(&f) {
        if let Some((_, w)) = widened.iter().find(|(n, _)| *n == name) {
            p.set_value(w.clone());
        }
    }
    // 20 positions: more rows than `cpu::qdot` takes on its 8-bit-activation route, so the
    // quantized products are the dequantized weights' GEMM and only the order of the f32
    // sums may differ: 1e-4 of the largest gradient.
    let x = ids(20, q.config.vocab_size);
    let ((mut lora, gq), (_, gf)) = (adapter_grads(&mut q, &x), adapter_grads(&mut f, &x));
    assert_eq!(gq.len(), 2 * 7 * 2);
    for (i, (a, b)) in gq.iter().zip(&gf).enumerate() {
        let d = rel_diff(a, b);
        assert!(d < 1e-4, "adapter gradient {i}: {d} of the largest");
    }

    // Merged into f32, the model is deq(Q) + s·BA: the adapter path's logits again, up to
    // the order of f32 sums (1e-5 of the largest logit).
    let probe = |m: &Llama| no_grad(|| m.forward(&x, None).logits.value());
    let report = lora.merge_checked_as(&mut q, Some(DType::F32), probe);
    assert_eq!((report.modules, report.dtype), (14, DType::F32), "{report}");
    let drift = report.drift.unwrap();
    assert!(drift.changed == 0 && drift.max < 1e-5 * probe(&q).abs().max_all().to_vec()[0], "{report}");
}
