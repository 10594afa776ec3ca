//! `deltaw demo`: the whole job end to end, offline, in a minute or two on a laptop CPU.
//!
//! 1. a tiny byte-level GPT-2 (2 layers, C = 64) is pretrained from scratch on `copy` (words
//!    in both letter cases, so every letter the second task answers with is a token the model
//!    has learned to emit: LoRA adapts what a model does, it cannot easily teach an embedding
//!    row that pretraining never trained);
//! 2. exact match is measured on held-out prompts of both tasks (`upper` is near 0);
//! 3. a LoRA adapter (r = 8 on every linear layer, the base frozen) is trained on `upper`;
//! 4. exact match again, then the adapter is merged and the merged model must answer the
//!    held-out prompts exactly as the adapter did;
//! 5. the base model, the adapter (PEFT format), the merged model, both runs' metrics and
//!    loss plots are written to `--out`, and a report is printed (`--json` for a machine).
//!
//! Ctrl-C during either training phase finishes the step, writes a checkpoint into that
//! phase's folder and stops, saying so; `--resume` then continues from the checkpoints. Every
//! step is a function of the seeds alone, so a resumed demo ends with the same weights, losses
//! and scores as one never stopped: a finished pretraining is restored from its last
//! checkpoint, not retrained, and the LoRA phase resumes mid-run.

mod report;

use super::outdir;
use super::plot::plot_run;
use super::run_args::interrupt_flag;
use anyhow::{bail, Result};
use clap::Args;
use deltaw_autograd::no_grad;
use deltaw_lora::{quantize_base, Lora, LoraConfig, MergeReport, ParamCount, QuantizedBase, TargetModules};
use deltaw_tensor::{DType, Device, QuantType, Seed, Tensor};
use deltaw_train::data::{collate, ByteCodec, SftDataset, TextCodec};
use deltaw_train::synthetic::{compact_template, dataset, Task};
use deltaw_train::trainer::{exact_match, greedy_answer, prompt_and_answer};
use deltaw_train::{TrainSummary, Trainer, TrainerConfig};
use deltaw_transformer::{CausalLm, FreshInit, Gpt2, Gpt2Config, Llama, LlamaConfig};
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

const EOS: i32 = ByteCodec::EOS_ID;
const PRETRAIN: Task = Task::Copy;
const FINETUNE: Task = Task::Upper;
/// Letters per word: fixed-length words are learned faster (the answer's k-th letter sits at
/// a fixed distance from the input's).
const WORD_LEN: usize = 4;
/// Held-out prompts are drawn from this record index on, far past the training records.
const HELD_OUT_START: u64 = 10_000;

#[derive(Args)]
pub struct DemoArgs {
    /// Output folder for the models, the adapter, metrics and plots.
    #[arg(long, default_value = "deltaw-demo")]
    pub out: PathBuf,
    /// A shorter run (fewer steps and held-out prompts), for tests and a first look.
    #[arg(long)]
    pub quick: bool,
    /// Replace deltaw's outputs in a non-empty --out.
    #[arg(long, conflicts_with = "resume")]
    pub overwrite: bool,
    /// Continue a demo stopped by Ctrl-C from the checkpoints in --out (same other options).
    #[arg(long)]
    pub resume: bool,
    /// Pretraining steps (default 800, or 300 with --quick).
    #[arg(long, value_name = "N")]
    pub pretrain_steps: Option<usize>,
    /// LoRA fine-tuning steps (default 400, or 200 with --quick).
    #[arg(long, value_name = "N")]
    pub lora_steps: Option<usize>,
    /// Held-out prompts per task, scored for exact match (default 200, or 50 with --quick).
    #[arg(long, value_name = "N")]
    pub held_out: Option<usize>,
    /// Print the report as one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// The architecture trained from scratch: a GPT-2, or a Llama-family decoder (RMSNorm,
    /// rotary positions, SwiGLU, grouped-query attention).
    #[arg(long, default_value = "gpt2", value_parser = ["gpt2", "llama"])]
    pub arch: String,
    /// QLoRA: block-quantize the pretrained base's linear weights (frozen) before the LoRA
    /// phase, e.g. `q4_0` or `q8_0` (the demo's width of 64 takes 32-value blocks, not the
    /// 256 of the K types); the adapter is then merged into f32 weights deq(Q) + s·BA.
    #[arg(long, value_name = "TYPE", value_parser = super::sft::parse_quant_type)]
    pub base_quant: Option<QuantType>,
}

