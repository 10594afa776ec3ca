// layer_norm.wgsl: layer normalisation over the last dim of a contiguous f32 (rows, C) tensor,
// the forward followed by its backward.
//
// layer_norm_forward, per row: mean = Σx / C, var = Σ (x - mean)² / C (biased, two passes for
// stability), rstd = 1 / sqrt(var + eps), y = (x - mean) · rstd · weight + bias. Saves mean
// and rstd per row for the backward pass, as the CPU kernel does.
// layer_norm_backward, per row, with xhat = (x - mean) · rstd and g = dy · weight:
// dx = rstd · (g - mean_C(g) - xhat · mean_C(g · xhat)).
// layer_norm_params_backward: dweight = Σ_rows dy · xhat, dbias = Σ_rows dy.
//
// One workgroup of 256 handles one row (forward and layer_norm_backward): strided partial
// sums, then tree reductions in workgroup memory (`workgroup_reduce`). layer_norm_params_backward
// has one workgroup per block of 32 columns, whose 8 lanes of 32 invocations each sum every 8th
// row (neighbouring invocations read neighbouring columns) before a tree reduction over the
// lanes; both sums run in a fixed order, so the gradients are deterministic.
// Bindings (each entry point uses the ones its formula names): 0 `params` (uniform), 1 `x`,
// 2 `weight` (C), 3 `bias` (C), 7 `dy` (storage, read); 4 `y`, 5 `mean` (rows), 6 `rstd`
// (rows) (storage, read_write: the forward writes them, the backward reads mean and rstd);
// 8 `dx`, 9 `dweight` (C), 10 `dbias` (C) (storage, read_write).
// Grids over 65,535 rows are 2-D: row = workgroup.x + workgroup.y · num_workgroups.x.

struct Params {
    rows: u32,
    c: u32,
    eps: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read_write> mean: array<f32>;
@group(0) @binding(6) var<storage, read_write> rstd: array<f32>;
@group(0) @binding(7) var<storage, read> dy: array<f32>;
@group(0) @binding(8) var<storage, read_write> dx: array<f32>;
@group(0) @binding(9) var<storage, read_write> dweight: array<f32>;
@group(0) @binding(10) var<storage, read_write> dbias: array<f32>;

const WORKGROUP: u32 = 256u;
// layer_norm_params_backward: a workgroup is COLUMNS columns × LANES row lanes.
const COLUMNS: u32 = 32u;
const LANES: u32 = 8u;

var<workgroup> partial: array<f32, 256>;
var<workgroup> partial_b: array<f32, 256>;

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

@compute @workgroup_size(256)
fn layer_norm_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * groups.x;
    if (row >= params.rows) {
        return;
    }
    let base = row * params.c;
    let n = f32(params.c);
    var s = 0.0;
    for (var j = lid; j < params.c; j = j + WORKGROUP) {
        s = s + x[base + j];
    }
    let m = workgroup_reduce(lid, s, false) / n;
    var sq = 0.0;
    for (var j = lid; j < params.c; j = j + WORKGROUP) {
        let v = x[base + j] - m;
        sq = sq + v * v;
    }
    let r = 1.0 / sqrt(workgroup_reduce(lid, sq, false) / n + params.eps);
    for (var j = lid; j < params.c; j = j + WORKGROUP) {
        y[base + j] = (x[base + j] - m) * r * weight[j] + bias[j];
    }
    if (lid == 0u) {
        mean[row] = m;
        rstd[row] = r;
    }
}

@compute @workgroup_size(256)
fn layer_norm_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                       @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * groups.x;
    if (row >= params.rows) {
        return;
    }
    let base = row * params.c;
    let m = mean[row];
    let r = rstd[row];
    var g_sum = 0.0;
    var gx_sum = 0.0;
    for (var j = lid; j < params.c; j = j + WORKGROUP) {
        let g = dy[base + j] * weight[j];
        g_sum = g_sum + g;
        gx_sum = gx_sum + g * ((x[base + j] - m) * r);
    }
    let n = f32(params.c);
    let g_mean = workgroup_reduce(lid, g_sum, false) / n;
    let gx_mean = workgroup_reduce(lid, gx_sum, false) / n;
    for (var j = lid; j < params.c; j = j + WORKGROUP) {
        let xhat = (x[base + j] - m) * r;
        dx[base + j] = r * (dy[base + j] * weight[j] - g_mean - xhat * gx_mean);
    }
}

@compute @workgroup_size(256)
fn layer_norm_params_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                              @builtin(local_invocation_index) lid: u32) {
    let block = wid.x + wid.y * groups.x;
    let col = block * COLUMNS + lid % COLUMNS;
    let lane = lid / COLUMNS;
    var dw = 0.0;
    var db = 0.0;
    if (col < params.c) {
        for (var row = lane; row < params.rows; row = row + LANES) {
            let at = row * params.c + col; // element (row, col) of the (rows, C) dy and x
            let g = dy[at];
            dw = dw + g * ((x[at] - mean[row]) * rstd[row]);
            db = db + g;
        }
    }
    partial[lid] = dw;
    partial_b[lid] = db;
    // Lane l's slot for this column is lid = l · COLUMNS + column; fold the upper lanes down.
    for (var stride = LANES / 2u; stride > 0u; stride = stride / 2u) {
        workgroupBarrier();
        if (lane < stride) {
            partial[lid] = partial[lid] + partial[lid + stride * COLUMNS];
            partial_b[lid] = partial_b[lid] + partial_b[lid + stride * COLUMNS];
        }
    }
    if (lane == 0u && col < params.c) {
        dweight[col] = partial[lid];
        dbias[col] = partial_b[lid];
    }
}
