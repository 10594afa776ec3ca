//! Shared helpers for deltaw's integration tests: named tolerances, `assert_close` with a
//! useful failure report, and access to the PyTorch fixture files in `tests/fixtures/`.

#![forbid(unsafe_code)]

use deltaw_tensor::{safetensors, Device, Tensor};
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;

/// An error budget: `|actual - expected| <= abs + rel * |expected|` per element.
///
/// The references are float64 results rounded once to f32, so every tolerance below is the
/// error our f32 kernel may add, justified where it is defined.
#[derive(Clone, Copy, Debug)]
pub struct Tol {
    pub name: &'static str,
    pub abs: f32,
    pub rel: f32,
}

impl Tol {
    /// Data movement, comparisons, max/min/argmax, exactly rounded conversions: bit-exact.
    pub const EXACT: Tol = Tol { name: "EXACT", abs: 0.0, rel: 0.0 };
    /// One IEEE operation per element (add, mul, div, sqrt...): correctly rounded, so at most
    /// half an ulp from the reference; 2 ulp of slack covers a second rounding.
    pub const IEEE: Tol = Tol { name: "IEEE", abs: 0.0, rel: 2.0 * f32::EPSILON };
    /// Transcendentals (exp, log, tanh, erf-based GELU, powf): libm is within ~1 ulp, our
    /// erfc within 1.2e-7 relative; a few ulp relative plus a tiny absolute floor for results
    /// near 0 (GELU of a large negative input, tanh(x) ≈ x with cancellation).
    pub const TRANSCENDENTAL: Tol = Tol { name: "TRANSCENDENTAL", abs: 1e-7, rel: 4.0 * f32::EPSILON };
    /// Transcendentals on a GPU: Vulkan allows exp 3 + 2·|x| ulp (and log 3 ulp), so for the
    /// fixtures' |x| ≤ 15 up to 33 ulp, about 4e-6 relative; 40 ulp of relative budget.
    pub const GPU_TRANSCENDENTAL: Tol = Tol { name: "GPU_TRANSCENDENTAL", abs: 1e-7, rel: 40.0 * f32::EPSILON };
    /// Sums of up to ~1000 terms accumulated in f32 with 16 partial sums: error grows like
    /// (n/16)·eps·Σ|x|, about 1e-5 of the result's scale for these inputs.
    pub const REDUCTION: Tol = Tol { name: "REDUCTION", abs: 1e-5, rel: 1e-5 };
    /// Softmax-style rows: `exp_fast` is within 2 ulp, then a row sum and one division.
    pub const SOFTMAX: Tol = Tol { name: "SOFTMAX", abs: 1e-6, rel: 1e-5 };
    /// Layer norm: mean and two-pass variance in f32 over rows of up to 64, then an affine
    /// map; 1e-5 still catches a one-pass variance, which is off by 4e-4 on the offset case.
    pub const LAYER_NORM: Tol = Tol { name: "LAYER_NORM", abs: 1e-5, rel: 1e-5 };
    /// Rotary embedding: `x1·cos − x2·sin` is two products and a sum, which can cancel, so the
    /// error is a few ulp of the terms' magnitude (|x| ≤ 5, |cos|, |sin| ≤ 1.25): an absolute
    /// floor of 1e-6 plus 4 ulp relative. A swapped half or a wrong sign is off by O(1).
    pub const ROPE: Tol = Tol { name: "ROPE", abs: 1e-6, rel: 4.0 * f32::EPSILON };
    /// Matmul with k ≤ 64 of unit-variance values: f32 dot products err by about
    /// sqrt(k)·eps·Σ|a·b| ≈ 1e-5 of the magnitude of the terms.
    pub const MATMUL: Tol = Tol { name: "MATMUL", abs: 2e-5, rel: 1e-5 };
}

/// Panics unless every element is within `tol`. The report names `what`, the tolerance,
/// the worst element with its index, and the first few (actual, expected) pairs.
/// NaN matches NaN and infinities must match exactly.
#[track_caller]
pub fn assert_close(actual: &[f32], expected: &[f32], tol: Tol, what: &str) {
    if let Err(report) = check_close(actual, expected, tol) {
        panic!("{what}: {report}");
    }
}

