//! The blocked GEMM loops (see the module doc of `gemm`) and their split over rayon tasks.

use super::dispatch::{Kernel, MAX_TILE};
use super::pack::{pack_panel, pack_panels};
use super::MatRef;
use rayon::prelude::*;
use std::cell::Cell;
use std::thread::LocalKey;

/// Below this many multiply-adds (m·n·k) a GEMM stays on the calling thread: 2^18 MACs take
/// ~5 µs on one core, about what it costs to wake the pool and wait for it.
const PARALLEL_MIN_MACS: usize = 1 << 18;

/// Tasks per thread in a parallel block: a few, so that a core slowed by another process
/// hands the rest of the work to the others.
const TASKS_PER_THREAD: usize = 4;

/// C = A·B or C += A·B, shapes already checked by `sgemm`.
#[allow(clippy::too_many_arguments)] // sgemm's own signature, plus the kernel
pub(crate) fn gemm(
    kern: &Kernel,
    m: usize,
    n: usize,
    k: usize,
    a: MatRef<'_>,
    b: MatRef<'_>,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        // An empty sum: C = 0, or C unchanged when accumulating.
        if !accumulate {
            (0..m).for_each(|i| c[i * ldc..i * ldc + n].fill(0.0));
        }
        return;
    }
    let macs = m.saturating_mul(n).saturating_mul(k);
    let threads = if macs < PARALLEL_MIN_MACS { 1 } else { rayon::current_num_threads() };
    let c = CPtr(c.as_mut_ptr());
    let b_len = kern.kc.min(k) * kern.nc.min(n).next_multiple_of(kern.nr);
    with_scratch(&B_PACK, b_len, |b_pack| {
        for jc in (0..n).step_by(kern.nc) {
            let nc = kern.nc.min(n - jc);
            for pc in (0..k).step_by(kern.kc) {
                let kc = kern.kc.min(k - pc);
                let b_pack = &mut b_pack[..nc.next_multiple_of(kern.nr) * kc];
                pack_b(kern, b, (pc, kc), (jc, nc), b_pack, threads);
                // Only the first depth slice may overwrite C; the later ones add to it.
                let block = Block { a, b_pack, pc, kc, jc, nc, accumulate: accumulate || pc > 0 };
                run_tasks(kern, &block, m, (c, ldc), threads);
            }
        }
    });
}

/// One depth slice `pc..pc+kc` of one column block `jc..jc+nc`, with its packed B.
struct Block<'a> {
    a: MatRef<'a>,
    b_pack: &'a [f32],
    pc: usize,
    kc: usize,
    jc: usize,
    nc: usize,
    accumulate: bool,
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

/// Packs `B[pc..pc+kc, jc..jc+nc]` into NR-column panels: panels are independent, so
/// threads share the work when there are several.
fn pack_b(
    kern: &Kernel,
    b: MatRef<'_>,
    (pc, kc): (usize, usize),
    (jc, nc): (usize, usize),
    dst: &mut [f32],
    threads: usize,
) {
    // Packing Bᵀ: the "rows" of the source are B's columns.
    let pack_one = |(r, panel): (usize, &mut [f32])| {
        let live = kern.nr.min(nc - r * kern.nr);
        pack_panel(b.t(), jc + r * kern.nr, live, pc, kc, kern.nr, panel);
    };
    if threads > 1 {
        dst.par_chunks_mut(kern.nr * kc).enumerate().for_each(pack_one);
    } else {
        dst.chunks_mut(kern.nr * kc).enumerate().for_each(pack_one);
    }
}

/// Splits the m×nc block of C into tasks and runs them: by rows first (each task packs its
/// own rows of A, so a row split costs nothing), by columns too when rows run short (each
/// column task then repacks the same rows of A, which is cheap when m is small).
fn run_tasks(kern: &Kernel, block: &Block<'_>, m: usize, (c, ldc): (CPtr, usize), threads: usize) {
    let row_panels = m.div_ceil(kern.mr);
    let col_panels = block.nc.div_ceil(kern.nr);
    let target = if threads > 1 { threads * TASKS_PER_THREAD } else { 1 };
    // At most mc rows per task keeps the per-thread A buffer bounded for very tall A.
    let row_tasks = row_panels.min(target).max(row_panels.div_ceil(kern.mc / kern.mr));
    let col_tasks = target.div_ceil(row_tasks).min(col_panels);
    // Task t covers row panels rt*row_panels/row_tasks .. (rt+1)*row_panels/row_tasks, and
    // the same proportional share of the column panels.
    let task = |t: usize| {
        let (rt, ct) = (t / col_tasks, t % col_tasks);
        let rows = (rt * row_panels / row_tasks, (rt + 1) * row_panels / row_tasks);
        let cols = (ct * col_panels / col_tasks, (ct + 1) * col_panels / col_tasks);
        run_task(kern, block, m, rows, cols, (c, ldc));
    };
    if threads > 1 {
        (0..row_tasks * col_tasks).into_par_iter().for_each(task);
    } else {
        (0..row_tasks * col_tasks).for_each(task);
    }
}

