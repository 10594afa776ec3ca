//! The Llama family's ops, each forward above its backward: RMSNorm, rotary position embedding
//! (rotate-half) and the fused SwiGLU. Shapes are checked here (panicking with the op name and
//! the shapes), then one `match` on the storage runs the CPU kernel of `cpu/llama.rs` or the
//! GPU kernels of `rms_norm.wgsl`, `rope.wgsl` and `swiglu.wgsl`.

use super::nn::check_gradient_shape;
use crate::cpu::llama as kernels;
use crate::storage::Storage;
use crate::Tensor;

/// RMSNorm's output with the statistic its backward pass needs.
#[derive(Clone, Debug)]
pub struct RmsNormOutput {
    /// `x · rstd · weight`, the input's shape.
    pub output: Tensor,
    /// Per-row `1 / sqrt(mean(x²) + eps)`, shape `input.shape[..-1]`.
    pub rstd: Tensor,
}

impl Tensor {
    /// RMSNorm over the last dim, as transformers' `LlamaRMSNorm` in f32:
    /// `y = x · rsqrt(mean_C(x²) + eps) · weight` (no mean subtraction, no bias). Shapes: `x` is
    /// `(.., C)`, `weight` `(C,)`. Returns `rstd` per row too (what the backward needs); see
    /// [`Tensor::rms_norm`] for just `y`. Llama uses eps 1e-5 or 1e-6, Qwen 1e-6.
    ///
    /// ```
    /// use deltaw_tensor::{Device, Tensor};
    /// let dev = Device::Cpu;
    /// let x = Tensor::from_vec(vec![3.0f32, -4.0], (1, 2), &dev)?;
    /// let n = x.rms_norm_with_stats(&Tensor::ones(2, &dev), 0.0);
    /// assert_eq!(n.rstd.to_vec(), vec![1.0 / 12.5f32.sqrt()]); // mean(x²) = 12.5
    /// # Ok::<(), deltaw_tensor::Error>(())
    /// ```
    ///
    /// # Panics
    /// If `weight` is not `(C,)` for the last dim C of `x`, or the devices differ.
    #[track_caller]
    pub fn rms_norm_with_stats(&self, weight: &Tensor, eps: f32) -> RmsNormOutput {
        let _op = crate::profile::op("rms_norm", || {
            let n = self.numel() as f64;
            crate::profile::Cost::new(6.0 * n, 2.0 * n)
        });
        let c = if self.rank() == 0 { 1 } else { self.dim(-1) };
        if weight.dims() != [c] {
            panic!("rms_norm: input {:?} needs weight of shape ({c},), got {:?}", self.shape(), weight.shape());
        }
        same_devices("rms_norm", self, &[weight]);
        let rows = &self.dims()[..self.rank().saturating_sub(1)];
        match self.storage() {
            Storage::Cpu(_) => {
                let op = "rms_norm";
                let o = kernels::rms_norm_forward(&self.f32_values(op), &weight.f32_values(op), c, eps);
                RmsNormOutput { output: Tensor::from_f32(o.y, self.shape()), rstd: Tensor::from_f32(o.rstd, rows) }
            }
            #[cfg(feature = "gpu")]
            Storage::Gpu(_) => super::on_gpu::rms_norm(self, weight, eps, c),
        }
    }

    /// RMSNorm over the last dim; see [`Tensor::rms_norm_with_stats`].
    #[track_caller]
    pub fn rms_norm(&self, weight: &Tensor, eps: f32) -> Tensor {
        self.rms_norm_with_stats(weight, eps).output
    }

