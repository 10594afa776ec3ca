//! Neural-network ops, each forward above its backward: softmax and log-softmax, layer norm,
//! cross-entropy, and embedding lookup (whose backward is `index_add`, in `index.rs`).
//! Autograd calls the backward ops on plain tensors; each validates shapes (panicking with the
//! op name), then runs the kernel of the tensor's device with one `match` on its storage.

use crate::cpu::nn as kernels;
use crate::shape::Dim;
use crate::storage::Storage;
use crate::{DType, Tensor};

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
        let _op = crate::profile::op("softmax", || {
            let n = self.numel() as f64;
            crate::profile::Cost::new(5.0 * n, 2.0 * n)
        });
        self.along_last_dim(dim, false)
    }

    /// `x - max - log Σ exp(x - max)` along `dim`, as `torch.log_softmax`.
    #[track_caller]
    pub fn log_softmax(&self, dim: impl Dim) -> Tensor {
        let _op = crate::profile::op("log_softmax", || {
            let n = self.numel() as f64;
            crate::profile::Cost::new(5.0 * n, 2.0 * n)
        });
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
        let out = match moved.storage() {
            Storage::Cpu(_) => {
                let kernel = if log { kernels::log_softmax_forward } else { kernels::softmax_forward };
                Tensor::from_f32(kernel(&moved.f32_values(op), c), moved.shape())
            }
            #[cfg(feature = "gpu")]
            Storage::Gpu(_) => super::on_gpu::softmax_rows(&moved, c, log, op),
        };
        match self.rank() {
            0 => out.reshape(()),
            _ if d == last => out,
            _ => out.transpose(d, last).contiguous(),
        }
    }

    /// Softmax's input gradient from its output `self = y = softmax(x, dim)` and the upstream
    /// gradient `dy` (same shape): `dx = y · (dy - Σ_dim dy · y)`.
    ///
    /// # Panics
    /// If the shapes differ.
    #[track_caller]
    pub fn softmax_backward(&self, dy: &Tensor, dim: impl Dim) -> Tensor {
        let _op = crate::profile::op("softmax_backward", || {
            let n = self.numel() as f64;
            crate::profile::Cost::new(4.0 * n, 3.0 * n)
        });
        self.rows_backward(dy, dim, false)
    }

    /// Log-softmax's input gradient from its output `self = y = log_softmax(x, dim)`:
    /// `dx = dy - exp(y) · Σ_dim dy`.
    ///
    /// # Panics
    /// If the shapes differ.
    #[track_caller]
    pub fn log_softmax_backward(&self, dy: &Tensor, dim: impl Dim) -> Tensor {
        let _op = crate::profile::op("log_softmax_backward", || {
            let n = self.numel() as f64;
            crate::profile::Cost::new(4.0 * n, 3.0 * n)
        });
        self.rows_backward(dy, dim, true)
    }

    /// Runs a row kernel `(y, dy, c) -> dx` over `dim`, moving it last when it is not.
    #[track_caller]
    fn rows_backward(&self, dy: &Tensor, dim: impl Dim, log: bool) -> Tensor {
        let op = if log { "log_softmax_backward" } else { "softmax_backward" };
        check_gradient_shape(op, "output", self, dy);
        let d = dim.resolve(self.rank().max(1), op, self.shape());
        let last = self.rank().saturating_sub(1);
        let (y, g) = match self.rank() {
            0 => (self.reshape(1), dy.reshape(1)),
            _ if d == last => (self.clone(), dy.clone()),
            _ => (self.transpose(d, last), dy.transpose(d, last)),
        };
        let c = y.dim(-1);
        let dx = match y.storage() {
            Storage::Cpu(_) => {
                let kernel = if log { kernels::log_softmax_backward } else { kernels::softmax_backward };
                Tensor::from_f32(kernel(&y.f32_values(op), &g.f32_values(op), c), y.shape())
            }
            #[cfg(feature = "gpu")]
            Storage::Gpu(_) => super::on_gpu::softmax_rows_backward(&y, &g, c, log, op),
        };
        match self.rank() {
            0 => dx.reshape(()),
            _ if d == last => dx,
            _ => dx.transpose(d, last).contiguous(),
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
        let _op = crate::profile::op("layer_norm", || {
            let n = self.numel() as f64;
            crate::profile::Cost::new(8.0 * n, 2.0 * n)
        });
        let c = if self.rank() == 0 { 1 } else { self.dim(-1) };
        if weight.dims() != [c] || bias.dims() != [c] {
            panic!(
                "layer_norm: input {:?} needs weight and bias of shape ({c},), got {:?} and {:?}",
                self.shape(),
                weight.shape(),
                bias.shape()
            );
        }
        match self.storage() {
            Storage::Cpu(_) => {
                let op = "layer_norm";
                let (x, w, b) = (self.f32_values(op), weight.f32_values(op), bias.f32_values(op));
                let o = kernels::layer_norm_forward(&x, &w, &b, c, eps);
                let rows = &self.dims()[..self.rank().saturating_sub(1)];
                LayerNormOutput {
                    output: Tensor::from_f32(o.y, self.shape()),
                    mean: Tensor::from_f32(o.mean, rows),
                    rstd: Tensor::from_f32(o.rstd, rows),
                }
            }
            #[cfg(feature = "gpu")]
            Storage::Gpu(_) => super::on_gpu::layer_norm(self, weight, bias, eps, c),
        }
    }

    /// Layer normalisation over the last dim; see [`Tensor::layer_norm_with_stats`].
    #[track_caller]
    pub fn layer_norm(&self, weight: &Tensor, bias: &Tensor, eps: f32) -> Tensor {
        self.layer_norm_with_stats(weight, bias, eps).output
    }

    /// Layer norm's gradients `(dx, dweight, dbias)` from the input `self = x` `(.., C)`, the
    /// upstream gradient `dy` (same shape), `weight` `(C,)`, and the forward's saved `mean`
    /// and `rstd` (shape `x.shape[..-1]`; see [`Tensor::layer_norm_with_stats`]). With
    /// `xhat = (x - mean) · rstd`:
    /// `dx = rstd · (dy·w - mean_C(dy·w) - xhat · mean_C(dy·w·xhat))`,
    /// `dweight = Σ_rows dy · xhat`, `dbias = Σ_rows dy`.
    ///
    /// # Panics
    /// If `dy` differs from `x` in shape, `weight` is not `(C,)`, or `mean` / `rstd` do not
    /// have one entry per row.
    #[track_caller]
    pub fn layer_norm_backward(
        &self,
        dy: &Tensor,
        weight: &Tensor,
        mean: &Tensor,
        rstd: &Tensor,
    ) -> (Tensor, Tensor, Tensor) {
        let _op = crate::profile::op("layer_norm_backward", || {
            let n = self.numel() as f64;
            crate::profile::Cost::new(12.0 * n, 3.0 * n)
        });
        let op = "layer_norm_backward";
        let c = if self.rank() == 0 { 1 } else { self.dim(-1) };
        let rows = self.numel() / c.max(1);
        check_gradient_shape(op, "input", self, dy);
        assert_eq!(
            weight.dims(),
            [c],
            "{op}: input {:?} needs weight of shape ({c},), got {:?}",
            self.shape(),
            weight.shape()
        );
        assert!(
            mean.numel() == rows && rstd.numel() == rows,
            "{op}: input {:?} has {rows} rows but mean is {:?} and rstd {:?}",
            self.shape(),
            mean.shape(),
            rstd.shape()
        );
        match self.storage() {
            Storage::Cpu(_) => {
                let (x, dy, w) = (self.f32_values(op), dy.f32_values(op), weight.f32_values(op));
                let g = kernels::layer_norm_backward(&dy, &x, &w, &mean.f32_values(op), &rstd.f32_values(op), c);
                (Tensor::from_f32(g.dx, self.shape()), Tensor::from_f32(g.dweight, c), Tensor::from_f32(g.dbias, c))
            }
            #[cfg(feature = "gpu")]
            Storage::Gpu(_) => super::on_gpu::layer_norm_backward(self, dy, weight, mean, rstd, c),
        }
    }

    /// Embedding lookup: `self` is the `(V, C)` table, `ids` an i32 tensor of any shape;
    /// returns `ids.shape + (C,)` with row `ids[i]` of the table at position `i`.
    ///
    /// The result is f32 for any float table: a bf16 or f16 table (a frozen checkpoint's, kept
    /// in its storage type) has just the selected rows widened, `ids.numel() × C` elements,
    /// never the whole `V × C` table.
    ///
    /// # Panics
    /// If `self` is not 2-D, `ids` is not i32, or an id is outside `0..V`.
    #[track_caller]
    pub fn embedding(&self, ids: &Tensor) -> Tensor {
        let _op = crate::profile::op("embedding", || {
            crate::profile::Cost::new(0.0, 2.0 * ids.numel() as f64 * self.dims().last().copied().unwrap_or(1) as f64)
        });
        assert_eq!(self.rank(), 2, "embedding: the table must be (V, C), got shape {:?}", self.shape());
        let (ids_flat, half) = (ids.flatten_all(), matches!(self.dtype(), DType::BF16 | DType::F16));
        let widened = half || self.dtype().quant_type().is_some();
        let rows = match self.storage() {
            #[cfg(feature = "gpu")]
            Storage::Gpu(_) if half && self.dims()[1].is_multiple_of(2) => {
                super::on_gpu::embedding_rows_16(self, &ids_flat)
            }
            _ if widened => self.index_select(0, &ids_flat).to_dtype(DType::F32).expect("widening a float cannot fail"),
            _ => self.index_select(0, &ids_flat),
        };
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
        let _op = crate::profile::op("cross_entropy", || {
            let n = self.numel() as f64;
            crate::profile::Cost::new(4.0 * n, n)
        });
        let v = classes("cross_entropy", self, targets);
        match self.storage() {
            Storage::Cpu(_) => {
                let (logits, targets) = (self.f32_values("cross_entropy"), targets.i32_values("cross_entropy"));
                let (sum, count) = kernels::cross_entropy_forward(&logits, &targets, v, ignore_index);
                Tensor::from_f32(vec![(sum / count as f64) as f32], ())
            }
            #[cfg(feature = "gpu")]
            Storage::Gpu(_) => super::on_gpu::cross_entropy(self, targets, v, ignore_index),
        }
    }

    /// Gradient of [`Tensor::cross_entropy`] (mean over kept rows) with respect to the logits
    /// `self` `(.., V)`: `(softmax(logits) - onehot(target)) · dloss / n_valid` on kept rows,
    /// zero on rows whose target is `ignore_index`. `dloss` is the 0-d (or one-element)
    /// upstream gradient. When every target is ignored the gradient is all zeros (PyTorch
    /// gives NaN loss there, and zeros for the gradient of the kept-row sum).
    ///
    /// # Panics
    /// If `targets` is not `self.shape[..-1]`, `dloss` has more than one element, or a kept
    /// target is outside `0..V`.
    #[track_caller]
    pub fn cross_entropy_backward(&self, targets: &Tensor, ignore_index: i32, dloss: &Tensor) -> Tensor {
        let _op = crate::profile::op("cross_entropy_backward", || {
            let n = self.numel() as f64;
            crate::profile::Cost::new(4.0 * n, 2.0 * n)
        });
        let op = "cross_entropy_backward";
        let v = classes(op, self, targets);
        assert_eq!(
            dloss.numel(),
            1,
            "{op}: the upstream gradient must have one element, got shape {:?}",
            dloss.shape()
        );
        match self.storage() {
            Storage::Cpu(_) => {
                let t = targets.i32_values(op);
                let kept = kernels::count_kept(&t, ignore_index).max(1);
                let scale = dloss.f32_values(op)[0] / kept as f32;
                let dx = kernels::cross_entropy_backward(&self.f32_values(op), &t, v, ignore_index, scale);
                Tensor::from_f32(dx, self.shape())
            }
            #[cfg(feature = "gpu")]
            Storage::Gpu(_) => super::on_gpu::cross_entropy_backward(self, targets, ignore_index, dloss),
        }
    }
}