/// One task: row panels `rows.0..rows.1` (of MR rows) × column panels `cols.0..cols.1` (of
/// NR columns, relative to `block.jc`). Packs its rows of A, then sweeps the tiles.
fn run_task(
    kern: &Kernel,
    block: &Block<'_>,
    m: usize,
    rows: (usize, usize),
    cols: (usize, usize),
    (c, ldc): (CPtr, usize),
) {
    let (mr, nr, kc) = (kern.mr, kern.nr, block.kc);
    let row0 = rows.0 * mr;
    let row_count = (rows.1 * mr).min(m) - row0;
    if row_count == 0 || cols.0 == cols.1 {
        return;
    }
    with_scratch(&A_PACK, (rows.1 - rows.0) * mr * kc, |a_pack| {
        pack_panels(block.a, row0, row_count, block.pc, kc, mr, a_pack);
        // ir outer, jr inner: one A panel stays in L1 while the B panels stream from L2.
        for (ir, a_panel) in a_pack.chunks_exact(mr * kc).enumerate() {
            let i = row0 + ir * mr;
            for jr in cols.0..cols.1 {
                let j = block.jc + jr * nr;
                let b_panel = &block.b_pack[jr * nr * kc..(jr + 1) * nr * kc];
                let live = (mr.min(m - i), nr.min(block.jc + block.nc - j));
                run_tile(kern, block, (a_panel, b_panel), (i, j), live, (c, ldc));
            }
        }
    });
}

/// Runs the micro-kernel for the tile of C at (i, j) with `live` = (rows, cols) inside C.
/// A full tile is written in place; an edge tile goes through a local MR×NR array, of which
/// only the live part is copied out.
fn run_tile(
    kern: &Kernel,
    block: &Block<'_>,
    (a_panel, b_panel): (&[f32], &[f32]),
    (i, j): (usize, usize),
    (live_rows, live_cols): (usize, usize),
    (c, ldc): (CPtr, usize),
) {
    let (mr, nr, kc) = (kern.mr, kern.nr, block.kc);
    debug_assert!(a_panel.len() == mr * kc && b_panel.len() == nr * kc);
    if live_rows == mr && live_cols == nr {
        // SAFETY: the panels hold kc*MR and kc*NR floats; rows i..i+MR and columns j..j+NR
        // lie inside C (checked by sgemm against m, n and ldc) and belong to this task only.
        unsafe { (kern.tile)(kc, a_panel.as_ptr(), b_panel.as_ptr(), c.get().add(i * ldc + j), ldc, block.accumulate) };
        return;
    }
    let mut tile = [0.0f32; MAX_TILE];
    // SAFETY: `tile` holds MR rows of NR floats (ldc = NR), as MR*NR <= MAX_TILE.
    unsafe { (kern.tile)(kc, a_panel.as_ptr(), b_panel.as_ptr(), tile.as_mut_ptr(), nr, false) };
    for (r, tile_row) in tile.chunks_exact(nr).take(live_rows).enumerate() {
        // SAFETY: row i+r < m and columns j..j+live_cols < n lie inside C and belong to
        // this task only.
        let c_row = unsafe { std::slice::from_raw_parts_mut(c.get().add((i + r) * ldc + j), live_cols) };
        for (c, &t) in c_row.iter_mut().zip(tile_row) {
            *c = if block.accumulate { *c + t } else { t };
        }
    }
}

/// A 64-byte-aligned run of 16 floats, so packed panels start on a cache line and the
/// kernels' vector loads never straddle two lines.
#[repr(C, align(64))]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct CacheLine([f32; 16]);

thread_local! {
    /// The packed B block of the GEMMs this thread calls.
    static B_PACK: Cell<Vec<CacheLine>> = const { Cell::new(Vec::new()) };
    /// The packed rows of A of the tasks this thread runs.
    static A_PACK: Cell<Vec<CacheLine>> = const { Cell::new(Vec::new()) };
}

/// Runs `f` on a 64-byte-aligned scratch slice of `len` floats, reusing this thread's buffer
/// across calls. The buffer is taken out of its slot meanwhile, so a nested GEMM (a task
/// that itself calls sgemm) finds the slot empty and allocates its own instead of aliasing.
fn with_scratch<R>(
    slot: &'static LocalKey<Cell<Vec<CacheLine>>>,
    len: usize,
    f: impl FnOnce(&mut [f32]) -> R,
) -> R {
    let mut buf = slot.take();
    if buf.len() * 16 < len {
        buf.resize(len.div_ceil(16), CacheLine([0.0; 16]));
    }
    let floats: &mut [f32] = bytemuck::cast_slice_mut(&mut buf);
    let result = f(&mut floats[..len]);
    slot.set(buf);
    result
}
