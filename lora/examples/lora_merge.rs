//! LoRA's merge math on a small GPT-2: the adapter path `x W0 + b + s · x Aᵀ Bᵀ` equals the
//! merged layer `x (W0 + s · (B A)ᵀ) + b`, and unmerging gives W0 back.
//!
//! GPT-2's linear layers are `Conv1D`s that store W `(in, out)` (PEFT's `fan_in_fan_out`), so
//! ΔW = s · B A `(out, in)` is added transposed. s = α / r = 8 / 4 = 2 here.
//! Guide: docs/guide/09-lora.md.
//!
//! ```sh
//! cargo run -p deltaw-lora --example lora_merge
//! ```

use deltaw_autograd::{no_grad, Var};
use deltaw_lora::{Lora, LoraConfig, TargetModules};
use deltaw_tensor::{Device, Seed, Tensor};
use deltaw_transformer::{Gpt2, Gpt2Config};

/// Largest |a - b| over all elements.
fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    a.sub(b).abs().max_all().to_scalar()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dev = Device::Cpu;
    // V = 64, 16 positions, C = 32, 2 layers, 4 heads: c_attn is (32, 96), c_fc (32, 128).
    let mut model = Gpt2::init(Gpt2Config::new(64, 16, 32, 2, 4)?, Seed(0), &dev);
    let ids = Tensor::from_vec((0..16).map(|i| (i * 7) % 64).collect::<Vec<i32>>(), (2, 8), &dev)?; // (B, T)
    let logits = |m: &Gpt2| no_grad(|| m.forward(&ids, None).logits.value()); // (B, T, V)
    let base_logits = logits(&model);

    let config = LoraConfig {
        r: 4,
        lora_alpha: 8.0,
        target_modules: TargetModules::parse("c_attn,c_fc"),
        ..LoraConfig::new("gpt2")
    };
    let s = config.scaling();
    let rs = LoraConfig { use_rslora: true, ..config.clone() }.scaling();
    println!("r = {}, α = {}: scaling α/r = {s} (rsLoRA α/√r would be {rs})", config.r, config.lora_alpha);
    let mut lora = Lora::inject(&mut model, config, Seed(1))?;
    println!("{}", lora.param_count(&model));
    for m in &lora.modules {
        let (a, b) = (&m.adapter.lora_a, &m.adapter.lora_b);
        println!("  {:<28} A {:?}  B {:?}  fan_in_fan_out {}", m.path, a.dims(), b.dims(), m.fan_in_fan_out);
    }

    // B starts at zero, so the adapted model is exactly the pretrained one.
    assert_eq!(logits(&model).to_vec(), base_logits.to_vec(), "B = 0 must leave the model unchanged");
    println!("B = 0 at init: logits equal the base model's bit for bit");

    // Pretend training happened: give every B some values.
    for (i, m) in lora.modules.iter().enumerate() {
        let b = &m.adapter.lora_b;
        b.set_value(Tensor::randn(b.dims(), Seed(10 + i as u64), &dev).mul_scalar(0.1));
    }

    // One layer by hand: h.0's c_attn on random inputs x (B, T, C).
    let layer = &model.h[0].attn.c_attn;
    let adapter = &lora.modules[0].adapter;
    let x = Var::constant(Tensor::randn((2, 8, 32), Seed(3), &dev));
    let w0 = layer.weight.value(); // (in, out) = (32, 96)
    let delta = adapter.lora_b.value().matmul(&adapter.lora_a.value()).mul_scalar(s); // s · B A: (out, in)
    let w_by_hand = w0.add(&delta.t()); // W0 + ΔWᵀ: (in, out)
    let y_adapter = no_grad(|| layer.forward(&x)).value(); // x W0 + b + s · x Aᵀ Bᵀ: (B, T, 96)
    let y_by_hand = x.value().matmul(&w_by_hand).add(&layer.bias.as_ref().expect("c_attn has a bias").value());
    let d = max_diff(&y_adapter, &y_by_hand);
    println!("\nc_attn: adapter path vs x (W0 + s·(BA)ᵀ) + b on random x: max |diff| = {d:.2e}");
    assert!(d < 1e-5, "adapter forward and merged-weight forward differ by {d}");

    // Merge: every adapted weight becomes W0 + ΔW, and the adapter is detached.
    let adapted = logits(&model);
    let report = lora.merge_checked(&mut model, logits);
    println!("{report}");
    let w_merged = model.h[0].attn.c_attn.weight.value();
    let d = max_diff(&w_merged, &w_by_hand);
    println!("merged c_attn weight vs W0 + s·(BA)ᵀ by hand: max |diff| = {d:.2e}");
    assert!(d < 1e-6 && model.h[0].attn.c_attn.adapter.is_none());
    let d = max_diff(&logits(&model), &adapted);
    assert!(d < 1e-4, "merged logits differ from the adapter's by {d}");

    // Unmerge: W0 comes back (up to f32 rounding of (W0 + ΔW) - ΔW), the adapter is reattached.
    lora.unmerge(&mut model);
    let d = max_diff(&model.h[0].attn.c_attn.weight.value(), &w0);
    println!(
        "after unmerge: max |W - W0| = {d:.2e}, adapter attached again: {}",
        model.h[0].attn.c_attn.adapter.is_some()
    );
    assert!(d < 1e-6 && model.h[0].attn.c_attn.adapter.is_some());
    assert!(max_diff(&logits(&model), &adapted) < 1e-4);

    lora.remove(&mut model);
    let d = max_diff(&logits(&model), &base_logits);
    println!("after remove: logits vs the base model: max |diff| = {d:.2e}");
    assert!(d < 1e-5);
    println!("\nok: adapter path = merged weights, and unmerge restores W0");
    Ok(())
}
