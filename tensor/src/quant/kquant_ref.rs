//! Quantize to the K-quants as llama.cpp's reference quantizers (`quantize_row_q{4,5,6}_K_ref`,
//! used when no importance matrix is given) do, operation for operation.
//!
//! Q4_K / Q5_K fit each 32-value sub-block with `x ≈ scale · q - min` by a weighted
//! least-squares search over candidate scales (`fit_scale_min`), then quantize the eight
//! scales and mins to 6 bits against the super-block's f16 `d` and `dmin`, and requantize the
//! values against the rounded scales. Q6_K fits each 16-value sub-block with `x ≈ scale · q`
//! (`fit_scale_symmetric`), then quantizes the sixteen scales to i8 against `d`.
//! All sums run in f32 in the reference's order; nothing is fused, so the bytes match.

use super::kquants::{pack_scale_min_k4, scale_min_k4, QK_K};

/// Round to nearest (ties to even) by adding 1.5·2^23, as the reference's `nearest_int`.
/// Exact for |x| ≤ 2^22; beyond that it wraps the same way the reference does.
#[inline(always)]
fn nearest_int(x: f32) -> i32 {
    let bits = (x + 12582912.0f32).to_bits() as i32;
    (bits & 0x007f_ffff) - 0x0040_0000
}

/// The search grid of [`fit_scale_min`]: candidate inverse scales `(rmin + rdelta·is + nmax) /
/// (max - min)` for `is` in `0..=nstep`.
struct Grid {
    rmin: f32,
    rdelta: f32,
    nstep: i32,
}

/// `Σ w · (scale · l + min - x)²`, summed in index order as the reference does.
fn weighted_error(x: &[f32], w: &[f32], l: &[u8], scale: f32, min: f32) -> f32 {
    let mut err = 0.0f32;
    for i in 0..x.len() {
        let diff = scale * l[i] as f32 + min - x[i];
        err += w[i] * (diff * diff);
    }
    err
}

