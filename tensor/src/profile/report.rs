//! The profiler's table.

use super::Phase;
use std::fmt;

/// One (op, phase) of a [`Report`].
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub op: &'static str,
    pub phase: Phase,
    pub calls: u64,
    pub seconds: f64,
    pub flops: f64,
    pub bytes: f64,
}

impl Row {
    pub fn gflops_per_s(&self) -> f64 {
        self.flops / self.seconds.max(1e-12) / 1e9
    }

    pub fn gbytes_per_s(&self) -> f64 {
        self.bytes / self.seconds.max(1e-12) / 1e9
    }

    /// Achieved speed over what the roofline allows an op of this arithmetic intensity:
    /// FLOP/s against `min(peak, flops/bytes × bandwidth)`, or bytes/s against the bandwidth
    /// for an op that only moves data.
    pub fn roofline_share(&self, peak_flops: f64, bandwidth: f64) -> Option<f64> {
        let secs = self.seconds.max(1e-12);
        if self.flops > 0.0 && self.bytes > 0.0 {
            let attainable = peak_flops.min(self.flops / self.bytes * bandwidth);
            Some(self.flops / secs / attainable)
        } else if self.bytes > 0.0 {
            Some(self.bytes / secs / bandwidth)
        } else {
            None
        }
    }
}

/// What the profiler recorded: rows by total time, the wall time since it was enabled, and
/// the machine's measured peak FLOP/s and bandwidth.
#[derive(Clone, Debug)]
pub struct Report {
    pub rows: Vec<Row>,
    pub wall_seconds: f64,
    pub peak_flops: f64,
    pub bandwidth: f64,
}

impl Report {
    pub(super) fn new(mut rows: Vec<Row>, wall_seconds: f64, peak_flops: f64, bandwidth: f64) -> Report {
        rows.sort_by(|a, b| b.seconds.total_cmp(&a.seconds).then(a.op.cmp(b.op)).then(a.phase.cmp(&b.phase)));
        Report { rows, wall_seconds, peak_flops, bandwidth }
    }

    /// The row of `op` in `phase`, if it ran.
    pub fn row(&self, op: &str, phase: Phase) -> Option<&Row> {
        self.rows.iter().find(|r| r.op == op && r.phase == phase)
    }

    /// Seconds inside profiled ops.
    pub fn op_seconds(&self) -> f64 {
        self.rows.iter().map(|r| r.seconds).sum()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let wall = self.wall_seconds.max(1e-12);
        writeln!(
            f,
            "deltaw profile: {:.1} ms of wall time; roofline {:.1} GFLOP/s peak (sgemm), {:.1} GB/s (in-place pass)",
            wall * 1e3,
            self.peak_flops / 1e9,
            self.bandwidth / 1e9
        )?;
        writeln!(
            f,
            "{:<22} {:<9} {:>8} {:>10} {:>6} {:>9} {:>8} {:>7}",
            "op", "phase", "calls", "total ms", "%", "GFLOP/s", "GB/s", "% roof"
        )?;
        for r in &self.rows {
            let roof =
                r.roofline_share(self.peak_flops, self.bandwidth).map_or("-".into(), |s| format!("{:.0}", s * 100.0));
            writeln!(
                f,
                "{:<22} {:<9} {:>8} {:>10.1} {:>6.1} {:>9.1} {:>8.1} {:>7}",
                r.op,
                r.phase.name(),
                r.calls,
                r.seconds * 1e3,
                r.seconds / wall * 100.0,
                r.gflops_per_s(),
                r.gbytes_per_s(),
                roof
            )?;
        }
        let other = (self.wall_seconds - self.op_seconds()).max(0.0);
        writeln!(f, "{:<22} {:<9} {:>8} {:>10.1} {:>6.1}", "(outside ops)", "", "", other * 1e3, other / wall * 100.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_roofline_share_uses_the_lower_roof() {
        let row = Row { op: "x", phase: Phase::Forward, calls: 1, seconds: 1.0, flops: 10e9, bytes: 1e9 };
        // Intensity 10 FLOP/byte × 2 GB/s = 20 GFLOP/s attainable, under the 100 peak.
        assert!((row.roofline_share(100e9, 2e9).unwrap() - 0.5).abs() < 1e-12);
        let copy = Row { flops: 0.0, ..row.clone() };
        assert!((copy.roofline_share(100e9, 2e9).unwrap() - 0.5).abs() < 1e-12);
        let report = Report::new(vec![row, Row { op: "y", seconds: 2.0, ..copy }], 4.0, 100e9, 2e9);
        assert_eq!(report.rows[0].op, "y", "slowest first");
        let text = report.to_string();
        assert!(text.contains("(outside ops)") && text.contains("GFLOP/s"), "{text}");
    }
}