/// [`assert_close`] as a `Result`, for tests that collect every failing case.
pub fn check_close(actual: &[f32], expected: &[f32], tol: Tol) -> Result<(), String> {
    if actual.len() != expected.len() {
        return Err(format!("length {} differs from expected {}", actual.len(), expected.len()));
    }
    let mut worst: Option<(usize, f32)> = None;
    let mut failures = 0;
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        let excess = excess_error(a, e, tol);
        if excess > 0.0 {
            failures += 1;
            if worst.is_none_or(|(_, w)| excess > w) {
                worst = Some((i, excess));
            }
        }
    }
    let Some((i, _)) = worst else { return Ok(()) };
    let pairs: Vec<String> = actual.iter().zip(expected).take(6).map(|(a, e)| format!("({a}, {e})")).collect();
    Err(format!(
        "{failures} of {} elements outside {} (abs {}, rel {}); worst at index {i}: actual {} expected {} \
         (diff {:e}); first pairs (actual, expected): {}",
        actual.len(),
        tol.name,
        tol.abs,
        tol.rel,
        actual[i],
        expected[i],
        (actual[i] - expected[i]).abs(),
        pairs.join(", ")
    ))
}

/// How far past the tolerance one element is (≤ 0 when it is within).
fn excess_error(a: f32, e: f32, tol: Tol) -> f32 {
    if a.is_nan() || e.is_nan() {
        return if a.is_nan() && e.is_nan() { 0.0 } else { f32::INFINITY };
    }
    if a.is_infinite() || e.is_infinite() {
        return if a == e { 0.0 } else { f32::INFINITY };
    }
    let diff = (a - e).abs();
    let budget = tol.abs + tol.rel * e.abs();
    if diff <= budget {
        0.0
    } else {
        diff - budget
    }
}

/// A fixture file: its tensors and, per case, the JSON parameters from the metadata.
pub struct Fixtures {
    pub file: PathBuf,
    tensors: safetensors::TensorMap,
    metadata: HashMap<String, String>,
}

/// One case of a fixture file, with the device its operands go to.
pub struct Case<'a> {
    pub name: String,
    pub params: Value,
    fixtures: &'a Fixtures,
    device: Device,
}

impl Fixtures {
    /// Loads `tests/fixtures/<name>`.
    pub fn load(name: &str) -> Fixtures {
        let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name);
        let (tensors, metadata) = safetensors::load_with_metadata(&file, &Device::Cpu)
            .unwrap_or_else(|e| panic!("cannot load fixture file: {e}"));
        Fixtures { file, tensors, metadata }
    }

    /// The library versions the fixtures were made with (JSON), for failure messages.
    pub fn versions(&self) -> &str {
        self.metadata.get("versions").map_or("unknown", String::as_str)
    }

    /// Every case (metadata entries whose value is a JSON object with an `"op"`), by name.
    pub fn cases(&self) -> Vec<Case<'_>> {
        let mut cases: Vec<Case<'_>> = self
            .metadata
            .iter()
            .filter_map(|(name, json)| {
                let params: Value = serde_json::from_str(json).ok()?;
                params.get("op")?;
                Some(Case { name: name.clone(), params, fixtures: self, device: Device::Cpu })
            })
            .collect();
        cases.sort_by(|a, b| a.name.cmp(&b.name));
        cases
    }
}

impl Case<'_> {
    /// The same case with its operands on `device` (expected values stay on the host).
    pub fn on(mut self, device: &Device) -> Self {
        self.device = device.clone();
        self
    }

    /// The device the operands are placed on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The `"op"` parameter.
    pub fn op(&self) -> &str {
        self.params["op"].as_str().expect("op is a string")
    }

    /// The stored tensor for `role`, exactly as in the file.
    #[track_caller]
    pub fn stored(&self, role: &str) -> Tensor {
        let key = format!("{}/{role}", self.name);
        self.fixtures.tensors.get(&key).unwrap_or_else(|| panic!("fixture has no tensor '{key}'")).clone()
    }

    /// Whether the case has a tensor for `role`.
    pub fn has(&self, role: &str) -> bool {
        self.fixtures.tensors.contains_key(&format!("{}/{role}", self.name))
    }

    /// Every role of the case whose name starts with `prefix`, sorted (`"grad."`: every
    /// parameter the reference has a gradient for).
    pub fn roles(&self, prefix: &str) -> Vec<String> {
        let key = format!("{}/{prefix}", self.name);
        let start = self.name.len() + 1;
        self.fixtures.tensors.keys().filter(|k| k.starts_with(&key)).map(|k| k[start..].to_string()).collect()
    }

    /// The operand for `role`: the stored tensor, or its transposed view when the case's
    /// `"views"` says `"t"` (so kernels see a non-contiguous input, as PyTorch did).
    #[track_caller]
    pub fn operand(&self, role: &str) -> Tensor {
        let t = self.stored(role).to_device(&self.device).unwrap_or_else(|e| panic!("{role} to {}: {e}", self.device));
        match self.params.get("views").and_then(|v| v.get(role)).and_then(Value::as_str) {
            Some("t") => t.transpose(-2, -1),
            Some(other) => panic!("case {}: unknown view '{other}' for {role}", self.name),
            None => t,
        }
    }

    /// An integer parameter.
    #[track_caller]
    pub fn int(&self, key: &str) -> i64 {
        self.params[key].as_i64().unwrap_or_else(|| panic!("case {}: parameter '{key}' is not an integer", self.name))
    }

    /// A float parameter.
    #[track_caller]
    pub fn float(&self, key: &str) -> f64 {
        self.params[key].as_f64().unwrap_or_else(|| panic!("case {}: parameter '{key}' is not a number", self.name))
    }

    /// A boolean parameter (false when absent).
    pub fn flag(&self, key: &str) -> bool {
        self.params.get(key).and_then(Value::as_bool).unwrap_or(false)
    }

    /// A list-of-integers parameter.
    #[track_caller]
    pub fn ints(&self, key: &str) -> Vec<i64> {
        let list = self.params[key].as_array().unwrap_or_else(|| panic!("case {}: '{key}' is not a list", self.name));
        list.iter().map(|v| v.as_i64().expect("integer list")).collect()
    }
}

