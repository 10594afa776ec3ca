//! Scaled dot-product attention as one op with its own backward (see [`crate::cpu::attention`]
//! for the math), with grouped-query heads. On the CPU each head runs fused; on a GPU the same
//! steps run as the GPU's broadcasting matmul, masked-fill and softmax kernels, the queries
//! viewed as `(B, NKV, G, T, HS)` against keys `(B, NKV, 1, S, HS)`, so K and V are not repeated.

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
    /// and values `(B, NKV, S, HS)` with `NH % NKV == 0`, and `mask` broadcastable to
    /// `(B, NH, T, S)`, nonzero where a query may not see a key. Grouped-query attention: query
    /// head `h` reads key/value head `h / (NH / NKV)` (transformers' `repeat_kv` order), without
    /// copying K or V. With `NKV = NH` it equals the unfused ops (`matmul`, `mul_scalar`,
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
        let _op = crate::profile::op("attention", || {
            let n = self.numel() as f64;
            crate::profile::Cost::new(4.0 * n * k.dim(-2) as f64, 3.0 * n + 2.0 * k.numel() as f64)
        });
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
            // The unfused ops, each of which runs on the GPU; query groups broadcast over K, V.
            #[cfg(feature = "gpu")]
            Storage::Gpu(_) => {
                let (q5, k5, v5) = grouped(self, k, v, d);
                let scores = q5.matmul(&k5.transpose(-2, -1)).reshape(full.clone()); // (B, NH, T, S)
                let probs = scores.mul_scalar(scale).masked_fill(mask, f32::NEG_INFINITY).softmax(-1);
                let output = probs.reshape([d.b, d.nkv, d.group(), d.t, d.s]).matmul(&v5);
                AttentionOutput { output: output.reshape([d.b, d.nh, d.t, d.hs]), probs }
            }
        }
    }

    /// The backward of [`Tensor::attention`]: `(dq, dk, dv)` from `self` = `q`, the keys,
    /// values, the saved `probs` and the output gradient `dout` `(B, NH, T, HS)`. With grouped
    /// heads, `dk` and `dv` `(B, NKV, S, HS)` sum the terms of their group's query heads.
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
        let _op = crate::profile::op("attention_backward", || {
            let n = self.numel() as f64;
            crate::profile::Cost::new(8.0 * n * k.dim(-2) as f64, 5.0 * n + 4.0 * k.numel() as f64)
        });
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
            // The unfused ops, each of which runs on the GPU; dk and dv sum over each group.
            #[cfg(feature = "gpu")]
            Storage::Gpu(_) => {
                let (q5, k5, v5) = grouped(self, k, v, d);
                let g = d.group();
                let (p5, do5) = (probs.reshape([d.b, d.nkv, g, d.t, d.s]), dout.reshape([d.b, d.nkv, g, d.t, d.hs]));
                let dv = p5.transpose(-2, -1).matmul(&do5).sum(2); // (B, NKV, S, HS)
                let dp = do5.matmul(&v5.transpose(-2, -1));
                let ds = p5.softmax_backward(&dp, -1).mul_scalar(scale); // (B, NKV, G, T, S)
                let dq = ds.matmul(&k5).reshape(self.shape().clone());
                (dq, ds.transpose(-2, -1).matmul(&q5).sum(2), dv)
            }
        }
    }
}

/// The sizes of `q` `(B, NH, T, HS)` against `k`, `v` `(B, NKV, S, HS)`, `NKV` dividing `NH`.
#[track_caller]
fn attention_dims(q: &Tensor, k: &Tensor, v: &Tensor) -> AttentionDims {
    let fits = q.rank() == 4
        && k.rank() == 4
        && k.dims() == v.dims()
        && q.dims()[0] == k.dims()[0]
        && q.dims()[1].is_multiple_of(k.dims()[1]) // NKV divides NH (0 heads only with 0 heads)
        && q.dims()[3] == k.dims()[3];
    assert!(
        fits,
        "attention: q {:?} needs k and v of shape (B, NKV, S, HS) with its B and HS and NKV dividing its NH, got {:?} and {:?}",
        q.shape(),
        k.shape(),
        v.shape()
    );
    let (qd, kd) = (q.dims(), k.dims());
    AttentionDims { b: qd[0], nh: qd[1], nkv: kd[1], t: qd[2], s: kd[2], hs: qd[3] }
}

/// The GPU's view of grouped heads: `q` as `(B, NKV, G, T, HS)` (a copy only if `q` is not
/// contiguous), `k`, `v` as `(B, NKV, 1, S, HS)` views that the batched matmul broadcasts.
#[cfg(feature = "gpu")]
fn grouped(q: &Tensor, k: &Tensor, v: &Tensor, d: AttentionDims) -> (Tensor, Tensor, Tensor) {
    let q5 = q.reshape([d.b, d.nkv, d.group(), d.t, d.hs]);
    (q5, k.unsqueeze(2), v.unsqueeze(2))
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

    /// `repeat_kv`: each key/value head repeated `group` times, as transformers lays them out.
    fn repeat_kv(x: &Tensor, group: usize) -> Tensor {
        let d = x.dims().to_vec();
        x.unsqueeze(2).expand([d[0], d[1], group, d[2], d[3]]).reshape([d[0], d[1] * group, d[2], d[3]])
    }

    #[test]
    fn grouped_query_attention_equals_attention_over_repeated_heads() {
        let dev = Device::Cpu;
        for (nh, nkv) in [(4, 1), (6, 2)] {
            let (b, t, s, hs, group) = (2, 3, 5, 4, nh / nkv);
            let q = Tensor::randn((b, t, nh, hs), Seed(10), &dev).permute(&[0, 2, 1, 3]);
            let k = Tensor::randn((b, nkv, s, hs), Seed(11), &dev);
            let v = Tensor::randn((b, nkv, s, hs), Seed(12), &dev);
            let causal = Tensor::arange(0.0, s as f32, &dev).reshape((1, 1, 1, s)).gt(&Tensor::arange(
                2.0,
                (t + 2) as f32,
                &dev,
            )
            .reshape((1, 1, t, 1)));
            let (kr, vr) = (repeat_kv(&k, group), repeat_kv(&v, group));
            let gqa = q.attention(&k, &v, &causal, 0.5);
            let mha = q.attention(&kr, &vr, &causal, 0.5);
            assert_eq!(gqa.output.to_vec(), mha.output.to_vec(), "{nh}:{nkv} forward");
            let dout = Tensor::randn((b, nh, t, hs), Seed(13), &dev);
            let (dq, dk, dv) = q.attention_backward(&k, &v, &gqa.probs, &dout, 0.5);
            let (dq_r, dk_r, dv_r) = q.attention_backward(&kr, &vr, &mha.probs, &dout, 0.5);
            assert_eq!(dq.to_vec(), dq_r.to_vec(), "{nh}:{nkv} dq");
            // dk, dv: the repeated heads' gradients summed over each group.
            let summed = |x: &Tensor| x.reshape([b, nkv, group, s, hs]).sum(2).to_vec();
            for (got, want) in [(dk, summed(&dk_r)), (dv, summed(&dv_r))] {
                for (a, e) in got.to_vec().iter().zip(&want) {
                    assert!((a - e).abs() <= 1e-5 * (1.0 + e.abs()), "{nh}:{nkv}: {a} vs {e}");
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "attention: q (1, 2, 3, 4) needs k and v of shape (B, NKV, S, HS)")]
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
