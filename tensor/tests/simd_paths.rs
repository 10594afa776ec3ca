//! Every SIMD path this CPU supports against the portable one.
//!
//! The path is chosen once per process (`DELTAW_SIMD`, `cpu/simd.rs`), so the parent test runs
//! this test binary again once per supported level, with `DELTAW_SIMD` set, and the child
//! (`child_writes_outputs`, ignored in normal runs) writes a battery of op outputs to a
//! safetensors file. The parent then compares each level's outputs with the portable run's:
//! - the auto-vectorised kernels (elementwise, reductions, softmax, norms and their
//!   backwards) claim the same bits at every width (no FMA contraction, fixed partial sums),
//!   so they are compared bit for bit;
//! - the GEMM and gemv kernels fuse multiply-adds where the portable kernel rounds twice, so
//!   they are held to [`gemm_tolerance`], a bound on the rounding of a k-term dot product;
//! - the quantized-weight products (`cpu::qdot`, all 8 block types) sum integers exactly and
//!   combine them in one fixed f32 order on every path, so they too are compared bit for bit.

use deltaw_tensor::cpu::gemm::kernel_name;
use deltaw_tensor::cpu::qdot::{qdot_path_name, quant_matmul};
use deltaw_tensor::cpu::simd::{simd_level, supported_levels, SimdLevel};
use deltaw_tensor::quant::{quantize, QuantType};
use deltaw_tensor::{safetensors, DType, Device, Seed, Tensor};
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

/// Where the child writes its outputs (set by the parent).
const OUT_VAR: &str = "DELTAW_SIMD_PATHS_OUT";

fn randn(dims: &[usize], seed: u64) -> Tensor {
    Tensor::randn(dims.to_vec(), Seed(seed), &Device::Cpu)
}

/// Outputs of the vectorised loops, named `"exact/<op>"`: same bits on every path. Rows of
/// 67 and 300 elements leave a tail after the 16 partial sums and cross several registers.
fn vectorised_outputs() -> Vec<(String, Tensor)> {
    let mut out = Vec::new();
    for c in [67, 300] {
        let x = randn(&[5, c], 1);
        let y = randn(&[5, c], 2);
        let dy = randn(&[5, c], 3);
        let w = randn(&[c], 4);
        let b = randn(&[c], 5);
        let mut put = |name: &str, t: Tensor| out.push((format!("exact/{name}/{c}"), t));
        for (name, t) in [
            ("exp", x.exp()),
            ("tanh", x.tanh()),
            ("sigmoid", x.sigmoid()),
            ("silu", x.silu()),
            ("gelu", x.gelu()),
            ("gelu_backward", x.gelu_backward(&dy)),
            ("add", x.add(&y)),
            ("mul", x.mul(&y)),
            ("broadcast_mul", x.mul(&w)),
            ("sum", x.sum(-1)),
            ("mean", x.mean(-1)),
            ("softmax", x.softmax(-1)),
            ("softmax_backward", x.softmax(-1).softmax_backward(&dy, -1)),
            ("log_softmax", x.log_softmax(-1)),
            ("layer_norm", x.layer_norm(&w, &b, 1e-5)),
            ("rms_norm", x.rms_norm(&w, 1e-6)),
            ("swiglu", x.swiglu(&y)),
        ] {
            put(name, t);
        }
        let targets = Tensor::from_vec(vec![0i32, 3, -100, 66, 7], (5,), &Device::Cpu).unwrap();
        put("cross_entropy", x.cross_entropy(&targets, -100));
    }
    out
}

/// GEMM and gemv outputs, named `"gemm/<case>"`, with the inputs their tolerance needs
/// (`"absa/<case>"` = |A|·|B| computed on the same path, an upper bound on the dot's terms).
fn gemm_outputs() -> Vec<(String, Tensor)> {
    let mut out = Vec::new();
    let k = 300;
    let a_shapes: [(&str, &[usize]); 3] = [("gemv", &[1, k]), ("prefill", &[7, k]), ("batch", &[2, 65, k])];
    for (shape, a_dims) in a_shapes {
        let a = randn(a_dims, 10);
        // A Linear weight (N, K) used as `x @ W.t()` (B's columns contiguous) and a (K, N)
        // matrix (B's rows contiguous): the two gemv layouts and both packing orders.
        let w_nk = randn(&[136, k], 11);
        let w_kn = randn(&[k, 136], 12);
        for dtype in [DType::F32, DType::BF16, DType::F16] {
            let w_t = w_nk.to_dtype(dtype).unwrap().t();
            let w = w_kn.to_dtype(dtype).unwrap();
            for (layout, b) in [("wt", &w_t), ("w", &w)] {
                let case = format!("{shape}/{layout}/{dtype:?}");
                out.push((format!("gemm/{case}"), a.matmul(b)));
                let b_abs = b.to_dtype(DType::F32).unwrap().abs();
                out.push((format!("absa/{case}"), a.abs().matmul(&b_abs)));
            }
        }
    }
    out
}

