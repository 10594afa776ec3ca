// rms_norm.wgsl: RMSNorm over the last dim of a contiguous f32 (rows, C) tensor, as
// transformers' LlamaRMSNorm in f32, the forward followed by its backward.
//
// rms_norm_forward, per row: rstd = 1 / sqrt(Σ x² / C + eps), y = (x · rstd) · weight. Saves
// rstd per row for the backward pass, as the CPU kernel does.
// rms_norm_backward, per row, with xhat = x · rstd and g = dy · weight:
// dx = rstd · (g - xhat · mean_C(g · xhat)).
// rms_norm_weight_backward: dweight = Σ_rows dy · xhat.
//
// One workgroup of 256 handles one row (forward and rms_norm_backward): strided partial sums,
// then a tree reduction in workgroup memory (`workgroup_reduce`). rms_norm_weight_backward has
// one workgroup per block of 32 columns, whose 8 lanes of 32 invocations each sum every 8th row
// before a tree reduction over the lanes, in a fixed order: dweight is deterministic.
// Bindings (each entry point uses the ones its formula names): 0 `params` (uniform), 1 `x`,
// 2 `weight` (C), 5 `dy` (storage, read); 3 `y`, 4 `rstd` (rows) (storage, read_write: the
// forward writes them, the backward reads rstd); 6 `dx`, 7 `dweight` (C) (storage, read_write).
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
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read_write> rstd: array<f32>;
@group(0) @binding(5) var<storage, read> dy: array<f32>;
@group(0) @binding(6) var<storage, read_write> dx: array<f32>;
@group(0) @binding(7) var<storage, read_write> dweight: array<f32>;

const WORKGROUP: u32 = 256u;
// rms_norm_weight_backward: a workgroup is COLUMNS columns × LANES row lanes.
const COLUMNS: u32 = 32u;
const LANES: u32 = 8u;

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

@compute @workgroup_size(256)
fn rms_norm_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * groups.x;
    if (row >= params.rows) {
        return;
    }
    let base = row * params.c;
    var sq = 0.0;
    for (var j = lid; j < params.c; j = j + WORKGROUP) {
        let v = x[base + j];
        sq = sq + v * v;
    }
    let r = 1.0 / sqrt(workgroup_reduce(lid, sq, false) / f32(params.c) + params.eps);
    for (var j = lid; j < params.c; j = j + WORKGROUP) {
        y[base + j] = (x[base + j] * r) * weight[j];
    }
    if (lid == 0u) {
        rstd[row] = r;
    }
}

@compute @workgroup_size(256)
fn rms_norm_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * groups.x;
    if (row >= params.rows) {
        return;
    }
    let base = row * params.c;
    let r = rstd[row];
    var gx_sum = 0.0;
    for (var j = lid; j < params.c; j = j + WORKGROUP) {
        gx_sum = gx_sum + dy[base + j] * weight[j] * (x[base + j] * r);
    }
    let gx_mean = workgroup_reduce(lid, gx_sum, false) / f32(params.c);
    for (var j = lid; j < params.c; j = j + WORKGROUP) {
        let xhat = x[base + j] * r;
        dx[base + j] = r * (dy[base + j] * weight[j] - xhat * gx_mean);
    }
}

@compute @workgroup_size(256)
fn rms_norm_weight_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                            @builtin(local_invocation_index) lid: u32) {
    let block = wid.x + wid.y * groups.x;
    let col = block * COLUMNS + lid % COLUMNS;
    let lane = lid / COLUMNS;
    var dw = 0.0;
    if (col < params.c) {
        for (var row = lane; row < params.rows; row = row + LANES) {
            let at = row * params.c + col; // element (row, col) of the (rows, C) dy and x
            dw = dw + dy[at] * (x[at] * rstd[row]);
        }
    }
    partial[lid] = dw;
    // Lane l's slot for this column is lid = l · COLUMNS + column; fold the upper lanes down.
    for (var stride = LANES / 2u; stride > 0u; stride = stride / 2u) {
        workgroupBarrier();
        if (lane < stride) {
            partial[lid] = partial[lid] + partial[lid + stride * COLUMNS];
        }
    }
    if (lane == 0u && col < params.c) {
        dweight[col] = partial[lid];
    }
}
