//! Backward ops: the gradient halves of fused forward ops (softmax, log-softmax, layer norm,
//! GELU, cross-entropy), the scatter-adds that undo gathers (`index_add`, `scatter_add`), and
//! `sum_to_shape`, which undoes a broadcast. Autograd calls these on plain tensors; each
//! validates shapes (panicking with the op name) and calls a kernel in `cpu::backward`.

use crate::cpu::backward as kernels;
use crate::shape::{Dim, Shape};
use crate::Tensor;

impl Tensor {
    /// Softmax's input gradient from its output `self = y = softmax(x, dim)` and the upstream
    /// gradient `dy` (same shape): `dx = y · (dy - Σ_dim dy · y)`.
    ///
    /// # Panics
    /// If the shapes differ.
    #[track_caller]
    pub fn softmax_backward(&self, dy: &Tensor, dim: impl Dim) -> Tensor {
        self.rows_backward(dy, dim, false)
    }

    /// Log-softmax's input gradient from its output `self = y = log_softmax(x, dim)`:
    /// `dx = dy - exp(y) · Σ_dim dy`.
    ///
    /// # Panics
    /// If the shapes differ.
    #[track_caller]
    pub fn log_softmax_backward(&self, dy: &Tensor, dim: impl Dim) -> Tensor {
        self.rows_backward(dy, dim, true)
    }

    /// Runs a row kernel `(y, dy, c) -> dx` over `dim`, moving it last when it is not.
    #[track_caller]
    fn rows_backward(&self, dy: &Tensor, dim: impl Dim, log: bool) -> Tensor {
        let op = if log { "log_softmax_backward" } else { "softmax_backward" };
        assert_eq!(
            self.shape(),
            dy.shape(),
            "{op}: output {:?} and gradient {:?} differ in shape",
            self.shape(),
            dy.shape()
        );
        let d = dim.resolve(self.rank().max(1), op, self.shape());
        let last = self.rank().saturating_sub(1);
        let (y, g) = match self.rank() {
            0 => (self.reshape(1), dy.reshape(1)),
            _ if d == last => (self.clone(), dy.clone()),
            _ => (self.transpose(d, last), dy.transpose(d, last)),
        };
        let c = y.dim(-1);
        #[cfg(feature = "gpu")]
        let on_device = super::on_gpu::softmax_rows_backward(&y, &g, c, log, op);
        #[cfg(not(feature = "gpu"))]
        let on_device = None;
        let dx = match on_device {
            Some(t) => t,
            None => {
                let kernel = if log { kernels::log_softmax_backward } else { kernels::softmax_backward };
                Tensor::from_f32(kernel(&y.f32_values(op), &g.f32_values(op), c), y.shape())
            }
        };
        match self.rank() {
            0 => dx.reshape(()),
            _ if d == last => dx,
            _ => dx.transpose(d, last).contiguous(),
        }
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
        let op = "layer_norm_backward";
        let c = if self.rank() == 0 { 1 } else { self.dim(-1) };
        let rows = self.numel() / c.max(1);
        assert_eq!(
            self.shape(),
            dy.shape(),
            "{op}: input {:?} and gradient {:?} differ in shape",
            self.shape(),
            dy.shape()
        );
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
        #[cfg(feature = "gpu")]
        if let Some(grads) = super::on_gpu::layer_norm_backward(self, dy, weight, mean, rstd, c) {
            return grads;
        }
        let g = kernels::layer_norm_backward(
            &dy.f32_values(op),
            &self.f32_values(op),
            &weight.f32_values(op),
            &mean.f32_values(op),
            &rstd.f32_values(op),
            c,
        );
        (Tensor::from_f32(g.dx, self.shape()), Tensor::from_f32(g.dweight, c), Tensor::from_f32(g.dbias, c))
    }

    /// Exact GELU's input gradient at `self = x`: `dx = dy · (Φ(x) + x · φ(x))`.
    ///
    /// # Panics
    /// If the shapes differ.
    #[track_caller]
    pub fn gelu_backward(&self, dy: &Tensor) -> Tensor {
        self.pointwise_backward(dy, false)
    }

    /// Tanh-GELU's input gradient at `self = x` (see `cpu::backward::gelu_tanh_backward`).
    ///
    /// # Panics
    /// If the shapes differ.
    #[track_caller]
    pub fn gelu_tanh_backward(&self, dy: &Tensor) -> Tensor {
        self.pointwise_backward(dy, true)
    }

    #[track_caller]
    fn pointwise_backward(&self, dy: &Tensor, tanh: bool) -> Tensor {
        let op = if tanh { "gelu_tanh_backward" } else { "gelu_backward" };
        assert_eq!(
            self.shape(),
            dy.shape(),
            "{op}: input {:?} and gradient {:?} differ in shape",
            self.shape(),
            dy.shape()
        );
        #[cfg(feature = "gpu")]
        if let Some(dx) = super::on_gpu::gelu_backward(self, dy, tanh, op) {
            return dx;
        }
        let kernel = if tanh { kernels::gelu_tanh_backward } else { kernels::gelu_backward };
        Tensor::from_f32(kernel(&self.f32_values(op), &dy.f32_values(op)), self.shape())
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
        let op = "cross_entropy_backward";
        let v = self.dim(-1);
        if self.dims()[..self.rank() - 1] != *targets.dims() {
            panic!(
                "{op}: logits {:?} need targets of shape {:?}, got {:?}",
                self.shape(),
                &self.dims()[..self.rank() - 1],
                targets.shape()
            );
        }
        assert_eq!(
            dloss.numel(),
            1,
            "{op}: the upstream gradient must have one element, got shape {:?}",
            dloss.shape()
        );
        #[cfg(feature = "gpu")]
        if let Some(dx) = super::on_gpu::cross_entropy_backward(self, targets, ignore_index, dloss) {
            return dx;
        }
        let t = targets.i32_values(op);
        let kept = kernels::count_kept(&t, ignore_index).max(1);
        let scale = dloss.f32_values(op)[0] / kept as f32;
        Tensor::from_f32(
            kernels::cross_entropy_backward(&self.f32_values(op), &t, v, ignore_index, scale),
            self.shape(),
        )
    }

