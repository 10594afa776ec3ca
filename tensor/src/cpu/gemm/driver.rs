//! The blocked GEMM loops (see the module doc of `gemm`) and their split over rayon tasks.

use super::dispatch::{Kernel, PackFn, MAX_TILE};
use super::gemv;
use super::scratch::{with_scratch, A_PACK, B_PACK};
use super::{Epilogue, MatRef, Widen};
use rayon::prelude::*;

/// Below this many multiply-adds (m·n·k) a GEMM stays on the calling thread: 2^18 MACs take
/// ~5 µs on one core, about what it costs to wake the pool and wait for it.
const PARALLEL_MIN_MACS: usize = 1 << 18;

thread_local! {
    /// Set while the calling thread runs [`sequential`] work.
    static SEQUENTIAL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with every GEMM (and gemv) it starts kept on the calling thread. For callers that
/// are already one of many parallel tasks, such as attention's heads or a batch of products:
/// splitting each small product over the pool again only adds scheduling. The results do not
/// depend on the split, so the bits are the same either way.
pub(crate) fn sequential<R>(f: impl FnOnce() -> R) -> R {
    crate::cpu::with_flag(&SEQUENTIAL, f)
}

/// The threads a product of `work` multiply-adds may use: one below `min` or inside
/// [`sequential`], else the pool's.
pub(super) fn threads_for(work: usize, min: usize) -> usize {
    if work < min || SEQUENTIAL.with(|s| s.get()) {
        1
    } else {
        rayon::current_num_threads()
    }
}

/// Tasks per thread in a parallel block: a few, so that a core slowed by another process
/// hands the rest of its share to the others.
const TASKS_PER_THREAD: usize = 4;

/// Most rows of A packed at once (the A slab): 4096 × KC=384 floats = 6 MiB. Bounds memory for
/// very tall A; below it, A is packed exactly once per depth slice.
pub(super) const SLAB_ROWS: usize = 4096;

/// Most columns of B packed at once (the B block), likewise: 4096 × 384 floats = 6 MiB.
pub(super) const BLOCK_COLS: usize = 4096;

/// What every part of one GEMM shares.
struct Gemm<'a, T> {
    kern: &'a Kernel,
    a: MatRef<'a>,
    /// f32, or a bf16 / f16 weight widened as its panels are packed.
    b: MatRef<'a, T>,
    c: CPtr,
    ldc: usize,
    accumulate: bool,
    /// Added to every row of C by the depth slice that completes the sum (`Epilogue::Bias`).
    bias: Option<&'a [f32]>,
    k: usize,
    threads: usize,
}

/// One block of the loops: C rows `rows.0..rows.0+rows.1`, columns `cols.0..cols.0+cols.1`,
/// summing over the depth slice `depth.0..depth.0+depth.1`; each pair is (start, length).
#[derive(Clone, Copy)]
struct Block {
    rows: (usize, usize),
    cols: (usize, usize),
    depth: (usize, usize),
}

/// C = A·B, C += A·B or C = A·B + bias, shapes already checked by `sgemm_into`, with a given
/// micro-kernel (the tests run every kernel). A single row or column of C takes the gemv path
/// instead.
#[allow(clippy::too_many_arguments)] // sgemm's own signature, plus the kernel
pub(crate) fn gemm<T: Widen>(
    kern: &Kernel,
    m: usize,
    n: usize,
    k: usize,
    a: MatRef<'_>,
    b: MatRef<'_, T>,
    c: &mut [f32],
    ldc: usize,
    epilogue: Epilogue<'_>,
) {
    let (accumulate, bias) = epilogue.parts();
    // One row (or one column) of C: stream B once instead of packing it (see gemv.rs).
    if m == 1 && k > 0 && n > 0 && gemv::supports(&b) {
        gemv::gemv(kern, n, k, a, b, c, 1, accumulate);
        return add_bias(c, ldc, (m, n), bias);
    }
    if n == 1 && m > 1 && k > 0 && gemv::supports(&a.t()) {
        // C (m×1) = A·b is Cᵀ = bᵀ·Aᵀ: the row bᵀ times Aᵀ, written down C's column.
        gemv::gemv(kern, m, k, b.t(), a.t(), c, ldc, accumulate);
        return add_bias(c, ldc, (m, n), bias);
    }
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        // An empty sum: C = 0 (+ bias), or C unchanged when accumulating.
        if !accumulate {
            (0..m).for_each(|i| c[i * ldc..i * ldc + n].fill(0.0));
        }
        return add_bias(c, ldc, (m, n), bias);
    }
    let macs = m.saturating_mul(n).saturating_mul(k);
    let threads = threads_for(macs, PARALLEL_MIN_MACS);
    let g = Gemm { kern, a, b, c: CPtr(c.as_mut_ptr()), ldc, accumulate, bias, k, threads };
    // Equal depth slices of at most KC: k = 1024 gives 3 × 342 rather than 384 + 384 + 256.
    let kc = k.div_ceil(k.div_ceil(kern.kc));
    // Whole panels per slab, so that only the last slab has a partial (zero-padded) panel.
    let slab_rows = SLAB_ROWS - SLAB_ROWS % kern.mr;
    let a_len = m.min(slab_rows).next_multiple_of(kern.mr) * kc;
    let b_len = n.min(BLOCK_COLS).next_multiple_of(kern.nr) * kc;
    with_scratch(&A_PACK, a_len, |a_pack| {
        with_scratch(&B_PACK, b_len, |b_pack| {
            for i0 in (0..m).step_by(slab_rows) {
                for p0 in (0..k).step_by(kc) {
                    for j0 in (0..n).step_by(BLOCK_COLS) {
                        let rows = (i0, slab_rows.min(m - i0));
                        let cols = (j0, BLOCK_COLS.min(n - j0));
                        let block = Block { rows, cols, depth: (p0, kc.min(k - p0)) };
                        // The A slab of (i0, p0) serves every column block: pack it once.
                        run_block(&g, block, a_pack, b_pack, j0 == 0);
                    }
                }
            }
        })
    });
}

