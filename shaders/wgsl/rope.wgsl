// rope.wgsl: rotary position embedding in Hugging Face's rotate-half convention, over a
// contiguous f32 x (P, NH, HS) with P = B·T positions and the half tables cos, sin (P, HS/2).
//
// rope_rotate, per head of one position, with x1 = x[..HS/2], x2 = x[HS/2..] and
// s = sign · sin: out1 = x1·cos − x2·s, out2 = x2·cos + x1·s. sign = 1 is the forward (the
// pair (i, i + HS/2) turned by θᵢ), sign = −1 the backward (turned back by −θᵢ, the transpose).
//
// One invocation per pair: pair = (position · NH + head) · HS/2 + i. Bindings: 0 `params`
// (uniform), 1 `x`, 2 `cos`, 3 `sin` (storage, read), 4 `out` (storage, read_write).
// Grids over 65,535 workgroups are 2-D: index = gid.x + gid.y · num_workgroups.x · 256.

struct Params {
    pairs: u32,
    nh: u32,
    hs: u32,
    sign: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> cos_table: array<f32>;
@group(0) @binding(3) var<storage, read> sin_table: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

const WORKGROUP: u32 = 256u;

@compute @workgroup_size(256)
fn rope_rotate(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let pair = gid.x + gid.y * groups.x * WORKGROUP;
    if (pair >= params.pairs) {
        return;
    }
    let half = params.hs / 2u;
    let i = pair % half;
    let head = pair / half; // position · NH + head
    let position = head / params.nh;
    let first = head * params.hs + i; // x1[i]; x2[i] is half further
    let c = cos_table[position * half + i];
    let s = params.sign * sin_table[position * half + i];
    let x1 = x[first];
    let x2 = x[first + half];
    out[first] = x1 * c - x2 * s;
    out[first + half] = x2 * c + x1 * s;
}