/// Quantized-weight products (`cpu::qdot`) of every block type, named `"exact/qdot/..."`:
/// one and three activation rows (both below the rows that switch to the `sgemm` route).
fn qdot_outputs() -> Vec<(String, Tensor)> {
    let (n, k) = (67, 512);
    let w = randn(&[n, k], 20).to_vec();
    let mut out = Vec::new();
    for ty in QuantType::ALL {
        let wq = quantize(ty, &w).unwrap();
        for m in [1, 3] {
            let x = randn(&[m, k], 21).to_vec();
            let mut y = vec![0.0f32; m * n];
            quant_matmul(ty, &wq, n, k, &x, m, &mut y);
            out.push((format!("exact/qdot/{}/{m}", ty.name()), Tensor::from_vec(y, (m, n), &Device::Cpu).unwrap()));
        }
    }
    out
}

/// The child: writes every output on the path `DELTAW_SIMD` chose, plus which path ran.
#[test]
#[ignore = "run by every_simd_path_matches_portable in a child process, with DELTAW_SIMD set"]
fn child_writes_outputs() {
    let path = std::env::var(OUT_VAR).expect("the parent sets DELTAW_SIMD_PATHS_OUT");
    let mut outputs = vectorised_outputs();
    outputs.extend(gemm_outputs());
    outputs.extend(qdot_outputs());
    let meta = HashMap::from([
        ("qdot".to_string(), qdot_path_name().to_string()),
        ("level".to_string(), simd_level().name().to_string()),
        ("kernel".to_string(), kernel_name().to_string()),
    ]);
    let refs = outputs.iter().map(|(n, t)| (n.as_str(), t));
    safetensors::save(refs, Some(meta), &path).unwrap();
}

/// Runs the child with `DELTAW_SIMD=level` (and no `DELTAW_GEMM_KERNEL`, which would pin the
/// GEMM); returns its outputs and the level and kernel it reported.
fn run_child(level: SimdLevel, dir: &Path) -> (HashMap<String, Tensor>, HashMap<String, String>) {
    let path = dir.join(format!("{}.safetensors", level.name()));
    let exe = std::env::current_exe().unwrap();
    let status = Command::new(exe)
        .args(["--ignored", "--exact", "child_writes_outputs", "--test-threads", "1"])
        .env("DELTAW_SIMD", level.name())
        .env_remove("DELTAW_GEMM_KERNEL")
        .env(OUT_VAR, &path)
        .status()
        .unwrap();
    assert!(status.success(), "the child for DELTAW_SIMD={} failed", level.name());
    let (tensors, meta) = safetensors::load_with_metadata(&path, &Device::Cpu).unwrap();
    (tensors.into_iter().collect(), meta)
}

/// The rounding budget of one GEMM output whose terms sum in magnitude to `abs`: each of two
/// k-term dot products (this path's, the portable one's) is within `k·u·Σ|a·b|` of the exact
/// value (Higham's γ_k, u = 2^-24), so they differ by at most twice that. With k = 300 the
/// budget is about 3.6e-5·Σ|a·b|; reordering the sum wrongly would exceed it at once.
fn gemm_tolerance(k: usize, abs: f32) -> f32 {
    2.0 * k as f32 * f32::EPSILON / 2.0 * abs * 1.01
}

#[test]
fn every_simd_path_matches_portable() {
    let dir = std::env::temp_dir().join(format!("deltaw-simd-paths-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (want, meta) = run_child(SimdLevel::Portable, &dir);
    assert_eq!(meta["level"], "portable");
    assert!(meta["kernel"].starts_with("portable"), "DELTAW_SIMD=portable ran {}", meta["kernel"]);
    assert_eq!(meta["qdot"], "portable", "DELTAW_SIMD=portable ran the {} qdot kernel", meta["qdot"]);
    let mut report = Vec::new();
    for level in supported_levels().into_iter().filter(|&l| l != SimdLevel::Portable) {
        let (got, meta) = run_child(level, &dir);
        assert_eq!(meta["level"], level.name(), "the override was not taken");
        assert!(!meta["kernel"].starts_with("portable"), "{} ran the portable GEMM", level.name());
        if cfg!(target_arch = "x86_64") {
            assert_ne!(meta["qdot"], "portable", "{} ran the portable qdot kernel", level.name());
        }
        let mut problems = Vec::new();
        for (name, w) in &want {
            let (w, g) = (w.to_vec(), got[name].to_vec());
            assert_eq!(w.len(), g.len(), "{name}");
            if name.starts_with("exact/") {
                if let Some(i) = (0..w.len()).find(|&i| w[i].to_bits() != g[i].to_bits()) {
                    problems.push(format!("{name}[{i}]: {} vs portable {} (must be the same bits)", g[i], w[i]));
                }
            } else if let Some(case) = name.strip_prefix("gemm/") {
                let abs = want[&format!("absa/{case}")].to_vec();
                let bad = (0..w.len()).find(|&i| (g[i] - w[i]).abs() > gemm_tolerance(300, abs[i]));
                if let Some(i) = bad {
                    problems.push(format!("{name}[{i}]: {} vs portable {} (|a||b| = {})", g[i], w[i], abs[i]));
                }
            }
        }
        assert!(problems.is_empty(), "DELTAW_SIMD={} ({}):\n{}", level.name(), meta["kernel"], problems.join("\n"));
        report.push(format!("{} ({}, qdot {})", level.name(), meta["kernel"], meta["qdot"]));
    }
    std::fs::remove_dir_all(&dir).ok();
    eprintln!(
        "compared with portable: {}",
        if report.is_empty() { "none (portable only)".into() } else { report.join(", ") }
    );
}
