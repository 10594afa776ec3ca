//! `--distributed`: the ranks of an MPI launch as the training commands (`sft`, `train`) see
//! them. Rank 0 prepares the output folder, prints, plots and writes the model; every rank
//! trains its share of each step (see `deltaw_train::distributed`).

use super::outdir;
use super::run_args::RunArgs;
use anyhow::Result;
use clap::Args;
use deltaw_train::Trainer;
#[cfg(feature = "mpi")]
use std::sync::Arc;

/// The options of a data-parallel run.
#[derive(Args)]
pub struct DistArgs {
    /// Train data-parallel over the ranks of an MPI launch (`mpiexec -n 2 deltaw sft ...
    /// --distributed`; needs a build with `--features mpi`). --grad-accum must be a multiple of
    /// the number of ranks: each runs grad-accum / ranks micro-batches of every step.
    #[arg(long)]
    pub distributed: bool,
    /// Sum gradients over the ranks in messages of at most this many MiB.
    #[arg(long, default_value_t = 16.0, requires = "distributed")]
    pub bucket_mb: f64,
    /// Shard AdamW's moments over the ranks (ZeRO-1): each rank keeps about 1/ranks of them.
    #[arg(long, requires = "distributed")]
    pub zero1: bool,
    /// Stop a rank whose collective waits longer than this many seconds (another rank died or
    /// hangs). Make it longer than the slowest evaluation or checkpoint, which rank 0 does alone.
    #[arg(long, default_value_t = 600.0, requires = "distributed")]
    pub comm_timeout: f64,
}

/// The ranks of this run: one (no `--distributed`) or an MPI world.
pub struct Ranks {
    #[cfg(feature = "mpi")]
    world: Option<Arc<deltaw_train::distributed::MpiWorld>>,
}

impl Ranks {
    /// Runs a training command on this rank: [`Ranks::start`], then `command` with the output
    /// stream (rank 0's is `out`, the other ranks' a sink: only rank 0 prints), then
    /// [`Ranks::finish`].
    ///
    /// # Errors
    /// As [`Ranks::start`], or the command's own error.
    pub fn run(
        args: &DistArgs,
        out: &mut dyn std::io::Write,
        command: impl FnOnce(&mut dyn std::io::Write, &Ranks) -> Result<()>,
    ) -> Result<()> {
        let ranks = Ranks::start(args)?;
        let mut quiet = std::io::sink();
        let out: &mut dyn std::io::Write = if ranks.is_root() { out } else { &mut quiet };
        ranks.finish(command(out, &ranks))
    }

    /// Joins the MPI world for `--distributed`, sets rayon's threads to this host's cores
    /// shared among its ranks (unless `RAYON_NUM_THREADS` says otherwise), and says on stderr
    /// which rank this is.
    ///
    /// # Errors
    /// `--distributed` in a build without MPI, or MPI that cannot start.
    pub fn start(args: &DistArgs) -> Result<Ranks> {
        if !args.distributed {
            return Ok(Ranks {
                #[cfg(feature = "mpi")]
                world: None,
            });
        }
        Self::join(args)
    }

    #[cfg(feature = "mpi")]
    fn join(args: &DistArgs) -> Result<Ranks> {
        use deltaw_train::distributed::Collective;
        anyhow::ensure!(args.comm_timeout > 0.0, "--comm-timeout {} must be positive", args.comm_timeout);
        let world = deltaw_train::distributed::MpiWorld::init(std::time::Duration::from_secs_f64(args.comm_timeout))?;
        if std::env::var_os("RAYON_NUM_THREADS").is_none() {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            let threads = (cores / world.ranks_on_this_host()).max(1);
            rayon::ThreadPoolBuilder::new().num_threads(threads).build_global().ok();
        }
        let line = format!(
            "rank {} of {} on {}, pid {}, {} rayon threads\n",
            world.rank(),
            world.size(),
            world.host(),
            std::process::id(),
            rayon::current_num_threads()
        );
        say(&line);
        Ok(Ranks { world: Some(Arc::new(world)) })
    }

    #[cfg(not(feature = "mpi"))]
    fn join(_: &DistArgs) -> Result<Ranks> {
        anyhow::bail!(
            "--distributed needs a deltaw built with MPI: install an MPI library and libclang (e.g. `apt install \
             mpich libmpich-dev clang`), then `cargo build --release -p deltaw-cli --features mpi`"
        )
    }

    /// True for the rank that prints and writes: rank 0, or the only process.
    pub fn is_root(&self) -> bool {
        #[cfg(feature = "mpi")]
        if let Some(world) = &self.world {
            use deltaw_train::distributed::Collective;
            return world.rank() == 0;
        }
        true
    }

    /// Waits for every rank (e.g. until rank 0 has prepared the output folder).
    #[cfg_attr(not(feature = "mpi"), allow(unused_variables))]
    pub fn barrier(&self, what: &str) {
        #[cfg(feature = "mpi")]
        if let Some(world) = &self.world {
            use deltaw_train::distributed::Collective;
            world.barrier(what);
        }
    }

    /// Rank 0 (or the only process) prepares `--out` as `outdir::prepare` does; the others
    /// wait until it has.
    ///
    /// # Errors
    /// As `outdir::prepare`.
    pub fn prepare_out(&self, run: &RunArgs) -> Result<()> {
        if self.is_root() {
            outdir::prepare(&run.out, run.overwrite, run.resume)?;
        }
        self.barrier("rank 0 preparing --out");
        Ok(())
    }

    /// `trainer` training over these ranks (unchanged in one process).
    ///
    /// # Errors
    /// As `Trainer::distributed`: e.g. `grad_accum` not a multiple of the ranks.
    #[cfg_attr(not(feature = "mpi"), allow(unused_variables))]
    pub fn distribute<'m>(&self, trainer: Trainer<'m>, args: &DistArgs) -> Result<Trainer<'m>> {
        #[cfg(feature = "mpi")]
        if let Some(world) = &self.world {
            let bucket_elems = ((args.bucket_mb * (1 << 20) as f64) / 4.0).max(1.0) as usize;
            let config = deltaw_train::distributed::DistConfig { bucket_elems, zero1: args.zero1 };
            return Ok(trainer.distributed(Box::new(world.clone()), config)?);
        }
        Ok(trainer)
    }

    /// `result`, except that an error on one rank of several ends them all (`MPI_Abort`) after
    /// printing it: the others wait in a collective for a rank that will not come.
    pub fn finish<T>(&self, result: Result<T>) -> Result<T> {
        #[cfg(feature = "mpi")]
        if let (Err(e), Some(world)) = (&result, &self.world) {
            use deltaw_train::distributed::Collective;
            if world.size() > 1 {
                say(&format!("error: rank {} of {}: {e:#}\n", world.rank(), world.size()));
                // The launcher forwards each rank's stderr; give it a moment to carry this
                // line (and other ranks theirs) before the abort ends the run.
                std::thread::sleep(std::time::Duration::from_millis(500));
                world.abort(1);
            }
        }
        result
    }
}

/// Writes `line` to stderr in one write, so the lines of ranks sharing the launcher's stderr do
/// not interleave, and a line is whole before `MPI_Abort` ends the ranks.
#[cfg(feature = "mpi")]
fn say(line: &str) {
    use std::io::Write;
    std::io::stderr().lock().write_all(line.as_bytes()).ok();
}
