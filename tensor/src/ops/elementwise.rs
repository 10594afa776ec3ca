//! Elementwise ops: unary math (with the GELUs' backward beside them), binary arithmetic with
//! NumPy broadcasting, comparisons (returning 1.0 / 0.0 masks), `where_` and `masked_fill`.

use crate::cpu::elementwise as kernels;
use crate::kinds::{BinaryOp, UnaryOp};
use crate::layout::Layout;
use crate::shape::Shape;
use crate::storage::Storage;
use crate::Tensor;

impl Tensor {
    /// Applies a [`UnaryOp`] to every element (any layout; the output is contiguous).
    #[track_caller]
    pub fn unary(&self, op: UnaryOp) -> Tensor {
        let _op =
            crate::profile::op(op.name(), || crate::profile::Cost::new(self.numel() as f64, 2.0 * self.numel() as f64));
        match self.storage() {
            Storage::Cpu(_) => {
                let out = kernels::unary(op, self.f32_storage(&format!("{op:?}")), self.layout());
                Tensor::from_f32(out, self.shape())
            }
            #[cfg(feature = "gpu")]
            Storage::Gpu(_) => super::on_gpu::unary(self, op),
        }
    }

    pub fn neg(&self) -> Tensor {
        self.unary(UnaryOp::Neg)
    }

    pub fn abs(&self) -> Tensor {
        self.unary(UnaryOp::Abs)
    }

    pub fn exp(&self) -> Tensor {
        self.unary(UnaryOp::Exp)
    }

    /// Natural logarithm (NaN for negative inputs, -inf at 0).
    pub fn log(&self) -> Tensor {
        self.unary(UnaryOp::Log)
    }

    pub fn sqrt(&self) -> Tensor {
        self.unary(UnaryOp::Sqrt)
    }

    /// `1 / sqrt(x)`.
    pub fn rsqrt(&self) -> Tensor {
        self.unary(UnaryOp::Rsqrt)
    }

    pub fn tanh(&self) -> Tensor {
        self.unary(UnaryOp::Tanh)
    }

    /// `1 / (1 + e^-x)`.
    pub fn sigmoid(&self) -> Tensor {
        self.unary(UnaryOp::Sigmoid)
    }

    /// `max(x, 0)`.
    pub fn relu(&self) -> Tensor {
        self.unary(UnaryOp::Relu)
    }

    /// `x · sigmoid(x)` (a.k.a. swish).
    pub fn silu(&self) -> Tensor {
        self.unary(UnaryOp::Silu)
    }

    /// GELU with the exact Gaussian CDF, `x · Φ(x)`, as `F.gelu(x)` (BERT).
    pub fn gelu(&self) -> Tensor {
        self.unary(UnaryOp::Gelu)
    }

    /// GELU's tanh approximation, as `F.gelu(x, approximate="tanh")` (GPT-2).
    pub fn gelu_tanh(&self) -> Tensor {
        self.unary(UnaryOp::GeluTanh)
    }

    /// Exact GELU's input gradient at `self = x`: `dx = dy · (Φ(x) + x · φ(x))`.
    ///
    /// # Panics
    /// If the shapes differ.
    #[track_caller]
    pub fn gelu_backward(&self, dy: &Tensor) -> Tensor {
        self.pointwise_backward(dy, false)
    }

