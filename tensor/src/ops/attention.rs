//! Scaled dot-product attention as one op with its own backward (see [`crate::cpu::attention`]
//! for the math). On the CPU each head runs fused; on a GPU the same steps run as the GPU's
//! matmul, masked-fill and softmax kernels.

use crate::cpu::attention::{self as kernels, AttentionDims, Operand};
use crate::shape::Shape;
use crate::storage::Storage;
use crate::Tensor;

/// The output of [`Tensor::attention`] and what its backward needs.
#[derive(Clone, Debug)]
pub struct AttentionOutput {
    /// `(B, NH, T, HS)`.
    pub output: Tensor,
    /// The attention probabilities `(B, NH, T, S)`: saved for [`Tensor::attention_backward`].
    pub probs: Tensor,
}

impl Tensor {
    /// `softmax(q·kᵀ·scale, masked) · v` with `self` as the queries `q` `(B, NH, T, HS)`, keys
    /// and values `(B, NH, S, HS)`, and `mask` broadcastable to `(B, NH, T, S)`, nonzero where
    /// a query may not see a key. Equal to the unfused ops (`matmul`, `mul_scalar`,
    /// `masked_fill(-∞)`, `softmax(-1)`, `matmul`), bit for bit on the CPU. A row with every key
    /// masked is NaN, as there.
    ///
    /// ```
    /// use deltaw_tensor::{Device, Seed, Tensor};
    /// let dev = Device::Cpu;
    /// let (q, k, v) = (Tensor::randn((1, 2, 3, 4), Seed(0), &dev), Tensor::randn((1, 2, 5, 4), Seed(1), &dev), Tensor::randn((1, 2, 5, 4), Seed(2), &dev));
    /// let mask = Tensor::zeros((1, 1, 1, 5), &dev); // nothing masked
    /// let fused = q.attention(&k, &v, &mask, 0.5);
    /// let p = q.matmul(&k.transpose(-2, -1)).mul_scalar(0.5).masked_fill(&mask, f32::NEG_INFINITY).softmax(-1);
    /// assert_eq!(fused.output.to_vec(), p.matmul(&v).to_vec());
    /// ```
    ///
    /// # Panics
    /// If the shapes do not fit (the message names all four) or the devices differ.
    #[track_caller]
    pub fn attention(&self, k: &Tensor, v: &Tensor, mask: &Tensor, scale: f32) -> AttentionOutput {
        let d = attention_dims(self, k, v);
        let full = Shape::from([d.b, d.nh, d.t, d.s]);
        let mask_layout = mask.layout().broadcast_to(&full).unwrap_or_else(|| {
            panic!("attention: mask {:?} does not broadcast to the scores' shape {full:?}", mask.shape())
        });
        for t in [k, v, mask] {
            assert_eq!(t.device(), self.device(), "attention: operands on {} and {}", self.device(), t.device());
        }
        match self.storage() {
            Storage::Cpu(_) => {
                let op = "attention";
                let (q_data, k_data, v_data) = (self.f32_storage(op), k.f32_storage(op), v.f32_storage(op));
                let (out, probs) = kernels::attention_forward(
                    Operand { data: q_data, layout: self.layout() },
                    Operand { data: k_data, layout: k.layout() },
                    Operand { data: v_data, layout: v.layout() },
                    Operand { data: mask.f32_storage(op), layout: &mask_layout },
                    d,
                    scale,
                );
                AttentionOutput {
                    output: Tensor::from_f32(out, [d.b, d.nh, d.t, d.hs]),
                    probs: Tensor::from_f32(probs, full),
                }
            }
            // The unfused ops, each of which runs on the GPU.
            #[cfg(feature = "gpu")]
            Storage::Gpu(_) => {
                let probs = self.matmul(&k.transpose(-2, -1)).mul_scalar(scale).masked_fill(mask, f32::NEG_INFINITY);
                let probs = probs.softmax(-1);
                AttentionOutput { output: probs.matmul(v), probs }
            }
        }
    }

