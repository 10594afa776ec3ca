//! `deltaw demo --quick` end to end: it pretrains, fine-tunes with LoRA and merges offline,
//! the fine-tuned task's exact match goes from near 0 to ≥ 90%, the merged model agrees with
//! the adapter, and every artefact the report names is on disk (the plots as decodable PNGs).
//! Also `deltaw plot` on the demo's metrics, and the demo's refusal of a non-empty folder.

mod support;

use std::path::{Path, PathBuf};
use support::deltaw;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("deltaw-cli-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    dir
}

/// The PNG signature, then a header that decodes to a non-empty image.
#[track_caller]
fn assert_png(path: &Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{} is not a PNG", path.display());
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes)).read_info().expect("a PNG header");
    let mut pixels = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut pixels).expect("the image decodes");
    assert!(info.width > 0 && info.height > 0);
}

#[test]
fn demo_quick_learns_the_new_task_merges_and_writes_every_artefact() {
    let dir = temp_dir("demo");
    let out = deltaw(&["demo", "--quick", "--json", "--out", dir.to_str().unwrap()]);
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("--json prints one JSON object");
    let em = |stage: &str, task: &str| report["exact_match"][stage][task].as_f64().unwrap();
    assert!(em("pretrained", "copy") >= 0.9, "pretraining did not learn copy: {report}");
    assert!(em("pretrained", "upper") <= 0.1, "upper known before fine-tuning: {report}");
    assert!(em("finetuned", "upper") >= 0.9, "LoRA did not learn upper: {report}");
    assert_eq!(report["merge"]["answers_agree"], true, "{report}");
    let lora = &report["phases"]["lora"];
    assert!(lora["trainable_params"].as_u64() < lora["total_params"].as_u64(), "{report}");

    for png in ["pretrain/loss.png", "lora/loss.png"] {
        assert_png(&dir.join(png));
    }
    for file in [
        "pretrain/metrics.jsonl",
        "lora/metrics.jsonl",
        "base/config.json",
        "base/model.safetensors",
        "base/README.md",
        "model/model.safetensors",
        "model/README.md",
        "adapter/adapter_config.json",
        "adapter/adapter_model.safetensors",
    ] {
        assert!(dir.join(file).is_file(), "missing {file}");
    }

    let replot = dir.join("replot.png");
    let metrics = dir.join("lora/metrics.jsonl");
    let out = deltaw(&["plot", metrics.to_str().unwrap(), "-o", replot.to_str().unwrap()]);
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert_png(&replot);

    let again = deltaw(&["demo", "--quick", "--out", dir.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--overwrite"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn plot_of_a_missing_file_fails_with_one_error_line() {
    let out = deltaw(&["plot", "/nonexistent/metrics.jsonl", "-o", "/tmp/never.png"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("error: ") && stderr.contains("/nonexistent/metrics.jsonl"), "{stderr}");
}
