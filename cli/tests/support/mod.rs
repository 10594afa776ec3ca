//! Helpers shared by the `deltaw` binary's end-to-end tests: running it, the fixture paths,
//! and the checks on its output (each test file uses a subset).
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// A path as a command-line argument.
pub fn s(p: &std::path::Path) -> String {
    p.display().to_string()
}

/// The stdout of a run that must succeed (its stderr in the message when it did not).
#[track_caller]
pub fn ok(out: &Output) -> String {
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(name)
}

pub fn path(name: &str) -> String {
    fixture(name).display().to_string()
}

/// A Llama-family model folder: the tiny Llama 3 of `llama/llama3_gqa4` with the Llama 3-style
/// tokenizer and chat template of `chat/llama3`, copied into a new folder.
pub fn llama_folder(tag: &str) -> PathBuf {
    let dir = fresh_path(tag);
    std::fs::create_dir_all(&dir).unwrap();
    for (src, names) in [
        ("llama/llama3_gqa4", &["config.json", "model.safetensors"][..]),
        ("chat/llama3", &["tokenizer.json", "tokenizer_config.json", "generation_config.json"][..]),
    ] {
        for name in names {
            std::fs::copy(fixture(src).join(name), dir.join(name)).unwrap();
        }
    }
    dir
}

/// `deltaw-cli-<name>-<pid>` in the temp folder, with nothing there yet (a test's own path).
pub fn fresh_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("deltaw-cli-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    dir
}

/// [`fresh_path`], created as an empty folder.
pub fn scratch(name: &str) -> PathBuf {
    let dir = fresh_path(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn deltaw(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_deltaw"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running deltaw {args:?}: {e}"))
}

pub fn stdout_json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {:?}", out.stdout))
}

/// Exit code 1, stderr starting `error: ` and containing every needle, and no panic.
#[track_caller]
pub fn assert_fails_with(out: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("internal error"), "{stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "stderr lacks {needle:?}: {stderr}");
    }
}

/// `deltaw` with extra environment variables.
pub fn deltaw_with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_deltaw"))
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running deltaw {args:?}: {e}"))
}

/// Whether this machine has a GPU adapter; without one the GPU tests print a notice and pass,
/// unless `DELTAW_REQUIRE_GPU=1` (as in CI, which installs a software Vulkan driver).
pub fn gpu_available() -> bool {
    #[cfg(feature = "gpu")]
    let found = deltaw_tensor::Device::gpu().map(|_| ()).map_err(|e| e.to_string());
    #[cfg(not(feature = "gpu"))]
    let found: Result<(), String> = Err("deltaw-cli was built without the `gpu` feature".into());
    match found {
        Ok(()) => true,
        Err(e) if std::env::var("DELTAW_REQUIRE_GPU").as_deref() == Ok("1") => panic!("DELTAW_REQUIRE_GPU=1 but {e}"),
        Err(e) => {
            eprintln!("notice: --device gpu CLI tests skipped: {e}");
            false
        }
    }
}

/// The `"loss"` of every train line of a run's `metrics.jsonl`.
pub fn train_losses(run: &std::path::Path) -> Vec<f64> {
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).expect("metrics.jsonl");
    let lines = text.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a JSON line"));
    lines.filter(|v| v["kind"] == "train").map(|v| v["loss"].as_f64().expect("a loss")).collect()
}

/// The all-MiniLM-L6-v2 folder, found and required as `deltaw_tests::minilm_dir` does (the
/// workspace `tests/` crate is not a dependency of this one).
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
