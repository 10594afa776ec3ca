//! Neural-network ops: softmax, log-softmax, layer norm, embedding lookup, cross-entropy.

use crate::cpu::nn as kernels;
use crate::shape::Dim;
use crate::Tensor;

/// Layer norm's output with the statistics its backward pass needs.
#[derive(Clone, Debug)]
pub struct LayerNormOutput {
    /// Normalised, scaled and shifted input, same shape as the input.
    pub output: Tensor,
    /// Per-row mean, shape `input.shape[..-1]`.
    pub mean: Tensor,
    /// Per-row `1 / sqrt(var + eps)` (biased variance), shape `input.shape[..-1]`.
    pub rstd: Tensor,
}

impl Tensor {
    /// Softmax along `dim`: `exp(x - max) / Σ exp(x - max)`, as `torch.softmax`. Numerically
    /// stable for any logits; the last dim is the fast path (other dims are moved there).
    ///
    /// ```
    /// use deltaw_tensor::{Device, Tensor};
    /// let logits = Tensor::from_vec(vec![1000.0f32, 1000.0, -1000.0], (1, 3), &Device::Cpu)?;
    /// assert_eq!(logits.softmax(-1).to_vec(), vec![0.5, 0.5, 0.0]); // no overflow
    /// # Ok::<(), deltaw_tensor::Error>(())
    /// ```
    #[track_caller]
    pub fn softmax(&self, dim: impl Dim) -> Tensor {
        self.along_last_dim(dim, false)
    }

    /// `x - max - log Σ exp(x - max)` along `dim`, as `torch.log_softmax`.
    #[track_caller]
    pub fn log_softmax(&self, dim: impl Dim) -> Tensor {
        self.along_last_dim(dim, true)
    }

    /// Runs the (log-)softmax row kernel over `dim` by moving it last (a transpose and copy
    /// when it is not).
    #[track_caller]
    fn along_last_dim(&self, dim: impl Dim, log: bool) -> Tensor {
        let op = if log { "log_softmax" } else { "softmax" };
        let d = dim.resolve(self.rank().max(1), op, self.shape());
        let last = self.rank().saturating_sub(1);
        let moved = match self.rank() {
            0 => self.reshape(1),
            _ if d == last => self.clone(),
            _ => self.transpose(d, last),
        };
        let c = moved.dim(-1);
        #[cfg(feature = "gpu")]
        let on_device = super::on_gpu::softmax_rows(&moved, c, log, op);
        #[cfg(not(feature = "gpu"))]
        let on_device = None;
        let out = match on_device {
            Some(t) => t,
            None => {
                let kernel = if log { kernels::log_softmax_forward } else { kernels::softmax_forward };
                Tensor::from_f32(kernel(&moved.f32_values(op), c), moved.shape())
            }
        };
        match self.rank() {
            0 => out.reshape(()),
            _ if d == last => out,
            _ => out.transpose(d, last).contiguous(),
        }
    }

