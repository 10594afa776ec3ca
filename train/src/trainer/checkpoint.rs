//! Checkpoints that resume a run exactly.
//!
//! A checkpoint is a folder `checkpoints/step-000120/` holding
//! - `trainable.safetensors`: every trainable parameter (`param.<name>`) and AdamW's two
//!   moments (`adam_m.<name>`, `adam_v.<name>`), in f32;
//! - `state.json`: the step, AdamW's per-parameter step counts, and the config.
//!
//! Nothing else is needed: the data order, the dropout masks and the learning rate are pure
//! functions of `(seed, step)`, so restoring the parameters and the optimizer restores the
//! run, and its losses continue bit for bit.
//!
//! Writing is crash-safe: the folder is written into a temp folder beside it
//! (`deltaw_tensor::atomic::replace_dir`), each file through a temp file + fsync + rename,
//! the folder renamed into place, and only then `checkpoints/latest`
//! (atomically rewritten) points at it. A crash at any moment leaves `latest` naming a
//! complete checkpoint. The two newest checkpoints are kept.

use super::config::TrainerConfig;
use crate::error::{Error, Result};
use deltaw_autograd::{AdamW, Var};
use deltaw_tensor::{atomic, safetensors, Device, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const KEEP: usize = 2;

#[derive(Serialize, Deserialize)]
struct State {
    step: usize,
    adam_steps: BTreeMap<String, u64>,
    config: TrainerConfig,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.into(), source }
}

fn name_of(p: &Var) -> &str {
    p.name().expect("trainable parameters are named")
}

/// Writes the checkpoint of `step` under `root` (`out/checkpoints`) and returns its folder.
pub(crate) fn save(root: &Path, step: usize, params: &[Var], opt: &AdamW, config: &TrainerConfig) -> Result<PathBuf> {
    std::fs::create_dir_all(root).map_err(io(root))?;
    let name = format!("step-{step:06}");
    let dir = root.join(&name);
    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    let mut adam_steps = BTreeMap::new();
    for p in params {
        tensors.push((format!("param.{}", name_of(p)), p.value()));
        if let Some((s, m, v)) = opt.state_of(p) {
            adam_steps.insert(name_of(p).to_string(), s);
            tensors.push((format!("adam_m.{}", name_of(p)), m));
            tensors.push((format!("adam_v.{}", name_of(p)), v));
        }
    }
    let state = State { step, adam_steps, config: config.clone() };
    let json = serde_json::to_string_pretty(&state).expect("state serialises");
    atomic::replace_dir(
        &dir,
        |_| false,
        |tmp| -> Result<()> {
            safetensors::save(tensors.iter().map(|(k, t)| (k.as_str(), t)), None, tmp.join("trainable.safetensors"))?;
            Ok(atomic::write_file(&tmp.join("state.json"), json.as_bytes())?)
        },
    )?;
    atomic::write_file(&root.join("latest"), name.as_bytes())?;
    prune(root, &name);
    Ok(dir)
}

/// Removes all but the newest `KEEP` checkpoints (never `latest`'s), and the temp folders an
/// interrupted save left (`.step-….tmp-<pid>`, `.step-….old-<pid>`).
fn prune(root: &Path, latest: &str) {
    let Ok(entries) = std::fs::read_dir(root) else { return };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("step-") || n.starts_with(".step-"))
        .collect();
    names.sort();
    let complete: Vec<&String> = names.iter().filter(|n| n.starts_with("step-")).collect();
    let old = complete.len().saturating_sub(KEEP);
    for n in complete.into_iter().take(old).chain(names.iter().filter(|n| n.starts_with(".step-"))) {
        if n != latest {
            std::fs::remove_dir_all(root.join(n)).ok();
        }
    }
}

