//! `deltaw demo --quick` end to end: it pretrains, fine-tunes with LoRA and merges offline,
//! the fine-tuned task's exact match goes from near 0 to ≥ 90%, the merged model agrees with
//! the adapter, and every artefact the report names is on disk (the plots as decodable PNGs).
//! Also `deltaw plot` on the demo's metrics, the demo's refusal of a non-empty folder, Ctrl-C
//! and `--resume`, and `--device gpu`.

mod support;

use std::path::{Path, PathBuf};
use support::{deltaw, fresh_path, gpu_available, stdout_json, train_losses};

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
    let dir = fresh_path("demo");
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
        "base/tokenizer.json",
        "model/tokenizer.json",
        "model/generation_config.json",
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

/// A short demo's arguments: enough LoRA steps (60, ~5 s in a debug build) that a Ctrl-C sent
/// after its third step lands mid-phase.
fn short_demo(out: &Path, extra: &[&str]) -> Vec<String> {
    let args = ["demo", "--quick", "--json", "--pretrain-steps", "40", "--lora-steps", "60", "--held-out", "8"];
    let out = ["--out", out.to_str().unwrap()];
    [&args[..], &out, extra].concat().iter().map(|s| s.to_string()).collect()
}

/// Lines in `path`, 0 while it does not exist.
fn line_count(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |t| t.lines().count())
}

#[cfg(unix)]
#[test]
fn ctrl_c_keeps_a_checkpoint_and_resume_ends_as_an_uninterrupted_run() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let (reference, stopped) = (fresh_path("demo-ref"), fresh_path("demo-stopped"));
    let out = deltaw(&short_demo(&reference, &[]).iter().map(String::as_str).collect::<Vec<_>>());
    let uninterrupted = stdout_json(&out);

    let child = Command::new(env!("CARGO_BIN_EXE_deltaw"))
        .args(short_demo(&stopped, &[]))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("deltaw demo starts");
    let (lora_metrics, started) = (stopped.join("lora/metrics.jsonl"), Instant::now());
    while line_count(&lora_metrics) < 3 {
        assert!(started.elapsed() < Duration::from_secs(600), "the LoRA phase never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let kill = Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill runs");
    assert!(kill.success());
    let out = child.wait_with_output().expect("deltaw demo ends");
    let report = stdout_json(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("interrupted: finishing this step"), "{stderr}");
    assert_eq!(report["stopped"]["phase"], "LoRA fine-tuning", "{report}");
    assert!(report["resume"].as_str().unwrap().contains("--resume"), "{report}");
    let step = report["stopped"]["step"].as_u64().unwrap();
    assert!((3..60).contains(&step), "stopped at step {step}: {report}");
    let checkpoint = PathBuf::from(report["stopped"]["checkpoint"].as_str().unwrap());
    assert!(checkpoint.ends_with(format!("lora/checkpoints/step-{step:06}")), "{}", checkpoint.display());
    assert!(checkpoint.is_dir() && !stopped.join("adapter").exists());

    let pretrain_log = std::fs::read_to_string(stopped.join("pretrain/metrics.jsonl")).unwrap();
    let out = deltaw(&short_demo(&stopped, &["--resume"]).iter().map(String::as_str).collect::<Vec<_>>());
    let resumed = stdout_json(&out);
    assert_eq!(resumed["phases"]["lora"]["resumed_from"], step, "{resumed}");
    assert_eq!(resumed["phases"]["pretrain"]["resumed_from"], 40, "pretraining is restored, not redone");
    assert!(std::fs::read_to_string(stopped.join("pretrain/metrics.jsonl")).unwrap() == pretrain_log, "log rewritten");
    // Every step is a function of the seeds: the same losses, scores and merged weights.
    for phase in ["pretrain", "lora"] {
        assert_eq!(train_losses(&stopped.join(phase)), train_losses(&reference.join(phase)), "{phase} losses");
    }
    assert_eq!(resumed["exact_match"], uninterrupted["exact_match"]);
    let weights = |dir: &Path| std::fs::read(dir.join("model/model.safetensors")).unwrap();
    assert!(weights(&stopped) == weights(&reference), "the merged models differ");
    std::fs::remove_dir_all(&reference).ok();
    std::fs::remove_dir_all(&stopped).ok();
}

