//! Matrix multiplication, 2-D and batched, as `torch.matmul`. 1-D operands become matrices
//! through recorded `unsqueeze` / `squeeze` views, and batch dims that differ are `expand`ed,
//! except for the common `(.., M, K) @ (K, N)` (a linear layer), whose weight gradient is one
//! large GEMM over all rows instead of a batch of small ones summed afterwards.

use crate::grads::Grads;
use crate::op::{Family, Op};
use crate::var::Var;
use deltaw_tensor::{MatmulVectors, Shape, Tensor};

/// `a @ b` with `a` `(.., M, K)` and `b` either `(.., K, N)` with the same batch dims or `(K, N)`,
/// plus a `(N,)` bias for `Var::matmul_bias`.
pub(crate) struct Matmul {
    a: Var,
    b: Var,
    bias: Option<Var>,
}

impl Var {
    /// `self @ rhs`: `(.., M, K) @ (.., K, N) -> (.., M, N)` with broadcast batch dims; a 1-D
    /// operand is a row (lhs) or column (rhs) vector whose unit dim is dropped, as PyTorch.
    ///
    /// # Panics
    /// If the inner dims differ or the batch dims do not broadcast (naming both shapes).
    #[track_caller]
    pub fn matmul(&self, rhs: &Var) -> Var {
        let vectors = MatmulVectors::of(&self.shape(), &rhs.shape());
        let a = if vectors.lhs { self.unsqueeze(0) } else { self.clone() };
        let b = if vectors.rhs { rhs.unsqueeze(1) } else { rhs.clone() };
        let out = matmul_2d_or_batched(&a, &b, self, rhs);
        vectors.squeezed().fold(out, |out, d| out.squeeze(d))
    }

    /// `self @ rhs + bias`, a linear layer, as one recorded op: `(.., M, K) @ (K, N) + (N,)`.
    /// The value is [`Tensor::matmul_bias`]'s (the bits of `matmul` then `add`, the bias added
    /// in the GEMM's epilogue on the CPU); the gradients are those of the two ops: the
    /// matmul's, and `dbias = Σ_rows dout`.
    ///
    /// ```
    /// use deltaw_autograd::Var;
    /// use deltaw_tensor::{Device, Tensor};
    /// let x = Var::constant(Tensor::from_vec(vec![1.0f32, 2.0], (1, 2), &Device::Cpu)?);
    /// let w = Var::parameter(Tensor::from_vec(vec![3.0f32, 4.0], (2, 1), &Device::Cpu)?);
    /// let b = Var::parameter(Tensor::from_vec(vec![0.5f32], 1, &Device::Cpu)?);
    /// let y = x.matmul_bias(&w, &b); // 1·3 + 2·4 + 0.5
    /// assert_eq!(y.value().to_vec(), vec![11.5]);
    /// let grads = y.sum_all().backward()?;
    /// assert_eq!(grads.get(&w).unwrap().to_vec(), vec![1.0, 2.0]);
    /// assert_eq!(grads.get(&b).unwrap().to_vec(), vec![1.0]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Panics
    /// If `self` has fewer than 2 dims, `rhs` is not 2-D or `bias` is not `(N,)`, naming the
    /// shapes, and as [`Var::matmul`].
    #[track_caller]
    pub fn matmul_bias(&self, rhs: &Var, bias: &Var) -> Var {
        let (a, b, c) = (self.shape(), rhs.shape(), bias.shape());
        let fits = a.rank() >= 2 && b.rank() == 2 && c.dims() == [b.dims()[1]];
        assert!(fits, "matmul_bias: lhs {a:?}, rhs {b:?} and bias {c:?}: expects (.., M, K) @ (K, N) + (N,)");
        let value = self.value().matmul_bias(&rhs.value(), &bias.value());
        Var::from_op(value, Op::Matmul(Matmul { a: self.clone(), b: rhs.clone(), bias: Some(bias.clone()) }))
    }
}