/// Steps and sizes of a run. The quick plan is the one tests/sft_learning.rs shows reaching
/// ≥ 90% exact match; the full one trains longer and scores on more prompts.
struct Plan {
    pretrain_steps: usize,
    lora_steps: usize,
    train_records: usize,
    held_out: usize,
}

impl Plan {
    fn new(args: &DemoArgs) -> Result<Plan> {
        let mut plan = if args.quick {
            Plan { pretrain_steps: 300, lora_steps: 200, train_records: 2000, held_out: 50 }
        } else {
            Plan { pretrain_steps: 800, lora_steps: 400, train_records: 4000, held_out: 200 }
        };
        plan.pretrain_steps = args.pretrain_steps.unwrap_or(plan.pretrain_steps);
        plan.lora_steps = args.lora_steps.unwrap_or(plan.lora_steps);
        plan.held_out = args.held_out.unwrap_or(plan.held_out);
        if plan.pretrain_steps == 0 || plan.lora_steps == 0 || plan.held_out == 0 {
            bail!("--pretrain-steps, --lora-steps and --held-out must be at least 1");
        }
        Ok(plan)
    }
}

/// Training and held-out sets of both tasks.
struct Data {
    pretrain: SftDataset,
    pretrain_test: SftDataset,
    finetune: SftDataset,
    finetune_test: SftDataset,
}

impl Data {
    fn new(plan: &Plan) -> Result<Data> {
        let set = |records: &[(String, String)]| dataset(records, &ByteCodec, &compact_template());
        let mut copy = PRETRAIN.records_with(1, 0, plan.train_records, WORD_LEN..=WORD_LEN);
        // Every other word in capitals: `copy ABCD` → `ABCD`.
        copy.iter_mut()
            .skip(1)
            .step_by(2)
            .for_each(|(p, a)| (*p, *a) = (p.replace(&*a, &a.to_uppercase()), a.to_uppercase()));
        // `upper` alone: the adapter then answers `copy` prompts in capitals too (forgetting,
        // shown in the report). Replaying a quarter of the copy records kept `copy` at 100% but
        // held `upper` at 20% after the quick run's 200 steps.
        let finetune = FINETUNE.records_with(2, 0, plan.train_records, WORD_LEN..=WORD_LEN);
        let held_out = |task: Task| task.records_with(1, HELD_OUT_START, plan.held_out, WORD_LEN..=WORD_LEN);
        Ok(Data {
            pretrain: set(&copy)?,
            pretrain_test: set(&held_out(PRETRAIN))?,
            finetune: set(&finetune)?,
            finetune_test: set(&held_out(FINETUNE))?,
        })
    }
}

/// Exact match on the held-out prompts of both tasks.
#[derive(Clone, Copy)]
struct Scores {
    pretrain: f32,
    finetune: f32,
}

impl Scores {
    fn measure(model: &dyn CausalLm, data: &Data) -> Scores {
        let em = |set: &SftDataset| exact_match(model, &set.samples, set.len(), EOS);
        Scores { pretrain: em(&data.pretrain_test), finetune: em(&data.finetune_test) }
    }

    fn json(self) -> Value {
        json!({ PRETRAIN.name(): self.pretrain, FINETUNE.name(): self.finetune })
    }
}

fn trainer_config(steps: usize, lr: f32) -> TrainerConfig {
    TrainerConfig {
        max_steps: Some(steps),
        batch_size: 32,
        lr,
        warmup_ratio: 0.05,
        min_lr_ratio: 0.1,
        eval_every: Some((steps / 5).max(1)),
        progress: true,
        ..TrainerConfig::default()
    }
}

