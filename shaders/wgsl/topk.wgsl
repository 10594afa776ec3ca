// topk.wgsl: the k largest elements of each row of a contiguous f32 (rows, n) tensor, and their
// indices, by bitonic networks over (key, index) pairs.
//
// Order (the same total order as the CPU kernel): larger values first; equal values (and
// -0 with +0) by lower index; NaN below -inf. A row's elements become pairs (key, index) with
// a u32 key that orders like the floats:
//   NaN → 0;   x with the sign bit set → !bits(x);   otherwise → bits(x) | 0x8000_0000
// (-0 is first made +0, so that the two tie). Negative floats order backwards by their bits,
// hence the complement; -inf → 0x007f_ffff > 0, so NaN ranks below it. Each row is padded to
// p = next power of two ≥ n with pairs (0, j) for j ≥ n: key 0 like NaN, but a larger index
// than any real element, so pads sort after everything.
// Descending by key and then ascending by index is a strict total order (indices are unique
// in a row), so the sorted row, and with it the output, is fully determined.
//
// Bitonic sort of a row of p = 2^m pairs: for each stage size = 2, 4, …, p and each step
// j = size/2, …, 2, 1, every position i with bit j clear is compared with i + j and the two
// are swapped when out of order, where "in order" is the final (descending) order when bit
// `size` of i is clear and the reverse when it is set; after the last stage the row is sorted.
// Every step is one pass over the pairs with no data-dependent control flow, exact for any k,
// with no atomics. Two plans use it:
//
// Small k (K = next power of two ≥ k, K ≤ 256): bitonic top-k. Sorting runs of K with
// alternating directions (the stages up to K) makes every two neighbouring runs one bitonic
// sequence of 2K; comparing position i with i + K and keeping the better (a bitonic split)
// leaves that pair's best K, itself bitonic, which the steps K/2 … 1 sort again. Each split
// halves the data, so a workgroup turns 512 pairs into its best K in workgroup memory, and
// each dispatch (topk_reduce_local) shrinks a row by 512/K until K pairs are left:
// O(n log² K) work in max(1, ⌈log(p/K) / log(512/K)⌉) dispatches (n = 4096, k = 5: two).
// (Two runs of K must fit one block of 512, hence K ≤ 256.)
// Large k (K ≥ 512): a full bitonic sort of the padded row, m(m+1)/2 steps of p/2
// compare-exchanges, O(n log² n) work: topk_sort_local for every stage up to 512 at once,
// then per later stage its steps j ≥ 512 by topk_sort_step and the rest by topk_sort_local.
// More work than a selection, but simple and deterministic, and a k that large is rare
// (n = 4096: 10 dispatches).
//
// Entry points (rows are independent and packed back to back, so one grid covers all rows):
//   topk_keys:         one invocation per padded position (row, j < p): writes pairs[row·p + j].
//   topk_reduce_local: one workgroup of 256 per block of 512 pairs of rows of length p (whole
//                      rows when p ≤ 512): each segment of min(p, 512) pairs becomes its best
//                      K pairs, sorted, in `survivors` (rows of length p / min(p, 512) · K).
//   topk_sort_local:   one workgroup of 256 per block of 512 consecutive pairs, sorted in
//                      workgroup memory: stages size = params.size … params.size_end, each with
//                      its steps j = min(size/2, 256) … 1 (a step j < 512 never leaves a block).
//   topk_sort_step:    one invocation per compare-exchange of step params.step of stage
//                      params.size, in global memory (steps j ≥ 512).
//   topk_gather:       one invocation per output (row, r < k): the index of sorted pair r (rows
//                      of length params.p in `pairs`), and the value read back from x
//                      (bit-exact, not decoded from the key).
// Bindings: 0 `params` (uniform), 1 `x` (storage, read: keys and gather), 2 `pairs` (storage,
// read_write, vec2<u32> = (key, index)), 3 `values` (storage, read_write, rows·k f32),
// 4 `indices` (storage, read_write, rows·k i32; gather only), 5 `survivors` (storage,
// read_write, vec2<u32>; reduce only).
// Grids over 65,535 workgroups are 2-D: workgroup = x + y · num_workgroups.x.

struct Params {
    rows: u32,
    n: u32,
    p: u32,
    k: u32,
    size: u32,
    size_end: u32,
    step: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> pairs: array<vec2<u32>>;
@group(0) @binding(3) var<storage, read_write> values: array<f32>;
@group(0) @binding(4) var<storage, read_write> indices: array<i32>;
@group(0) @binding(5) var<storage, read_write> survivors: array<vec2<u32>>;

const WORKGROUP: u32 = 256u;
// Pairs per workgroup in topk_sort_local: one compare-exchange per invocation.
const BLOCK: u32 = 512u;

var<workgroup> block: array<vec2<u32>, 512>;

fn linear_index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * WORKGROUP;
}

// The u32 key of a float, ordered like the floats with NaN lowest (see the header). On the
// bits: WGSL lets compilers assume no NaN, so float comparisons cannot be trusted to see one.
fn sort_key(v: f32) -> u32 {
    var bits = bitcast<u32>(v);
    if ((bits & 0x7fffffffu) > 0x7f800000u) {
        return 0u;
    }
    if (bits == 0x80000000u) {
        bits = 0u;
    }
    if ((bits & 0x80000000u) != 0u) {
        return ~bits;
    }
    return bits | 0x80000000u;
}

// Whether pair a comes before pair b in the final order: larger key, then lower index.
fn before(a: vec2<u32>, b: vec2<u32>) -> bool {
    return a.x > b.x || (a.x == b.x && a.y < b.y);
}

