// cross_entropy.wgsl: mean cross-entropy of contiguous f32 logits (rows, V) against i32
// targets, the forward followed by its backward.
//
// cross_entropy_rows: loss_row = logsumexp(logits_row) - logits_row[target]
// = (max + log Σ exp(x - max)) - x[t], and valid_row = 1; rows whose target equals
// `ignore_index` get loss 0 and valid 0. The host then sums both with reduce.wgsl and divides
// (mean over non-ignored rows, as PyTorch).
// cross_entropy_backward: dlogits = (softmax(logits_row) - onehot(target)) · dloss / n_kept on
// kept rows, 0 on rows whose target is `ignore_index`, with n_kept = max(1, rows not ignored),
// so that all-ignored gives 0. Every workgroup counts the kept rows itself (rows / 256 loads
// per invocation), so nothing is read back; the count is exact in f32 below 2^24 rows.
// Targets are checked on the host (0 <= t < V or t == ignore_index).
// One workgroup of 256 handles one row with tree reductions in workgroup memory
// (`workgroup_reduce`).
// Bindings (each entry point uses the ones its formula names): 0 `params` (uniform),
// 1 `logits` (storage, read), 2 `targets` (storage, read, i32), 3 `loss` (rows), 4 `valid`
// (rows) (storage, read_write), 5 `dloss` (storage, read, one element), 6 `dlogits`
// (storage, read_write, rows × V).
// Grids over 65,535 rows are 2-D: row = workgroup.x + workgroup.y · num_workgroups.x.

struct Params {
    rows: u32,
    v: u32,
    ignore_index: i32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<i32>;
@group(0) @binding(3) var<storage, read_write> loss: array<f32>;
@group(0) @binding(4) var<storage, read_write> valid: array<f32>;
@group(0) @binding(5) var<storage, read> dloss: array<f32>;
@group(0) @binding(6) var<storage, read_write> dlogits: array<f32>;

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

@compute @workgroup_size(256)
fn cross_entropy_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * groups.x;
    if (row >= params.rows) {
        return;
    }
    let base = row * params.v;
    var m = -3.40282347e38;
    for (var j = lid; j < params.v; j = j + WORKGROUP) {
        m = max(m, logits[base + j]);
    }
    let row_max = workgroup_reduce(lid, m, true);
    var s = 0.0;
    for (var j = lid; j < params.v; j = j + WORKGROUP) {
        s = s + exp(logits[base + j] - row_max);
    }
    let total = workgroup_reduce(lid, s, false);
    if (lid == 0u) {
        let t = targets[row];
        let ignored = t == params.ignore_index;
        let picked = logits[base + u32(select(t, 0, ignored))];
        loss[row] = select((row_max + log(total)) - picked, 0.0, ignored);
        valid[row] = select(1.0, 0.0, ignored);
    }
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
    let scale = dloss[0] / max(workgroup_reduce(lid, kept, false), 1.0);
    let base = row * params.v;
    var m = -3.40282347e38;
    for (var j = lid; j < params.v; j = j + WORKGROUP) {
        m = max(m, logits[base + j]);
    }
    let row_max = workgroup_reduce(lid, m, true);
    var s = 0.0;
    for (var j = lid; j < params.v; j = j + WORKGROUP) {
        s = s + exp(logits[base + j] - row_max);
    }
    let lse = row_max + log(workgroup_reduce(lid, s, false));
    let t = targets[row];
    let ignored = t == params.ignore_index;
    for (var j = lid; j < params.v; j = j + WORKGROUP) {
        // p_j · scale, minus scale at the target: the CPU's order of operations.
        let d = exp(logits[base + j] - lse) * scale;
        dlogits[base + j] = select(select(d, d - scale, i32(j) == t), 0.0, ignored);
    }
}