    /// Layer normalisation over the last dimension, as `torch.nn.functional.layer_norm`.
    ///
    /// Per row of length C: `y = (x - mean) / sqrt(var + eps) * weight + bias` with the biased
    /// variance. Shapes: `x` is `(.., C)`, `weight` and `bias` are `(C,)`. Returns `mean` and
    /// `rstd` too (what the backward pass needs); see [`Tensor::layer_norm`] for just `y`.
    /// BERT uses eps 1e-12, GPT-2 1e-5.
    ///
    /// ```
    /// use deltaw_tensor::{Device, Tensor};
    /// let dev = Device::Cpu;
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], (1, 4), &dev)?;
    /// let ln = x.layer_norm_with_stats(&Tensor::ones(4, &dev), &Tensor::zeros(4, &dev), 1e-5);
    /// assert_eq!(ln.mean.to_vec(), vec![2.5]);
    /// assert!((ln.output.to_vec()[0] + 1.3416).abs() < 1e-4); // (1 - 2.5) / sqrt(1.25)
    /// # Ok::<(), deltaw_tensor::Error>(())
    /// ```
    ///
    /// # Panics
    /// If the last dimension of `x` differs from the length of `weight` or `bias`.
    #[track_caller]
    pub fn layer_norm_with_stats(&self, weight: &Tensor, bias: &Tensor, eps: f32) -> LayerNormOutput {
        let c = if self.rank() == 0 { 1 } else { self.dim(-1) };
        if weight.dims() != [c] || bias.dims() != [c] {
            panic!(
                "layer_norm: input {:?} needs weight and bias of shape ({c},), got {:?} and {:?}",
                self.shape(),
                weight.shape(),
                bias.shape()
            );
        }
        #[cfg(feature = "gpu")]
        if let Some(out) = super::on_gpu::layer_norm(self, weight, bias, eps, c) {
            return out;
        }
        let o = kernels::layer_norm_forward(
            &self.f32_values("layer_norm"),
            &weight.f32_values("layer_norm"),
            &bias.f32_values("layer_norm"),
            c,
            eps,
        );
        let rows = &self.dims()[..self.rank().saturating_sub(1)];
        LayerNormOutput {
            output: Tensor::from_f32(o.y, self.shape()),
            mean: Tensor::from_f32(o.mean, rows),
            rstd: Tensor::from_f32(o.rstd, rows),
        }
    }

    /// Layer normalisation over the last dim; see [`Tensor::layer_norm_with_stats`].
    #[track_caller]
    pub fn layer_norm(&self, weight: &Tensor, bias: &Tensor, eps: f32) -> Tensor {
        self.layer_norm_with_stats(weight, bias, eps).output
    }

    /// Embedding lookup: `self` is the `(V, C)` table, `ids` an i32 tensor of any shape;
    /// returns `ids.shape + (C,)` with row `ids[i]` of the table at position `i`.
    ///
    /// # Panics
    /// If `self` is not 2-D, `ids` is not i32, or an id is outside `0..V`.
    #[track_caller]
    pub fn embedding(&self, ids: &Tensor) -> Tensor {
        assert_eq!(self.rank(), 2, "embedding: the table must be (V, C), got shape {:?}", self.shape());
        let rows = self.index_select(0, &ids.flatten_all());
        let mut shape = ids.dims().to_vec();
        shape.push(self.dims()[1]);
        rows.reshape(shape)
    }

    /// Mean cross-entropy between `self`, logits `(.., V)`, and i32 class `targets` `(..)`,
    /// skipping targets equal to `ignore_index` (PyTorch's default is -100):
    /// `loss = Σ_valid (logsumexp(logits_i) - logits_i[t_i]) / n_valid`, a 0-d tensor
    /// (NaN when every target is ignored, as PyTorch).
    ///
    /// ```
    /// use deltaw_tensor::{Device, Tensor};
    /// let dev = Device::Cpu;
    /// let logits = Tensor::zeros((2, 4), &dev); // uniform over 4 classes
    /// let targets = Tensor::from_vec(vec![3i32, -100], 2, &dev)?; // the second is ignored
    /// let loss = logits.cross_entropy(&targets, -100).to_scalar();
    /// assert!((loss - 4f32.ln()).abs() < 1e-6);
    /// # Ok::<(), deltaw_tensor::Error>(())
    /// ```
    ///
    /// # Panics
    /// If the shapes disagree or a target is outside `0..V` and not `ignore_index`.
    #[track_caller]
    pub fn cross_entropy(&self, targets: &Tensor, ignore_index: i32) -> Tensor {
        let v = self.dim(-1);
        if self.dims()[..self.rank() - 1] != *targets.dims() {
            panic!(
                "cross_entropy: logits {:?} need targets of shape {:?}, got {:?}",
                self.shape(),
                &self.dims()[..self.rank() - 1],
                targets.shape()
            );
        }
        #[cfg(feature = "gpu")]
        if let Some(out) = super::on_gpu::cross_entropy(self, targets, v, ignore_index) {
            return out;
        }
        let (sum, count) = kernels::cross_entropy_forward(
            &self.f32_values("cross_entropy"),
            &targets.i32_values("cross_entropy"),
            v,
            ignore_index,
        );
        Tensor::from_f32(vec![(sum / count as f64) as f32], ())
    }
}