/// The number of classes `V` of `(.., V)` logits, whose targets must be `logits.shape[..-1]`.
#[track_caller]
fn classes(op: &str, logits: &Tensor, targets: &Tensor) -> usize {
    let v = logits.dim(-1);
    let rows = &logits.dims()[..logits.rank() - 1];
    if rows != targets.dims() {
        panic!("{op}: logits {:?} need targets of shape {rows:?}, got {:?}", logits.shape(), targets.shape());
    }
    v
}

/// Panics unless the upstream gradient `dy` has the shape of the forward's `x` (its `what`:
/// input or output).
#[track_caller]
pub(super) fn check_gradient_shape(op: &str, what: &str, x: &Tensor, dy: &Tensor) {
    assert_eq!(x.shape(), dy.shape(), "{op}: {what} {:?} and gradient {:?} differ in shape", x.shape(), dy.shape());
}

#[cfg(test)]
mod tests {
    use crate::{Device, Tensor};

    #[test]
    fn softmax_backward_along_first_dim_matches_last_dim_of_transpose() {
        let dev = Device::Cpu;
        let x = Tensor::randn((3, 4), crate::Seed(1), &dev);
        let dy = Tensor::randn((3, 4), crate::Seed(2), &dev);
        let y = x.softmax(0);
        let a = y.softmax_backward(&dy, 0);
        let b = y.t().contiguous().softmax_backward(&dy.t().contiguous(), -1).t().contiguous();
        assert_eq!(a.to_vec(), b.to_vec());
    }
}