/// Every device the tests run on: the CPU, then the GPU when there is one (see [`gpu`]).
pub fn devices() -> Vec<Device> {
    std::iter::once(Device::Cpu).chain(gpu()).collect()
}

/// One GPU device per test binary (opening a device takes a while), or `None` with a notice
/// when there is no adapter, or when the `gpu` feature is off. With `DELTAW_REQUIRE_GPU=1`
/// (as in CI, which installs a software Vulkan driver) a missing adapter fails instead.
pub fn gpu() -> Option<Device> {
    #[cfg(feature = "gpu")]
    {
        static GPU: std::sync::OnceLock<Option<Device>> = std::sync::OnceLock::new();
        GPU.get_or_init(|| match Device::gpu() {
            Ok(device) => Some(device),
            Err(e) if std::env::var("DELTAW_REQUIRE_GPU").as_deref() == Ok("1") => {
                panic!("DELTAW_REQUIRE_GPU=1 but {e}")
            }
            Err(e) => {
                eprintln!("notice: GPU tests skipped: {e}");
                None
            }
        })
        .clone()
    }
    #[cfg(not(feature = "gpu"))]
    {
        if std::env::var("DELTAW_REQUIRE_GPU").as_deref() == Ok("1") {
            panic!("DELTAW_REQUIRE_GPU=1 but the tests were built without the `gpu` feature");
        }
        None
    }
}

/// Runs `check` once on each of [`devices`], every device even after one fails, then panics
/// listing each failure prefixed by its device (`[cpu] ...`, `[gpu (llvmpipe ...)] ...`). Each
/// device's wall time goes to stderr (shown with `--nocapture`).
pub fn on_each_device(check: impl Fn(&Device)) {
    let mut failures = Vec::new();
    for device in devices() {
        let started = std::time::Instant::now();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&device)));
        eprintln!("[{device}] {:.2} s", started.elapsed().as_secs_f64());
        if let Err(payload) = result {
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failures.push(format!("[{device}] {message}"));
        }
    }
    assert!(failures.is_empty(), "failed on {} device(s):\n{}", failures.len(), failures.join("\n"));
}

/// The all-MiniLM-L6-v2 folder (`$DELTAW_MINILM_DIR`, else
/// `${DELTAW_CACHE:-$HOME/.cache/deltaw}/all-MiniLM-L6-v2`, as `scripts/fetch_minilm.sh`
/// writes it), or `None` with a notice when it is absent; with `DELTAW_REQUIRE_MINILM=1` (as
/// in CI, which runs the fetch script first) a missing model fails instead.
pub fn minilm_dir() -> Option<PathBuf> {
    let dir = match std::env::var("DELTAW_MINILM_DIR") {
        Ok(dir) => PathBuf::from(dir),
        Err(_) => std::env::var("DELTAW_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/deltaw"))
            .join("all-MiniLM-L6-v2"),
    };
    if dir.join("model.safetensors").exists() {
        return Some(dir);
    }
    let required = std::env::var("DELTAW_REQUIRE_MINILM").is_ok_and(|v| v == "1");
    assert!(!required, "all-MiniLM-L6-v2 not found in {} (run scripts/fetch_minilm.sh)", dir.display());
    eprintln!("notice: skipping, all-MiniLM-L6-v2 not found in {} (run scripts/fetch_minilm.sh)", dir.display());
    None
}
