//! The engine and the optimizers on a GPU: gradients, optimizer state and the step's checks
//! (finiteness, global norm, clipping) stay on the parameters' device and agree with the CPU.
//! Skipped with a notice when there is no adapter, unless `DELTAW_REQUIRE_GPU=1` (as in CI,
//! which installs a software Vulkan driver).
#![cfg(feature = "gpu")]

use deltaw_autograd::{AdamW, AdamWConfig, Error, Grads, Sgd, SgdConfig, Var};
use deltaw_tensor::{Device, Tensor};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// The GPU, or `None` with a notice. The same rule as `deltaw_tests::gpu`, which this crate
/// cannot use (that crate depends on this one).
fn gpu() -> Option<Device> {
    match Device::gpu() {
        Ok(device) => Some(device),
        Err(e) if std::env::var("DELTAW_REQUIRE_GPU").as_deref() == Ok("1") => panic!("DELTAW_REQUIRE_GPU=1 but {e}"),
        Err(e) => {
            eprintln!("notice: GPU test skipped: {e}");
            None
        }
    }
}

fn t(values: &[f32], device: &Device) -> Tensor {
    Tensor::from_vec(values.to_vec(), values.len(), device).unwrap()
}

#[track_caller]
fn assert_near(actual: &[f32], expected: &[f32], what: &str) {
    let close = actual.iter().zip(expected).all(|(a, e)| (a - e).abs() <= 1e-6 + 1e-6 * e.abs());
    assert!(close && actual.len() == expected.len(), "{what}: {actual:?} vs {expected:?}");
}

/// Three AdamW steps and three Nesterov-SGD steps of `Σ p²` from `p0`, with the parameter on
/// `start` for the first step and on `end` after it; returns the final values.
fn train_moving(start: &Device, end: &Device) -> (Vec<f32>, Vec<f32>) {
    let p0 = [1.0, -2.0, 0.5];
    let (pa, ps) = (Var::parameter(t(&p0, start)), Var::parameter(t(&p0, start)));
    let mut adamw = AdamW::new(vec![pa.clone()], AdamWConfig { lr: 0.1, ..Default::default() });
    let sgd_config = SgdConfig { lr: 0.1, momentum: 0.9, nesterov: true, weight_decay: 0.1, ..Default::default() };
    let mut sgd = Sgd::new(vec![ps.clone()], sgd_config);
    for step in 0..3 {
        if step == 1 {
            pa.set_value(pa.value().to_device(end).unwrap());
            ps.set_value(ps.value().to_device(end).unwrap());
        }
        adamw.step(&(&pa * &pa).sum_all().backward().unwrap());
        sgd.step(&(&ps * &ps).sum_all().backward().unwrap());
    }
    let (_, m, v) = adamw.state_of(&pa).unwrap();
    assert!(m.device() == *end && v.device() == *end, "AdamW moments on {} / {}, not {end}", m.device(), v.device());
    assert!(pa.value().device() == *end && ps.value().device() == *end);
    (pa.value().to_vec(), ps.value().to_vec())
}

#[test]
fn optimizer_state_is_made_on_and_follows_the_parameters_device() {
    let Some(gpu) = gpu() else { return };
    let (adamw_cpu, sgd_cpu) = train_moving(&Device::Cpu, &Device::Cpu);
    let (adamw_gpu, sgd_gpu) = train_moving(&gpu, &gpu);
    assert_near(&adamw_gpu, &adamw_cpu, "AdamW on the GPU");
    assert_near(&sgd_gpu, &sgd_cpu, "SGD on the GPU");
    let (adamw_moved, sgd_moved) = train_moving(&Device::Cpu, &gpu);
    assert_near(&adamw_moved, &adamw_cpu, "AdamW moved to the GPU after a step");
    assert_near(&sgd_moved, &sgd_cpu, "SGD moved to the GPU after a step");
}

#[test]
fn set_state_moves_host_moments_to_the_parameters_device() {
    let Some(gpu) = gpu() else { return };
    let p = Var::parameter(t(&[1.0, 2.0], &gpu));
    let mut adamw = AdamW::new(vec![p.clone()], AdamWConfig::default());
    adamw.set_state(&p, 4, t(&[0.1, 0.2], &Device::Cpu), t(&[0.01, 0.02], &Device::Cpu));
    let (step, m, v) = adamw.state_of(&p).unwrap();
    assert_eq!((step, m.device(), v.device()), (4, gpu.clone(), gpu.clone()));
    adamw.step(&(&p * 1.0).sum_all().backward().unwrap()); // would panic on mixed devices
    assert_eq!(adamw.state_of(&p).unwrap().0, 5);
}

#[test]
fn upstream_gradient_on_another_device_is_an_error() {
    let Some(gpu) = gpu() else { return };
    let x = Var::parameter(t(&[1.0, 2.0], &gpu));
    let err = x.exp().backward_with(&t(&[1.0, 1.0], &Device::Cpu)).err().expect("must fail");
    assert!(matches!(err, Error::GradDevice { .. }), "{err}");
    assert!(err.to_string().contains("cpu") && err.to_string().contains("gpu"), "{err}");
}

#[test]
fn a_gradient_on_the_wrong_device_is_caught_when_accumulated() {
    let Some(gpu) = gpu() else { return };
    let x = Var::parameter(t(&[1.0, 2.0], &gpu));
    let mut grads = Grads::new();
    let err = catch_unwind(AssertUnwindSafe(|| grads.accumulate(&x, t(&[1.0, 1.0], &Device::Cpu)))).unwrap_err();
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("gradient on cpu") && msg.contains("on gpu"), "{msg}");
}

#[test]
fn finiteness_global_norm_and_clipping_on_the_gpu_match_the_cpu() {
    let Some(gpu) = gpu() else { return };
    let store = |device: &Device, extra: f32| {
        let vars: Vec<Var> = (0..3).map(|_| Var::parameter(t(&[0.0; 4], device))).collect();
        let mut grads = Grads::new();
        for (i, var) in vars.iter().enumerate() {
            let k = i as f32;
            grads.insert(var, t(&[k, -2.0 * k, 0.5, extra], device));
        }
        (vars, grads)
    };
    let (_, cpu_grads) = store(&Device::Cpu, 3.0);
    let (vars, mut gpu_grads) = store(&gpu, 3.0);
    assert!(gpu_grads.all_finite());
    let expected = cpu_grads.global_norm();
    assert_near(&[gpu_grads.global_norm()], &[expected], "global norm");
    assert_near(&[gpu_grads.clip_global_norm(1.0)], &[expected], "norm before clipping");
    assert_near(&[gpu_grads.global_norm()], &[1.0], "norm after clipping");
    assert!(vars.iter().all(|v| gpu_grads.get(v).unwrap().device() == gpu), "clipped gradients left the GPU");
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let (_, mut grads) = store(&gpu, bad);
        assert!(!grads.all_finite(), "{bad} not detected");
        assert!(!grads.clip_global_norm(1.0).is_finite(), "norm with {bad}");
    }
}
