//! Folding adapters into the base weights for inference at full speed, and back.
//!
//! Merge: `W ← W0 + scaling · B A` (transposed for a `fan_in_fan_out` layer), accumulated in
//! f32 whatever W0's dtype, then stored in W0's dtype. Unmerge subtracts the same `ΔW`. The
//! adapter is detached while merged, so the forward pass is the plain base model's.
//!
//! The drift report (no peer has one) says what merging cost: the largest deviation of a
//! merged weight from the exact `W0 + s·BA` (computed in f64), which is the rounding of the
//! storage dtype, and, given a probe, the largest change of the model's output.

use crate::model::Lora;
use deltaw_tensor::{DType, Tensor};
use deltaw_transformer::Model;
use deltaw_transformer::{LinearModule, QuantLayout};
use std::fmt;

/// What merging cost.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MergeReport {
    /// Layers merged.
    pub modules: usize,
    /// The merged weights' storage dtype.
    pub dtype: DType,
    /// max |W_merged − (W0 + s·B A)| over every merged weight, the exact sum taken in f64.
    pub max_weight_error: f64,
    /// How the probe's output moved, when one was given.
    pub drift: Option<OutputDrift>,
}

impl fmt::Display for MergeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "merged {} layers ({:?}): max |W - (W0 + s·BA)| = {:.3e}",
            self.modules, self.dtype, self.max_weight_error
        )?;
        if let Some(d) = self.drift {
            write!(f, "; {d}")?;
        }
        Ok(())
    }
}

/// How a model's output on a probe batch moved between two versions of the model (the
/// adapter applied unmerged, and merged): over every value, and over the argmax of the last
/// dim (the greedy token, when the output is logits).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OutputDrift {
    /// max |after − before|.
    pub max: f32,
    /// mean |after − before|.
    pub mean: f32,
    /// Positions (every index but the last dim's) whose argmax changed.
    pub changed: usize,
    /// Positions compared.
    pub positions: usize,
}

impl OutputDrift {
    /// The drift from `before` to `after` (the same shape).
    ///
    /// ```
    /// use deltaw_lora::OutputDrift;
    /// use deltaw_tensor::{Device, Tensor};
    /// let before = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 0.0], (2, 2), &Device::Cpu)?;
    /// let after = Tensor::from_vec(vec![1.0f32, 2.5, 3.0, 0.0], (2, 2), &Device::Cpu)?;
    /// let d = OutputDrift::between(&before, &after);
    /// assert_eq!((d.max, d.mean, d.changed, d.positions), (0.5, 0.125, 0, 2));
    /// # Ok::<(), deltaw_tensor::Error>(())
    /// ```
    ///
    /// # Panics
    /// When the shapes differ, naming both.
    #[track_caller]
    pub fn between(before: &Tensor, after: &Tensor) -> OutputDrift {
        assert_eq!(
            before.dims(),
            after.dims(),
            "OutputDrift: before {:?} and after {:?}",
            before.shape(),
            after.shape()
        );
        let diff = after.sub(before).abs();
        let (a, b) = (before.argmax(-1).to_vec(), after.argmax(-1).to_vec());
        OutputDrift {
            max: diff.max_all().to_vec()[0],
            mean: diff.mean_all().to_vec()[0],
            changed: a.iter().zip(&b).filter(|(x, y)| x != y).count(),
            positions: a.len(),
        }
    }

    /// The share of positions whose argmax changed.
    pub fn changed_share(&self) -> f64 {
        self.changed as f64 / self.positions.max(1) as f64
    }
}

impl fmt::Display for OutputDrift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "max output change {:.3e}, mean {:.3e}; top-1 changed at {} of {} positions ({:.2}%)",
            self.max,
            self.mean,
            self.changed,
            self.positions,
            100.0 * self.changed_share()
        )
    }
}

impl Lora {
    /// Merges every adapter into its layer's weight and detaches it; the merged weight keeps
    /// W0's storage dtype.
    ///
    /// # Panics
    /// If the adapters are already merged.
    #[track_caller]
    pub fn merge<M: Model + ?Sized>(&mut self, model: &mut M) -> MergeReport {
        self.merge_as(model, None)
    }

    /// [`Lora::merge`], storing the merged weights as `dtype` (`None`: W0's own). Merging a
    /// QLoRA adapter into `Some(F32)` gives `deq(Q) + s·BA` exactly (up to f32 rounding);
    /// into a block type, the sum is quantized again, which is the drift PEFT users meet.
    /// A block type whose blocks would not be whole for a layer leaves that layer f32.
    ///
    /// # Panics
    /// If the adapters are already merged, or `dtype` is i32.
    #[track_caller]
    pub fn merge_as<M: Model + ?Sized>(&mut self, model: &mut M, dtype: Option<DType>) -> MergeReport {
        assert!(!self.merged, "merge: the adapters are already merged");
        assert!(dtype != Some(DType::I32), "merge: weights cannot be stored as i32");
        let mut report = MergeReport { modules: 0, dtype: DType::F32, max_weight_error: 0.0, drift: None };
        self.for_each_layer(model, |module, layer| {
            let w0 = layer.weight().value();
            let to = dtype.unwrap_or(w0.dtype());
            let merged = store_as(add_in_f32(&w0, &oriented_delta(module, layer), 1.0), to, layer.fan_in_fan_out());
            report.max_weight_error = report.max_weight_error.max(exact_error(&w0, &merged, module));
            report.dtype = merged.dtype();
            report.modules += 1;
            layer.weight().set_value(merged);
            layer.set_adapter(None);
        });
        self.merged = true;
        report
    }

