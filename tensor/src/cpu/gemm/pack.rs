//! Packing: copies a block of A or B into zero-padded panels laid out as the micro-kernel reads them.
//!
//! A panel of width `W` holds `W` consecutive rows of a source matrix over a depth slice of
//! `kc`: element (i, p) of the panel (row i < W, depth p < kc) sits at `panel[p*W + i]`, so
//! each step of the micro-kernel's k loop reads `W` consecutive floats. Rows past the edge of
//! the source are zero, which lets the micro-kernel run full tiles without edge branches.
//!
//! A is packed as it is (W = MR); B is packed through its transpose (W = NR), so that the
//! "rows" of the packed source are B's columns and one function serves both. `W` is a
//! const generic so that each copy has a fixed length the compiler can turn into vector moves.
//!
//! The source may be bf16 or f16 (a frozen weight as B): each element is widened to f32 as it
//! is written into the panel ([`Widen`]), so the micro-kernel only ever sees f32 panels, the
//! same ones an f32 copy of the source would give. Packing already reads every element of B
//! once per depth slice; widening there costs a shift (bf16) or one conversion instruction
//! (f16 with F16C) per element, and B is read from memory at half the bytes.

use super::{MatRef, Widen};

/// Packs rows `i0..i0+rows` and depth `p0..p0+kc` of `src` into `rows.div_ceil(W)`
/// consecutive panels of `W*kc` floats at the start of `dst`. Each range is (start, length),
/// as the driver's blocks are.
///
/// # Panics
/// If `dst` is shorter than `rows.div_ceil(W) * W * kc`, or `src` lacks an element.
pub(crate) fn pack_panels<const W: usize, T: Widen>(
    src: MatRef<'_, T>,
    (i0, rows): (usize, usize),
    (p0, kc): (usize, usize),
    dst: &mut [f32],
) {
    let panels = rows.div_ceil(W);
    let dst = &mut dst[..panels * W * kc];
    if src.row_stride == 1 && kc > 0 {
        pack_contiguous_rows::<W, T>(src, (i0, rows), (p0, kc), dst);
        return;
    }
    for (r, panel) in dst.chunks_exact_mut(W * kc).enumerate() {
        let live = W.min(rows - r * W);
        if src.col_stride == 1 {
            pack_transposing::<W, T>(src, i0 + r * W, live, p0, kc, panel);
        } else {
            for (p, dst) in panel.chunks_exact_mut(W).enumerate() {
                for (i, d) in dst.iter_mut().enumerate() {
                    *d = if i < live { src.at(i0 + r * W + i, p0 + p) } else { 0.0 };
                }
            }
        }
    }
}

/// The source rows are adjacent in memory (`row_stride == 1`; a row-major B seen through its
/// transpose): at each depth p, the `rows` values are one contiguous run, which is cut into
/// W-wide pieces, one per panel. Reading whole runs in order keeps the hardware prefetcher on.
fn pack_contiguous_rows<const W: usize, T: Widen>(
    src: MatRef<'_, T>,
    (i0, rows): (usize, usize),
    (p0, kc): (usize, usize),
    dst: &mut [f32],
) {
    // src(i0 + i, p0 + p) is at base + i + p*col_stride.
    let base = src.offset + i0 + p0 * src.col_stride;
    for p in 0..kc {
        let start = base + p * src.col_stride;
        let run = &src.data[start..start + rows];
        // Panel r starts at r*W*kc; its depth-p row at r*W*kc + p*W.
        for (panel, piece) in dst.chunks_exact_mut(W * kc).zip(run.chunks(W)) {
            let out = &mut panel[p * W..(p + 1) * W];
            match <&[T; W]>::try_from(piece) {
                Ok(full) => T::widen_into(full, out),
                Err(_) => {
                    T::widen_into(piece, &mut out[..piece.len()]);
                    out[piece.len()..].fill(0.0);
                }
            }
        }
    }
}

/// Each source row is contiguous along the depth (`col_stride == 1`; a row-major A): the
/// panel is its transpose. Each row is read in order and written down column i of the panel
/// (stride W); x86 has a faster, vectorised version of this in `pack_x86`.
fn pack_transposing<const W: usize, T: Widen>(
    src: MatRef<'_, T>,
    i0: usize,
    live: usize,
    p0: usize,
    kc: usize,
    panel: &mut [f32],
) {
    for i in 0..live {
        let start = src.offset + (i0 + i) * src.row_stride + p0;
        for (out, &x) in panel.chunks_exact_mut(W).zip(&src.data[start..start + kc]) {
            out[i] = x.widen();
        }
    }
    if live < W {
        for out in panel.chunks_exact_mut(W) {
            out[live..].fill(0.0);
        }
    }
}
