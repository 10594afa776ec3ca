//! QLoRA end to end: `deltaw demo --base-quant q4_0` learns the demo's `upper` task on a
//! 4-bit frozen base; `deltaw sft --base-quant` on the tiny Llama writes a PEFT adapter and a
//! `run.json` that says so; `deltaw merge --base-quant` reports the drift against the adapter
//! on its quantized base, into an f32 folder and into a Q4_0 GGUF file that loads back; the
//! same training on a GPU gives the same losses; and bad block types are clear errors.

mod support;

use deltaw_tensor::{DType, Device, QuantType};
use deltaw_transformer::gguf::GgufModel;
use deltaw_transformer::{named_parameters, Llama, WeightDtype};
use support::{
    assert_fails_with, deltaw, fixture, fresh_path, gpu_available, llama_folder, ok, path, s, stdout_json, train_losses,
};

#[test]
fn qlora_demo_learns_upper_on_a_4_bit_base() {
    let dir = fresh_path("qlora-demo");
    // The quick plan's 200 LoRA steps reach ~80% on Q4_0 (its rounding costs the tiny
    // width-64 model some of what it learned); the full plan's 400 reach 100%.
    let args = ["demo", "--quick", "--lora-steps", "400", "--base-quant", "q4_0", "--json", "--out", &s(&dir)];
    let report = stdout_json(&deltaw(&args));
    let em = |stage: &str| report["exact_match"][stage]["upper"].as_f64().unwrap();
    assert!(em("pretrained") <= 0.1, "upper known before fine-tuning: {report}");
    assert!(em("finetuned") >= 0.9, "QLoRA did not learn upper: {report}");
    let q = &report["base_quant"];
    assert_eq!((q["type"].as_str(), q["layers"].as_u64()), (Some("q4_0"), Some(8)), "{report}");
    // Q4_0: 18 bytes per 32 weights against f32's 128.
    let (before, after) = (q["bytes_before"].as_f64().unwrap(), q["bytes_after"].as_f64().unwrap());
    assert!((after / before - 18.0 / 128.0).abs() < 1e-9, "{report}");
    assert_eq!(report["merge"]["answers_agree"], true, "{report}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn qlora_sft_then_merge_reports_the_drift_into_f32_and_into_a_q4_0_gguf() {
    // Mistral in four bf16 shards (sharded loading, bf16 quantized as it streams in), with a
    // SentencePiece-style tokenizer.
    let model = fresh_path("qlora-sft");
    std::fs::create_dir_all(&model).unwrap();
    for src in [fixture("llama/mistral_bf16_shards"), fixture("chat/mistral")] {
        for entry in std::fs::read_dir(src).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), model.join(entry.file_name())).unwrap();
        }
    }
    let out = fresh_path("qlora-sft-out");
    let data = path("sft/alpaca.jsonl");
    let args = ["sft", "--model", &s(&model), "--data", &data, "--max-steps", "3", "--batch-size", "2"];
    // The built-in Alpaca template: Mistral's own moves the system prompt into the last user
    // turn, so its multi-turn records are refused as not prefix-stable (a clear error).
    let extra = ["--template", "alpaca", "--target", "all-linear", "--base-quant", "q4_0", "--lr", "1e-2"];
    let out_arg = s(&out);
    let extra = [&extra[..], &["--out", &out_arg]].concat();
    let stdout = ok(&deltaw(&[&args[..], &extra[..]].concat()));
    assert!(stdout.contains("trainable params: "), "{stdout}");
    let run: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    assert_eq!((run["mode"].as_str(), run["base_quant"].as_str()), (Some("qlora"), Some("q4_0")), "{run}");
    let adapter = s(&out.join("adapter"));

    // Into f32: deq(Q) + s·BA is the adapter path up to f32 sums (and the 8-bit activations
    // of the quantized products at the probe's few rows): no greedy token moves.
    let merged = fresh_path("qlora-merged");
    let merge = ["merge", "--model", &s(&model), "--adapter", &adapter, "--base-quant", "q4_0"];
    let stdout = ok(&deltaw(&[&merge[..], &["--out", &s(&merged)]].concat()));
    assert!(stdout.contains("max output change") && stdout.contains("top-1 changed at 0 of 128"), "{stdout}");
    assert!(stdout.contains("the q4_0 base it was trained on"), "{stdout}");
    let plain = Llama::from_dir_with(&merged, &Device::Cpu, WeightDtype::Stored).unwrap();
    assert!(named_parameters(&plain).iter().all(|(_, p)| p.value().dtype() == DType::F32));

    // Into a Q4_0 file: the sum is rounded to 4 bits again, and the report says what it cost.
    let file = fresh_path("qlora-merged").with_extension("gguf");
    let stdout = ok(&deltaw(&[&merge[..], &["--format", "gguf", "--quant", "q4_0", "--out", &s(&file)]].concat()));
    assert!(stdout.contains("GGUF q4_0: max output change"), "{stdout}");
    let lm = GgufModel::load(&file, &Device::Cpu, WeightDtype::Stored).unwrap();
    let q_proj = named_parameters(lm.model.as_ref()).into_iter().find(|(n, _)| n.ends_with("q_proj.weight")).unwrap();
    assert_eq!(q_proj.1.value().dtype(), DType::Quant(QuantType::Q4_0));
    assert_fails_with(
        &deltaw(&[&merge[..], &["--format", "gguf", "--quant", "q4_0", "--out", &s(&file)]].concat()),
        &["exists", "--overwrite"],
    );
    // On a GPU the blocks are read by the WGSL kernels: the same losses step for step (the
    // products differ in summation order only, ~1e-6 relative; 1e-4 leaves room for three
    // AdamW steps to carry it).
    if gpu_available() {
        let gpu_out = fresh_path("qlora-sft-gpu");
        let gpu_arg = s(&gpu_out);
        let gpu = [&args[..], &extra[..extra.len() - 2], &["--device", "gpu", "--out", &gpu_arg]].concat();
        ok(&deltaw(&gpu));
        let (cpu_losses, gpu_losses) = (train_losses(&out), train_losses(&gpu_out));
        assert_eq!(cpu_losses.len(), 3);
        for (c, g) in cpu_losses.iter().zip(&gpu_losses) {
            assert!((c - g).abs() <= 1e-4 * c.abs(), "CPU losses {cpu_losses:?}, GPU {gpu_losses:?}");
        }
        std::fs::remove_dir_all(gpu_out).ok();
    }
    for dir in [model, out, merged] {
        std::fs::remove_dir_all(dir).ok();
    }
    std::fs::remove_file(file).ok();
}

#[test]
fn unknown_block_types_and_full_fine_tuning_with_a_quantized_base_are_refused() {
    let model = llama_folder("qlora-bad");
    let data = path("sft/sharegpt.json");
    let out = s(&fresh_path("qlora-bad-out"));
    let base = ["sft", "--model", &s(&model), "--data", &data, "--out", &out];
    // Argument errors are clap's (exit code 2), naming the value and the choices.
    for (extra, needles) in [
        (&["--base-quant", "q3_x"][..], &["q3_x", "q4_0", "q8_0"][..]),
        (&["--base-quant", "q4_0", "--full"][..], &["--full", "--base-quant"][..]),
    ] {
        let out = deltaw(&[&base[..], extra].concat());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(needles.iter().all(|n| stderr.contains(n)), "{stderr}");
    }
    std::fs::remove_dir_all(model).ok();
}