    /// `self` plus `source` added at rows `index` along `dim`, as `torch.index_add`:
    /// `out[.., index[j], ..] = self[.., index[j], ..] + Σ source[.., j, ..]` (repeated indices
    /// accumulate). The backward of `index_select` and embedding lookup (with `self` zeros).
    ///
    /// # Panics
    /// If `index` is not 1-D i32, `source` is not `self`'s shape with `dim` resized to
    /// `index.len()`, or an index is out of range.
    #[track_caller]
    pub fn index_add(&self, dim: impl Dim, index: &Tensor, source: &Tensor) -> Tensor {
        let d = dim.resolve(self.rank(), "index_add", self.shape());
        assert_eq!(index.rank(), 1, "index_add: index must be 1-D, got shape {:?}", index.shape());
        let mut want = self.dims().to_vec();
        want[d] = index.numel();
        assert_eq!(
            source.dims(),
            want,
            "index_add: source {:?} does not fit input {:?} and index {:?}",
            source.shape(),
            self.shape(),
            index.shape()
        );
        #[cfg(feature = "gpu")]
        if let Some(out) = super::on_gpu::index_add(self, d, index, source) {
            return out;
        }
        let mut out = self.f32_values("index_add").into_owned();
        let dims = (self.dims()[..d].iter().product(), self.dims()[d], self.dims()[d + 1..].iter().product());
        kernels::index_add(&mut out, dims, &index.i32_values("index_add"), &source.f32_values("index_add"));
        Tensor::from_f32(out, self.shape())
    }

    /// `self` plus `source` scattered along `dim` by `index`, as `torch.scatter_add`:
    /// `out[i][index[i][j][k]][k] += source[i][j][k]` for `dim = 1`. The backward of `gather`.
    ///
    /// # Panics
    /// If `index` and `source` differ in shape, their rank differs from `self`'s, or an
    /// index is out of range.
    #[track_caller]
    pub fn scatter_add(&self, dim: impl Dim, index: &Tensor, source: &Tensor) -> Tensor {
        let d = dim.resolve(self.rank(), "scatter_add", self.shape());
        assert_eq!(
            index.shape(),
            source.shape(),
            "scatter_add: index {:?} and source {:?} differ in shape",
            index.shape(),
            source.shape()
        );
        let fits = index.rank() == self.rank() && (0..self.rank()).all(|i| i == d || index.dims()[i] <= self.dims()[i]);
        assert!(
            fits,
            "scatter_add: index of shape {:?} does not fit input of shape {:?} along dim {d}",
            index.shape(),
            self.shape()
        );
        #[cfg(feature = "gpu")]
        if let Some(out) = super::on_gpu::scatter_add(self, d, index, source) {
            return out;
        }
        let mut out = self.f32_values("scatter_add").into_owned();
        let (idx, src) = (index.i32_values("scatter_add"), source.f32_values("scatter_add"));
        kernels::scatter_add(&mut out, self.dims(), d, &idx, index.dims(), &src);
        Tensor::from_f32(out, self.shape())
    }

    /// Sums `self` down to `shape`, the inverse of broadcasting `shape` up to `self.shape()`:
    /// leading dims that broadcasting added are summed away, and dims where `shape` has 1 are
    /// summed with keepdim. Returns `self` unchanged (no copy) when the shapes are equal.
    ///
    /// # Panics
    /// If `shape` does not broadcast to `self.shape()`.
    #[track_caller]
    pub fn sum_to_shape(&self, shape: impl Into<Shape>) -> Tensor {
        let shape = shape.into();
        if &shape == self.shape() {
            return self.clone();
        }
        let fits = shape.broadcast(self.shape()).as_ref() == Some(self.shape());
        assert!(fits, "sum_to_shape: {:?} does not broadcast to {:?}", shape, self.shape());
        let extra = self.rank() - shape.rank();
        // Merge the added leading dims into one and sum it: one reduction, not `extra`.
        let lead: usize = self.dims()[..extra].iter().product();
        let mut out =
            if extra > 0 { self.reshape([&[lead], &self.dims()[extra..]].concat()).sum(0) } else { self.clone() };
        for (d, &size) in shape.dims().iter().enumerate() {
            if size == 1 && out.dims()[d] != 1 {
                out = out.sum_keepdim(d);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use crate::{Device, Tensor};

    #[test]
    fn sum_to_shape_undoes_broadcast() {
        let dev = Device::Cpu;
        let g = Tensor::ones((2, 3, 4), &dev);
        assert_eq!(g.sum_to_shape((3, 1)).to_vec(), vec![8.0; 3]);
        assert_eq!(g.sum_to_shape(()).to_vec(), vec![24.0]);
        assert_eq!(g.sum_to_shape((1, 4)).dims(), &[1, 4]);
    }

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
