//! `deltaw`, the command line: parses the arguments and hands each subcommand to its file in
//! `commands/`. Every failure is one line on stderr, `error: <message>`, and exit code 1.

#![forbid(unsafe_code)]

mod commands;

use clap::{Parser, Subcommand};
use commands::{
    chat, data, demo, embed, eval, export, generate, info, inspect_data, merge, plot, rag, sft, train, GlobalArgs,
};
use std::io::Write;
use std::process::ExitCode;

/// deltaw: LLM inference and fine-tuning on Hugging Face model folders (GPT-2, BERT / sentence-transformers).
#[derive(Parser)]
#[command(name = "deltaw", version, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Sentence embeddings from a BERT / sentence-transformers folder (e.g. all-MiniLM-L6-v2).
    Embed(embed::EmbedArgs),
    /// Continue a prompt with a causal LM folder or .gguf file (greedy or sampled, KV cache); --chat for one chat turn.
    Generate(generate::GenerateArgs),
    /// Chat with a model in the terminal through its chat template (/reset, /system TEXT, Ctrl-D).
    Chat(chat::ChatArgs),
    /// What a model folder or .gguf file holds: type, config, parameter count, stored dtypes, file size.
    Info(info::InfoArgs),
    /// Supervised fine-tuning of a GPT-2 folder on Alpaca / ShareGPT data, LoRA or --full.
    Sft(Box<sft::SftArgs>),
    /// Pretrain a GPT-2-style model from scratch on text files (bytes or a tokenizer.json).
    Train(Box<train::TrainArgs>),
    /// Score a model on held-out pairs (perplexity, exact match, BLEU, ROUGE); --adapter / --compare side by side.
    Eval(Box<eval::EvalArgs>),
    /// Fold a LoRA adapter (PEFT format) into its base model and write a model folder.
    Merge(merge::MergeArgs),
    /// Write a model folder as one GGUF file (f16, q8_0, q4_0, q4_k_m) with its tokenizer and chat template.
    Export(export::ExportArgs),
    /// Show how a dataset is tokenized and which tokens are trained on.
    InspectData(inspect_data::InspectDataArgs),
    /// Draw a run's loss curves (metrics.jsonl) as a PNG.
    Plot(plot::PlotArgs),
    /// The whole job offline: pretrain a tiny GPT-2, LoRA-fine-tune it on a new task, merge, report.
    Demo(demo::DemoArgs),
    /// Dataset tools: `data clean` normalises, filters, masks personal data, deduplicates and splits.
    Data(data::DataArgs),
    /// Retrieval over .md / .txt notes: `rag index` embeds them, `rag query` ranks chunks (and answers).
    Rag(rag::RagArgs),
}

fn main() -> ExitCode {
    // A panic is a bug in deltaw, not the user's: say so in one line, without a backtrace.
    std::panic::set_hook(Box::new(|panic| {
        let message = panic
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let at = panic.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        eprintln!("error: internal error{at}: {message} (please report it)");
    }));
    let cli = Cli::parse();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let trace = profile_trace(&cli.global);
    let code = exit_code(|| dispatch(&cli, &mut out).and_then(|()| out.flush().map_err(anyhow::Error::from)));
    if let (Some(trace), Some(report)) = (trace, deltaw_tensor::profile::report()) {
        eprint!("{report}");
        match deltaw_tensor::profile::write_chrome_trace(&trace) {
            Ok(()) => eprintln!("trace (open in https://ui.perfetto.dev): {}", trace.display()),
            Err(e) => eprintln!("error: cannot write the profile trace {}: {e}", trace.display()),
        }
    }
    ExitCode::from(code)
}

/// Starts the op profiler for `--profile [FILE]` or `DELTAW_PROFILE=1`; returns where its
/// trace goes.
fn profile_trace(global: &GlobalArgs) -> Option<std::path::PathBuf> {
    if let Some(path) = &global.profile {
        deltaw_tensor::profile::enable();
        return Some(path.clone());
    }
    deltaw_tensor::profile::enable_from_env().then(|| "deltaw-profile.json".into())
}

/// Runs `command` and gives the process's exit code: 0 on success (and on a closed pipe,
/// `deltaw ... | head`), 1 with one `error:` line on an error, and 1 on a panic too (the
/// hook above has printed its line), not Rust's default 101.
fn exit_code(command: impl FnOnce() -> anyhow::Result<()>) -> u8 {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(command)) {
        Ok(Ok(())) => 0,
        Ok(Err(e)) if commands::is_broken_pipe(&e) => 0,
        Ok(Err(e)) => {
            eprintln!("error: {e:#}");
            1
        }
        Err(_) => 1,
    }
}

/// The subcommand's `run`.
fn dispatch(cli: &Cli, out: &mut impl Write) -> anyhow::Result<()> {
    let device = || cli.global.device();
    match &cli.command {
        Command::Embed(args) => device().and_then(|d| embed::run(args, &d, out)),
        Command::Generate(args) => device().and_then(|d| generate::run(args, &d, out)),
        Command::Chat(args) => device().and_then(|d| chat::run(args, &d, out)),
        Command::Info(args) => info::run(args, out),
        Command::Sft(args) => device().and_then(|d| sft::run(args, &d, out)),
        Command::Train(args) => device().and_then(|d| train::run(args, &d, out)),
        Command::Eval(args) => device().and_then(|d| eval::run(args, &d, out)),
        Command::Merge(args) => device().and_then(|d| merge::run(args, &d, out)),
        Command::Export(args) => export::run(args, out),
        Command::InspectData(args) => inspect_data::run(args, out),
        Command::Plot(args) => plot::run(args, out),
        Command::Demo(args) => device().and_then(|d| demo::run(args, &d, out)),
        Command::Data(args) => data::run(args, out),
        Command::Rag(args) => device().and_then(|d| rag::run(args, &d, out)),
    }
}

#[cfg(test)]
mod tests {
    use super::exit_code;

    #[test]
    fn a_panic_exits_1_as_an_error_does() {
        assert_eq!(exit_code(|| Ok(())), 0);
        assert_eq!(exit_code(|| anyhow::bail!("bad input")), 1);
        assert_eq!(exit_code(|| panic!("a bug")), 1, "a panic is exit 1, as documented, not 101");
    }
}
