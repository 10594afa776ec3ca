//! Learning works, end to end on CPU in well under a minute: a tiny GPT-2 pretrained from
//! scratch on one synthetic task (`copy`), then LoRA-fine-tuned on another (`upper`). Exact
//! match on held-out prompts of the second task goes from near 0 to ≥ 90%, the merged model
//! answers exactly as the adapter does, and a run interrupted after a checkpoint and resumed
//! repeats the uninterrupted run's losses bit for bit.

use deltaw_lora::{Lora, LoraConfig, TargetModules};
use deltaw_tensor::{Device, Seed};
use deltaw_train::data::{ByteCodec, SftDataset, TextCodec};
use deltaw_train::distributed::{DistConfig, SingleProcess};
use deltaw_train::synthetic::{compact_template, dataset, Task};
use deltaw_train::trainer::{exact_match, greedy_answer, prompt_and_answer};
use deltaw_train::{Trainer, TrainerConfig};
use deltaw_transformer::{Gpt2, Gpt2Config, Model};
use std::path::PathBuf;

const EOS: i32 = ByteCodec::EOS_ID;

fn tiny_model() -> Gpt2 {
    let config = Gpt2Config::new(ByteCodec.vocab_size(), 32, 64, 2, 4).unwrap();
    Gpt2::init(config, Seed(0), &Device::Cpu)
}

fn task_data(task: Task, seed: u64, start: u64, n: usize) -> SftDataset {
    dataset(&task.records_with(seed, start, n, 4..=4), &ByteCodec, &compact_template()).unwrap()
}

fn out_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("deltaw-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    dir
}

fn config(steps: usize, lr: f32) -> TrainerConfig {
    TrainerConfig {
        max_steps: Some(steps),
        batch_size: 32,
        lr,
        warmup_ratio: 0.05,
        min_lr_ratio: 0.1,
        progress: false,
        ..TrainerConfig::default()
    }
}

fn answers(model: &Gpt2, data: &SftDataset) -> Vec<Vec<i32>> {
    data.samples
        .iter()
        .filter_map(prompt_and_answer)
        .map(|(prompt, answer)| greedy_answer(model, prompt, answer.len(), EOS))
        .collect()
}

#[test]
fn pretrain_then_lora_learns_a_new_task_and_merging_keeps_the_answers() {
    let mut model = tiny_model();
    // Copy words in both cases, so every letter the second task answers with is a token the
    // base model has learned to emit (LoRA adapts what a model does; it cannot easily teach
    // an embedding row that pretraining never trained).
    let mut copy_records = Task::Copy.records_with(1, 0, 2000, 4..=4);
    copy_records
        .iter_mut()
        .skip(1)
        .step_by(2)
        .for_each(|(p, a)| (*p, *a) = (p.replace(&*a, &a.to_uppercase()), a.to_uppercase()));
    let copy_train = dataset(&copy_records, &ByteCodec, &compact_template()).unwrap();
    let copy_test = task_data(Task::Copy, 1, 10_000, 50);
    let (upper_train, upper_test) = (task_data(Task::Upper, 2, 0, 2000), task_data(Task::Upper, 2, 10_000, 50));

    let dir = out_dir("pretrain");
    let params = model.parameters();
    let mut trainer = Trainer::new(&model, params, config(300, 3e-3), &dir, (EOS, EOS)).unwrap();
    let summary = trainer.fit(&copy_train, None).unwrap();
    let copy_acc = exact_match(&model, &copy_test.samples, 50, EOS);
    let upper_before = exact_match(&model, &upper_test.samples, 50, EOS);
    eprintln!("pretrain: loss {:?} -> copy {copy_acc}, upper {upper_before}", summary.losses.last());
    assert!(copy_acc >= 0.9, "pretraining did not learn copy: {copy_acc}");
    assert!(upper_before <= 0.1, "upper should be unknown before fine-tuning: {upper_before}");

    let lora_config = LoraConfig {
        r: 8,
        lora_alpha: 16.0,
        lora_dropout: 0.0,
        target_modules: TargetModules::parse("all-linear"),
        use_rslora: false,
    };
    let mut lora = Lora::inject(&mut model, lora_config, Seed(3)).unwrap();
    let dir = out_dir("lora");
    let mut trainer = Trainer::new(&model, lora.parameters(), config(200, 5e-3), &dir, (EOS, EOS)).unwrap();
    trainer.fit(&upper_train, None).unwrap();
    let upper_after = exact_match(&model, &upper_test.samples, 50, EOS);
    eprintln!("lora: upper {upper_before} -> {upper_after}");
    assert!(upper_after >= 0.9, "LoRA did not learn upper: {upper_after}");

    let adapter_answers = answers(&model, &upper_test);
    let report = lora.merge(&mut model);
    assert!(report.max_weight_error < 1e-5, "{report}");
    assert_eq!(answers(&model, &upper_test), adapter_answers, "merged model answers differently");
}