    /// [`Lora::merge`], plus how `probe`'s output (e.g. a forward pass's logits on a held-out
    /// batch) changed between the adapter path and the merged weights.
    pub fn merge_checked<M: Model + ?Sized>(&mut self, model: &mut M, probe: impl Fn(&M) -> Tensor) -> MergeReport {
        self.merge_checked_as(model, None, probe)
    }

    /// [`Lora::merge_as`] with [`Lora::merge_checked`]'s output comparison.
    pub fn merge_checked_as<M: Model + ?Sized>(
        &mut self,
        model: &mut M,
        dtype: Option<DType>,
        probe: impl Fn(&M) -> Tensor,
    ) -> MergeReport {
        let before = probe(model);
        let mut report = self.merge_as(model, dtype);
        report.drift = Some(OutputDrift::between(&before, &probe(model)));
        report
    }

    /// Subtracts the adapters again and reattaches them, so training can continue.
    ///
    /// # Panics
    /// If the adapters are not merged.
    #[track_caller]
    pub fn unmerge<M: Model + ?Sized>(&mut self, model: &mut M) {
        assert!(self.merged, "unmerge: the adapters are not merged");
        self.for_each_layer(model, |module, layer| {
            let w = layer.weight().value();
            let restored = add_in_f32(&w, &oriented_delta(module, layer), -1.0);
            layer.weight().set_value(store_as(restored, w.dtype(), layer.fan_in_fan_out()));
            layer.set_adapter(Some(module.adapter.clone()));
        });
        self.merged = false;
    }

    fn for_each_layer<M: Model + ?Sized>(
        &self,
        model: &mut M,
        mut f: impl FnMut(&crate::LoraModule, &mut dyn LinearModule),
    ) {
        for (path, layer) in model.linear_modules_mut() {
            if let Some(module) = self.modules.iter().find(|m| m.path == path) {
                f(module, layer);
            }
        }
    }
}

/// `ΔW` in the layer's storage orientation.
fn oriented_delta(module: &crate::LoraModule, layer: &dyn LinearModule) -> Tensor {
    let delta = module.adapter.delta_weight(); // (out, in)
    if layer.fan_in_fan_out() {
        delta.t().contiguous()
    } else {
        delta
    }
}

/// `w + sign · delta`, computed in f32.
fn add_in_f32(w: &Tensor, delta: &Tensor, sign: f32) -> Tensor {
    let wide = w.to_dtype(DType::F32).expect("a float weight widens to f32");
    wide.add(&delta.mul_scalar(sign))
}

/// The f32 weight `sum` stored as `dtype`: a block type along the input axis (the layout
/// a quantized base has, see [`QuantLayout`]), left f32 where the blocks would not be whole.
fn store_as(sum: Tensor, dtype: DType, fan_in_fan_out: bool) -> Tensor {
    match dtype {
        DType::F32 => sum,
        DType::Quant(ty) => {
            // A non-finite sum (a corrupt adapter) stays f32 rather than failing the merge.
            QuantLayout::of(fan_in_fan_out).quantize(sum.clone(), ty).unwrap_or(sum)
        }
        other => sum.to_dtype(other).expect("a merged weight fits its storage dtype"),
    }
}

/// max |merged − (w0 + s·B A)| with the exact value summed in f64.
fn exact_error(w0: &Tensor, merged: &Tensor, module: &crate::LoraModule) -> f64 {
    let a = module.adapter.lora_a.value();
    let b = module.adapter.lora_b.value();
    let (r, inp, out) = (a.dims()[0], a.dims()[1], b.dims()[0]);
    let (av, bv) = (a.to_vec(), b.to_vec());
    let (w0v, mv) = (w0.to_vec(), merged.to_vec());
    let s = module.adapter.scaling as f64;
    let mut worst = 0.0f64;
    for o in 0..out {
        for i in 0..inp {
            let ba: f64 = (0..r).map(|k| bv[o * r + k] as f64 * av[k * inp + i] as f64).sum();
            let idx = if module.fan_in_fan_out { i * out + o } else { o * inp + i };
            worst = worst.max((mv[idx] as f64 - (w0v[idx] as f64 + s * ba)).abs());
        }
    }
    worst
}

#[cfg(test)]
mod tests {
    use crate::{Lora, LoraConfig, TargetModules};
    use deltaw_tensor::{DType, Device, Seed, Tensor};
    use deltaw_transformer::{Gpt2, Gpt2Config};

    /// An f16 W0 is merged in f32 and stored back in f16: the report's weight error is that
    /// rounding (≤ half an f16 ulp of |W|), and unmerging restores W0 to within it too.
    #[test]
    fn merging_into_f16_weights_accumulates_in_f32_and_reports_the_rounding() {
        let mut model = Gpt2::init(Gpt2Config::new(40, 8, 16, 1, 2).unwrap(), Seed(0), &Device::Cpu);
        let w = &model.h[0].attn.c_attn.weight;
        w.set_value(w.value().to_dtype(DType::F16).unwrap());
        let config = LoraConfig { r: 2, target_modules: TargetModules::parse("c_attn"), ..LoraConfig::new("gpt2") };
        let mut lora = Lora::inject(&mut model, config, Seed(1)).unwrap();
        let b = &lora.modules[0].adapter.lora_b;
        b.set_value(Tensor::randn(b.dims(), Seed(2), &Device::Cpu).mul_scalar(0.1));
        let report = lora.merge(&mut model);
        assert_eq!(report.dtype, DType::F16);
        let max_w =
            model.h[0].attn.c_attn.weight.value().to_dtype(DType::F32).unwrap().abs().max_all().to_vec()[0] as f64;
        assert!(report.max_weight_error > 0.0 && report.max_weight_error <= max_w * 2f64.powi(-11), "{report}");
        assert_eq!(model.h[0].attn.c_attn.weight.value().dtype(), DType::F16);
    }
}
