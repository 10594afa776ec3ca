// swiglu.wgsl: the fused SwiGLU of Llama's MLP over contiguous f32 tensors of one shape, the
// forward followed by its backward.
//
// swiglu_forward: y = silu(gate) · up = gate · σ(gate) · up, with σ(g) = 1 / (1 + e^-g).
// swiglu_backward: dgate = dout · up · σ(g) · (1 + g · (1 − σ(g))) (silu's derivative),
// dup = dout · silu(g).
//
// One invocation per element. Bindings: 0 `params` (uniform), 1 `gate`, 2 `up`, 4 `dout`
// (storage, read); 3 `y`, 5 `dgate`, 6 `dup` (storage, read_write).
// Grids over 65,535 workgroups are 2-D: index = gid.x + gid.y · num_workgroups.x · 256.

struct Params {
    numel: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> gate: array<f32>;
@group(0) @binding(2) var<storage, read> up: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read> dout: array<f32>;
@group(0) @binding(5) var<storage, read_write> dgate: array<f32>;
@group(0) @binding(6) var<storage, read_write> dup: array<f32>;

const WORKGROUP: u32 = 256u;

fn sigmoid(g: f32) -> f32 {
    return 1.0 / (1.0 + exp(-g));
}

@compute @workgroup_size(256)
fn swiglu_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * WORKGROUP;
    if (i >= params.numel) {
        return;
    }
    let g = gate[i];
    y[i] = g * sigmoid(g) * up[i];
}

@compute @workgroup_size(256)
fn swiglu_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * WORKGROUP;
    if (i >= params.numel) {
        return;
    }
    let g = gate[i];
    let s = sigmoid(g);
    let d = dout[i];
    dgate[i] = d * up[i] * s * (1.0 + g * (1.0 - s));
    dup[i] = d * g * s;
}