#[test]
fn demo_on_the_gpu_trains_and_merges_as_on_the_cpu() {
    if !gpu_available() {
        return;
    }
    // A few steps only: software Vulkan runs this model's step in seconds, not milliseconds.
    let run = |device: &str| {
        let dir = fresh_path(&format!("demo-{device}"));
        let args = ["demo", "--json", "--pretrain-steps", "2", "--lora-steps", "2", "--held-out", "2"];
        let report = stdout_json(&deltaw(&[&args[..], &["--device", device, "--out", dir.to_str().unwrap()]].concat()));
        (dir, report)
    };
    let ((cpu_dir, cpu), (gpu_dir, gpu)) = (run("cpu"), run("gpu"));
    for report in [&cpu, &gpu] {
        assert_eq!(report["merge"]["answers_agree"], true, "{report}");
    }
    assert!(gpu_dir.join("model/model.safetensors").is_file() && gpu_dir.join("adapter").is_dir());
    // The first loss is one forward pass (devices agree to ~1e-6 relative); later ones follow
    // f32 AdamW steps whose updates amplify rounding at most to ~1e-5 here.
    for phase in ["pretrain", "lora"] {
        let (c, g) = (train_losses(&cpu_dir.join(phase)), train_losses(&gpu_dir.join(phase)));
        assert_eq!(c.len(), g.len());
        for (step, (c, g)) in c.iter().zip(&g).enumerate() {
            assert!((c - g).abs() <= 1e-4 * c.abs(), "{phase} step {}: {g} on the GPU, {c} on the CPU", step + 1);
        }
    }
    std::fs::remove_dir_all(&cpu_dir).ok();
    std::fs::remove_dir_all(&gpu_dir).ok();
}

#[test]
fn demo_quick_with_a_llama_learns_the_task_and_saves_a_llama_folder() {
    let dir = fresh_path("demo-llama");
    let out = deltaw(&["demo", "--quick", "--arch", "llama", "--json", "--out", dir.to_str().unwrap()]);
    let report = stdout_json(&out);
    let em = |stage: &str, task: &str| report["exact_match"][stage][task].as_f64().unwrap();
    assert!(em("pretrained", "copy") >= 0.9, "pretraining did not learn copy: {report}");
    assert!(em("finetuned", "upper") >= 0.9, "LoRA did not learn upper: {report}");
    assert_eq!(report["merge"]["answers_agree"], true, "{report}");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("model/config.json")).unwrap()).unwrap();
    assert_eq!(config["model_type"], "llama", "{config}");
    let adapter: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("adapter/adapter_config.json")).unwrap()).unwrap();
    assert_eq!(
        (adapter["target_modules"].as_str(), adapter["task_type"].as_str()),
        (Some("all-linear"), Some("CAUSAL_LM"))
    );
    let weights =
        deltaw_tensor::safetensors::load(dir.join("adapter/adapter_model.safetensors"), &deltaw_tensor::Device::Cpu);
    let names: Vec<String> = weights.unwrap().into_keys().filter(|k| k.ends_with("lora_A.weight")).collect();
    for proj in ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"] {
        let key = format!(
            "base_model.model.model.layers.1.{}.{proj}.lora_A.weight",
            if proj.ends_with("_proj") && ["q_proj", "k_proj", "v_proj", "o_proj"].contains(&proj) {
                "self_attn"
            } else {
                "mlp"
            }
        );
        assert!(names.contains(&key), "{key} not in {names:?}");
    }
    assert_eq!(names.len(), 14, "7 linear layers in each of 2 layers, the head excluded: {names:?}");
    std::fs::remove_dir_all(dir).ok();
}