    /// Tanh-GELU's input gradient at `self = x` (see `cpu::math::gelu_tanh_grad`).
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
        super::nn::check_gradient_shape(op, "input", self, dy);
        let _op =
            crate::profile::op(op, || crate::profile::Cost::new(20.0 * self.numel() as f64, 3.0 * self.numel() as f64));
        match self.storage() {
            Storage::Cpu(_) => {
                let kernel = if tanh { kernels::gelu_tanh_backward } else { kernels::gelu_backward };
                Tensor::from_f32(kernel(&self.f32_values(op), &dy.f32_values(op)), self.shape())
            }
            #[cfg(feature = "gpu")]
            Storage::Gpu(_) => super::on_gpu::gelu_backward(self, dy, tanh, op),
        }
    }

    /// `x^exponent` elementwise (NaN for negative x with a fractional exponent).
    pub fn powf(&self, exponent: f32) -> Tensor {
        self.unary(UnaryOp::Powf(exponent))
    }

    pub fn add_scalar(&self, s: f32) -> Tensor {
        self.unary(UnaryOp::AddScalar(s))
    }

    pub fn sub_scalar(&self, s: f32) -> Tensor {
        self.unary(UnaryOp::AddScalar(-s))
    }

    pub fn mul_scalar(&self, s: f32) -> Tensor {
        self.unary(UnaryOp::MulScalar(s))
    }

    pub fn div_scalar(&self, s: f32) -> Tensor {
        self.unary(UnaryOp::DivScalar(s))
    }

    /// Applies a [`BinaryOp`] with NumPy broadcasting.
    ///
    /// # Panics
    /// If the shapes do not broadcast (the message names the op and both shapes), the devices
    /// differ, or a dtype is not f32.
    #[track_caller]
    pub fn binary(&self, rhs: &Tensor, op: BinaryOp) -> Tensor {
        let _op = crate::profile::op(op.name(), || {
            let n = self.numel().max(rhs.numel()) as f64;
            crate::profile::Cost::new(n, (self.numel() + rhs.numel()) as f64 + n)
        });
        let name = op.name();
        let (la, lb, shape) = broadcast_pair(name, self, rhs);
        match self.storage() {
            Storage::Cpu(_) => {
                let out = kernels::binary(op, self.f32_storage(name), &la, rhs.f32_storage(name), &lb);
                Tensor::from_f32(out, shape)
            }
            #[cfg(feature = "gpu")]
            Storage::Gpu(_) => super::on_gpu::binary(self, &la, rhs, &lb, op, &shape),
        }
    }

    #[track_caller]
    pub fn add(&self, rhs: &Tensor) -> Tensor {
        self.binary(rhs, BinaryOp::Add)
    }

    #[track_caller]
    pub fn sub(&self, rhs: &Tensor) -> Tensor {
        self.binary(rhs, BinaryOp::Sub)
    }

    #[track_caller]
    pub fn mul(&self, rhs: &Tensor) -> Tensor {
        self.binary(rhs, BinaryOp::Mul)
    }

    #[track_caller]
    pub fn div(&self, rhs: &Tensor) -> Tensor {
        self.binary(rhs, BinaryOp::Div)
    }

    #[track_caller]
    pub fn maximum(&self, rhs: &Tensor) -> Tensor {
        self.binary(rhs, BinaryOp::Maximum)
    }

    #[track_caller]
    pub fn minimum(&self, rhs: &Tensor) -> Tensor {
        self.binary(rhs, BinaryOp::Minimum)
    }

    /// `1.0` where `self == rhs`, else `0.0` (broadcasting).
    #[track_caller]
    pub fn eq(&self, rhs: &Tensor) -> Tensor {
        self.binary(rhs, BinaryOp::Eq)
    }

    #[track_caller]
    pub fn ne(&self, rhs: &Tensor) -> Tensor {
        self.binary(rhs, BinaryOp::Ne)
    }

    #[track_caller]
    pub fn lt(&self, rhs: &Tensor) -> Tensor {
        self.binary(rhs, BinaryOp::Lt)
    }

    #[track_caller]
    pub fn le(&self, rhs: &Tensor) -> Tensor {
        self.binary(rhs, BinaryOp::Le)
    }

    #[track_caller]
    pub fn gt(&self, rhs: &Tensor) -> Tensor {
        self.binary(rhs, BinaryOp::Gt)
    }

    #[track_caller]
    pub fn ge(&self, rhs: &Tensor) -> Tensor {
        self.binary(rhs, BinaryOp::Ge)
    }

    /// `on_true` where `self != 0`, else `on_false`; all three broadcast together, as
    /// `torch.where(cond, on_true, on_false)` with `self` as the condition mask.
    ///
    /// # Panics
    /// If the three shapes do not broadcast.
    #[track_caller]
    pub fn where_(&self, on_true: &Tensor, on_false: &Tensor) -> Tensor {
        let shape = broadcast_shape("where", self, on_true).broadcast(on_false.shape()).unwrap_or_else(|| {
            panic!(
                "where: cannot broadcast shapes {:?}, {:?} and {:?}",
                self.shape(),
                on_true.shape(),
                on_false.shape()
            )
        });
        check_same_device("where", self, on_false);
        let layout = |t: &Tensor| t.layout().broadcast_to(&shape).expect("shape was broadcast above");
        let operands = [(self, layout(self)), (on_true, layout(on_true)), (on_false, layout(on_false))];
        match self.storage() {
            Storage::Cpu(_) => {
                let [c, t, f] = operands.each_ref().map(|(x, l)| (x.f32_storage("where"), l));
                Tensor::from_f32(kernels::select(c, t, f), shape)
            }
            #[cfg(feature = "gpu")]
            Storage::Gpu(_) => super::on_gpu::select(operands, &shape),
        }
    }

    /// `value` where `mask != 0`, else `self`; the mask broadcasts to `self`'s shape.
    ///
    /// # Panics
    /// If the mask does not broadcast to `self`'s shape.
    #[track_caller]
    pub fn masked_fill(&self, mask: &Tensor, value: f32) -> Tensor {
        if mask.shape().broadcast(self.shape()).as_ref() != Some(self.shape()) {
            panic!(
                "masked_fill: mask of shape {:?} does not broadcast to input shape {:?}",
                mask.shape(),
                self.shape()
            );
        }
        mask.where_(&Tensor::scalar(value, &self.device()), self)
    }
}

