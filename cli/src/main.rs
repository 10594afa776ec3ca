//! `deltaw`, the command line: parses the arguments and hands each subcommand to its file in
//! `commands/`. Every failure is one line on stderr, `error: <message>`, and exit code 1.

mod commands;

use clap::{Parser, Subcommand};
use commands::{demo, embed, generate, info, inspect_data, merge, plot, sft, GlobalArgs};
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
    /// Continue a prompt with a GPT-2 folder (greedy or sampled, KV cache).
    Generate(generate::GenerateArgs),
    /// What a model folder holds: type, config, parameter count, stored dtypes, file size.
    Info(info::InfoArgs),
    /// Supervised fine-tuning of a GPT-2 folder on Alpaca / ShareGPT data, LoRA or --full.
    Sft(Box<sft::SftArgs>),
    /// Fold a LoRA adapter (PEFT format) into its base model and write a model folder.
    Merge(merge::MergeArgs),
    /// Show how a dataset is tokenized and which tokens are trained on.
    InspectData(inspect_data::InspectDataArgs),
    /// Draw a run's loss curves (metrics.jsonl) as a PNG.
    Plot(plot::PlotArgs),
    /// The whole job offline: pretrain a tiny GPT-2, LoRA-fine-tune it on a new task, merge, report.
    Demo(demo::DemoArgs),
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
    let result = cli.global.device().and_then(|device| match &cli.command {
        Command::Embed(args) => embed::run(args, &device, &mut out),
        Command::Generate(args) => generate::run(args, &device, &mut out),
        Command::Info(args) => info::run(args, &mut out),
        Command::Sft(args) => sft::run(args, &device, &mut out),
        Command::Merge(args) => merge::run(args, &device, &mut out),
        Command::InspectData(args) => inspect_data::run(args, &mut out),
        Command::Plot(args) => plot::run(args, &mut out),
        Command::Demo(args) => demo::run(args, &device, &mut out),
    });
    match result.and_then(|()| out.flush().map_err(anyhow::Error::from)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if commands::is_broken_pipe(&e) => ExitCode::SUCCESS, // `deltaw ... | head`
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
