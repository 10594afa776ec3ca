//! `deltaw plot`: a run's loss curves (training loss, validation loss, learning rate) from its
//! `metrics.jsonl`, as a PNG.

use anyhow::Result;
use clap::Args;
use deltaw_train::plot::plot_metrics;
use deltaw_train::trainer::read_metrics;
use std::io::Write;
use std::path::PathBuf;

#[derive(Args)]
pub struct PlotArgs {
    /// The metrics file a training run wrote (`<out>/metrics.jsonl`).
    pub metrics: PathBuf,
    /// The PNG to write.
    #[arg(short, long, default_value = "loss.png")]
    pub out: PathBuf,
}

pub fn run(args: &PlotArgs, out: &mut impl Write) -> Result<()> {
    let lines = read_metrics(&args.metrics)?;
    plot_metrics(&lines, &args.out)?;
    writeln!(out, "wrote {} ({} metrics lines)", args.out.display(), lines.len())?;
    Ok(())
}
