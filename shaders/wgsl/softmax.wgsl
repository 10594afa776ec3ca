// softmax.wgsl: softmax and log-softmax over the last dim of a contiguous f32 (rows, C) tensor.
//
//   softmax:     y = exp(x - max) / Σ exp(x - max)
//   log_softmax: y = (x - max) - log Σ exp(x - max)
// Subtracting the row max keeps every exponent ≤ 0, so nothing overflows.
// One workgroup of 256 handles one row: each invocation strides over the row, and two tree
// reductions in workgroup memory give the max and the sum of exponentials.
// Bindings: 0 `params` (uniform), 1 `x` (storage, read), 2 `y` (storage, read_write).
// Grids over 65,535 rows are 2-D: row = workgroup.x + workgroup.y · num_workgroups.x.

struct Params {
    rows: u32,
    c: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

const WORKGROUP: u32 = 256u;

var<workgroup> partial: array<f32, 256>;

// Tree reduction of `partial` with max (use_max) or +; the result is in partial[0].
fn reduce_workgroup(lid: u32, use_max: bool) {
    for (var stride = WORKGROUP / 2u; stride > 0u; stride = stride / 2u) {
        workgroupBarrier();
        if (lid < stride) {
            let a = partial[lid];
            let b = partial[lid + stride];
            partial[lid] = select(a + b, max(a, b), use_max);
        }
    }
    workgroupBarrier();
}

// The row's max and Σ exp(x - max), reduced across the workgroup.
fn row_stats(base: u32, lid: u32) -> vec2<f32> {
    var m = -3.40282347e38;
    for (var j = lid; j < params.c; j = j + WORKGROUP) {
        m = max(m, x[base + j]);
    }
    partial[lid] = m;
    reduce_workgroup(lid, true);
    let row_max = partial[0];
    workgroupBarrier();
    var s = 0.0;
    for (var j = lid; j < params.c; j = j + WORKGROUP) {
        s = s + exp(x[base + j] - row_max);
    }
    partial[lid] = s;
    reduce_workgroup(lid, false);
    return vec2<f32>(row_max, partial[0]);
}

@compute @workgroup_size(256)
fn softmax_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * groups.x;
    if (row >= params.rows) {
        return;
    }
    let base = row * params.c;
    let stats = row_stats(base, lid);
    let inv = 1.0 / stats.y;
    for (var j = lid; j < params.c; j = j + WORKGROUP) {
        y[base + j] = exp(x[base + j] - stats.x) * inv;
    }
}

@compute @workgroup_size(256)
fn log_softmax_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                       @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * groups.x;
    if (row >= params.rows) {
        return;
    }
    let base = row * params.c;
    let stats = row_stats(base, lid);
    let lse = log(stats.y);
    for (var j = lid; j < params.c; j = j + WORKGROUP) {
        y[base + j] = (x[base + j] - stats.x) - lse;
    }
}
