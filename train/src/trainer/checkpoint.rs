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
//!
//! A distributed run with ZeRO-1 (see [`crate::distributed`]) keeps AdamW's moments in one
//! file per rank instead, `optim-rank000-of-002.safetensors`..., beside a
//! `trainable.safetensors` that holds the parameters only ([`super::shards`] writes them).
//! Resuming reads each parameter's moments from whichever file holds them, so a checkpoint
//! resumes under any number of ranks, with or without ZeRO-1.

use super::config::TrainerConfig;
use crate::error::{Error, Result};
use deltaw_autograd::{AdamW, Var};
use deltaw_tensor::safetensors::{self, TensorMap};
use deltaw_tensor::{atomic, Device, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};

const KEEP: usize = 2;

#[derive(Serialize, Deserialize)]
struct State {
    step: usize,
    /// AdamW's step count of each parameter whose moments are in `trainable.safetensors`.
    adam_steps: BTreeMap<String, u64>,
    config: TrainerConfig,
    /// The ranks that wrote it (1: one process); informative, resuming works under any.
    #[serde(default = "one")]
    ranks: usize,
}

fn one() -> usize {
    1
}

/// The metadata key of a shard file holding its parameters' AdamW step counts (JSON).
pub(crate) const ADAM_STEPS: &str = "adam_steps";

/// The optimizer shard file of `rank` of `ranks`.
pub(crate) fn shard_file_name(rank: usize, ranks: usize) -> String {
    format!("optim-rank{rank:03}-of-{ranks:03}.safetensors")
}

/// The folder name of step `step`'s checkpoint.
pub(crate) fn dir_name(step: usize) -> String {
    format!("step-{step:06}")
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.into(), source }
}

pub(crate) fn name_of(p: &Var) -> &str {
    p.name().expect("trainable parameters are named")
}

/// Writes the checkpoint of `step` under `root` (`out/checkpoints`) and returns its folder.
/// `shard_files` (ZeRO-1: every rank's optimizer shard, written beforehand) are moved into
/// it, and the moments are then theirs alone; otherwise `opt`'s moments go in
/// `trainable.safetensors`. `ranks` is recorded.
pub(crate) fn save(
    root: &Path,
    step: usize,
    (params, opt): (&[Var], &AdamW),
    config: &TrainerConfig,
    (shard_files, ranks): (&[PathBuf], usize),
) -> Result<PathBuf> {
    std::fs::create_dir_all(root).map_err(io(root))?;
    let name = dir_name(step);
    let dir = root.join(&name);
    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    let mut adam_steps = BTreeMap::new();
    for p in params {
        tensors.push((format!("param.{}", name_of(p)), p.value()));
    }
    if shard_files.is_empty() {
        adam_steps = moments(params, opt, &mut tensors);
    }
    let state = State { step, adam_steps, config: config.clone(), ranks };
    let json = serde_json::to_string_pretty(&state).expect("state serialises");
    atomic::replace_dir(
        &dir,
        |_| false,
        |tmp| -> Result<()> {
            safetensors::save(tensors.iter().map(|(k, t)| (k.as_str(), t)), None, tmp.join("trainable.safetensors"))?;
            for file in shard_files {
                let to = tmp.join(file.file_name().expect("a shard file has a name"));
                std::fs::rename(file, &to).map_err(io(file))?;
            }
            Ok(atomic::write_file(&tmp.join("state.json"), json.as_bytes())?)
        },
    )?;
    atomic::write_file(&root.join("latest"), name.as_bytes())?;
    prune(root, &name);
    Ok(dir)
}

/// Appends `opt`'s moments of `params` (`adam_m.<name>`, `adam_v.<name>`) to `tensors` and
/// returns their step counts.
pub(crate) fn moments(params: &[Var], opt: &AdamW, tensors: &mut Vec<(String, Tensor)>) -> BTreeMap<String, u64> {
    let mut adam_steps = BTreeMap::new();
    for p in params {
        if let Some((s, m, v)) = opt.state_of(p) {
            adam_steps.insert(name_of(p).to_string(), s);
            tensors.push((format!("adam_m.{}", name_of(p)), m));
            tensors.push((format!("adam_v.{}", name_of(p)), v));
        }
    }
    adam_steps
}

