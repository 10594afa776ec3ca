//! Bad input from outside returns an error naming what was wrong; API misuse panics with the
//! op name and both shapes.

use deltaw_tensor::{DType, Device, Tensor};

#[test]
fn from_vec_with_wrong_length_is_an_error_naming_the_shape() {
    let err = Tensor::from_vec(vec![1.0f32; 5], (2, 3), &Device::Cpu).unwrap_err();
    assert_eq!(err.to_string(), "Tensor::from_vec: expected 6 elements for shape (2, 3), got 5");
}

#[test]
fn lossy_conversion_to_i32_is_an_error_naming_the_element() {
    let t = Tensor::from_vec(vec![1.0f32, 2.5], 2, &Device::Cpu).unwrap();
    let err = t.to_dtype(DType::I32).unwrap_err();
    assert_eq!(err.to_string(), "to_dtype(i32): element 1 = 2.5 cannot be represented exactly");
    assert_eq!(t.narrow(0, 0, 1).to_dtype(DType::I32).unwrap().to_vec_i32(), vec![1]);
}

#[test]
#[should_panic(expected = "matmul: lhs (2, 3) and rhs (4, 5): inner dimensions 3 and 4 differ")]
fn matmul_with_mismatched_inner_dims_panics_with_both_shapes() {
    let dev = Device::Cpu;
    Tensor::zeros((2, 3), &dev).matmul(&Tensor::zeros((4, 5), &dev));
}

#[test]
#[should_panic(expected = "matmul: lhs (2, 2, 3) and rhs (3, 3, 4): batch dims (2,) and (3,) cannot be broadcast")]
fn matmul_with_incompatible_batches_panics() {
    let dev = Device::Cpu;
    Tensor::zeros((2, 2, 3), &dev).matmul(&Tensor::zeros((3, 3, 4), &dev));
}

#[test]
#[should_panic(expected = "softmax: dim 2 is out of range for a tensor of shape (2, 3) (valid: -2..2)")]
fn bad_dim_panics_with_the_shape() {
    Tensor::zeros((2, 3), &Device::Cpu).softmax(2);
}

#[test]
#[should_panic(expected = "layer_norm: input (2, 4) needs weight and bias of shape (4,), got (3,) and (4,)")]
fn layer_norm_with_wrong_weight_panics() {
    let dev = Device::Cpu;
    Tensor::zeros((2, 4), &dev).layer_norm(&Tensor::ones(3, &dev), &Tensor::zeros(4, &dev), 1e-5);
}

#[test]
#[should_panic(expected = "embedding: the table must be (V, C)")]
fn embedding_needs_a_matrix() {
    let dev = Device::Cpu;
    let ids = Tensor::from_vec(vec![0i32], 1, &dev).unwrap();
    Tensor::zeros(4, &dev).embedding(&ids);
}

#[test]
#[should_panic(expected = "index_select: index 7 is out of range for a dim of size 4")]
fn out_of_range_token_id_panics_naming_it() {
    let dev = Device::Cpu;
    let ids = Tensor::from_vec(vec![1i32, 7], 2, &dev).unwrap();
    Tensor::zeros((4, 2), &dev).embedding(&ids);
}

#[test]
#[should_panic(expected = "cross_entropy: target 9 is out of range for 3 classes")]
fn cross_entropy_with_bad_target_panics() {
    let dev = Device::Cpu;
    let targets = Tensor::from_vec(vec![0i32, 9], 2, &dev).unwrap();
    Tensor::zeros((2, 3), &dev).cross_entropy(&targets, -100);
}

#[test]
#[should_panic(expected = "add: expects an f32 tensor, got f16 of shape (2,)")]
fn compute_on_f16_storage_panics_with_advice() {
    let dev = Device::Cpu;
    let h = Tensor::ones(2, &dev).to_dtype(DType::F16).unwrap();
    let _ = &h + &h;
}
