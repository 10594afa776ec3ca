//! Structured fuzzing of every loader of untrusted files: valid seed files from
//! `tests/fixtures/`, mutated by `fuzz_mutate.rs` (truncation, bit flips, huge and negative
//! numbers, wrong JSON types, deep nesting, NaN, odd Unicode, duplicate keys; in a GGUF file,
//! counts, lengths, type ids, dims and offsets overwritten), then loaded.
//!
//! Each case must end in `Ok` or `Err`: a panic (caught with `catch_unwind`) fails the test
//! and names the edits. So does any single allocation above [`ALLOC_LIMIT`] on the loading
//! thread (a counting global allocator): every seed is under 200 KB, so a larger allocation
//! can only come from a size read from the file and not checked against it.
//!
//! The cases are drawn from a fixed seed, so CI runs the same few thousand every time (about
//! two minutes in a debug build on two cores); `cargo test --test fuzz_loaders -- --ignored`
//! runs `every_loader_twenty_times_longer`: twenty times as many, from a random seed. Counts
//! per loader are printed (`--nocapture`).

#[path = "fuzz_gguf_fields.rs"]
mod gguf_fields;
#[path = "fuzz_mutate.rs"]
mod mutate;

use deltaw_lora::Lora;
use deltaw_rag::{build_index, BuildOptions, EmbeddingModel, Index};
use deltaw_tensor::gguf::{GgufFile, GgufType};
use deltaw_tensor::{safetensors, Device};
use deltaw_train::{ByteCodec, DataFormat, PromptTemplate, SftDataset, SftOptions, Trainer, TrainerConfig};
use deltaw_transformer::{
    load_model, BertConfig, ChatTemplate, Gpt2, Gpt2Config, LlamaConfig, Message, Model, Tokenizer, TokenizerConfig,
};
use mutate::{apply, edits, Kind};
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// The largest single allocation a case may make on its thread: 64 MiB, over 300 times the
/// largest seed file.
const ALLOC_LIMIT: usize = 64 << 20;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

/// The system allocator, noting the largest request made on each thread.
struct Tracking;

// SAFETY: every call is forwarded to `System` unchanged; the thread-local is a `Cell<usize>`
// with a const initialiser and no destructor, so touching it never allocates.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller's contract is System's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
}

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name)
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("deltaw-fuzz-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A file of a folder that the fuzzer mutates: the folder-relative name, its valid bytes,
/// and how they are structured.
struct Seed {
    file: &'static str,
    bytes: Vec<u8>,
    kind: Kind,
}

fn seed(file: &'static str, from: &Path, kind: Kind) -> Seed {
    Seed { file, bytes: std::fs::read(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())), kind }
}

