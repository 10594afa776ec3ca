//! Creation ops: seeded random tensors are reproducible for any thread count, and the simple
//! constructors produce what PyTorch's namesakes do.

use deltaw_tensor::{DType, Device, Seed, Tensor};

fn with_threads<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(f)
}

#[test]
fn randn_and_rand_are_identical_for_any_thread_count() {
    let dev = Device::Cpu;
    let shape = (257, 129); // odd sizes so chunk boundaries differ between pool sizes
    let one =
        with_threads(1, || (Tensor::randn(shape, Seed(9), &dev).to_vec(), Tensor::rand(shape, Seed(9), &dev).to_vec()));
    let three =
        with_threads(3, || (Tensor::randn(shape, Seed(9), &dev).to_vec(), Tensor::rand(shape, Seed(9), &dev).to_vec()));
    assert_eq!(one, three);
    assert_ne!(Tensor::randn(4, Seed(1), &dev).to_vec(), Tensor::randn(4, Seed(2), &dev).to_vec());
}

#[test]
fn randn_prefix_does_not_depend_on_the_total_size() {
    // Element i is a function of (seed, i) only, so a bigger tensor extends a smaller one.
    let dev = Device::Cpu;
    let small = Tensor::randn(10, Seed(3), &dev).to_vec();
    let big = Tensor::randn(1000, Seed(3), &dev).to_vec();
    assert_eq!(small, big[..10]);
}

#[test]
fn constructors_match_torch_semantics() {
    let dev = Device::Cpu;
    assert_eq!(Tensor::arange(0.0, 5.0, &dev).to_vec(), vec![0.0, 1.0, 2.0, 3.0, 4.0]);
    assert_eq!(Tensor::arange_step(1.0, 2.0, 0.25, &dev).to_vec(), vec![1.0, 1.25, 1.5, 1.75]);
    assert_eq!(Tensor::full((2, 2), 7.0, &dev).to_vec(), vec![7.0; 4]);
    assert_eq!(Tensor::zeros((2, 3), &dev).dims(), &[2, 3]);
    assert_eq!(Tensor::ones(3, &dev).to_vec(), vec![1.0; 3]);
    assert_eq!(Tensor::scalar(2.5, &dev).rank(), 0);
    assert_eq!(Tensor::scalar(2.5, &dev).to_scalar(), 2.5);
}

#[test]
fn half_precision_storage_converts_back_exactly_where_representable() {
    let dev = Device::Cpu;
    let x = Tensor::from_vec(vec![1.0f32, -2.5, 0.125, 65504.0], 4, &dev).unwrap();
    for dtype in [DType::F16, DType::BF16] {
        let h = x.to_dtype(dtype).unwrap();
        assert_eq!(h.dtype(), dtype);
        assert_eq!(h.to_dtype(DType::F32).unwrap().to_vec()[..3], x.to_vec()[..3], "{dtype}");
    }
    let ids = Tensor::from_vec(vec![1i32, 2, 3], 3, &dev).unwrap();
    assert_eq!(ids.to_dtype(DType::F32).unwrap().to_vec(), vec![1.0, 2.0, 3.0]);
}

#[test]
fn display_and_debug_show_shape_dtype_device_and_values() {
    let t = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], 3, &Device::Cpu).unwrap();
    assert_eq!(t.to_string(), "tensor([1., 2., 3.], shape=(3,), dtype=f32, device=cpu)");
    assert_eq!(format!("{t:?}"), "Tensor { shape: (3,), dtype: f32, device: cpu, values: [1.0, 2.0, 3.0] }");
    let h = t.to_dtype(DType::F16).unwrap();
    assert!(h.to_string().contains("dtype=f16"));
}