/// `C[i, j] += bias[j]` over the m×n matrix C (row stride `ldc`), when there is a bias.
fn add_bias(c: &mut [f32], ldc: usize, (m, n): (usize, usize), bias: Option<&[f32]>) {
    let Some(bias) = bias else { return };
    for i in 0..m {
        for (y, &b) in c[i * ldc..i * ldc + n].iter_mut().zip(bias) {
            *y += b;
        }
    }
}

/// Packs the block's B (and its A slab when `pack_a`), then computes it.
fn run_block<T: Widen>(g: &Gemm<'_, T>, block: Block, a_pack: &mut [f32], b_pack: &mut [f32], pack_a: bool) {
    let (kern, kc) = (g.kern, block.depth.1);
    let a_pack = &mut a_pack[..block.rows.1.next_multiple_of(kern.mr) * kc];
    let b_pack = &mut b_pack[..block.cols.1.next_multiple_of(kern.nr) * kc];
    // Packing Bᵀ: the "rows" of the packed source are B's columns.
    let pack_b = |b_pack: &mut [f32]| pack(g, kern.pack_b.of::<T>(), kern.nr, g.b.t(), block.cols, block.depth, b_pack);
    if !pack_a {
        pack_b(b_pack);
    } else if g.threads > 1 {
        rayon::join(|| pack(g, kern.pack_a, kern.mr, g.a, block.rows, block.depth, a_pack), || pack_b(b_pack));
    } else {
        pack(g, kern.pack_a, kern.mr, g.a, block.rows, block.depth, a_pack);
        pack_b(b_pack);
    }
    run_tasks(g, block, a_pack, b_pack);
}

/// Packs rows `rows` × depth `depth` of `src` into panels of width `w` with `pack_fn`; with
/// several threads, the panels go in contiguous groups, a few per thread (as tasks do).
fn pack<T, S: Widen>(
    g: &Gemm<'_, T>,
    pack_fn: PackFn<S>,
    w: usize,
    src: MatRef<'_, S>,
    (i0, rows): (usize, usize),
    (p0, kc): (usize, usize),
    dst: &mut [f32],
) {
    let groups = if g.threads > 1 { g.threads * TASKS_PER_THREAD } else { 1 };
    // Group t (of `group` panels) packs rows t*group*w .. (t+1)*group*w into dst[t*group*w*kc ..].
    let group = rows.div_ceil(w).div_ceil(groups);
    let pack_group = |(t, dst): (usize, &mut [f32])| {
        let first = t * group * w;
        // SAFETY: `g.kern` comes from `dispatch::available`, so the CPU supports its packers.
        unsafe { pack_fn(src, (i0 + first, (rows - first).min(group * w)), (p0, kc), dst) };
    };
    if g.threads > 1 {
        dst.par_chunks_mut(group * w * kc).enumerate().for_each(pack_group);
    } else {
        pack_group((0, dst));
    }
}

/// The base pointer of C, shared by the tasks of a block.
#[derive(Clone, Copy)]
struct CPtr(*mut f32);

// SAFETY: the tasks of a block write disjoint rectangles of C, and `gemm` holds the only
// `&mut` borrow of C until every task has finished, so no element is touched by two threads.
unsafe impl Send for CPtr {}
// SAFETY: as above; the pointer itself is only copied, never written through concurrently.
unsafe impl Sync for CPtr {}