/// The folder `root/latest` points at, if any.
pub(crate) fn latest(root: &Path) -> Result<Option<PathBuf>> {
    let pointer = root.join("latest");
    if !pointer.exists() {
        return Ok(None);
    }
    let name = std::fs::read_to_string(&pointer).map_err(io(&pointer))?;
    let dir = root.join(name.trim());
    if !dir.join("state.json").exists() {
        let message = format!("points at {}, which is not a complete checkpoint", dir.display());
        return Err(Error::Checkpoint { path: pointer, message });
    }
    Ok(Some(dir))
}

/// Restores parameters and optimizer state from `dir`; returns the step to continue from.
///
/// # Errors
/// Unreadable files, a config that would make the resumed run differ from the original
/// (batch size, learning rate, seed...), or parameters that differ in name or shape (e.g. a
/// different LoRA rank or target).
pub(crate) fn load(dir: &Path, params: &[Var], opt: &mut AdamW, config: &TrainerConfig) -> Result<usize> {
    let state_path = dir.join("state.json");
    let text = std::fs::read_to_string(&state_path).map_err(io(&state_path))?;
    let bad = |path: &Path, message: String| Error::Checkpoint { path: path.into(), message };
    let state: State = serde_json::from_str(&text).map_err(|e| bad(&state_path, e.to_string()))?;
    let changed = config_changes(&state.config, config);
    if !changed.is_empty() {
        let message = format!("resuming needs the same settings; changed: {}", changed.join(", "));
        return Err(bad(&state_path, message));
    }
    let path = dir.join("trainable.safetensors");
    let mut tensors = safetensors::load(&path, &Device::Cpu)?;
    let dev = params.first().map(|p| p.value().device()).unwrap_or(Device::Cpu);
    let mut take = |key: String, like: &Var| -> Result<Tensor> {
        let t = tensors.remove(&key).ok_or_else(|| bad(&path, format!("'{key}' is missing")))?;
        if t.shape() != &like.shape() {
            let message = format!("'{key}' has shape {:?}, the model's is {:?}", t.shape(), like.shape());
            return Err(bad(&path, message));
        }
        if t.dtype() != like.value().dtype() {
            let message = format!("'{key}' is {:?}, the model's is {:?}", t.dtype(), like.value().dtype());
            return Err(bad(&path, message));
        }
        Ok(t.to_device(&dev)?)
    };
    let mut restored = Vec::with_capacity(params.len());
    for p in params {
        let value = take(format!("param.{}", name_of(p)), p)?;
        let moments = match state.adam_steps.get(name_of(p)) {
            Some(&s) => {
                Some((s, take(format!("adam_m.{}", name_of(p)), p)?, take(format!("adam_v.{}", name_of(p)), p)?))
            }
            None => None,
        };
        restored.push((p, value, moments));
    }
    if let Some(extra) = tensors.keys().next() {
        return Err(bad(&path, format!("'{extra}' is not a trainable parameter of this model")));
    }
    // Every tensor was checked: only now does anything change, so a failed resume leaves the
    // model and the optimizer as they were.
    for (p, value, moments) in restored {
        p.set_value(value);
        if let Some((s, m, v)) = moments {
            opt.set_state(p, s, m, v);
        }
    }
    Ok(state.step)
}

/// The settings that shape the run's numbers and differ between `saved` and `now`.
fn config_changes(saved: &TrainerConfig, now: &TrainerConfig) -> Vec<String> {
    let mut changed = Vec::new();
    let mut check = |name: &str, same: bool| {
        if !same {
            changed.push(name.to_string());
        }
    };
    check("epochs", saved.epochs == now.epochs || saved.max_steps.is_some());
    check("max_steps", saved.max_steps == now.max_steps);
    check("batch_size", saved.batch_size == now.batch_size);
    check("grad_accum", saved.grad_accum == now.grad_accum);
    check("lr", saved.lr == now.lr);
    check("weight_decay", saved.weight_decay == now.weight_decay);
    check("warmup_ratio", saved.warmup_ratio == now.warmup_ratio);
    check("min_lr_ratio", saved.min_lr_ratio == now.min_lr_ratio);
    check("max_grad_norm", saved.max_grad_norm == now.max_grad_norm);
    check("seed", saved.seed == now.seed);
    changed
}
