//! QLoRA's frozen base (Dettmers et al. 2023): the linear layers' weights block-quantized
//! (llama.cpp's formats, [`deltaw_tensor::quant`]) and frozen, the adapters trained in f32.
//!
//! The forward pass of an adapted layer is `y = x·deq(Q)ᵀ + s·(x·Aᵀ)·Bᵀ`: the products read
//! the blocks directly, and the gradient reaches `x` through `deq(Q)` (`dx = dy·deq(Q)`), but
//! `Q` itself gets none. A 4-bit base costs 0.56 bytes per weight (Q4_0: 18 bytes per 32)
//! instead of 4, which is what lets a 1–3B model train in a laptop's memory.

use deltaw_tensor::{DType, QuantType};
use deltaw_transformer::{Model, QuantLayout};
use std::fmt;

/// What [`quantize_base`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantizedBase {
    /// The block type.
    pub ty: QuantType,
    /// Linear layers whose weight is now quantized.
    pub quantized: usize,
    /// Linear layers left as they were: their input size is not a whole number of blocks
    /// (or they are the output head, which QLoRA keeps).
    pub kept: Vec<String>,
    /// Bytes of the quantized layers' weights before and after.
    pub bytes_before: usize,
    pub bytes_after: usize,
}

impl fmt::Display for QuantizedBase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "base quantized to {}: {} linear layers, {:.1} MiB -> {:.1} MiB",
            self.ty,
            self.quantized,
            self.bytes_before as f64 / 1048576.0,
            self.bytes_after as f64 / 1048576.0
        )?;
        if !self.kept.is_empty() {
            write!(
                f,
                "; kept as stored ({} not whole {}-value blocks or the head): {}",
                self.kept.len(),
                self.ty.block_elems(),
                self.kept.join(", ")
            )?;
        }
        Ok(())
    }
}

/// Quantizes the weight of every linear layer of `model` to `ty` in place and freezes it, as
/// `deltaw sft --base-quant` does at load time (a model already in memory, such as the demo's
/// freshly pretrained one). Blocks run along each layer's input axis, so `x·Wᵀ` reads whole
/// blocks whatever the storage orientation. Call it before [`crate::Lora::inject`].
///
/// ```
/// use deltaw_lora::quantize_base;
/// use deltaw_tensor::{DType, Device, QuantType, Seed};
/// use deltaw_transformer::{Gpt2, Gpt2Config};
/// let mut model = Gpt2::init(Gpt2Config::new(64, 16, 64, 2, 2).unwrap(), Seed(0), &Device::Cpu);
/// let report = quantize_base(&mut model, QuantType::Q8_0)?;
/// assert_eq!(report.quantized, 8); // c_attn, c_proj, c_fc, mlp.c_proj in each of 2 blocks
/// assert_eq!(model.h[0].attn.c_attn.weight.value().dtype(), DType::Quant(QuantType::Q8_0));
/// # Ok::<(), deltaw_tensor::Error>(())
/// ```
///
/// # Errors
/// A weight with a non-finite value (named by layer).
pub fn quantize_base<M: Model + ?Sized>(model: &mut M, ty: QuantType) -> deltaw_tensor::Result<QuantizedBase> {
    let mut report = QuantizedBase { ty, quantized: 0, kept: Vec::new(), bytes_before: 0, bytes_after: 0 };
    for (path, layer) in model.linear_modules_mut() {
        let w = layer.weight();
        let value = w.value();
        let layout = QuantLayout::of(layer.fan_in_fan_out());
        let q = if path.ends_with("lm_head") { value.clone() } else { layout.quantize(value.clone(), ty)? };
        if q.dtype() != DType::Quant(ty) {
            report.kept.push(path);
            continue;
        }
        let bytes = |t: &deltaw_tensor::Tensor| t.dtype().bytes_for(t.numel());
        report.bytes_before += bytes(&value);
        report.bytes_after += bytes(&q);
        report.quantized += 1;
        w.set_value(q);
        w.set_requires_grad(false);
    }
    Ok(report)
}
