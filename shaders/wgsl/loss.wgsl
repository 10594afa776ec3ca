// loss.wgsl: per-row cross-entropy of contiguous f32 logits (rows, V) against i32 targets.
//
// loss_row = logsumexp(logits_row) - logits_row[target] = (max + log Σ exp(x - max)) - x[t],
// and valid_row = 1; rows whose target equals `ignore_index` get loss 0 and valid 0.
// The host then sums both with reduce.wgsl and divides (mean over non-ignored rows, as
// PyTorch). Targets are checked on the host (0 <= t < V or t == ignore_index).
// One workgroup of 256 handles one row with tree reductions in workgroup memory.
// Bindings: 0 `params` (uniform), 1 `logits` (storage, read), 2 `targets` (storage, read, i32),
// 3 `loss` (storage, read_write, rows), 4 `valid` (storage, read_write, rows).
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

const WORKGROUP: u32 = 256u;

var<workgroup> partial: array<f32, 256>;

fn reduce_workgroup(lid: u32, use_max: bool) -> f32 {
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
    workgroupBarrier();
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
    partial[lid] = m;
    let row_max = reduce_workgroup(lid, true);
    var s = 0.0;
    for (var j = lid; j < params.v; j = j + WORKGROUP) {
        s = s + exp(logits[base + j] - row_max);
    }
    partial[lid] = s;
    let total = reduce_workgroup(lid, false);
    if (lid == 0u) {
        let t = targets[row];
        let ignored = t == params.ignore_index;
        let picked = logits[base + u32(select(t, 0, ignored))];
        loss[row] = select((row_max + log(total)) - picked, 0.0, ignored);
        valid[row] = select(1.0, 0.0, ignored);
    }
}
