//! `deltaw plot`, and the loss curves every training command draws: a PNG with the training
//! loss per step, the validation losses as points on top, and the learning rate below it,
//! drawn from the lines of a run's `metrics.jsonl`.
//!
//! The text is rendered with a font compiled into the binary (Ubuntu Light, from
//! `epaint_default_fonts`), so a plot looks the same on a machine without system fonts. The
//! image is encoded in memory and written atomically, so a reader never sees half a PNG.
//! Drawing lives here, not in deltaw-train: the library writes metrics and draws nothing.

use anyhow::{anyhow, Result};
use clap::Args;
use deltaw_train::trainer::{read_metrics, MetricsLine};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::FontStyle;
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};

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

/// Draws `loss.png` next to `metrics.jsonl` in the folder of a training run that has just
/// ended (finished or stopped early). A plot is a convenience: failing to draw one must not
/// fail a run whose weights are fine, so it only warns.
pub fn plot_run(dir: &Path) {
    let (metrics, png) = (dir.join("metrics.jsonl"), dir.join("loss.png"));
    if let Err(e) = read_metrics(&metrics).map_err(anyhow::Error::from).and_then(|lines| plot_metrics(&lines, &png)) {
        eprintln!("warning: no loss plot: {e}");
    }
}

/// Image size in pixels: the loss panel takes the top 60%, the learning rate the rest.
const SIZE: (u32, u32) = (900, 640);
pub(crate) const FONT: &str = "sans-serif";

/// Draws `lines` (training and evaluation lines of one run) into the PNG `out`.
///
/// The loss axis is logarithmic when every loss is positive (losses of a run that learns
/// span orders of magnitude), linear otherwise.
///
/// # Errors
/// No training line to draw, a drawing failure, or `out` that cannot be written.
pub fn plot_metrics(lines: &[MetricsLine], out: &Path) -> Result<()> {
    let err = |message: String| anyhow!("{}: cannot plot: {message}", out.display());
    let train: Vec<(f64, f64, f64)> = lines
        .iter()
        .filter_map(|l| match l {
            MetricsLine::Train(m) => Some((m.step as f64, m.loss as f64, m.lr as f64)),
            MetricsLine::Eval(_) => None,
        })
        .collect();
    let eval: Vec<(f64, f64)> = lines
        .iter()
        .filter_map(|l| match l {
            MetricsLine::Eval(e) => Some((e.step as f64, e.val_loss as f64)),
            MetricsLine::Train(_) => None,
        })
        .collect();
    if train.is_empty() {
        return Err(err("no training steps to plot".into()));
    }
    register_font().map_err(err)?;
    let (w, h) = SIZE;
    let mut rgb = vec![0u8; (w * h * 3) as usize];
    draw(&mut rgb, &train, &eval).map_err(err)?;
    let png = encode_png(&rgb, SIZE).map_err(err)?;
    deltaw_tensor::safetensors::write_atomic(out, &png)?;
    Ok(())
}

/// Makes [`FONT`] available to plotters (once per process; later calls are no-ops).
pub(crate) fn register_font() -> std::result::Result<(), String> {
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, epaint_default_fonts::UBUNTU_LIGHT).is_ok()
    });
    ok.then_some(()).ok_or_else(|| "the built-in font did not load".into())
}

/// Renders both panels into `rgb`, a `(h, w, 3)` buffer.
fn draw(rgb: &mut [u8], train: &[(f64, f64, f64)], eval: &[(f64, f64)]) -> std::result::Result<(), String> {
    let s = |e: &dyn std::fmt::Display| e.to_string();
    let root = BitMapBackend::with_buffer(rgb, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| s(&e))?;
    let (top, bottom) = root.split_vertically(SIZE.1 * 6 / 10);
    let steps = padded(train.iter().map(|p| p.0).chain(eval.iter().map(|p| p.0)));
    let losses: Vec<f64> = train.iter().map(|p| p.1).chain(eval.iter().map(|p| p.1)).collect();
    if losses.iter().all(|&l| l > 0.0 && l.is_finite()) {
        let range = padded(losses.iter().copied());
        let y = (range.start.max(losses.iter().copied().fold(f64::INFINITY, f64::min) * 0.8))..range.end;
        loss_panel(&top, steps.clone(), y.log_scale(), train, eval).map_err(|e| s(&e))?;
    } else {
        loss_panel(&top, steps.clone(), padded(losses.into_iter()), train, eval).map_err(|e| s(&e))?;
    }
    lr_panel(&bottom, steps, train).map_err(|e| s(&e))?;
    root.present().map_err(|e| s(&e))
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;
type DrawError<'a> = DrawingAreaErrorKind<<BitMapBackend<'a> as DrawingBackend>::ErrorType>;
type DrawResult<'a> = std::result::Result<(), DrawError<'a>>;
type Chart<'a, Y> = ChartContext<'a, BitMapBackend<'a>, Cartesian2d<RangedCoordf64, Y>>;

/// A panel of `area` with its mesh drawn: `caption` at font size `size` above, the step on the
/// x axis over `x`, the y axis over `y` (linear or log), its labels written by `y_label` when
/// given (plotters' default otherwise).
fn panel<'a, Y>(
    area: &Area<'a>,
    (caption, size): (&str, u32),
    x: Range<f64>,
    y: Y,
    y_label: Option<&dyn Fn(&f64) -> String>,
) -> std::result::Result<Chart<'a, Y::CoordDescType>, DrawError<'a>>
where
    Y: plotters::coord::ranged1d::AsRangedCoord<Value = f64>,
    Y::CoordDescType: plotters::coord::ranged1d::ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FONT, size))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(x, y)?;
    let whole_steps = |v: &f64| format!("{v:.0}");
    let mut mesh = chart.configure_mesh();
    mesh.x_desc("step").x_label_formatter(&whole_steps).label_style((FONT, 14)).axis_desc_style((FONT, 15));
    if let Some(format) = y_label {
        mesh.y_label_formatter(format);
    }
    mesh.draw()?;
    Ok(chart)
}

