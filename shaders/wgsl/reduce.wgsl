// reduce.wgsl: reductions along one dim of a contiguous f32 tensor viewed as (outer, d, inner).
//
// Output element (o, i) reduces x[o·d·inner + j·inner + i] over j < d with `op`:
//   0 sum, 1 mean, 2 max, 3 min, 4 var (unbiased, divides by d - 1), 5 argmax (first maximum,
//   written as an f32 index; exact below 2^24, the front end converts it to i32).
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
const NEG_INF: f32 = -3.40282347e38;
const POS_INF: f32 = 3.40282347e38;

var<workgroup> partial: array<f32, 256>;
var<workgroup> partial_index: array<u32, 256>;

// Combines partial `other` into `slot` for op; for argmax the lower index wins ties.
fn combine(slot: u32, other: u32) {
    let a = partial[slot];
    let b = partial[other];
    switch params.op {
        case 2u: { partial[slot] = max(a, b); }
        case 3u: { partial[slot] = min(a, b); }
        case 5u: {
            let ia = partial_index[slot];
            let ib = partial_index[other];
            if (b > a || (b == a && ib < ia)) {
                partial[slot] = b;
                partial_index[slot] = ib;
            }
        }
        default: { partial[slot] = a + b; }
    }
}

// Tree reduction of the 256 partials; the result ends in partial[0].
fn reduce_workgroup(lid: u32) {
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
    var acc = 0.0;
    var best = NEG_INF;
    var best_index = 0xffffffffu;
    if (params.op == 3u) {
        best = POS_INF;
    }
    for (var j = lid; j < params.d; j = j + WORKGROUP) {
        let v = x[base + j];
        if (squares) {
            acc = acc + (v - shift) * (v - shift);
        } else if (params.op == 2u || params.op == 5u) {
            if (v > best || best_index == 0xffffffffu) {
                best = v;
                best_index = j;
            }
        } else if (params.op == 3u) {
            best = min(best, v);
        } else {
            acc = acc + v;
        }
    }
    let is_extreme = !squares && (params.op == 2u || params.op == 3u || params.op == 5u);
    partial[lid] = select(acc, best, is_extreme);
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
    reduce_workgroup(lid);
    let total = partial[0];
    var result = total;
    switch params.op {
        case 1u: { result = total / n; }
        case 4u: {
            let mean = total / n;
            workgroupBarrier();
            row_partial(base, lid, true, mean);
            reduce_workgroup(lid);
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
    var best = x[base];
    var best_index = 0u;
    for (var j = 0u; j < params.d; j = j + 1u) {
        let v = x[base + j * params.inner];
        acc = acc + v;
        if (params.op == 3u) {
            best = min(best, v);
        } else if (v > best) {
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