// Position of compare-exchange t of step j: t with a zero bit inserted at bit j, so that t
// runs over the positions whose bit j is clear (their partner is i + j).
fn lower_position(t: u32, j: u32) -> u32 {
    return ((t & ~(j - 1u)) << 1u) | (t & (j - 1u));
}

// Whether the pairs at row positions i < l = i + j must swap in stage `size`: blocks of
// `size` with bit `size` of i clear are sorted into the final order, the others reversed, so
// that each pair of neighbouring blocks forms a bitonic sequence for the next stage.
fn must_swap(a: vec2<u32>, b: vec2<u32>, i: u32, size: u32) -> bool {
    let descending = (i & size) == 0u;
    return select(before(a, b), before(b, a), descending);
}

@compute @workgroup_size(256)
fn topk_keys(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let q = linear_index(gid, groups);
    if (q >= params.rows * params.p) {
        return;
    }
    let row = q / params.p;
    let j = q % params.p;
    var key = 0u;
    if (j < params.n) {
        key = sort_key(x[row * params.n + j]);
    }
    pairs[q] = vec2<u32>(key, j);
}

// Sorts the runs of `run` pairs in block[0 .. count) (each bitonic after a split, or in any
// order when `stages` is set: then all stages up to `run` run) for segments of length `seg`:
// run r of a segment into the final order when r is even, reversed when odd, or the final
// order alone when the segment is one run.
fn sort_runs(lid: u32, count: u32, run: u32, seg: u32, stages: bool) {
    var size = select(run, 2u, stages);
    for (; size <= run; size = size * 2u) {
        for (var j = size / 2u; j > 0u; j = j / 2u) {
            workgroupBarrier();
            let i = lower_position(lid, j);
            if (i + j < count) {
                let a = block[i];
                let b = block[i + j];
                if (must_swap(a, b, i & (seg - 1u), size)) {
                    block[i] = b;
                    block[i + j] = a;
                }
            }
        }
    }
}

@compute @workgroup_size(256)
fn topk_reduce_local(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let total = params.rows * params.p;
    let base = (wid.x + wid.y * groups.x) * BLOCK;
    if (base >= total) {
        return; // uniform per workgroup, so the barriers below stay in uniform control flow
    }
    let run = params.size; // K
    // Segments are powers of two dividing 512, so a block holds whole ones.
    let first_seg = min(params.p, BLOCK);
    var seg = first_seg;
    var count = min(BLOCK, total - base);
    for (var e = lid; e < count; e = e + WORKGROUP) {
        block[e] = pairs[base + e];
    }
    sort_runs(lid, count, run, seg, true);
    while (seg > run) {
        // Split: run pair r (runs 2r and 2r + 1, one bitonic sequence) keeps its best K at r·K.
        workgroupBarrier();
        count = count / 2u;
        seg = seg / 2u;
        var kept = vec2<u32>(0u, 0u);
        if (lid < count) {
            let first = (lid / run) * 2u * run + lid % run;
            let a = block[first];
            let b = block[first + run];
            kept = select(b, a, before(a, b));
        }
        workgroupBarrier();
        if (lid < count) {
            block[lid] = kept;
        }
        sort_runs(lid, count, run, seg, false);
    }
    workgroupBarrier();
    let out_base = (base / first_seg) * run; // K survivors for each earlier segment
    for (var e = lid; e < count; e = e + WORKGROUP) {
        survivors[out_base + e] = block[e];
    }
}

@compute @workgroup_size(256)
fn topk_sort_local(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let total = params.rows * params.p;
    let base = (wid.x + wid.y * groups.x) * BLOCK;
    if (base >= total) {
        return; // uniform per workgroup, so the barriers below stay in uniform control flow
    }
    // A block is whole rows (p ≤ 512) or part of one row (p a multiple of 512), so a pair is
    // either wholly inside the buffer or wholly past its end.
    for (var e = lid; e < BLOCK; e = e + WORKGROUP) {
        if (base + e < total) {
            block[e] = pairs[base + e];
        }
    }
    for (var size = params.size; size <= params.size_end; size = size * 2u) {
        for (var j = min(size / 2u, BLOCK / 2u); j > 0u; j = j / 2u) {
            workgroupBarrier();
            let i = lower_position(lid, j);
            // Stage direction depends on the position within the row.
            let in_row = (base + i) & (params.p - 1u);
            if (base + i + j < total) {
                let a = block[i];
                let b = block[i + j];
                if (must_swap(a, b, in_row, size)) {
                    block[i] = b;
                    block[i + j] = a;
                }
            }
        }
    }
    workgroupBarrier();
    for (var e = lid; e < BLOCK; e = e + WORKGROUP) {
        if (base + e < total) {
            pairs[base + e] = block[e];
        }
    }
}

@compute @workgroup_size(256)
fn topk_sort_step(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let t = linear_index(gid, groups);
    let half_p = params.p / 2u;
    if (t >= params.rows * half_p) {
        return;
    }
    let row = t / half_p;
    let i = lower_position(t % half_p, params.step);
    let lo = row * params.p + i;
    let hi = lo + params.step;
    let a = pairs[lo];
    let b = pairs[hi];
    if (must_swap(a, b, i, params.size)) {
        pairs[lo] = b;
        pairs[hi] = a;
    }
}

@compute @workgroup_size(256)
fn topk_gather(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let q = linear_index(gid, groups);
    if (q >= params.rows * params.k) {
        return;
    }
    let row = q / params.k;
    let r = q % params.k;
    let j = pairs[row * params.p + r].y;
    values[q] = x[row * params.n + j];
    indices[q] = i32(j);
}
