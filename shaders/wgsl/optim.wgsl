// optim.wgsl: the fused AdamW update of a contiguous f32 parameter, as the CPU's
// cpu::optim::adamw: one pass reading p, g, m, v and writing the new p, m, v, with the
// operations in the CPU's order (so only the GPU's sqrt and division rounding can differ):
//   p ← p · decay                               (decoupled weight decay; decay = 1 for none)
//   m ← m + (g - m) · (1 - β1)
//   v ← v · β2 + (g · (1 - β2)) · g
//   p ← p + (m · step_size) / (√v / √(1 - β2ᵗ) + eps),   step_size = -lr / (1 - β1ᵗ)
// The scalars are computed in f64 on the host and rounded once to f32 (`AdamWScalars`).
// Bindings: 0 `params` (uniform), 1 `p`, 2 `g`, 3 `m`, 4 `v` (storage, read), 5 `p_out`,
// 6 `m_out`, 7 `v_out` (storage, read_write).
// One invocation updates one element. Grids over 65,535 workgroups are 2-D: the linear index is
// x + y · (num_workgroups.x · 256).

struct Params {
    numel: u32,
    decay: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    bias2_sqrt: f32,
    eps: f32,
    step_size: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> p: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read> m: array<f32>;
@group(0) @binding(4) var<storage, read> v: array<f32>;
@group(0) @binding(5) var<storage, read_write> p_out: array<f32>;
@group(0) @binding(6) var<storage, read_write> m_out: array<f32>;
@group(0) @binding(7) var<storage, read_write> v_out: array<f32>;

const WORKGROUP: u32 = 256u;

@compute @workgroup_size(256)
fn adamw_update(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * WORKGROUP;
    if (i >= params.numel) {
        return;
    }
    let decayed = p[i] * params.decay;
    let mi = m[i] + (g[i] - m[i]) * params.one_minus_beta1;
    let vi = v[i] * params.beta2 + (g[i] * params.one_minus_beta2) * g[i];
    let denom = sqrt(vi) / params.bias2_sqrt + params.eps;
    p_out[i] = decayed + (mi * params.step_size) / denom;
    m_out[i] = mi;
    v_out[i] = vi;
}