/// Removes all but the newest `KEEP` checkpoints (never `latest`'s), and the temp folders an
/// interrupted save left (`.step-….tmp-<pid>`, `.step-….old-<pid>`, a distributed save's
/// `.shards-step-…`; the current save's shards are already moved in).
fn prune(root: &Path, latest: &str) {
    let Ok(entries) = std::fs::read_dir(root) else { return };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("step-") || n.starts_with(".step-") || n.starts_with(".shards-"))
        .collect();
    names.sort();
    let complete: Vec<&String> = names.iter().filter(|n| n.starts_with("step-")).collect();
    let old = complete.len().saturating_sub(KEEP);
    let leftovers = names.iter().filter(|n| n.starts_with(".step-") || n.starts_with(".shards-"));
    for n in complete.into_iter().take(old).chain(leftovers) {
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
/// Every parameter's value is restored, and the moments of `params[wanted]` (the others
/// belong to other ranks' optimizers under ZeRO-1), from `trainable.safetensors` or a shard.
///
/// # Errors
/// Unreadable files, a config that would make the resumed run differ from the original
/// (batch size, learning rate, seed...), or parameters that differ in name or shape (e.g. a
/// different LoRA rank or target).
pub(crate) fn load(
    dir: &Path,
    (params, opt): (&[Var], &mut AdamW),
    config: &TrainerConfig,
    wanted: Range<usize>,
) -> Result<usize> {
    let mut state = read_state(dir, config)?;
    let path = dir.join("trainable.safetensors");
    let mut tensors = safetensors::load(&path, &Device::Cpu)?;
    let sources = gather_shards(dir, params, wanted.clone(), &mut tensors, &mut state.adam_steps)?;
    let bad =
        |key: &str, message: String| Error::Checkpoint { path: sources.get(key).unwrap_or(&path).clone(), message };
    let dev = params.first().map(|p| p.value().device()).unwrap_or(Device::Cpu);
    let mut take = |key: String, like: &Var| -> Result<Tensor> {
        let t = tensors.remove(&key).ok_or_else(|| bad(&key, format!("'{key}' is missing")))?;
        if t.shape() != &like.shape() {
            return Err(bad(&key, format!("'{key}' has shape {:?}, the model's is {:?}", t.shape(), like.shape())));
        }
        if t.dtype() != like.value().dtype() {
            return Err(bad(&key, format!("'{key}' is {:?}, the model's is {:?}", t.dtype(), like.value().dtype())));
        }
        Ok(t.to_device(&dev)?)
    };
    let mut restored = Vec::with_capacity(params.len());
    for (i, p) in params.iter().enumerate() {
        let value = take(format!("param.{}", name_of(p)), p)?;
        let (m, v) = (format!("adam_m.{}", name_of(p)), format!("adam_v.{}", name_of(p)));
        let moments = match state.adam_steps.get(name_of(p)) {
            Some(&s) if wanted.contains(&i) => Some((s, take(m, p)?, take(v, p)?)),
            _ => None,
        };
        restored.push((p, value, moments));
    }
    // Another rank's moments (a plain checkpoint resumed under ZeRO-1) are not this rank's.
    tensors.retain(|k, _| {
        let name = k.strip_prefix("adam_m.").or_else(|| k.strip_prefix("adam_v."));
        !name.is_some_and(|name| state.adam_steps.contains_key(name))
    });
    if let Some(extra) = tensors.keys().next() {
        return Err(bad(extra, format!("'{extra}' is not a trainable parameter of this model")));
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

/// `state.json` of `dir`, checked against the settings of the run that resumes it.
fn read_state(dir: &Path, config: &TrainerConfig) -> Result<State> {
    let state_path = dir.join("state.json");
    let text = std::fs::read_to_string(&state_path).map_err(io(&state_path))?;
    let bad = |message: String| Error::Checkpoint { path: state_path.clone(), message };
    let state: State = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let changed = config_changes(&state.config, config);
    if !changed.is_empty() {
        return Err(bad(format!("resuming needs the same settings; changed: {}", changed.join(", "))));
    }
    Ok(state)
}

/// Adds to `tensors` and `adam_steps` the moments of `params[wanted]` found in `dir`'s
/// optimizer shard files (ZeRO-1); returns the file each key came from, for messages.
fn gather_shards(
    dir: &Path,
    params: &[Var],
    wanted: Range<usize>,
    tensors: &mut TensorMap,
    adam_steps: &mut BTreeMap<String, u64>,
) -> Result<HashMap<String, PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("optim-rank")))
        .collect();
    files.sort();
    let wanted: HashSet<&str> = params[wanted].iter().map(name_of).collect();
    let mut sources = HashMap::new();
    for file in files {
        let bad = |message: String| Error::Checkpoint { path: file.clone(), message };
        let (mut shard, meta) = safetensors::load_with_metadata(&file, &Device::Cpu)?;
        let steps = meta.get(ADAM_STEPS).ok_or_else(|| bad(format!("no '{ADAM_STEPS}' in the metadata")))?;
        let steps: BTreeMap<String, u64> = serde_json::from_str(steps).map_err(|e| bad(e.to_string()))?;
        for (name, s) in steps.into_iter().filter(|(name, _)| wanted.contains(name.as_str())) {
            for key in [format!("adam_m.{name}"), format!("adam_v.{name}")] {
                let t = shard.remove(&key).ok_or_else(|| bad(format!("'{key}' is missing")))?;
                sources.insert(key.clone(), file.clone());
                tensors.insert(key, t);
            }
            adam_steps.insert(name, s);
        }
    }
    Ok(sources)
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
