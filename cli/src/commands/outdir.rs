//! Output folders that never overwrite what the user already has: a folder with contents is
//! refused unless `--overwrite` (or `--resume`, where the command continues its own run).

use anyhow::{bail, Context, Result};
use std::path::Path;

/// The files and folders deltaw's training and merge commands write; `--overwrite` removes
/// only these, never anything else the folder holds.
const OURS: &[&str] = &[
    "checkpoints",
    "metrics.jsonl",
    "adapter",
    "model",
    "run.json",
    "loss.png",
    "base",
    "pretrain",
    "lora",
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
    "generation_config.json",
];

/// Refuses a `dir` with contents unless `overwrite` or `resume`; returns whether it has any.
pub fn check(dir: &Path, overwrite: bool, resume: bool) -> Result<bool> {
    let has_contents = dir.read_dir().map(|mut d| d.next().is_some()).unwrap_or(false);
    if has_contents && !overwrite && !resume {
        bail!(
            "output folder {} already has contents; pass --resume to continue its run or --overwrite to replace \
             deltaw's outputs in it",
            dir.display()
        );
    }
    Ok(has_contents)
}

/// Writes the model or adapter folder `dir` atomically (`deltaw_tensor::atomic::replace_dir`):
/// `fill` writes into a temp folder beside it, which then replaces `dir`, so an interrupted
/// command leaves the old folder or the complete new one. Files of the old folder that
/// deltaw did not write (see [`OURS`]; any `.safetensors`) are kept.
pub fn write_folder(dir: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let foreign =
        |name: &str| !OURS.contains(&name) && !name.ends_with(".safetensors") && !name.ends_with(".index.json");
    deltaw_tensor::atomic::replace_dir(dir, foreign, fill)
}

/// Makes `dir` ready for a fresh run: creates it, or, when it has contents, refuses unless
/// `overwrite` (which deletes deltaw's own outputs in it) or `resume` (which keeps them).
pub fn prepare(dir: &Path, overwrite: bool, resume: bool) -> Result<()> {
    let has_contents = check(dir, overwrite, resume)?;
    if has_contents && overwrite {
        for name in OURS {
            let path = dir.join(name);
            if path.is_dir() {
                std::fs::remove_dir_all(&path).with_context(|| format!("removing {}", path.display()))?;
            } else if path.exists() {
                std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
            }
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

/// Copies the tokenizer files of `model` next to a saved model, so the folder is complete
/// for `deltaw generate` and for transformers.
pub fn copy_tokenizer_files(model: &Path, out: &Path) -> Result<()> {
    for name in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt"] {
        let src = model.join(name);
        if src.exists() {
            let bytes = std::fs::read(&src).with_context(|| format!("reading {}", src.display()))?;
            deltaw_tensor::safetensors::write_atomic(&out.join(name), &bytes)?;
        }
    }
    Ok(())
}
