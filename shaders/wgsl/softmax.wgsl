// softmax.wgsl: softmax and log-softmax over the last dim of a contiguous f32 (rows, C) tensor,
// each forward followed by its backward (from the forward's output y and the upstream dy).
//
//   softmax_forward:      y = exp(x - max) / Σ exp(x - max)
//   log_softmax_forward:  y = (x - max) - log Σ exp(x - max)
//   softmax_backward:     dx = y · (dy - Σ_j dy_j · y_j)
//   log_softmax_backward: dx = dy - exp(y) · Σ_j dy_j
// Subtracting the row max keeps every exponent ≤ 0, so nothing overflows.
// One workgroup of 256 handles one row: each invocation strides over the row, and tree
// reductions in workgroup memory (`workgroup_reduce`) give the max, the sums and the dot.
// Bindings (each entry point uses the ones its formula names): 0 `params` (uniform),
// 1 `x` (storage, read), 2 `y` (storage, read_write: the forward's output), 3 `dy` (storage,
// read), 4 `dx` (storage, read_write), 5 `y_saved` (storage, read: the forward's output as the
// backward reads it; read-only, so `y` and `dy` may even be one buffer).
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
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;
@group(0) @binding(5) var<storage, read> y_saved: array<f32>;

const WORKGROUP: u32 = 256u;

var<workgroup> partial: array<f32, 256>;

// Reduces `value` across the workgroup with max (use_max) or +; every invocation gets the
// result. The same helper, by the same name, in every WGSL file that reduces rows.
fn workgroup_reduce(lid: u32, value: f32, use_max: bool) -> f32 {
    partial[lid] = value;
    for (var stride = WORKGROUP / 2u; stride > 0u; stride = stride / 2u) {
        workgroupBarrier();
        if (lid < stride) {
            let a = partial[lid];
            let b = partial[lid + stride];
            partial[lid] = select(a + b, max(a, b), use_max);
        }
    }
    workgroupBarrier();
    let result = partial[0];
    workgroupBarrier(); // partial is reused by the next call
    return result;
}

// The row's max and Σ exp(x - max), reduced across the workgroup.
fn row_stats(base: u32, lid: u32) -> vec2<f32> {
    var m = -3.40282347e38;
    for (var j = lid; j < params.c; j = j + WORKGROUP) {
        m = max(m, x[base + j]);
    }
    let row_max = workgroup_reduce(lid, m, true);
    var s = 0.0;
    for (var j = lid; j < params.c; j = j + WORKGROUP) {
        s = s + exp(x[base + j] - row_max);
    }
    return vec2<f32>(row_max, workgroup_reduce(lid, s, false));
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
fn softmax_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * groups.x;
    if (row >= params.rows) {
        return;
    }
    let base = row * params.c;
    var s = 0.0;
    for (var j = lid; j < params.c; j = j + WORKGROUP) {
        s = s + y_saved[base + j] * dy[base + j];
    }
    let dot = workgroup_reduce(lid, s, false);
    for (var j = lid; j < params.c; j = j + WORKGROUP) {
        dx[base + j] = y_saved[base + j] * (dy[base + j] - dot);
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

@compute @workgroup_size(256)
fn log_softmax_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                        @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * groups.x;
    if (row >= params.rows) {
        return;
    }
    let base = row * params.c;
    var s = 0.0;
    for (var j = lid; j < params.c; j = j + WORKGROUP) {
        s = s + dy[base + j];
    }
    let total = workgroup_reduce(lid, s, false);
    for (var j = lid; j < params.c; j = j + WORKGROUP) {
        dx[base + j] = dy[base + j] - exp(y_saved[base + j]) * total;
    }
}
