//! Dropout, and the train-mode scope that switches it on.
//!
//! Outside [`train_mode`] dropout is the identity (evaluation, generation, merging). Inside,
//! call number `n` of the scope draws its mask from `Seed(seed).derive(n)`: the same seed and
//! the same sequence of ops give the same masks, so a resumed training run that re-enters
//! `train_mode` with the step's seed reproduces the uninterrupted run bit for bit.

use crate::var::Var;
use deltaw_tensor::{Seed, Tensor};
use std::cell::Cell;

thread_local! {
    /// `(seed, calls so far)` while a train-mode scope is open on this thread.
    static TRAIN: Cell<Option<(u64, u64)>> = const { Cell::new(None) };
}

/// Runs `f` in train mode: [`Var::dropout`] is active, its masks seeded from `seed`.
/// Restores the previous mode afterwards, even on panic.
pub fn train_mode<R>(seed: u64, f: impl FnOnce() -> R) -> R {
    scoped(Some((seed, 0)), f)
}

/// Runs `f` in evaluation mode, even inside a [`train_mode`] scope: dropout is the identity.
/// Generation uses it, so a sample drawn in the middle of training is the model's own answer.
/// Restores the previous mode (and its mask count) afterwards, even on panic.
pub fn eval_mode<R>(f: impl FnOnce() -> R) -> R {
    scoped(None, f)
}

/// Runs `f` with the thread's train-mode state set to `state`, then puts the old one back.
/// With a state [`state`] returned earlier, `f`'s dropout calls draw the masks they drew then
/// (a checkpointed block run again in backward).
pub(crate) fn scoped<R>(state: Option<(u64, u64)>, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<(u64, u64)>);
    impl Drop for Restore {
        fn drop(&mut self) {
            TRAIN.with(|t| t.set(self.0));
        }
    }
    let _restore = Restore(TRAIN.with(|t| t.replace(state)));
    f()
}

/// This thread's train-mode state: `(seed, dropout calls so far)`, or `None`.
pub(crate) fn state() -> Option<(u64, u64)> {
    TRAIN.with(Cell::get)
}

/// Whether a [`train_mode`] scope is open on this thread.
pub fn is_training() -> bool {
    TRAIN.with(|t| t.get().is_some())
}

/// The seed of the next dropout mask, or `None` outside train mode.
fn next_mask_seed() -> Option<Seed> {
    TRAIN.with(|t| {
        let (seed, calls) = t.get()?;
        t.set(Some((seed, calls + 1)));
        Some(Seed(seed).derive(calls))
    })
}

impl Var {
    /// Inverted dropout: in train mode each element is zeroed with probability `p` and the
    /// survivors are scaled by `1 / (1 - p)`, so `E[y] = x` and evaluation needs no rescaling.
    /// The mask is a constant, so backward is `dy · mask / (1 - p)` through the multiply.
    /// The identity outside [`train_mode`] or when `p == 0`.
    ///
    /// # Panics
    /// In train mode, if `p` is not in `[0, 1)` (a bad `p` from a config is the config
    /// loader's error to give; evaluation never looks at `p`, so it cannot fail here).
    #[track_caller]
    pub fn dropout(&self, p: f32) -> Var {
        if p == 0.0 || !is_training() {
            return self.clone();
        }
        assert!((0.0..1.0).contains(&p), "dropout: p = {p} is not in [0, 1)");
        let Some(seed) = next_mask_seed() else { return self.clone() };
        let value = self.value();
        let dev = value.device();
        let keep = Tensor::rand(value.dims().to_vec(), seed, &dev).ge(&Tensor::scalar(p, &dev));
        self.mul(&Var::constant(keep.mul_scalar(1.0 / (1.0 - p))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltaw_tensor::Device;

    #[test]
    fn dropout_is_identity_outside_train_mode_and_seeded_inside() {
        let x = Var::parameter(Tensor::ones((64, 64), &Device::Cpu));
        assert_eq!(x.dropout(0.5).value().to_vec(), vec![1.0; 64 * 64]);
        let a = train_mode(7, || x.dropout(0.25).value().to_vec());
        let b = train_mode(7, || x.dropout(0.25).value().to_vec());
        assert_eq!(a, b, "same seed, same mask");
        let kept = a.iter().filter(|&&v| v != 0.0).count() as f64 / a.len() as f64;
        assert!((kept - 0.75).abs() < 0.03, "kept fraction {kept}");
        assert!(a.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.75).abs() < 1e-6));
        let (c, d) = train_mode(7, || (x.dropout(0.25).value(), x.dropout(0.25).value()));
        assert_ne!(c.to_vec(), d.to_vec(), "each call draws a new mask");
        assert!(!is_training());
    }

    #[test]
    fn dropout_outside_train_mode_never_checks_p() {
        let x = Var::parameter(Tensor::ones(4, &Device::Cpu));
        for p in [1.0, 2.0, -0.5, f32::NAN] {
            assert_eq!(x.dropout(p).value().to_vec(), vec![1.0; 4], "p = {p}");
        }
    }

    #[test]
    #[should_panic(expected = "dropout: p = 1 is not in [0, 1)")]
    fn dropout_in_train_mode_panics_on_p_one() {
        let x = Var::parameter(Tensor::ones(4, &Device::Cpu));
        train_mode(1, || x.dropout(1.0));
    }

    #[test]
    fn eval_mode_turns_dropout_off_inside_train_mode_and_keeps_the_mask_count() {
        let x = Var::parameter(Tensor::ones((64, 64), &Device::Cpu));
        let (first, inside, next) = train_mode(7, || {
            let first = x.dropout(0.5).value().to_vec();
            let inside = eval_mode(|| (is_training(), x.dropout(0.5).value().to_vec()));
            (first, inside, x.dropout(0.5).value().to_vec())
        });
        assert_eq!(inside, (false, vec![1.0; 64 * 64]), "identity in eval mode");
        let uninterrupted = train_mode(7, || (x.dropout(0.5).value().to_vec(), x.dropout(0.5).value().to_vec()));
        assert_eq!((first, next), uninterrupted, "the eval scope draws no mask");
        assert!(!is_training());
    }
}
