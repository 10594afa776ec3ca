//! Checkpoints of a distributed run. Rank 0 writes the parameters and the state as one process
//! does (every rank holds the same parameters). With ZeRO-1 each rank first writes its own
//! optimizer shard into a staging folder; once every rank has (a barrier), rank 0 moves the
//! shards into the new checkpoint folder before that folder is renamed into place and
//! `latest` points at it, so a checkpoint is complete with all its shards or not there at all.
//! Ranks on several hosts must share the output folder's filesystem.

use super::checkpoint::{self, dir_name, moments, shard_file_name, ADAM_STEPS};
use super::config::TrainerConfig;
use crate::distributed::Distributed;
use crate::error::{Error, Result};
use deltaw_autograd::{AdamW, Var};
use deltaw_tensor::{safetensors, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Every rank's part of the checkpoint of `step` under `root`; returns its folder.
pub(crate) fn save(
    root: &Path,
    step: usize,
    (params, opt): (&[Var], &AdamW),
    config: &TrainerConfig,
    d: &Distributed,
) -> Result<PathBuf> {
    let name = dir_name(step);
    let staging = root.join(format!(".shards-{name}"));
    let (rank, ranks) = (d.rank(), d.size());
    if d.config.zero1 {
        std::fs::create_dir_all(&staging).map_err(|source| Error::Io { path: staging.clone(), source })?;
        write_shard(&staging.join(shard_file_name(rank, ranks)), &params[d.shard.clone()], opt)?;
    }
    d.comm.barrier(&format!("the optimizer shards of checkpoint {name}"));
    if rank == 0 {
        let files: Vec<PathBuf> = if d.config.zero1 {
            (0..ranks).map(|r| staging.join(shard_file_name(r, ranks))).collect()
        } else {
            Vec::new()
        };
        if let Some((r, missing)) = files.iter().enumerate().find(|(_, f)| !f.exists()) {
            let message = format!(
                "rank {r}'s optimizer shard is not there: every rank must write to the same --out \
                 (on several hosts, a shared filesystem)"
            );
            return Err(Error::Checkpoint { path: missing.clone(), message });
        }
        checkpoint::save(root, step, (params, opt), config, (&files, ranks))?;
        std::fs::remove_dir_all(&staging).ok();
    }
    d.comm.barrier(&format!("checkpoint {name}"));
    Ok(root.join(name))
}

/// One rank's optimizer shard: the moments of `params` (`adam_m.<name>`, `adam_v.<name>`) and
/// their step counts in the metadata.
fn write_shard(path: &Path, params: &[Var], opt: &AdamW) -> Result<()> {
    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    let steps = moments(params, opt, &mut tensors);
    let meta = HashMap::from([(ADAM_STEPS.to_string(), serde_json::to_string(&steps).expect("counts serialise"))]);
    Ok(safetensors::save(tensors.iter().map(|(k, t)| (k.as_str(), t)), Some(meta), path)?)
}
