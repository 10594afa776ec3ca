// layer_norm.wgsl: layer normalisation over the last dim of a contiguous f32 (rows, C) tensor.
//
// Per row: mean = Σx / C, var = Σ (x - mean)² / C (biased, two passes for stability),
// rstd = 1 / sqrt(var + eps), y = (x - mean) · rstd · weight + bias.
// Saves mean and rstd per row for the backward pass, as the CPU kernel does.
// One workgroup of 256 handles one row: strided partial sums, then tree reductions in
// workgroup memory.
// Bindings: 0 `params` (uniform), 1 `x`, 2 `weight` (C), 3 `bias` (C) (storage, read),
// 4 `y`, 5 `mean` (rows), 6 `rstd` (rows) (storage, read_write).
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

const WORKGROUP: u32 = 256u;

var<workgroup> partial: array<f32, 256>;

// Sums `partial` across the workgroup; every invocation gets the total.
fn workgroup_sum(lid: u32, value: f32) -> f32 {
    partial[lid] = value;
    for (var stride = WORKGROUP / 2u; stride > 0u; stride = stride / 2u) {
        workgroupBarrier();
        if (lid < stride) {
            partial[lid] = partial[lid] + partial[lid + stride];
        }
    }
    workgroupBarrier();
    let total = partial[0];
    workgroupBarrier(); // partial is reused by the next call
    return total;
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
    let m = workgroup_sum(lid, s) / n;
    var sq = 0.0;
    for (var j = lid; j < params.c; j = j + WORKGROUP) {
        let v = x[base + j] - m;
        sq = sq + v * v;
    }
    let r = 1.0 / sqrt(workgroup_sum(lid, sq) / n + params.eps);
    for (var j = lid; j < params.c; j = j + WORKGROUP) {
        y[base + j] = (x[base + j] - m) * r * weight[j] + bias[j];
    }
    if (lid == 0u) {
        mean[row] = m;
        rstd[row] = r;
    }
}