/// Both operands have rank ≥ 2; `orig_*` only name the shapes in messages.
#[track_caller]
fn matmul_2d_or_batched(a: &Var, b: &Var, orig_a: &Var, orig_b: &Var) -> Var {
    let (da, db) = (a.dims(), b.dims());
    let (a, b) = if db.len() == 2 || da[..da.len() - 2] == db[..db.len() - 2] {
        (a.clone(), b.clone())
    } else {
        let (ba, bb) = (Shape::from(&da[..da.len() - 2]), Shape::from(&db[..db.len() - 2]));
        let batch = ba.broadcast(&bb).unwrap_or_else(|| {
            panic!(
                "matmul: lhs {:?} and rhs {:?}: batch dims {ba:?} and {bb:?} cannot be broadcast",
                orig_a.shape(),
                orig_b.shape()
            )
        });
        let with = |rows: usize, cols: usize| Shape::from([batch.dims(), &[rows, cols]].concat());
        (a.expand(with(da[da.len() - 2], da[da.len() - 1])), b.expand(with(db[db.len() - 2], db[db.len() - 1])))
    };
    let value = a.value().matmul(&b.value());
    Var::from_op(value, Op::Matmul(Matmul { a, b, bias: None }))
}

/// For `y = a @ b`: `da = dout @ bᵀ` and `db = aᵀ @ dout`. When `b` is 2-D under a batched
/// `a`, its gradient sums over the batch: `db = a'ᵀ @ dout'` with `a'` `(rows, K)` and
/// `dout'` `(rows, N)` the batch flattened into the rows. Transposes are views: the GEMM
/// reads them in place.
fn matmul_backward(a: &Var, b: &Var, dout: &Tensor, grads: &mut Grads) {
    let (av, bv) = (a.value(), b.value());
    if a.requires_grad() {
        grads.accumulate(a, dout.matmul(&bv.t()));
    }
    if b.requires_grad() {
        let db = if bv.rank() == 2 && av.rank() > 2 {
            let k = av.dim(-1);
            let n = dout.dim(-1);
            rhs_grad(&av.reshape((av.numel() / k, k)), &dout.reshape((dout.numel() / n, n)), &bv)
        } else if bv.rank() == 2 {
            rhs_grad(&av, dout, &bv)
        } else {
            av.t().matmul(dout)
        };
        grads.accumulate(b, db);
    }
}

/// `aᵀ·d`, the gradient of the 2-D rhs `b` of `a·b`, laid out as `b` is. When `b` is the
/// transpose of a contiguous matrix (GPT-2's tied output projection reads the embedding table
/// as `wteᵀ`), it is computed as `(dᵀ·a)ᵀ`: the transpose's own backward then hands the table
/// a contiguous gradient, which adds into the embedding's in place, instead of a transposed
/// one that must be added across 38.6 M values a cache line apart.
fn rhs_grad(a: &Tensor, d: &Tensor, b: &Tensor) -> Tensor {
    let transposed = b.layout().strides() == [1, b.dim(0)] && b.dim(0) > 1 && b.dim(1) > 1;
    if transposed {
        d.t().matmul(a).t()
    } else {
        a.t().matmul(d)
    }
}

impl Family for Matmul {
    fn name(&self) -> String {
        if self.bias.is_some() { "matmul+bias" } else { "matmul" }.into()
    }

    fn inputs(&self) -> Vec<&Var> {
        [&self.a, &self.b].into_iter().chain(&self.bias).collect()
    }

    /// `da` reads `b` and `db` reads `a`: a frozen operand's partner is not needed. The bias's
    /// gradient reads only `dout`.
    fn saved(&self, _out: &Tensor) -> Vec<Tensor> {
        let mut saved = Vec::new();
        if self.b.requires_grad() {
            saved.push(self.a.value());
        }
        if self.a.requires_grad() {
            saved.push(self.b.value());
        }
        saved
    }

    fn backward(&self, _out: &Tensor, dout: &Tensor, grads: &mut Grads) {
        matmul_backward(&self.a, &self.b, dout, grads);
        if let Some(bias) = self.bias.as_ref().filter(|b| b.requires_grad()) {
            // The broadcast add's rule: the bias met every row, so its gradient sums them.
            grads.accumulate(bias, dout.sum_to_shape(bias.shape()));
        }
    }
}