/// How a training phase runs: resumed or not, and the Ctrl-C flag it stops on.
struct Control {
    resume: bool,
    interrupt: Arc<AtomicBool>,
    json: bool,
}

/// What one training phase did: its parameter counts, and where it wrote.
struct Phase {
    name: &'static str,
    params: ParamCount,
    summary: TrainSummary,
    /// The step the phase resumed from, when it did.
    resumed_from: Option<usize>,
    total_steps: usize,
    dir: PathBuf,
}

/// Trains `params` of `model` on `train`, evaluating on `val`, writing into `dir`; with
/// `control.resume`, first restores the newest checkpoint there (all of the phase, when it
/// had finished).
fn train(
    model: &dyn CausalLm,
    (name, params): (&'static str, ParamCount),
    lora: Option<&Lora>,
    cfg: TrainerConfig,
    dir: PathBuf,
    sets: (&SftDataset, &SftDataset),
    control: &Control,
) -> Result<Phase> {
    let vars = lora.map_or_else(|| model.parameters(), Lora::parameters);
    let total_steps = cfg.max_steps.unwrap_or_default();
    let mut trainer = Trainer::new(model, vars, cfg, &dir, (EOS, EOS))?.with_interrupt(control.interrupt.clone());
    let resumed_from = if control.resume { trainer.resume()? } else { None };
    if let Some(step) = resumed_from {
        progress(control.json, &format!("{name}: resuming from the checkpoint of step {step}"));
    }
    let summary = trainer.fit(sets.0, Some(sets.1))?;
    plot_run(&dir);
    Ok(Phase { name, params, summary, resumed_from, total_steps, dir })
}

/// Greedy answers to every held-out prompt of `set`.
fn answers(model: &dyn CausalLm, set: &SftDataset) -> Vec<Vec<i32>> {
    set.samples.iter().filter_map(prompt_and_answer).map(|(p, a)| greedy_answer(model, p, a.len(), EOS)).collect()
}

/// The first `n` prompts of `set` with their expected answers, as text.
fn example_prompts(set: &SftDataset, n: usize) -> Result<Vec<(Vec<i32>, String, String)>> {
    let decode = |ids: &[i32]| ByteCodec.decode(ids);
    set.samples
        .iter()
        .filter_map(prompt_and_answer)
        .take(n)
        .map(|(p, a)| Ok((p.to_vec(), decode(p)?, decode(a)?)))
        .collect()
}

/// The model's answer to each example prompt, as text.
fn example_answers(model: &dyn CausalLm, examples: &[(Vec<i32>, String, String)]) -> Result<Vec<String>> {
    examples.iter().map(|(p, _, a)| Ok(ByteCodec.decode(&greedy_answer(model, p, a.len(), EOS))?)).collect()
}

/// Logits of the first few held-out prompts: what `merge_checked` compares before and after.
fn probe(set: &SftDataset, device: &Device) -> Result<impl Fn(&(dyn CausalLm + 'static)) -> Tensor> {
    let samples: Vec<_> = set.samples.iter().take(8).collect();
    let batch = collate(&samples, EOS, device)?;
    Ok(move |m: &(dyn CausalLm + 'static)| no_grad(|| m.output(&batch.input_ids, Some(&batch.attention_mask)).value()))
}

/// Saves `model` to `dir` with the byte codec's `tokenizer.json` (so `deltaw generate` runs it)
/// and a README saying in words how text becomes ids.
fn save_model(model: &dyn CausalLm, dir: &Path, what: &str) -> Result<()> {
    outdir::write_folder(dir, |tmp| write_model_files(model, dir, tmp, what))
}

/// [`save_model`]'s files, written into `tmp` (the README names the final folder `dir`).
fn write_model_files(model: &dyn CausalLm, dir: &Path, tmp: &Path, what: &str) -> Result<()> {
    model.save_dir(tmp)?;
    ByteCodec::save_files(tmp)?;
    let (prompt, answer) = FINETUNE.record_with(0, 0, WORD_LEN..=WORD_LEN);
    let prompt = format!("{prompt}="); // the compact template's
    let readme = format!(
        "# deltaw demo: {what}\n\nA {} (2 layers, width 64, 4 heads, 32 positions) trained from scratch by \
         `deltaw demo`.\n\nIt is byte-level: token ids 0-255 are the UTF-8 bytes of the text and id 256 is \
         end-of-sequence (EOS, also the padding id); tokenizer.json spells this as a byte-level BPE with no \
         merges.\nA prompt is `<task> <word>=`; the answer follows and ends with EOS, e.g. `{prompt}` → `{answer}`:\n\n\
         ```sh\ndeltaw generate --model {} --prompt \"{prompt}\" --max-new-tokens 8\n```\n",
        model.model_type(),
        dir.display(),
    );
    deltaw_tensor::safetensors::write_atomic(&tmp.join("README.md"), readme.as_bytes())?;
    Ok(())
}

fn progress(json: bool, message: &str) {
    if !json {
        eprintln!("{message}");
    }
}

/// Phase 1: every parameter of `model` trained on the pretraining task, into `out/pretrain`.
fn pretrain(model: &dyn CausalLm, plan: &Plan, data: &Data, out: &Path, control: &Control) -> Result<Phase> {
    progress(control.json, &format!("pretraining on `{}` ({} steps)...", PRETRAIN.name(), plan.pretrain_steps));
    let all: usize = model.parameters().iter().map(|p| p.value().numel()).sum();
    let cfg = trainer_config(plan.pretrain_steps, 3e-3);
    let sets = (&data.pretrain, &data.pretrain_test);
    let count = ParamCount { trainable: all, all };
    train(model, ("pretraining", count), None, cfg, out.join("pretrain"), sets, control)
}

/// Phase 2: a LoRA adapter (r = 8 on every linear layer) injected into `model` and trained on
/// the fine-tuning task, into `out/lora`.
fn finetune(
    model: &mut (dyn CausalLm + 'static),
    plan: &Plan,
    data: &Data,
    out: &Path,
    control: &Control,
) -> Result<(Lora, Phase)> {
    progress(control.json, &format!("LoRA fine-tuning on `{}` ({} steps)...", FINETUNE.name(), plan.lora_steps));
    let lora_config = LoraConfig {
        r: 8,
        lora_alpha: 16.0,
        lora_dropout: 0.0,
        target_modules: TargetModules::parse("all-linear"),
        use_rslora: false,
    };
    let lora = Lora::inject(model, lora_config, Seed(3))?;
    let cfg = trainer_config(plan.lora_steps, 5e-3);
    let sets = (&data.finetune, &data.finetune_test);
    let count = lora.param_count(model);
    let phase = train(model, ("LoRA fine-tuning", count), Some(&lora), cfg, out.join("lora"), sets, control)?;
    Ok((lora, phase))
}

/// Saves the adapter (PEFT format) to `out/adapter`, merges it into `model`, and saves the
/// merged model to `out/model`; fails when the merged model answers the held-out fine-tuning
/// prompts differently from the adapter. Returns the merge's report and that agreement.
fn merge_and_save(
    model: &mut (dyn CausalLm + 'static),
    (lora, into): (&mut Lora, Option<DType>),
    data: &Data,
    out: &Path,
    device: &Device,
) -> Result<(MergeReport, bool)> {
    let base = out.join("base");
    lora.save_peft(out.join("adapter"), &base.display().to_string(), model.model_type())?;
    let adapter_answers = answers(model, &data.finetune_test);
    let merge = lora.merge_checked_as(model, into, probe(&data.finetune_test, device)?);
    let agree = answers(model, &data.finetune_test) == adapter_answers;
    save_model(model, &out.join("model"), "the base with the LoRA adapter merged in")?;
    if !agree {
        bail!(
            "the merged model answers the held-out `{}` prompts differently from the adapter ({merge})",
            FINETUNE.name()
        );
    }
    Ok((merge, agree))
}

/// QLoRA's base for the LoRA phase: `model`'s linear weights quantized to `ty` and frozen.
fn quantize_frozen_base(model: &mut (dyn CausalLm + 'static), ty: QuantType, json: bool) -> Result<QuantizedBase> {
    let report = quantize_base(model, ty)?;
    if report.quantized == 0 {
        bail!(
            "--base-quant {ty}: no linear layer of the demo model has rows of whole {}-value blocks",
            ty.block_elems()
        );
    }
    progress(json, &report.to_string());
    Ok(report)
}

/// The untrained model: a GPT-2 (2 layers, n_embd 64, 4 heads, 32 positions), or a Llama of
/// the same size (4 query heads sharing 2 key/value heads, SwiGLU width 128, untied head).
fn build_model(arch: &str, device: &Device) -> Result<Box<dyn CausalLm>> {
    let vocab = ByteCodec.vocab_size();
    if arch == "llama" {
        let config = json!({
            "model_type": "llama", "vocab_size": vocab, "hidden_size": 64, "intermediate_size": 128,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
            "max_position_embeddings": 32, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
            "tie_word_embeddings": false, "architectures": ["LlamaForCausalLM"], "dtype": "float32",
        });
        let config = LlamaConfig::from_json(config, Path::new("demo llama config"))?;
        return Ok(Box::new(Llama::build(config, &mut FreshInit::new(Seed(0), device))?));
    }
    let config = Gpt2Config::new(vocab, 32, 64, 2, 4)?;
    Ok(Box::new(Gpt2::init(config, Seed(0), device)))
}

pub fn run(args: &DemoArgs, device: &Device, out: &mut impl Write) -> Result<()> {
    let (started, plan) = (Instant::now(), Plan::new(args)?);
    outdir::prepare(&args.out, args.overwrite, args.resume)?;
    let control = Control { resume: args.resume, interrupt: interrupt_flag(), json: args.json };
    let data = Data::new(&plan)?;
    let mut model = build_model(&args.arch, device)?;
    let model = model.as_mut();
    let initial = Scores::measure(model, &data);

    let pre = pretrain(model, &plan, &data, &args.out, &control)?;
    if pre.summary.interrupted {
        return report::stopped(out, &pre, args.json);
    }
    let pretrained = Scores::measure(model, &data);
    let mut examples = example_prompts(&data.finetune_test, 3)?;
    examples.extend(example_prompts(&data.pretrain_test, 1)?);
    let before = example_answers(model, &examples)?;
    save_model(model, &args.out.join("base"), "the pretrained base model")?;
    let quantized = match args.base_quant {
        Some(ty) => Some(quantize_frozen_base(model, ty, control.json)?),
        None => None,
    };

    let (mut lora, tuned_phase) = finetune(model, &plan, &data, &args.out, &control)?;
    if tuned_phase.summary.interrupted {
        return report::stopped(out, &tuned_phase, args.json);
    }
    let tuned = Scores::measure(model, &data);
    let after = example_answers(model, &examples)?;
    // A quantized base merges into f32 (deq(Q) + s·BA): a folder transformers loads.
    let into = quantized.as_ref().map(|_| DType::F32);
    let (merge, agree) = merge_and_save(model, (&mut lora, into), &data, &args.out, device)?;

    let report = json!({
        "pretrain_task": PRETRAIN.name(),
        "finetune_task": FINETUNE.name(),
        "held_out_prompts": plan.held_out,
        "exact_match": { "initial": initial.json(), "pretrained": pretrained.json(), "finetuned": tuned.json() },
        "phases": { "pretrain": report::phase_json(&pre)?, "lora": report::phase_json(&tuned_phase)? },
        "merge": report::merge_json(&merge, agree),
        "base_quant": quantized.map(|q| json!({ "type": q.ty.name(), "layers": q.quantized,
            "bytes_before": q.bytes_before, "bytes_after": q.bytes_after })),
        "examples": examples.iter().zip(before.iter().zip(&after)).map(|((_, prompt, expected), (b, a))| {
            json!({ "prompt": prompt, "expected": expected, "before": b, "after": a })
        }).collect::<Vec<_>>(),
        "out": args.out,
        "seconds": started.elapsed().as_secs_f64(),
    });
    if args.json {
        writeln!(out, "{report}")?;
    } else {
        report::write(out, &report)?;
    }
    Ok(())
}
