//! Packing: copies a block of A or B into zero-padded panels laid out as the micro-kernel reads them.
//!
//! A panel of width `w` holds `w` consecutive rows of a source matrix over a depth slice of
//! `kc`: element (i, p) of the panel (row i < w, depth p < kc) sits at `panel[p*w + i]`, so
//! each step of the micro-kernel's k loop reads `w` consecutive floats. Rows past the edge of
//! the source are zero, which lets the micro-kernel run full tiles without edge branches.
//!
//! A is packed as it is (w = MR); B is packed through its transpose (w = NR), so that the
//! "rows" of the packed source are B's columns and one function serves both.

use super::MatRef;

/// Packs rows `i0..i0+rows` and depth `p0..p0+kc` of `src` into `rows.div_ceil(w)`
/// consecutive panels of `w*kc` floats at the start of `dst`.
///
/// # Panics
/// If `dst` is shorter than `rows.div_ceil(w) * w * kc`, or `src` lacks an element.
pub(crate) fn pack_panels(
    src: MatRef<'_>,
    i0: usize,
    rows: usize,
    p0: usize,
    kc: usize,
    w: usize,
    dst: &mut [f32],
) {
    let panels = rows.div_ceil(w);
    assert!(dst.len() >= panels * w * kc, "pack_panels: destination too short");
    for (r, panel) in dst.chunks_exact_mut(w * kc).take(panels).enumerate() {
        let live = w.min(rows - r * w);
        pack_panel(src, i0 + r * w, live, p0, kc, w, panel);
    }
}

/// Packs the `live ≤ w` rows `i0..i0+live` of `src` over depth `p0..p0+kc` into one panel
/// of `w*kc` floats, zero-filling rows `live..w`.
pub(crate) fn pack_panel(
    src: MatRef<'_>,
    i0: usize,
    live: usize,
    p0: usize,
    kc: usize,
    w: usize,
    panel: &mut [f32],
) {
    debug_assert!(live <= w && panel.len() == w * kc);
    // Index of src(i0, p0); src(i0 + i, p0 + p) is at base + i*row_stride + p*col_stride.
    let base = src.offset + i0 * src.row_stride + p0 * src.col_stride;
    if src.row_stride == 1 {
        // The panel's rows are adjacent in memory: each depth step is one contiguous copy.
        // This is the case of a row-major B (packed through its transpose).
        for (p, dst) in panel.chunks_exact_mut(w).enumerate() {
            let start = base + p * src.col_stride;
            dst[..live].copy_from_slice(&src.data[start..start + live]);
            dst[live..].fill(0.0);
        }
    } else if src.col_stride == 1 {
        // Each row is contiguous along the depth: read it sequentially and scatter it into
        // column i of the panel (stride w). This is the case of a row-major A.
        for i in 0..live {
            let start = base + i * src.row_stride;
            let row = &src.data[start..start + kc];
            for (dst, &x) in panel.chunks_exact_mut(w).zip(row) {
                dst[i] = x;
            }
        }
        if live < w {
            for dst in panel.chunks_exact_mut(w) {
                dst[live..].fill(0.0);
            }
        }
    } else {
        for (p, dst) in panel.chunks_exact_mut(w).enumerate() {
            for (i, d) in dst.iter_mut().enumerate() {
                *d = if i < live { src.at(i0 + i, p0 + p) } else { 0.0 };
            }
        }
    }
}