    /// RMSNorm's gradients `(dx, dweight)` from the input `self = x` `(.., C)`, the upstream
    /// gradient `dout` (same shape), `weight` `(C,)` and the forward's saved `rstd` (one per
    /// row). With `xhat = x · rstd`:
    /// `dx = rstd · (w ⊙ dy − xhat · mean_C(xhat ⊙ w ⊙ dy))`, `dweight = Σ_rows dy ⊙ xhat`.
    ///
    /// # Panics
    /// If `dout` differs from `x` in shape, `weight` is not `(C,)` or `rstd` does not have one
    /// entry per row.
    #[track_caller]
    pub fn rms_norm_backward(&self, dout: &Tensor, weight: &Tensor, rstd: &Tensor) -> (Tensor, Tensor) {
        let _op = crate::profile::op("rms_norm_backward", || {
            let n = self.numel() as f64;
            crate::profile::Cost::new(10.0 * n, 3.0 * n)
        });
        let op = "rms_norm_backward";
        let c = if self.rank() == 0 { 1 } else { self.dim(-1) };
        let rows = self.numel() / c.max(1);
        check_gradient_shape(op, "input", self, dout);
        assert_eq!(weight.dims(), [c], "{op}: input {:?} needs weight ({c},), got {:?}", self.shape(), weight.shape());
        assert_eq!(rstd.numel(), rows, "{op}: input {:?} has {rows} rows, rstd is {:?}", self.shape(), rstd.shape());
        same_devices(op, self, &[dout, weight, rstd]);
        match self.storage() {
            Storage::Cpu(_) => {
                let (x, dy, w, r) =
                    (self.f32_values(op), dout.f32_values(op), weight.f32_values(op), rstd.f32_values(op));
                let g = kernels::rms_norm_backward(&dy, &x, &w, &r, c);
                (Tensor::from_f32(g.dx, self.shape()), Tensor::from_f32(g.dweight, c))
            }
            #[cfg(feature = "gpu")]
            Storage::Gpu(_) => super::on_gpu::rms_norm_backward(self, dout, weight, rstd, c),
        }
    }

    /// Rotary position embedding in Hugging Face's rotate-half convention (`apply_rotary_pos_emb`
    /// with `unsqueeze_dim=2`). `self` = `x` `(B, T, NH, HS)` with HS even, any strides; `cos`
    /// and `sin` are the half tables `(B, T, HS/2)` or broadcastable to it (e.g. `(1, T, HS/2)`):
    /// `cos[b, t, i] = cos(pos_bt · inv_freq[i]) · attention_scaling`. With `x1 = x[.., ..HS/2]`
    /// and `x2 = x[.., HS/2..]`, per head:
    /// `out1 = x1·cos − x2·sin`, `out2 = x2·cos + x1·sin`, which is
    /// `x·cat(cos, cos) + rotate_half(x)·cat(sin, sin)`: pair `(i, i + HS/2)` turned by angle θᵢ.
    /// The output is contiguous `(B, T, NH, HS)`.
    ///
    /// # Panics
    /// If `x` is not 4-D with an even last dim, the tables do not broadcast to `(B, T, HS/2)`,
    /// or the devices differ.
    #[track_caller]
    pub fn rope(&self, cos: &Tensor, sin: &Tensor) -> Tensor {
        let _op = crate::profile::op("rope", || {
            let n = self.numel() as f64;
            crate::profile::Cost::new(6.0 * n, 2.0 * n)
        });
        self.rotate("rope", cos, sin, 1.0)
    }

    /// Rope's input gradient from `self = dout` `(B, T, NH, HS)`: the transpose of a rotation is
    /// the rotation by −θ, so `dx1 = d1·cos + d2·sin`, `dx2 = d2·cos − d1·sin`. Same tables and
    /// panics as [`Tensor::rope`].
    #[track_caller]
    pub fn rope_backward(&self, cos: &Tensor, sin: &Tensor) -> Tensor {
        let _op = crate::profile::op("rope_backward", || {
            let n = self.numel() as f64;
            crate::profile::Cost::new(6.0 * n, 2.0 * n)
        });
        self.rotate("rope_backward", cos, sin, -1.0)
    }