#[test]
fn resuming_from_a_checkpoint_repeats_the_run_bit_for_bit() {
    let data = task_data(Task::Reverse, 5, 0, 96);
    // `zero1`: after any resume, the trainer becomes a one-rank ZeRO-1 run, whose shard
    // optimizer must take over the restored moments and whose checkpoints keep them in a
    // shard file.
    let run = |dir: &PathBuf, stop_after: Option<usize>, resume: bool, zero1: bool| {
        let mut model = tiny_model();
        let lora_config = LoraConfig { r: 4, lora_dropout: 0.1, ..LoraConfig::new("gpt2") };
        let lora = Lora::inject(&mut model, lora_config, Seed(9)).unwrap();
        let cfg = TrainerConfig { stop_after, save_every: Some(3), grad_accum: 2, ..config(8, 1e-2) };
        let mut trainer = Trainer::new(&model, lora.parameters(), cfg, dir, (EOS, EOS)).unwrap();
        if resume {
            assert_eq!(trainer.resume().unwrap(), Some(3), "resumes from the step-3 checkpoint");
        }
        if zero1 {
            let config = DistConfig { zero1: true, ..DistConfig::default() };
            trainer = trainer.distributed(Box::new(SingleProcess), config).unwrap();
        }
        trainer.fit(&data, None).unwrap().losses
    };
    let full = run(&out_dir("full"), None, false, false);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    for zero1 in [false, true] {
        let dir = out_dir(&format!("interrupted-{zero1}"));
        let first = run(&dir, Some(4), false, false); // checkpoints at 3 and 4 (the stop)
        std::fs::write(dir.join("checkpoints").join("latest"), "step-000003").unwrap();
        let rest = run(&dir, None, true, zero1);
        assert_eq!(first, full[..4].to_vec());
        assert_eq!(bits(&rest), bits(&full[3..]), "zero1 {zero1}: resumed losses {rest:?} vs {:?}", &full[3..]);
        let shard = dir.join("checkpoints/step-000008/optim-rank000-of-001.safetensors");
        assert_eq!(shard.exists(), zero1, "{}", shard.display());
    }
}

#[test]
fn a_nan_loss_stops_training_and_names_the_last_good_checkpoint() {
    let model = tiny_model();
    let data = task_data(Task::Sort, 7, 0, 64);
    let dir = out_dir("nan");
    let cfg = TrainerConfig { save_every: Some(2), ..config(6, 1e-3) };
    let first = TrainerConfig { stop_after: Some(2), ..cfg.clone() };
    Trainer::new(&model, model.parameters(), first, &dir, (EOS, EOS)).unwrap().fit(&data, None).unwrap();
    let good = std::fs::read(dir.join("checkpoints/step-000002/trainable.safetensors")).unwrap();

    // Resume, then poison a weight: the next step's loss is NaN, and nothing may be written
    // over step 2.
    let mut trainer = Trainer::new(&model, model.parameters(), cfg, &dir, (EOS, EOS)).unwrap();
    assert_eq!(trainer.resume().unwrap(), Some(2));
    let w = &model.h[0].mlp.fc.weight;
    w.set_value(w.value().mul_scalar(f32::NAN));
    let err = trainer.fit(&data, None).expect_err("a NaN loss must stop training").to_string();
    assert!(err.contains("step 3") && err.contains("NaN"), "{err}");
    assert!(err.contains("step-000002"), "the message names the last good checkpoint: {err}");
    assert_eq!(std::fs::read_to_string(dir.join("checkpoints/latest")).unwrap(), "step-000002");
    assert_eq!(std::fs::read(dir.join("checkpoints/step-000002/trainable.safetensors")).unwrap(), good);
}

/// A checkpoint whose last parameter is I32 (where the model's is f32) fails to resume, and
/// the failure changes nothing: every parameter keeps the value it had before `resume`.
#[test]
fn a_bad_checkpoint_fails_to_resume_and_changes_no_parameter() {
    let model = tiny_model();
    let data = task_data(Task::Sort, 7, 0, 64);
    let dir = out_dir("bad-resume");
    let cfg = TrainerConfig { save_every: Some(1), ..config(1, 1e-2) };
    Trainer::new(&model, model.parameters(), cfg.clone(), &dir, (EOS, EOS)).unwrap().fit(&data, None).unwrap();
    let path = dir.join("checkpoints/step-000001/trainable.safetensors");
    let mut tensors = deltaw_tensor::safetensors::load(&path, &Device::Cpu).unwrap();
    let params = model.parameters();
    let last = format!("param.{}", params.last().unwrap().name().unwrap());
    let as_i32 = tensors[&last].to_dtype(deltaw_tensor::DType::I32).unwrap_or_else(|_| {
        let zeros = deltaw_tensor::Tensor::zeros(tensors[&last].shape(), &Device::Cpu);
        zeros.to_dtype(deltaw_tensor::DType::I32).unwrap()
    });
    tensors.insert(last.clone(), as_i32);
    deltaw_tensor::safetensors::save(tensors.iter().map(|(k, v)| (k.as_str(), v)), None, &path).unwrap();

    let fresh = tiny_model(); // the same init as the saved run's start, not its step-1 values
    let before: Vec<Vec<f32>> = fresh.parameters().iter().map(|p| p.value().to_vec()).collect();
    let mut trainer = Trainer::new(&fresh, fresh.parameters(), cfg, &dir, (EOS, EOS)).unwrap();
    let err = trainer.resume().expect_err("an I32 tensor where f32 belongs").to_string();
    assert!(err.contains(&last) && err.contains("I32"), "{err}");
    let after: Vec<Vec<f32>> = fresh.parameters().iter().map(|p| p.value().to_vec()).collect();
    assert!(before == after, "a failed resume set parameters");
    std::fs::remove_dir_all(&dir).ok();
}
