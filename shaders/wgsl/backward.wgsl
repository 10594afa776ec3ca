// backward.wgsl: gradients of the row and pointwise kernels (softmax.wgsl, layer_norm.wgsl,
// loss.wgsl, the GELUs of elementwise.wgsl), on contiguous f32 (rows, C) tensors, as the CPU's
// cpu::backward.
//
//   softmax_backward:           dx = y · (dy - Σ_j dy_j · y_j)            (y = softmax output)
//   log_softmax_backward:       dx = dy - exp(y) · Σ_j dy_j               (y = log-softmax output)
//   layer_norm_backward:        with xhat = (x - mean) · rstd and g = dy · weight,
//                               dx = rstd · (g - mean_C(g) - xhat · mean_C(g · xhat))
//   layer_norm_params_backward: dweight = Σ_rows dy · xhat, dbias = Σ_rows dy
//   gelu_backward:              dx = dy · (Φ(x) + x · φ(x))
//   gelu_tanh_backward:         dx = dy · d/dx [x/2 · (1 + tanh u)], u = √(2/π)(x + 0.044715 x³)
//   cross_entropy_backward:     dx = (softmax(logits_row) - onehot(target)) · dloss / n_kept on
//                               kept rows, 0 on rows whose target is `ignore_index`, with
//                               n_kept = max(1, rows not ignored), so that all-ignored gives 0.
//
// One invocation per element for the GELUs (linear index x + y · num_workgroups.x · 256);
// one workgroup of 256 per row for the row kernels (row = workgroup.x + workgroup.y ·
// num_workgroups.x), with tree reductions in workgroup memory; for layer_norm_params_backward
// one workgroup per block of 32 columns, whose 8 lanes of 32 invocations each sum every 8th row
// (neighbouring invocations read neighbouring columns) before a tree reduction over the lanes.
// cross_entropy_backward has every workgroup count the kept rows itself (rows / 256 loads per
// invocation), so nothing is read back; the count is exact in f32 below 2^24 rows.
// Targets are checked on the host (0 <= t < C or t == ignore_index).
//
// Bindings (each entry point uses the ones its formula names): 0 `params` (uniform);
// 1 `x` (the forward's input: layer norm's x, GELU's x, cross-entropy's logits), 2 `y` (the
// forward's output: softmax, log-softmax), 3 `dy` (the upstream gradient; one element, dloss,
// for cross-entropy), 5 `weight` (C), 6 `mean`, 7 `rstd` (rows), 10 `targets` (i32, rows)
// (storage, read); 4 `dx`, 8 `dweight`, 9 `dbias` (C) (storage, read_write).

struct Params {
    rows: u32,
    c: u32,
    numel: u32,
    ignore_index: i32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;
@group(0) @binding(5) var<storage, read> weight: array<f32>;
@group(0) @binding(6) var<storage, read> mean: array<f32>;
@group(0) @binding(7) var<storage, read> rstd: array<f32>;
@group(0) @binding(8) var<storage, read_write> dweight: array<f32>;
@group(0) @binding(9) var<storage, read_write> dbias: array<f32>;
@group(0) @binding(10) var<storage, read> targets: array<i32>;

const WORKGROUP: u32 = 256u;
// layer_norm_params_backward: a workgroup is COLUMNS columns × LANES row lanes.
const COLUMNS: u32 = 32u;
const LANES: u32 = 8u;

var<workgroup> partial: array<f32, 256>;
var<workgroup> partial_b: array<f32, 256>;

// Reduces `value` across the workgroup with max (use_max) or +; every invocation gets the result.
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
fn softmax_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * groups.x;
    if (row >= params.rows) {
        return;
    }
    let base = row * params.c;
    var s = 0.0;
    for (var j = lid; j < params.c; j = j + WORKGROUP) {
        s = s + y[base + j] * dy[base + j];
    }
    let dot = workgroup_reduce(lid, s, false);
    for (var j = lid; j < params.c; j = j + WORKGROUP) {
        dx[base + j] = y[base + j] * (dy[base + j] - dot);
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
        dx[base + j] = dy[base + j] - exp(y[base + j]) * total;
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

fn linear_index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * WORKGROUP;
}

// Φ(x) and φ(x) sharing one exp(-x²/2), as the CPU: Φ(-|x|) = erfc(|x|/√2) / 2 with the
// Chebyshev fit erfc(z) = t · exp(-z² + P(t)), t = 1 / (1 + z/2) (relative error < 1.2e-7).
fn normal_cdf_pdf(v: f32) -> vec2<f32> {
    let z = abs(v) * 0.70710678;
    let t = 1.0 / (1.0 + 0.5 * z);
    let p = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806
        + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
    let gauss = exp(-z * z); // exp(-x²/2)
    let tail = 0.5 * t * gauss * exp(p);
    return vec2<f32>(select(tail, 1.0 - tail, v >= 0.0), gauss * 0.39894228);
}

@compute @workgroup_size(256)
fn gelu_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = linear_index(gid, groups);
    if (i >= params.numel) {
        return;
    }
    let v = x[i];
    let cdf_pdf = normal_cdf_pdf(v);
    dx[i] = dy[i] * (cdf_pdf.x + v * cdf_pdf.y);
}

@compute @workgroup_size(256)
fn gelu_tanh_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = linear_index(gid, groups);
    if (i >= params.numel) {
        return;
    }
    let v = x[i];
    let u = 0.7978846 * (v + 0.044715 * v * v * v);
    // 1 + t and 1 - t from e = exp(-2|u|), never from t: in the tails t ≈ ±1 and they cancel.
    let e = exp(-2.0 * abs(u));
    let near = 2.0 / (1.0 + e);
    let far = 2.0 * e / (1.0 + e);
    let one_plus_t = select(far, near, u >= 0.0);
    let one_minus_t = select(near, far, u >= 0.0);
    let du = 0.7978846 * (1.0 + 3.0 * 0.044715 * v * v);
    dx[i] = dy[i] * (0.5 * one_plus_t + 0.5 * v * (one_plus_t * one_minus_t) * du);
}

@compute @workgroup_size(256)
fn cross_entropy_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                          @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * groups.x;
    if (row >= params.rows) {
        return;
    }
    var kept = 0.0;
    for (var i = lid; i < params.rows; i = i + WORKGROUP) {
        kept = kept + select(0.0, 1.0, targets[i] != params.ignore_index);
    }
    let scale = dy[0] / max(workgroup_reduce(lid, kept, false), 1.0);
    let base = row * params.c;
    var m = -3.40282347e38;
    for (var j = lid; j < params.c; j = j + WORKGROUP) {
        m = max(m, x[base + j]);
    }
    let row_max = workgroup_reduce(lid, m, true);
    var s = 0.0;
    for (var j = lid; j < params.c; j = j + WORKGROUP) {
        s = s + exp(x[base + j] - row_max);
    }
    let lse = row_max + log(workgroup_reduce(lid, s, false));
    let t = targets[row];
    let ignored = t == params.ignore_index;
    for (var j = lid; j < params.c; j = j + WORKGROUP) {
        // p_j · scale, minus scale at the target: the CPU's order of operations.
        let d = exp(x[base + j] - lse) * scale;
        dx[base + j] = select(select(d, d - scale, i32(j) == t), 0.0, ignored);
    }
}