    /// Rotation of each head's half pairs by `sign · θ` (see [`Tensor::rope`]).
    #[track_caller]
    fn rotate(&self, op: &str, cos: &Tensor, sin: &Tensor, sign: f32) -> Tensor {
        let fits = self.rank() == 4 && self.dim(-1).is_multiple_of(2);
        assert!(fits, "{op}: x must be (B, T, NH, HS) with HS even, got {:?}", self.shape());
        let [b, t, nh, hs] = [self.dims()[0], self.dims()[1], self.dims()[2], self.dims()[3]];
        let tables = [b, t, hs / 2];
        let table = |what: &str, tab: &Tensor| {
            assert_eq!(tab.device(), self.device(), "{op}: x on {} and {what} on {}", self.device(), tab.device());
            let fits = tab.rank() <= 3 && tab.layout().broadcast_to(&tables.into()).is_some();
            assert!(fits, "{op}: x {:?} needs {what} broadcastable to {tables:?}, got {:?}", self.shape(), tab.shape());
            tab.expand(tables).contiguous()
        };
        let (cos, sin) = (table("cos", cos), table("sin", sin));
        match self.storage() {
            Storage::Cpu(_) => {
                let (x, c, s) = (self.f32_values(op), cos.f32_values(op), sin.f32_values(op));
                Tensor::from_f32(kernels::rope(&x, &c, &s, nh, hs, sign), self.shape())
            }
            #[cfg(feature = "gpu")]
            Storage::Gpu(_) => super::on_gpu::rope(self, &cos, &sin, sign, op),
        }
    }

    /// SwiGLU, the gated MLP activation of Llama: `silu(gate) · up = gate · σ(gate) · up`, with
    /// `self` = `gate` and `up` of the same shape (any). One pass instead of two tensor ops.
    ///
    /// # Panics
    /// If the shapes or devices differ.
    #[track_caller]
    pub fn swiglu(&self, up: &Tensor) -> Tensor {
        let _op = crate::profile::op("swiglu", || {
            let n = self.numel() as f64;
            crate::profile::Cost::new(8.0 * n, 3.0 * n)
        });
        let op = "swiglu";
        assert_eq!(self.shape(), up.shape(), "{op}: gate {:?} and up {:?} differ in shape", self.shape(), up.shape());
        same_devices(op, self, &[up]);
        match self.storage() {
            Storage::Cpu(_) => {
                Tensor::from_f32(kernels::swiglu_forward(&self.f32_values(op), &up.f32_values(op)), self.shape())
            }
            #[cfg(feature = "gpu")]
            Storage::Gpu(_) => super::on_gpu::swiglu(self, up),
        }
    }

    /// SwiGLU's gradients `(dgate, dup)` from `self` = `gate`, `up` and `dout` (all one shape):
    /// `dgate = dout · up · σ(g) · (1 + g · (1 − σ(g)))` (silu's derivative), `dup = dout · silu(g)`.
    ///
    /// # Panics
    /// If the shapes or devices differ.
    #[track_caller]
    pub fn swiglu_backward(&self, up: &Tensor, dout: &Tensor) -> (Tensor, Tensor) {
        let _op = crate::profile::op("swiglu_backward", || {
            let n = self.numel() as f64;
            crate::profile::Cost::new(12.0 * n, 5.0 * n)
        });
        let op = "swiglu_backward";
        assert_eq!(self.shape(), up.shape(), "{op}: gate {:?} and up {:?} differ in shape", self.shape(), up.shape());
        check_gradient_shape(op, "output", self, dout);
        same_devices(op, self, &[up, dout]);
        match self.storage() {
            Storage::Cpu(_) => {
                let (g, u, d) = (self.f32_values(op), up.f32_values(op), dout.f32_values(op));
                let (dgate, dup) = kernels::swiglu_backward(&g, &u, &d);
                (Tensor::from_f32(dgate, self.shape()), Tensor::from_f32(dup, self.shape()))
            }
            #[cfg(feature = "gpu")]
            Storage::Gpu(_) => super::on_gpu::swiglu_backward(self, up, dout),
        }
    }
}

/// Panics unless every operand is on the device of `x`, naming both devices.
#[track_caller]
fn same_devices(op: &str, x: &Tensor, others: &[&Tensor]) {
    for t in others {
        assert_eq!(t.device(), x.device(), "{op}: operands on {} and {}", x.device(), t.device());
    }
}
