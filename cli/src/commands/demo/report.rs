//! The demo's report: the JSON object `--json` prints, the same figures for people, and the
//! note printed when Ctrl-C stopped a phase.

use super::{Phase, FINETUNE, PRETRAIN};
use anyhow::Result;
use deltaw_lora::MergeReport;
use deltaw_train::trainer::{read_metrics, MetricsLine};
use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;

/// A phase's figures. Steps, final loss, seconds and tokens/s come from its `metrics.jsonl`,
/// so a phase resumed after Ctrl-C reports its whole run, not only the steps since the resume;
/// `seconds` is training time (the steps' own times, without evaluations).
pub(super) fn phase_json(p: &Phase) -> Result<Value> {
    let metrics = p.dir.join("metrics.jsonl");
    let steps: Vec<_> = read_metrics(&metrics)?
        .into_iter()
        .filter_map(|line| match line {
            MetricsLine::Train(m) => Some(m),
            MetricsLine::Eval(_) => None,
        })
        .collect();
    let seconds: f64 = steps.iter().map(|m| m.seconds).sum();
    let tokens: usize = steps.iter().map(|m| m.tokens_processed).sum();
    Ok(json!({
        "trainable_params": p.params.trainable,
        "total_params": p.params.all,
        "steps": p.summary.steps,
        "resumed_from": p.resumed_from,
        "final_loss": steps.last().map(|m| m.loss),
        "seconds": seconds,
        "tokens_per_second": tokens as f64 / seconds.max(1e-9),
        "metrics": metrics,
        "plot": p.dir.join("loss.png"),
    }))
}

/// What Ctrl-C left behind and how to continue: the phase, its step, the checkpoint.
pub(super) fn stopped(out: &mut impl Write, p: &Phase, json: bool) -> Result<()> {
    let checkpoint = p.summary.last_checkpoint.as_ref().map(|c| c.display().to_string()).unwrap_or_default();
    let how = "run the same command again with --resume";
    if json {
        let stopped =
            json!({ "phase": p.name, "step": p.summary.steps, "of": p.total_steps, "checkpoint": checkpoint });
        writeln!(out, "{}", json!({ "stopped": stopped, "resume": how }))?;
    } else {
        writeln!(
            out,
            "\ndemo stopped during {} at step {} of {}; checkpoint {checkpoint}\nto continue, {how}",
            p.name, p.summary.steps, p.total_steps
        )?;
    }
    Ok(())
}

/// The merge's figures and whether the merged model's answers equal the adapter's.
pub(super) fn merge_json(merge: &MergeReport, agree: bool) -> Value {
    json!({
        "modules": merge.modules,
        "max_weight_error": merge.max_weight_error,
        "max_logit_change": merge.drift.map(|d| d.max),
        "answers_agree": agree,
    })
}

/// The report for people, from the same numbers as `--json`.
pub(super) fn write(out: &mut impl Write, r: &Value) -> Result<()> {
    write_scores(out, r)?;
    write_phases(out, r)?;
    if let Some(q) = r["base_quant"].as_object() {
        let mib = |k: &str| q[k].as_f64().unwrap_or(0.0) / 1048576.0;
        writeln!(
            out,
            "QLoRA base   {} linear layers frozen as {} ({:.3} MiB -> {:.3} MiB)",
            q["layers"],
            q["type"].as_str().unwrap_or_default(),
            mib("bytes_before"),
            mib("bytes_after")
        )?;
    }
    write_merge(out, &r["merge"])?;
    write_examples(out, r)?;
    write_artefacts(out, Path::new(r["out"].as_str().unwrap_or_default()))?;
    writeln!(out, "\ntotal time {:.1} s", r["seconds"].as_f64().unwrap_or(0.0))?;
    Ok(())
}

/// The heading and the exact-match table: both tasks after each stage.
fn write_scores(out: &mut impl Write, r: &Value) -> Result<()> {
    let (pt, ft) = (PRETRAIN.name(), FINETUNE.name());
    let pct = |stage: &str, task: &str| r["exact_match"][stage][task].as_f64().unwrap_or(f64::NAN) * 100.0;
    writeln!(
        out,
        "\ndeltaw demo: pretrain on `{pt}`, LoRA fine-tune on `{ft}` ({} held-out prompts each)\n",
        r["held_out_prompts"]
    )?;
    writeln!(out, "exact match        {pt:>8} {ft:>8}")?;
    for (stage, label) in [("initial", "random init"), ("pretrained", "pretrained"), ("finetuned", "+ LoRA")] {
        writeln!(out, "  {label:<16} {:>7.1}% {:>7.1}%", pct(stage, pt), pct(stage, ft))?;
    }
    writeln!(out)?;
    Ok(())
}

/// One line per training phase: what it trained, how long, how fast, where the loss ended.
fn write_phases(out: &mut impl Write, r: &Value) -> Result<()> {
    for (phase, label) in [("pretrain", "pretraining"), ("lora", "LoRA")] {
        let p = &r["phases"][phase];
        let (trainable, total) =
            (p["trainable_params"].as_f64().unwrap_or(0.0), p["total_params"].as_f64().unwrap_or(1.0));
        let resumed = p["resumed_from"].as_u64().map(|s| format!(" (resumed from step {s})")).unwrap_or_default();
        writeln!(
            out,
            "{label:<12} {} of {} parameters trained ({:.2}%), {} steps{resumed} in {:.1} s, {:.0} tokens/s, final loss {:.4}",
            p["trainable_params"],
            p["total_params"],
            100.0 * trainable / total,
            p["steps"],
            p["seconds"].as_f64().unwrap_or(0.0),
            p["tokens_per_second"].as_f64().unwrap_or(0.0),
            p["final_loss"].as_f64().unwrap_or(f64::NAN),
        )?;
    }
    Ok(())
}

/// The merge line: layers merged, what merging cost, whether the answers agree.
fn write_merge(out: &mut impl Write, m: &Value) -> Result<()> {
    writeln!(
        out,
        "merge        {} layers, max weight error {:.1e}, max logit change {:.1e}; merged and adapter answers agree: {}",
        m["modules"],
        m["max_weight_error"].as_f64().unwrap_or(f64::NAN),
        m["max_logit_change"].as_f64().unwrap_or(f64::NAN),
        m["answers_agree"],
    )?;
    Ok(())
}

/// The example prompts with the answers before and after fine-tuning.
fn write_examples(out: &mut impl Write, r: &Value) -> Result<()> {
    writeln!(out, "\nexamples (before = pretrained, after = + LoRA):")?;
    for e in r["examples"].as_array().into_iter().flatten() {
        let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
        writeln!(
            out,
            "  {:<16} expected {:<6} before {:<6} after {}",
            s("prompt"),
            s("expected"),
            s("before"),
            s("after")
        )?;
    }
    Ok(())
}

/// What the demo wrote into `dir`, folder by folder.
fn write_artefacts(out: &mut impl Write, dir: &Path) -> Result<()> {
    writeln!(out, "\nartefacts in {}:", dir.display())?;
    for (name, what) in [
        ("base/", "the pretrained model (config.json, model.safetensors, byte-level tokenizer.json, README.md)"),
        ("adapter/", "the LoRA adapter in PEFT format (adapter_config.json, adapter_model.safetensors)"),
        ("model/", "the merged model: deltaw generate --model <this folder> --prompt \"upper bead=\""),
        ("pretrain/", "pretraining: metrics.jsonl, loss.png, checkpoints/"),
        ("lora/", "fine-tuning: metrics.jsonl, loss.png, checkpoints/"),
    ] {
        writeln!(out, "  {name:<10} {what}")?;
    }
    Ok(())
}
