//! Top-k along the last dim of a contiguous `(rows, n)` f32 buffer: per row a partial
//! selection, then a sort of the k winners; rows in parallel with rayon.
//!
//! The order is the one `topk.wgsl` sorts by, so that both devices pick the same elements in
//! the same order: each value maps to a u32 [`sort_key`] (larger float → larger key, NaN →
//! 0, below -inf; -0 and +0 equal), and ties in the key go to the lower index.

use rayon::prelude::*;
use std::cmp::Ordering;

/// A u32 that orders like `v` among floats, with NaN lowest:
/// NaN → 0; sign bit set → `!bits`; otherwise `bits | 0x8000_0000`; -0 is read as +0.
///
/// Non-negative floats order like their bits, so setting the top bit puts them above every
/// negative one; negative floats order backwards by their bits, so they are complemented.
/// -inf (`0xff80_0000`) becomes `0x007f_ffff`, above NaN's 0.
///
/// ```
/// use deltaw_tensor::cpu::topk::sort_key;
/// let ordered = [f32::NAN, f32::NEG_INFINITY, -1.0, -0.0, 1e-45, 2.0, f32::INFINITY];
/// assert!(ordered.windows(2).all(|w| sort_key(w[0]) < sort_key(w[1])));
/// assert_eq!(sort_key(-0.0), sort_key(0.0));
/// ```
pub fn sort_key(v: f32) -> u32 {
    if v.is_nan() {
        return 0;
    }
    let bits = if v == 0.0 { 0 } else { v.to_bits() };
    if bits & 0x8000_0000 != 0 {
        !bits
    } else {
        bits | 0x8000_0000
    }
}

/// Whether element `a` of a row ranks before element `b`: larger key, then lower index.
fn rank(keys: &[u32], a: u32, b: u32) -> Ordering {
    keys[b as usize].cmp(&keys[a as usize]).then(a.cmp(&b))
}

/// The `k` largest of each row of `x` viewed as `(rows, n)`, largest first (see the module
/// docs for ties and NaN): `(values, indices)`, each `(rows, k)` row-major. `k ≤ n`.
pub fn topk(x: &[f32], n: usize, k: usize) -> (Vec<f32>, Vec<i32>) {
    assert!(k <= n, "cpu topk: k = {k} exceeds the row length {n}");
    let rows = x.len().checked_div(n).unwrap_or(0);
    let mut values = vec![0.0; rows * k];
    let mut indices = vec![0i32; rows * k];
    if k == 0 {
        return (values, indices);
    }
    values.par_chunks_mut(k).zip(indices.par_chunks_mut(k)).enumerate().for_each(|(r, (vals, ids))| {
        let row = &x[r * n..(r + 1) * n];
        let keys: Vec<u32> = row.iter().map(|&v| sort_key(v)).collect();
        let mut order: Vec<u32> = (0..n as u32).collect();
        // Everything left of position k - 1 now ranks before everything right of it.
        if k < n {
            order.select_nth_unstable_by(k - 1, |&a, &b| rank(&keys, a, b));
        }
        let winners = &mut order[..k];
        winners.sort_unstable_by(|&a, &b| rank(&keys, a, b));
        for ((v, id), &j) in vals.iter_mut().zip(ids.iter_mut()).zip(winners.iter()) {
            *v = row[j as usize];
            *id = j as i32;
        }
    });
    (values, indices)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_go_to_the_lower_index_and_nan_ranks_below_minus_infinity() {
        let x = [1.0, f32::NAN, f32::NEG_INFINITY, 3.0, 1.0, -0.0, 0.0, 3.0];
        let (v, i) = topk(&x, 8, 8);
        assert_eq!(i, [3, 7, 0, 4, 5, 6, 2, 1]);
        assert_eq!(v[..7], [3.0, 3.0, 1.0, 1.0, -0.0, 0.0, f32::NEG_INFINITY]);
        assert!(v[4].is_sign_negative() && v[7].is_nan(), "values are the input's bits");
    }

    #[test]
    fn partial_selection_agrees_with_a_full_sort() {
        let x: Vec<f32> = (0..997).map(|i| ((i * 7919) % 113) as f32 - 50.0).collect();
        let (_, all) = topk(&x, 997, 997);
        for k in [0, 1, 5, 100, 996] {
            let (_, some) = topk(&x, 997, k);
            assert_eq!(some, all[..k], "k = {k}");
        }
    }
}
