//! The subcommands, one file each, and what they share: the `--device` option and checks on
//! a model folder. A new command is a new file here plus one variant in `main.rs`.

pub mod chat;
pub mod data;
pub mod demo;
pub mod embed;
pub mod eval;
pub mod export;
pub mod generate;
pub mod info;
pub mod info_gguf;
pub mod inspect_data;
pub mod merge;
pub mod open_model;
pub mod outdir;
pub mod plot;
pub mod rag;
pub mod ranks;
pub mod run_args;
pub mod sft;
pub mod train;

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use deltaw_tensor::Device;
use std::path::{Path, PathBuf};

/// Options every subcommand takes.
#[derive(Args)]
pub struct GlobalArgs {
    /// Where the model runs (embed, eval, generate, train, sft, merge, demo, rag; the others read files only).
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu, global = true)]
    pub device: DeviceArg,
    /// Time every tensor op (forward, backward and optimizer update apart) and print a table on
    /// stderr at the end, with a Chrome trace (Perfetto) in FILE (`--profile=FILE`; bare
    /// `--profile` and `DELTAW_PROFILE=1` write deltaw-profile.json).
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "deltaw-profile.json"
    )]
    pub profile: Option<PathBuf>,
}

/// The `--device` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DeviceArg {
    /// All CPU cores (rayon), SIMD GEMM.
    Cpu,
    /// The wgpu backend (Vulkan, Metal, DX12): `WGPU_BACKEND` limits the backends tried and
    /// `DELTAW_GPU_ADAPTER` picks an adapter by name.
    Gpu,
}

impl GlobalArgs {
    /// The tensor device for `--device`; opening the GPU takes a moment, so only the commands
    /// that run a model call this.
    ///
    /// # Errors
    /// For `gpu`: no adapter (the message names the backends tried and the adapters seen),
    /// a device that cannot be opened, or a build without the `gpu` feature.
    pub fn device(&self) -> Result<Device> {
        match self.device {
            DeviceArg::Cpu => Ok(Device::Cpu),
            DeviceArg::Gpu => gpu_device(),
        }
    }
}

#[cfg(feature = "gpu")]
fn gpu_device() -> Result<Device> {
    Device::gpu().map_err(|e| anyhow::anyhow!("--device gpu: {e}; use --device cpu to run on the CPU"))
}

#[cfg(not(feature = "gpu"))]
fn gpu_device() -> Result<Device> {
    bail!("--device gpu: this deltaw was built without the `gpu` feature; use --device cpu")
}

/// Fails with a plain message when `dir` is not an existing folder, before any loader's
/// less direct "config.json: No such file" message.
pub fn check_model_dir(dir: &Path) -> Result<()> {
    if !dir.exists() {
        bail!("model folder {} does not exist", dir.display());
    }
    if !dir.is_dir() {
        bail!("{} is not a folder (--model takes the folder holding config.json)", dir.display());
    }
    Ok(())
}

/// True when writing to stdout failed because the reader went away (`deltaw ... | head`).
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}