#[track_caller]
fn check_same_device(op: &str, a: &Tensor, b: &Tensor) {
    if a.device() != b.device() {
        panic!("{op}: operands are on different devices: {} and {}", a.device(), b.device());
    }
}

#[track_caller]
fn broadcast_shape(op: &str, a: &Tensor, b: &Tensor) -> Shape {
    check_same_device(op, a, b);
    a.shape()
        .broadcast(b.shape())
        .unwrap_or_else(|| panic!("{op}: shapes {:?} and {:?} cannot be broadcast together", a.shape(), b.shape()))
}

/// Both layouts broadcast to the common shape, and that shape.
#[track_caller]
fn broadcast_pair(op: &str, a: &Tensor, b: &Tensor) -> (Layout, Layout, Shape) {
    let shape = broadcast_shape(op, a, b);
    let la = a.layout().broadcast_to(&shape).expect("broadcast shape");
    let lb = b.layout().broadcast_to(&shape).expect("broadcast shape");
    (la, lb, shape)
}

#[cfg(test)]
mod tests {
    use crate::{Device, Tensor};

    #[test]
    fn row_broadcast_adds_bias_to_every_row() {
        let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], (2, 3), &Device::Cpu).unwrap();
        let b = Tensor::from_vec(vec![10.0f32, 20.0, 30.0], 3, &Device::Cpu).unwrap();
        assert_eq!(x.add(&b).to_vec(), vec![11.0, 22.0, 33.0, 14.0, 25.0, 36.0]);
    }

    #[test]
    #[should_panic(expected = "add: shapes (2, 3) and (4,) cannot be broadcast together")]
    fn incompatible_broadcast_panics_with_both_shapes() {
        let dev = Device::Cpu;
        Tensor::zeros((2, 3), &dev).add(&Tensor::zeros(4, &dev));
    }

    #[test]
    fn masked_fill_replaces_where_mask_is_set() {
        let dev = Device::Cpu;
        let x = Tensor::zeros((2, 2), &dev);
        let mask = Tensor::from_vec(vec![0.0f32, 1.0], 2, &dev).unwrap();
        assert_eq!(x.masked_fill(&mask, -1.0).to_vec(), vec![0.0, -1.0, 0.0, -1.0]);
    }
}