    /// The backward of [`Tensor::attention`]: `(dq, dk, dv)` from `self` = `q`, the keys,
    /// values, the saved `probs` and the output gradient `dout` `(B, NH, T, HS)`.
    ///
    /// # Panics
    /// If the shapes do not fit or the devices differ.
    #[track_caller]
    pub fn attention_backward(
        &self,
        k: &Tensor,
        v: &Tensor,
        probs: &Tensor,
        dout: &Tensor,
        scale: f32,
    ) -> (Tensor, Tensor, Tensor) {
        let d = attention_dims(self, k, v);
        assert_eq!(probs.dims(), [d.b, d.nh, d.t, d.s], "attention_backward: probs {:?}", probs.shape());
        assert_eq!(dout.dims(), self.dims(), "attention_backward: dout {:?} and q {:?}", dout.shape(), self.shape());
        match self.storage() {
            Storage::Cpu(_) => {
                let op = "attention_backward";
                let probs = probs.contiguous();
                let p = &probs.f32_storage(op)[probs.layout().offset()..probs.layout().offset() + probs.numel()];
                let (dq, dk, dv) = kernels::attention_backward(
                    Operand { data: self.f32_storage(op), layout: self.layout() },
                    Operand { data: k.f32_storage(op), layout: k.layout() },
                    Operand { data: v.f32_storage(op), layout: v.layout() },
                    p,
                    Operand { data: dout.f32_storage(op), layout: dout.layout() },
                    d,
                    scale,
                );
                (Tensor::from_f32(dq, self.shape()), Tensor::from_f32(dk, k.shape()), Tensor::from_f32(dv, v.shape()))
            }
            // The unfused ops, each of which runs on the GPU.
            #[cfg(feature = "gpu")]
            Storage::Gpu(_) => {
                let dv = probs.transpose(-2, -1).matmul(dout);
                let dp = dout.matmul(&v.transpose(-2, -1));
                let ds = probs.softmax_backward(&dp, -1).mul_scalar(scale);
                (ds.matmul(k), ds.transpose(-2, -1).matmul(self), dv)
            }
        }
    }
}

/// The sizes of `q` `(B, NH, T, HS)` against `k`, `v` `(B, NH, S, HS)`.
#[track_caller]
fn attention_dims(q: &Tensor, k: &Tensor, v: &Tensor) -> AttentionDims {
    let fits = q.rank() == 4
        && k.rank() == 4
        && k.dims() == v.dims()
        && q.dims()[..2] == k.dims()[..2]
        && q.dims()[3] == k.dims()[3];
    assert!(
        fits,
        "attention: q {:?} needs k and v of shape (B, NH, S, HS) with its B, NH and HS, got {:?} and {:?}",
        q.shape(),
        k.shape(),
        v.shape()
    );
    let (qd, kd) = (q.dims(), k.dims());
    AttentionDims { b: qd[0], nh: qd[1], t: qd[2], s: kd[2], hs: qd[3] }
}

#[cfg(test)]
mod tests {
    use crate::{Device, Seed, Tensor};

    /// The unfused ops, as the composite the fused kernel must equal.
    fn unfused(q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor, scale: f32) -> (Tensor, Tensor) {
        let p = q.matmul(&k.transpose(-2, -1)).mul_scalar(scale).masked_fill(mask, f32::NEG_INFINITY).softmax(-1);
        (p.matmul(v), p)
    }

    #[test]
    fn fused_attention_gives_the_bits_of_the_unfused_ops_forward_and_backward() {
        let dev = Device::Cpu;
        let (b, nh, t, s, hs) = (2, 3, 5, 7, 4);
        // q, k, v as heads of (B, T, NH, HS) projections: strided views, as in the models.
        let heads = |len, seed| Tensor::randn((b, len, nh, hs), Seed(seed), &dev).permute(&[0, 2, 1, 3]);
        let (q, k, v) = (heads(t, 1), heads(s, 2), heads(s, 3));
        let causal =
            Tensor::arange(0.0, s as f32, &dev)
                .reshape((1, 1, 1, s))
                .gt(&Tensor::arange(2.0, (t + 2) as f32, &dev).reshape((1, 1, t, 1)));
        let scale = 0.5;
        let fused = q.attention(&k, &v, &causal, scale);
        let (out, p) = unfused(&q, &k, &v, &causal, scale);
        assert_eq!(fused.output.to_vec(), out.to_vec());
        assert_eq!(fused.probs.to_vec(), p.to_vec());

        let dout = Tensor::randn((b, nh, t, hs), Seed(4), &dev);
        let (dq, dk, dv) = q.attention_backward(&k, &v, &fused.probs, &dout, scale);
        let dv_ref = p.transpose(-2, -1).matmul(&dout);
        let ds = p.softmax_backward(&dout.matmul(&v.transpose(-2, -1)), -1).mul_scalar(scale);
        assert_eq!(dv.to_vec(), dv_ref.to_vec());
        assert_eq!(dq.to_vec(), ds.matmul(&k).to_vec());
        assert_eq!(dk.to_vec(), ds.transpose(-2, -1).matmul(&q).to_vec());
    }

    #[test]
    #[should_panic(expected = "attention: q (1, 2, 3, 4) needs k and v of shape (B, NH, S, HS)")]
    fn mismatched_heads_panic_naming_the_shapes() {
        let dev = Device::Cpu;
        let q = Tensor::zeros((1, 2, 3, 4), &dev);
        q.attention(
            &Tensor::zeros((1, 2, 5, 8), &dev),
            &Tensor::zeros((1, 2, 5, 8), &dev),
            &Tensor::zeros(1, &dev),
            1.0,
        );
    }
}
