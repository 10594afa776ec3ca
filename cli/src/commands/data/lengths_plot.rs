//! `lengths.png` of `deltaw data clean`: the record-length histograms before and after
//! cleaning, side by side per power-of-two bin, drawn from the report (the library counts,
//! the CLI draws). Font and PNG encoding are `plot.rs`'s.

use crate::commands::plot::{encode_png, register_font, FONT};
use anyhow::{anyhow, Result};
use deltaw_train::clean::{CleanReport, Histogram};
use plotters::prelude::*;
use std::path::Path;

const SIZE: (u32, u32) = (900, 480);

/// Draws both histograms of `report` into the PNG `out`, written atomically.
///
/// # Errors
/// A drawing failure or `out` that cannot be written.
pub fn plot_lengths(report: &CleanReport, out: &Path) -> Result<()> {
    let err = |message: String| anyhow!("{}: cannot plot: {message}", out.display());
    register_font().map_err(err)?;
    let mut rgb = vec![0u8; (SIZE.0 * SIZE.1 * 3) as usize];
    draw(&mut rgb, report).map_err(err)?;
    let png = encode_png(&rgb, SIZE).map_err(err)?;
    deltaw_tensor::safetensors::write_atomic(out, &png)?;
    Ok(())
}

fn draw(rgb: &mut [u8], report: &CleanReport) -> std::result::Result<(), String> {
    let s = |e: &dyn std::fmt::Display| e.to_string();
    let (before, after) = (&report.lengths_before.counts, &report.lengths_after.counts);
    let bins = before.len().max(after.len()).max(1);
    let top = before.iter().chain(after).copied().max().unwrap_or(0).max(1) as f64 * 1.1;
    let root = BitMapBackend::with_buffer(rgb, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| s(&e))?;
    let caption = format!("record lengths ({}), power-of-two bins", report.length_unit);
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, (FONT, 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5..bins as f64 - 0.5, 0.0..top)
        .map_err(|e| s(&e))?;
    let bin_label = |x: &f64| {
        let k = x.round().max(0.0) as usize;
        format!("{}", Histogram::bin_range(k).start)
    };
    chart
        .configure_mesh()
        .x_desc(format!("length ≥ ({})", report.length_unit))
        .y_desc("records")
        .x_labels(bins.min(24))
        .x_label_formatter(&bin_label)
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .draw()
        .map_err(|e| s(&e))?;
    for (counts, offset, color, label) in [(before, -0.4, BLUE, "before"), (after, 0.0, RED, "after")] {
        let bars = counts.iter().enumerate().map(move |(k, &c)| {
            let x = k as f64 + offset;
            Rectangle::new([(x, 0.0), (x + 0.4, c as f64)], color.mix(0.7).filled())
        });
        chart
            .draw_series(bars)
            .map_err(|e| s(&e))?
            .label(label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.mix(0.7).filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font((FONT, 14))
        .background_style(WHITE)
        .border_style(BLACK)
        .draw()
        .map_err(|e| s(&e))?;
    root.present().map_err(|e| s(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_length_plot_is_a_png_of_the_expected_size_even_when_empty() {
        let dir = std::env::temp_dir().join(format!("deltaw-lengths-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut report = CleanReport::new(vec![], "chars", serde_json::json!({}));
        for length in [0, 3, 40, 41, 900] {
            report.lengths_before.add(length);
        }
        report.lengths_after.add(41);
        for (name, report) in [("full.png", report), ("empty.png", CleanReport::default())] {
            let out = dir.join(name);
            plot_lengths(&report, &out).unwrap();
            let decoder = png::Decoder::new(std::fs::File::open(&out).unwrap());
            let reader = decoder.read_info().unwrap();
            assert_eq!((reader.info().width, reader.info().height), SIZE);
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}