/// `make_qkx2_quants` (squared error): fits `x ≈ scale · L - min` with `L` in `0..=nmax`,
/// weights `w`. Writes `L`, returns `(scale, min)` with `min ≥ 0` (the value subtracted).
fn fit_scale_min(x: &[f32], w: &[f32], nmax: i32, grid: &Grid, l_out: &mut [u8]) -> (f32, f32) {
    let n = x.len();
    let (mut min, mut max) = (x[0], x[0]);
    let mut sum_w = w[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l_out.fill(0);
        return (0.0, -min);
    }
    let nmaxf = nmax as f32;
    let mut iscale = nmaxf / (max - min);
    let mut scale = 1.0 / iscale;
    for i in 0..n {
        l_out[i] = nearest_int(iscale * (x[i] - min)).clamp(0, nmax) as u8;
    }
    let mut best_error = weighted_error(x, w, &l_out[..n], scale, min);
    let mut laux = [0u8; 32];
    for is in 0..=grid.nstep {
        iscale = (grid.rmin + grid.rdelta * is as f32 + nmaxf) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
        for i in 0..n {
            let l = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
            laux[i] = l as u8;
            let lf = l as f32;
            sum_l += w[i] * lf;
            sum_l2 += w[i] * lf * lf;
            sum_xl += w[i] * lf * x[i];
        }
        let det = sum_w * sum_l2 - sum_l * sum_l;
        if det > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let cur_error = weighted_error(x, w, &laux[..n], this_scale, this_min);
            if cur_error < best_error {
                l_out[..n].copy_from_slice(&laux[..n]);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// Q4_K / Q5_K super-block: `nmax` is 15 or 31. Writes `d`, `dmin`, the packed scales and
/// returns the codes `L` (0..=nmax) for the caller to pack.
fn quantize_scale_min_block(x: &[f32], nmax: i32, grid: &Grid, head: &mut [u8]) -> [u8; QK_K] {
    let mut l = [0u8; QK_K];
    let (mut scales, mut mins) = ([0.0f32; 8], [0.0f32; 8]);
    let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
    for j in 0..8 {
        let xs = &x[32 * j..32 * j + 32];
        let mut sum_x2 = 0.0f32;
        for &v in xs {
            sum_x2 += v * v;
        }
        let av_x = (sum_x2 / 32.0).sqrt();
        let w: [f32; 32] = std::array::from_fn(|i| av_x + xs[i].abs());
        (scales[j], mins[j]) = fit_scale_min(xs, &w, nmax, grid, &mut l[32 * j..32 * j + 32]);
        if scales[j] > max_scale {
            max_scale = scales[j];
        }
        if mins[j] > max_min {
            max_min = mins[j];
        }
    }
    let inv_scale = if max_scale > 0.0 { 63.0 / max_scale } else { 0.0 };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    // `as u8` wraps as the reference's uint8_t assignment does, before the clamp to 63.
    let ls: [u8; 8] = std::array::from_fn(|j| (nearest_int(inv_scale * scales[j]) as u8).min(63));
    let lm: [u8; 8] = std::array::from_fn(|j| (nearest_int(inv_min * mins[j]) as u8).min(63));
    let packed = pack_scale_min_k4(&ls, &lm);
    let d = half::f16::from_f32(max_scale / 63.0);
    let dmin = half::f16::from_f32(max_min / 63.0);
    head[0..2].copy_from_slice(&d.to_le_bytes());
    head[2..4].copy_from_slice(&dmin.to_le_bytes());
    head[4..16].copy_from_slice(&packed);
    // Requantize against the scales as stored; a zero scale keeps the fit's codes.
    for j in 0..8 {
        let (sc, m) = scale_min_k4(j, &packed);
        let dj = d.to_f32() * sc as f32;
        if dj == 0.0 {
            continue;
        }
        let dm = dmin.to_f32() * m as f32;
        for i in 32 * j..32 * j + 32 {
            l[i] = nearest_int((x[i] + dm) / dj).clamp(0, nmax) as u8;
        }
    }
    l
}

/// Q4_K (`quantize_row_q4_K_ref`) of one super-block.
pub(crate) fn quantize_q4_k(x: &[f32], b: &mut [u8]) {
    let grid = Grid { rmin: -1.0, rdelta: 0.1, nstep: 20 };
    let l = quantize_scale_min_block(x, 15, &grid, &mut b[..16]);
    let qs = &mut b[16..144];
    for c in 0..4 {
        for i in 0..32 {
            qs[32 * c + i] = l[64 * c + i] | (l[64 * c + 32 + i] << 4);
        }
    }
}

/// Q5_K (`quantize_row_q5_K_ref`) of one super-block.
pub(crate) fn quantize_q5_k(x: &[f32], b: &mut [u8]) {
    let grid = Grid { rmin: -0.5, rdelta: 0.1, nstep: 15 };
    let l = quantize_scale_min_block(x, 31, &grid, &mut b[..16]);
    let (qh, qs) = b[16..176].split_at_mut(32);
    qh.fill(0);
    for c in 0..4 {
        for i in 0..32 {
            let (l0, l1) = (l[64 * c + i], l[64 * c + 32 + i]);
            qh[i] |= ((l0 >> 4) << (2 * c)) | ((l1 >> 4) << (2 * c + 1));
            qs[32 * c + i] = (l0 & 0x0F) | ((l1 & 0x0F) << 4);
        }
    }
}

/// Smallest sub-block magnitude the reference treats as nonzero (`GROUP_MAX_EPS`).
const GROUP_MAX_EPS: f32 = 1e-15;

/// `make_qx_quants(n, nmax, x, L, rmse_type = 1, NULL)`: fits `x ≈ scale · (L - nmax)` with
/// `L - nmax` in `-nmax..nmax`, weights `x²`, trying 19 inverse scales around `-nmax / max`.
fn fit_scale_symmetric(x: &[f32], nmax: i32, l_out: &mut [u8]) -> f32 {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        l_out.fill(0);
        return 0.0;
    }
    let nmaxf = nmax as f32;
    let code = |iscale: f32, v: f32| nearest_int(iscale * v).clamp(-nmax, nmax - 1);
    let sums = |iscale: f32| {
        let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
        for &v in x {
            let l = code(iscale, v) as f32;
            let w = v * v;
            sumlx += w * v * l;
            suml2 += w * l * l;
        }
        (sumlx, suml2)
    };
    let mut iscale = -nmaxf / max;
    for (o, &v) in l_out.iter_mut().zip(x) {
        *o = (code(iscale, v) + nmax) as u8;
    }
    let (sumlx, suml2) = sums(iscale);
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in (-9..=9).filter(|&is| is != 0) {
        iscale = -(nmaxf + 0.1 * is as f32) / max;
        let (sumlx, suml2) = sums(iscale);
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            for (o, &v) in l_out.iter_mut().zip(x) {
                *o = (code(iscale, v) + nmax) as u8;
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// Q6_K (`quantize_row_q6_K_ref`) of one super-block.
pub(crate) fn quantize_q6_k(x: &[f32], b: &mut [u8]) {
    let mut l = [0u8; QK_K];
    let mut scales = [0.0f32; 16];
    let (mut max_scale, mut max_abs_scale) = (0.0f32, 0.0f32);
    for ib in 0..16 {
        scales[ib] = fit_scale_symmetric(&x[16 * ib..16 * ib + 16], 32, &mut l[16 * ib..16 * ib + 16]);
        if scales[ib].abs() > max_abs_scale {
            max_abs_scale = scales[ib].abs();
            max_scale = scales[ib];
        }
    }
    b.fill(0);
    if max_abs_scale < GROUP_MAX_EPS {
        return; // an all-zero block: codes, scales and d all 0
    }
    let iscale = -128.0 / max_scale;
    let d = half::f16::from_f32(1.0 / iscale);
    b[208..210].copy_from_slice(&d.to_le_bytes());
    let sc: [i8; 16] = std::array::from_fn(|ib| nearest_int(iscale * scales[ib]).min(127) as i8);
    for (o, &s) in b[192..208].iter_mut().zip(&sc) {
        *o = s as u8;
    }
    // Requantize against the scales as stored; a zero scale keeps the fit's codes.
    for ((&s, xs), ls) in sc.iter().zip(x.chunks_exact(16)).zip(l.chunks_exact_mut(16)) {
        let dj = d.to_f32() * s as f32;
        if dj == 0.0 {
            continue;
        }
        for (o, &v) in ls.iter_mut().zip(xs) {
            *o = (nearest_int(v / dj).clamp(-32, 31) + 32) as u8;
        }
    }
    let (ql, rest) = b.split_at_mut(128);
    let qh = &mut rest[..64];
    for h in 0..2 {
        let (l, ql, qh) = (&l[128 * h..], &mut ql[64 * h..64 * h + 64], &mut qh[32 * h..32 * h + 32]);
        for i in 0..32 {
            ql[i] = (l[i] & 0x0F) | ((l[i + 64] & 0x0F) << 4);
            ql[i + 32] = (l[i + 32] & 0x0F) | ((l[i + 96] & 0x0F) << 4);
            qh[i] = (l[i] >> 4) | ((l[i + 32] >> 4) << 2) | ((l[i + 64] >> 4) << 4) | ((l[i + 96] >> 4) << 6);
        }
    }
}