/// Runs `cases` cases: a seed drawn from `seeds`, mutated, written over its file in `dir`
/// (the other seeds' files stay valid), then `load(dir)`. Returns the number of cases run.
fn fuzz(name: &str, (cases, long): (u32, bool), dir: &Path, seeds: &[Seed], load: &dyn Fn(&Path)) -> u32 {
    let config = Config {
        cases: if long { cases * 20 } else { cases },
        failure_persistence: None,
        max_shrink_iters: 200,
        ..Config::default()
    };
    let mut runner = if long {
        TestRunner::new(config)
    } else {
        TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha))
    };
    for s in seeds {
        std::fs::write(dir.join(s.file), &s.bytes).unwrap();
    }
    let ran = Cell::new(0u32);
    let result = runner.run(&(0..seeds.len(), edits()), |(which, edits)| {
        let s = &seeds[which];
        let bytes = apply(&s.bytes, s.kind, &edits);
        std::fs::write(dir.join(s.file), &bytes).unwrap();
        LARGEST.with(|l| l.set(0));
        let outcome = catch_unwind(AssertUnwindSafe(|| load(dir)));
        let largest = LARGEST.with(|l| l.get());
        std::fs::write(dir.join(s.file), &s.bytes).unwrap();
        ran.set(ran.get() + 1);
        if outcome.is_err() {
            return Err(TestCaseError::fail(format!("{name}: a panic loading {} after {edits:?}", s.file)));
        }
        if largest > ALLOC_LIMIT {
            let message = format!("{name}: one allocation of {largest} bytes loading {} after {edits:?}", s.file);
            return Err(TestCaseError::fail(message));
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    eprintln!("fuzz {name}: {} cases, no panic, largest allocation under {ALLOC_LIMIT} bytes", ran.get());
    ran.get()
}

#[test]
fn safetensors_files() {
    safetensors_files_with(false);
}

fn safetensors_files_with(long: bool) {
    let dir = scratch("safetensors");
    let seeds = [
        seed("a.safetensors", &fixture("tiny_gpt2/model.safetensors"), Kind::Safetensors),
        seed("a.safetensors", &fixture("lora_gpt2/adapter_model.safetensors"), Kind::Safetensors),
        seed(
            "a.safetensors",
            &fixture("llama/mistral_bf16_shards/model-00004-of-00004.safetensors"),
            Kind::Safetensors,
        ),
    ];
    fuzz("safetensors", (600, long), &dir, &seeds[1..2], &|d| {
        let _ = safetensors::load(d.join("a.safetensors"), &Device::Cpu);
    });
    fuzz("safetensors (model-sized)", (150, long), &dir, &seeds, &|d| {
        let _ = safetensors::load(d.join("a.safetensors"), &Device::Cpu);
    });
}

#[test]
fn gguf_files() {
    gguf_files_with(false);
}

/// Every tensor of a mutated GGUF file is read (as a tensor where it is one of the float
/// types, as bytes otherwise), so a size that passed validation is also used.
fn gguf_files_with(long: bool) {
    let dir = scratch("gguf");
    let seeds = [
        seed("a.gguf", &fixture("gguf/all_types_v3.gguf"), Kind::Gguf),
        seed("a.gguf", &fixture("gguf/aligned64_v2.gguf"), Kind::Gguf),
        seed("a.gguf", &fixture("gguf/deltaw_written.gguf"), Kind::Gguf),
    ];
    let (opened, refused) = (AtomicU32::new(0), AtomicU32::new(0));
    fuzz("GGUF", (1000, long), &dir, &seeds, &|d| {
        let Ok(file) = GgufFile::open(d.join("a.gguf")) else {
            refused.fetch_add(1, Ordering::Relaxed);
            return;
        };
        opened.fetch_add(1, Ordering::Relaxed);
        for info in file.tensor_infos() {
            let _ = match info.ty {
                GgufType::Quant(_) => file.read_bytes(&info.name).map(drop),
                _ => file.tensor(&info.name, &Device::Cpu).map(drop),
            };
        }
        let _ = file.metadata().get_str_array("tokenizer.ggml.tokens");
    });
    let (opened, refused) = (opened.into_inner(), refused.into_inner());
    eprintln!("fuzz GGUF: {opened} mutated files opened (edits that kept them valid), {refused} refused");
    assert!(refused > opened / 4, "the GGUF edits should break most files: {refused} refused, {opened} opened");
}

/// A copy of a model folder whose `config.json` the cases mutate; the model is then loaded
/// whole, so a huge size reaches the weight checks.
fn config_fuzz(name: &str, src: &str, cases: u32, long: bool) {
    let dir = scratch(name);
    for entry in std::fs::read_dir(fixture(src)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    let seeds = [seed("config.json", &fixture(&format!("{src}/config.json")), Kind::Json)];
    fuzz(name, (cases, long), &dir, &seeds, &|d| {
        let _ = Gpt2Config::from_dir(d);
        let _ = BertConfig::from_dir(d);
        let _ = LlamaConfig::from_dir(d);
        let _ = load_model(d, &Device::Cpu);
    });
}

#[test]
fn config_json_gpt2() {
    config_fuzz("config-gpt2", "tiny_gpt2", 250, false);
}

#[test]
fn config_json_bert() {
    config_fuzz("config-bert", "tiny_bert", 250, false);
}

#[test]
fn config_json_llama() {
    config_fuzz("config-llama", "llama/qwen2_bias_gqa3", 250, false);
}

#[test]
fn tokenizer_files() {
    tokenizer_files_with(false);
}

fn tokenizer_files_with(long: bool) {
    let dir = scratch("tokenizer");
    let seeds = [
        seed("tokenizer.json", &fixture("chat/qwen2/tokenizer.json"), Kind::Json),
        seed("tokenizer_config.json", &fixture("chat/qwen2/tokenizer_config.json"), Kind::Json),
    ];
    fuzz("tokenizer.json / tokenizer_config.json", (500, long), &dir, &seeds, &|d| {
        if let Ok(tok) = Tokenizer::from_dir(d) {
            let _ = tok.encode("Hello, wörld! \u{1F600}");
        }
        let _ = TokenizerConfig::from_dir(d);
    });
}

#[test]
fn chat_templates() {
    chat_templates_with(false);
}

fn chat_templates_with(long: bool) {
    let dir = scratch("chat");
    let seeds = [
        seed("chat_template.jinja", &fixture("chat/qwen2/chat_template.jinja"), Kind::Bytes),
        seed("tokenizer_config.json", &fixture("chat/qwen2/tokenizer_config.json"), Kind::Json),
    ];
    let messages =
        [Message::new("system", "Be brief."), Message::new("user", "Hi"), Message::new("assistant", "Hello")];
    fuzz("chat templates", (400, long), &dir, &seeds, &|d| {
        if let Ok(Some(template)) = ChatTemplate::from_dir(d) {
            let _ = template.render(&messages, true, None);
        }
    });
}

#[test]
fn peft_adapter_folders() {
    peft_adapter_folders_with(false);
}

fn peft_adapter_folders_with(long: bool) {
    let dir = scratch("peft");
    let seeds = [
        seed("adapter_config.json", &fixture("lora_gpt2/adapter_config.json"), Kind::Json),
        seed("adapter_model.safetensors", &fixture("lora_gpt2/adapter_model.safetensors"), Kind::Safetensors),
    ];
    let model = std::sync::Mutex::new(Gpt2::from_dir(fixture("tiny_gpt2"), &Device::Cpu).unwrap());
    fuzz("PEFT adapter folder", (400, long), &dir, &seeds, &|d| {
        let mut model = model.lock().unwrap_or_else(|e| e.into_inner());
        if let Ok(lora) = Lora::load_peft(&mut *model, d, &Device::Cpu) {
            lora.remove(&mut *model);
        }
    });
}

#[test]
fn sft_datasets() {
    sft_datasets_with(false);
}

fn sft_datasets_with(long: bool) {
    let dir = scratch("sft");
    let template = PromptTemplate::default();
    let options = SftOptions::default();
    for (file, format) in [
        ("alpaca.json", DataFormat::Alpaca),
        ("alpaca.jsonl", DataFormat::Auto),
        ("sharegpt.json", DataFormat::ShareGpt),
        ("sharegpt.json", DataFormat::Auto),
    ] {
        let seeds = [seed("data", &fixture(&format!("sft/{file}")), Kind::Json)];
        fuzz(&format!("SFT dataset {file} ({format:?})"), (200, long), &dir, &seeds, &|d| {
            let _ = SftDataset::load(d.join("data"), format, &ByteCodec, &template, &options);
        });
    }
}

#[test]
fn rag_indexes() {
    rag_indexes_with(false);
}

fn rag_indexes_with(long: bool) {
    let dir = scratch("rag");
    let model = EmbeddingModel::load(fixture("tiny_bert"), &Device::Cpu).unwrap();
    let built = dir.join("built");
    build_index(fixture("rag_docs"), &built, &model, &BuildOptions::default(), &mut |_, _| {}).unwrap();
    let mut seeds = Vec::new();
    for entry in std::fs::read_dir(&built).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let kind = if name.ends_with(".safetensors") { Kind::Safetensors } else { Kind::Json };
        seeds.push(Seed {
            file: Box::leak(name.clone().into_boxed_str()),
            bytes: std::fs::read(built.join(&name)).unwrap(),
            kind,
        });
    }
    fuzz("RAG index", (400, long), &built, &seeds, &|d| {
        let _ = Index::open(d, &Device::Cpu);
    });
}

#[test]
fn training_checkpoints() {
    training_checkpoints_with(false);
}

fn training_checkpoints_with(long: bool) {
    let dir = scratch("checkpoint");
    let config = Gpt2Config::new(ByteCodec::EOS_ID as usize + 1, 16, 16, 1, 2).unwrap();
    let model = Gpt2::init(config, deltaw_tensor::Seed(0), &Device::Cpu);
    let eos = ByteCodec::EOS_ID;
    let records = deltaw_train::synthetic::Task::Copy.records_with(1, 0, 4, 3..=3);
    let data =
        deltaw_train::synthetic::dataset(&records, &ByteCodec, &deltaw_train::synthetic::compact_template()).unwrap();
    let cfg =
        TrainerConfig { max_steps: Some(1), batch_size: 2, save_every: Some(1), progress: false, ..Default::default() };
    Trainer::new(&model, model.parameters(), cfg.clone(), &dir, (eos, eos)).unwrap().fit(&data, None).unwrap();
    let step = dir.join("checkpoints/step-000001");
    let seeds = [
        seed("checkpoints/step-000001/trainable.safetensors", &step.join("trainable.safetensors"), Kind::Safetensors),
        seed("checkpoints/step-000001/state.json", &step.join("state.json"), Kind::Json),
        seed("checkpoints/latest", &dir.join("checkpoints/latest"), Kind::Bytes),
    ];
    fuzz("training checkpoint", (300, long), &dir, &seeds, &|d| {
        if let Ok(mut trainer) = Trainer::new(&model, model.parameters(), cfg.clone(), d, (eos, eos)) {
            let _ = trainer.resume();
        }
    });
}

#[test]
#[ignore = "the long run: cargo test --test fuzz_loaders -- --ignored --nocapture"]
fn every_loader_twenty_times_longer() {
    safetensors_files_with(true);
    gguf_files_with(true);
    config_fuzz("config-gpt2", "tiny_gpt2", 250, true);
    config_fuzz("config-bert", "tiny_bert", 250, true);
    config_fuzz("config-llama", "llama/qwen2_bias_gqa3", 250, true);
    tokenizer_files_with(true);
    chat_templates_with(true);
    peft_adapter_folders_with(true);
    sft_datasets_with(true);
    rag_indexes_with(true);
    training_checkpoints_with(true);
}
