//! Learning-rate schedules: constant, or linear warmup followed by cosine or linear decay.

/// A learning rate as a function of the step, relative to a base rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LrSchedule {
    Constant,
    /// `lr · (s + 1) / warmup` for the first `warmup` steps, then a half cosine from `lr`
    /// down to `lr · min_ratio` at step `total`, flat after.
    WarmupCosine {
        warmup: usize,
        total: usize,
        min_ratio: f32,
    },
    /// The same warmup, then a straight line from `lr` to `lr · min_ratio` at step `total`.
    WarmupLinear {
        warmup: usize,
        total: usize,
        min_ratio: f32,
    },
}

impl LrSchedule {
    /// The rate for step `step` (0-based: the step about to be taken), computed in f64.
    ///
    /// With `p = (step - warmup) / (total - warmup)` clamped to `[0, 1]` after warmup:
    /// cosine `min + (lr - min) · (1 + cos πp) / 2`, linear `min + (lr - min) · (1 - p)`.
    pub fn lr_at(&self, base_lr: f32, step: usize) -> f32 {
        let lr = base_lr as f64;
        let (warmup, total, min_ratio, cosine) = match *self {
            LrSchedule::Constant => return base_lr,
            LrSchedule::WarmupCosine { warmup, total, min_ratio } => (warmup, total, min_ratio, true),
            LrSchedule::WarmupLinear { warmup, total, min_ratio } => (warmup, total, min_ratio, false),
        };
        if step < warmup {
            return (lr * (step + 1) as f64 / warmup as f64) as f32;
        }
        let min = lr * min_ratio as f64;
        let p = ((step - warmup) as f64 / total.saturating_sub(warmup).max(1) as f64).min(1.0);
        let frac = if cosine { 0.5 * (1.0 + (std::f64::consts::PI * p).cos()) } else { 1.0 - p };
        (min + (lr - min) * frac) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::LrSchedule;

    #[test]
    fn warmup_cosine_rises_then_falls_to_the_floor() {
        let s = LrSchedule::WarmupCosine { warmup: 2, total: 6, min_ratio: 0.1 };
        let lrs: Vec<f32> = (0..8).map(|i| s.lr_at(1.0, i)).collect();
        assert_eq!(&lrs[..3], &[0.5, 1.0, 1.0]);
        assert!((lrs[4] - 0.55).abs() < 1e-6, "{lrs:?}"); // halfway: (1 + 0.1) / 2
        assert!((lrs[6] - 0.1).abs() < 1e-6 && (lrs[7] - 0.1).abs() < 1e-6, "{lrs:?}");
    }

    #[test]
    fn warmup_linear_decays_in_a_straight_line() {
        let s = LrSchedule::WarmupLinear { warmup: 1, total: 5, min_ratio: 0.0 };
        let lrs: Vec<f32> = (0..6).map(|i| s.lr_at(2.0, i)).collect();
        assert_eq!(lrs, vec![2.0, 2.0, 1.5, 1.0, 0.5, 0.0]);
    }
}
