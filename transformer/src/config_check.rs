//! Range checks for the numbers of a `config.json`, each failure naming the field.
//!
//! A config comes from outside, and its sizes become allocation sizes and loop bounds: a zero
//! head count divides by zero, a `vocab_size` of 2^40 asks for terabytes, a dropout of 1.0
//! scales by 1/0. The bounds are far above every released checkpoint of these families
//! (the largest vocabularies are ~260k, the widest models 16k to 30k) and far below what
//! overflows or exhausts memory by itself.

/// Vocabulary rows (V): 4M.
pub(crate) const MAX_VOCAB: usize = 1 << 22;
/// Model width C, head size HS: 64k.
pub(crate) const MAX_WIDTH: usize = 1 << 16;
/// MLP hidden width: 256k.
pub(crate) const MAX_INNER: usize = 1 << 18;
/// Layers, heads: 1024.
pub(crate) const MAX_COUNT: usize = 1 << 10;
/// Positions (rows of a position embedding, the rotary length): 16M.
pub(crate) const MAX_POSITIONS: usize = 1 << 24;

/// `value` of `field` is in `1..=max`.
pub(crate) fn size(field: &str, value: usize, max: usize) -> Result<(), String> {
    if value == 0 || value > max {
        return Err(format!("{field} is {value}, expected 1 to {max}"));
    }
    Ok(())
}

/// A dropout probability: finite and in `[0, 1)` (1 would scale the survivors by 1/0).
pub(crate) fn probability(field: &str, p: f32) -> Result<(), String> {
    if !(0.0..1.0).contains(&p) {
        return Err(format!("{field} is {p}, expected a probability in [0, 1)"));
    }
    Ok(())
}

/// A normalisation epsilon: finite and not negative (a NaN would turn every output NaN).
pub(crate) fn epsilon(field: &str, eps: f32) -> Result<(), String> {
    if !eps.is_finite() || eps < 0.0 {
        return Err(format!("{field} is {eps}, expected a finite value >= 0"));
    }
    Ok(())
}
