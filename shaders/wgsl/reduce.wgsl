// reduce.wgsl: reductions along one dim of a contiguous f32 tensor viewed as (outer, d, inner).
//
// Output element (o, i) reduces x[o·d·inner + j·inner + i] over j < d with `op`:
//   0 sum, 1 mean, 2 max, 3 min, 4 var (unbiased, divides by d - 1), 5 argmax (first maximum,
//   written as an f32 index; exact below 2^24, the front end converts it to i32).
// max, min and argmax follow the CPU: a NaN wins (the first NaN for argmax), and a row of -inf
// has max -inf and argmax 0 (no sentinel value takes part in the comparisons).
// Two entry points, one per loop order:
//   reduce_rows     (inner == 1): one workgroup of 256 per output; each invocation strides over
//                   the row, then a tree reduction in workgroup memory combines the 256 partials.
//                   var runs two such passes (the mean, then Σ (x - mean)²) for stability.
//   reduce_columns  (inner > 1): one invocation per output (o, i), looping over j; neighbouring
//                   invocations read neighbouring addresses, so loads coalesce.
// Bindings: 0 `params` (uniform), 1 `x` (storage, read), 2 `out` (storage, read_write,
// outer·inner elements). Grids over 65,535 workgroups are 2-D: group = x + y · num_workgroups.x.

struct Params {
    outer: u32,
    d: u32,
    inner: u32,
    op: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

const WORKGROUP: u32 = 256u;
// partial_index of an invocation that saw no element of the row: it never wins a comparison.
const EMPTY: u32 = 0xffffffffu;

var<workgroup> partial: array<f32, 256>;
var<workgroup> partial_index: array<u32, 256>;

fn is_extreme_op() -> bool {
    return params.op == 2u || params.op == 3u || params.op == 5u;
}

// NaN test on the bits: `v != v` may be folded to false, since WGSL lets compilers assume no NaN.
fn is_nan(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

// Whether v replaces the running extreme `best` (larger for max/argmax, smaller for min).
// NaN wins and then stays, as the CPU's NaN-propagating max/min and PyTorch's argmax.
fn beats(v: f32, best: f32) -> bool {
    if (is_nan(best)) {
        return false;
    }
    if (is_nan(v)) {
        return true;
    }
    return select(v > best, v < best, params.op == 3u);
}

// Combines partial `other` into `slot`: + for sums; for extremes the better value, the lower
// index on ties (so the first maximum wins), and never an EMPTY partial.
fn combine(slot: u32, other: u32) {
    let a = partial[slot];
    let b = partial[other];
    if (!is_extreme_op()) {
        partial[slot] = a + b;
        return;
    }
    let ia = partial_index[slot];
    let ib = partial_index[other];
    let tie = a == b || (is_nan(a) && is_nan(b));
    if (ib != EMPTY && (ia == EMPTY || beats(b, a) || (tie && ib < ia))) {
        partial[slot] = b;
        partial_index[slot] = ib;
    }
}

// Tree reduction of the 256 partials; the result ends in partial[0]. The row kernels' one
// helper is `workgroup_reduce(lid, value, use_max)`; this file's carries each partial's index
// too (argmax, and max/min with NaN and the first-maximum tie rule), so it has its own shape.
fn workgroup_reduce_indexed(lid: u32) {
    for (var stride = WORKGROUP / 2u; stride > 0u; stride = stride / 2u) {
        workgroupBarrier();
        if (lid < stride) {
            combine(lid, lid + stride);
        }
    }
    workgroupBarrier();
}

// This invocation's partial over row[base ..] for op (sum of (x - shift)² when squares).
fn row_partial(base: u32, lid: u32, squares: bool, shift: f32) {
    let extreme = !squares && is_extreme_op();
    var acc = 0.0;
    var best = 0.0;
    var best_index = EMPTY;
    for (var j = lid; j < params.d; j = j + WORKGROUP) {
        let v = x[base + j];
        if (squares) {
            acc = acc + (v - shift) * (v - shift);
        } else if (extreme) {
            if (best_index == EMPTY || beats(v, best)) {
                best = v;
                best_index = j;
            }
        } else {
            acc = acc + v;
        }
    }
    partial[lid] = select(acc, best, extreme);
    partial_index[lid] = best_index;
}

@compute @workgroup_size(256)
fn reduce_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * groups.x;
    if (row >= params.outer) {
        return; // uniform per workgroup, so barriers stay in uniform control flow
    }
    let base = row * params.d;
    let n = f32(params.d);
    row_partial(base, lid, false, 0.0);
    workgroup_reduce_indexed(lid);
    let total = partial[0];
    var result = total;
    switch params.op {
        case 1u: { result = total / n; }
        case 4u: {
            let mean = total / n;
            workgroupBarrier();
            row_partial(base, lid, true, mean);
            workgroup_reduce_indexed(lid);
            result = partial[0] / (n - 1.0);
        }
        case 5u: { result = f32(partial_index[0]); }
        default: {}
    }
    if (lid == 0u) {
        out[row] = result;
    }
}

@compute @workgroup_size(256)
fn reduce_columns(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let index = gid.x + gid.y * groups.x * WORKGROUP;
    if (index >= params.outer * params.inner) {
        return;
    }
    let o = index / params.inner;
    let i = index % params.inner;
    let base = o * params.d * params.inner + i;
    var acc = 0.0;
    var best = x[base]; // the first element, so that no sentinel takes part (rows of -inf)
    var best_index = 0u;
    for (var j = 0u; j < params.d; j = j + 1u) {
        let v = x[base + j * params.inner];
        acc = acc + v;
        if (beats(v, best)) {
            best = v;
            best_index = j;
        }
    }
    let n = f32(params.d);
    var result = acc;
    switch params.op {
        case 1u: { result = acc / n; }
        case 2u, 3u: { result = best; }
        case 4u: {
            let mean = acc / n;
            var sq = 0.0;
            for (var j = 0u; j < params.d; j = j + 1u) {
                let v = x[base + j * params.inner] - mean;
                sq = sq + v * v;
            }
            result = sq / (n - 1.0);
        }
        case 5u: { result = f32(best_index); }
        default: {}
    }
    out[index] = result;
}