/// Training loss as a line, validation loss as circles, on a y axis `y` (linear or log).
fn loss_panel<'a, Y>(
    area: &Area<'a>,
    x: Range<f64>,
    y: Y,
    train: &[(f64, f64, f64)],
    eval: &[(f64, f64)],
) -> DrawResult<'a>
where
    Y: plotters::coord::ranged1d::AsRangedCoord<Value = f64>,
    Y::CoordDescType: plotters::coord::ranged1d::ValueFormatter<f64>,
{
    let mut chart = panel(area, ("loss", 22), x, y, None)?;
    chart
        .draw_series(LineSeries::new(train.iter().map(|p| (p.0, p.1)), BLUE.stroke_width(2)))?
        .label("train")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    if !eval.is_empty() {
        chart
            .draw_series(eval.iter().map(|&(s, l)| Circle::new((s, l), 4, RED.filled())))?
            .label("validation")
            .legend(|(x, y)| Circle::new((x + 10, y), 4, RED.filled()));
    }
    chart.configure_series_labels().label_font((FONT, 14)).background_style(WHITE).border_style(BLACK).draw()
}

/// The learning rate per step.
fn lr_panel<'a>(area: &Area<'a>, x: Range<f64>, train: &[(f64, f64, f64)]) -> DrawResult<'a> {
    let y = padded(train.iter().map(|p| p.2).chain([0.0]));
    let mut chart = panel(area, ("learning rate", 18), x, y, Some(&|v: &f64| format!("{v:.1e}")))?;
    chart.draw_series(LineSeries::new(train.iter().map(|p| (p.0, p.2)), GREEN.stroke_width(2)))?;
    Ok(())
}

/// The span of `values` widened by 5% on each side (and to a unit span when all are equal),
/// so no point sits on the frame and a one-step run still has an axis.
fn padded(values: impl Iterator<Item = f64>) -> Range<f64> {
    let (lo, hi) =
        values.filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !lo.is_finite() {
        return 0.0..1.0;
    }
    let pad = if hi > lo { (hi - lo) * 0.05 } else { 0.5 };
    (lo - pad)..(hi + pad)
}

/// An 8-bit RGB PNG of a `(h, w, 3)` buffer.
pub(crate) fn encode_png(rgb: &[u8], (w, h): (u32, u32)) -> std::result::Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
    writer.write_image_data(rgb).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltaw_train::trainer::{EvalMetrics, StepMetrics};

    fn step(step: usize, loss: f32) -> MetricsLine {
        let lr = 1e-3 * step as f32;
        MetricsLine::Train(StepMetrics {
            step,
            epoch: 0.0,
            loss,
            lr,
            grad_norm: 1.0,
            tokens: 1,
            tokens_processed: 1,
            seconds: 0.0,
            comm_seconds: None,
        })
    }

    fn decoded_size(path: &Path) -> (u32, u32) {
        let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
        let reader = decoder.read_info().unwrap();
        (reader.info().width, reader.info().height)
    }

    #[test]
    fn plot_metrics_writes_a_png_that_decodes() {
        let dir = std::env::temp_dir().join(format!("deltaw-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut lines: Vec<MetricsLine> = (1..=20).map(|s| step(s, 5.0 / s as f32)).collect();
        lines.push(MetricsLine::Eval(EvalMetrics { step: 20, val_loss: 0.3, val_perplexity: 1.3, exact_match: None }));
        let out = dir.join("loss.png");
        plot_metrics(&lines, &out).unwrap();
        assert_eq!(decoded_size(&out), SIZE);
        // A single step, and a zero loss (linear axis), still plot.
        plot_metrics(&[step(1, 0.0)], &dir.join("one.png")).unwrap();
        assert_eq!(decoded_size(&dir.join("one.png")), SIZE);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn plot_metrics_without_training_lines_is_an_error() {
        let out = std::env::temp_dir().join("deltaw-never-written.png");
        let e = plot_metrics(&[], &out).unwrap_err();
        assert!(e.to_string().contains("no training steps"), "{e}");
        assert!(!out.exists());
    }
}