impl CPtr {
    /// A method rather than `.0`, so closures capture the whole `Send` wrapper.
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// Splits the block of C into tasks, by rows first (tall A is the common case in a network:
/// m = B·T tokens), by columns as well when there are too few row panels to go round.
/// Task t gets the same proportional share of row panels and column panels as in a grid.
fn run_tasks<T: Widen>(g: &Gemm<'_, T>, block: Block, a_pack: &[f32], b_pack: &[f32]) {
    let row_panels = block.rows.1.div_ceil(g.kern.mr);
    let col_panels = block.cols.1.div_ceil(g.kern.nr);
    let target = if g.threads > 1 { g.threads * TASKS_PER_THREAD } else { 1 };
    let row_tasks = row_panels.min(target);
    let col_tasks = target.div_ceil(row_tasks).min(col_panels);
    let task = |t: usize| {
        let (rt, ct) = (t / col_tasks, t % col_tasks);
        let rows = (rt * row_panels / row_tasks, (rt + 1) * row_panels / row_tasks);
        let cols = (ct * col_panels / col_tasks, (ct + 1) * col_panels / col_tasks);
        run_task(g, block, (a_pack, b_pack), rows, cols);
    };
    if g.threads > 1 {
        (0..row_tasks * col_tasks).into_par_iter().for_each(task);
    } else {
        (0..row_tasks * col_tasks).for_each(task);
    }
}

/// One task: row panels `rows.0..rows.1` × column panels `cols.0..cols.1` of the block.
/// Columns go in groups of NC (`kern.nc`), whose B panels (KC×NC floats) stay in L2 while
/// every A panel of the task passes by: for each A panel (kept in L1), the micro-kernel runs
/// against each B panel of the group in turn.
fn run_task<T: Widen>(
    g: &Gemm<'_, T>,
    block: Block,
    (a_pack, b_pack): (&[f32], &[f32]),
    rows: (usize, usize),
    cols: (usize, usize),
) {
    let (mr, nr, kc) = (g.kern.mr, g.kern.nr, block.depth.1);
    let (row_end, col_end) = (block.rows.0 + block.rows.1, block.cols.0 + block.cols.1);
    let group = (g.kern.nc / nr).max(1);
    for jr0 in (cols.0..cols.1).step_by(group) {
        for ir in rows.0..rows.1 {
            let a_panel = &a_pack[ir * mr * kc..(ir + 1) * mr * kc];
            let i = block.rows.0 + ir * mr;
            for jr in jr0..cols.1.min(jr0 + group) {
                let b_panel = &b_pack[jr * nr * kc..(jr + 1) * nr * kc];
                let j = block.cols.0 + jr * nr;
                let live = (mr.min(row_end - i), nr.min(col_end - j));
                run_tile(g, block.depth, (a_panel, b_panel), (i, j), live);
            }
        }
    }
}

/// Runs the micro-kernel for the tile of C at (i, j), of which `live` = (rows, cols) lie
/// inside C, over the depth slice `(p0, kc)`. A full tile is written in place; an edge tile
/// goes through a local MR×NR array of which only the live part is copied out. A slice after
/// the first adds to C even without `accumulate`; the last one adds the bias, if any, while
/// the tile is still in L1.
fn run_tile<T>(
    g: &Gemm<'_, T>,
    (p0, kc): (usize, usize),
    (a_panel, b_panel): (&[f32], &[f32]),
    (i, j): (usize, usize),
    (live_rows, live_cols): (usize, usize),
) {
    let (mr, nr, ldc) = (g.kern.mr, g.kern.nr, g.ldc);
    let accumulate = g.accumulate || p0 > 0;
    let bias = g.bias.filter(|_| p0 + kc == g.k).map(|b| &b[j..j + live_cols]);
    debug_assert!(a_panel.len() == mr * kc && b_panel.len() == nr * kc);
    if live_rows == mr && live_cols == nr {
        let c_tile = g.c.get().wrapping_add(i * ldc + j);
        // SAFETY: the panels hold kc*MR and kc*NR floats; rows i..i+MR and columns j..j+NR
        // lie inside C (checked by sgemm against m, n and ldc) and belong to this task only;
        // `g.kern` comes from `dispatch::available`, so the CPU runs it.
        unsafe { (g.kern.tile)(kc, a_panel.as_ptr(), b_panel.as_ptr(), c_tile, ldc, accumulate) };
        for r in 0..mr {
            let Some(bias) = bias else { break };
            // SAFETY: as above, row i+r, columns j..j+NR of C belong to this task.
            let c_row = unsafe { std::slice::from_raw_parts_mut(c_tile.add(r * ldc), nr) };
            c_row.iter_mut().zip(bias).for_each(|(y, &b)| *y += b);
        }
        return;
    }
    let mut tile = [0.0f32; MAX_TILE];
    // SAFETY: `tile` holds MR rows of NR floats (ldc = NR), as MR*NR <= MAX_TILE.
    unsafe { (g.kern.tile)(kc, a_panel.as_ptr(), b_panel.as_ptr(), tile.as_mut_ptr(), nr, false) };
    for (r, tile_row) in tile.chunks_exact(nr).take(live_rows).enumerate() {
        // SAFETY: row i+r < m and columns j..j+live_cols < n lie inside C and belong to
        // this task only.
        let c_row = unsafe { std::slice::from_raw_parts_mut(g.c.get().add((i + r) * ldc + j), live_cols) };
        for (col, (c, &t)) in c_row.iter_mut().zip(tile_row).enumerate() {
            let sum = if accumulate { *c + t } else { t };
            *c = bias.map_or(sum, |b| sum + b[col]);
        }
    }
}
