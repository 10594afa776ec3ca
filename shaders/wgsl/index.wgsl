// index.wgsl: moving rows by index, on 32-bit words (so f32 and i32 tensors alike).
//
//   index_select: out[o, j, :] = x[o, index[j], :] for x viewed as (outer, d, inner) and
//                 out as (outer, k, inner); embedding lookup is index_select on dim 0.
//   gather:       out[p] = x[q] where q equals p's coordinates with the `dim` coordinate
//                 replaced by index[p] (torch.gather); shapes travel in `shapes`.
//   copy_block:   out viewed as (outer, total, inner) gets x (outer, d, inner) at column
//                 `column`: one part of a `cat`.
// Indices are i32 and checked on the host before dispatch (an out-of-range id is an error
// there, not an out-of-bounds read here).
// Bindings: 0 `params` (uniform), 1 `x` (storage, read, u32 words), 2 `index` (storage, read,
// i32), 3 `out` (storage, read_write), 4 `shapes` (storage, read: x dims then index dims; gather only).
// One invocation writes one output element. Grids over 65,535 workgroups are 2-D.

struct Params {
    outer: u32,
    d: u32,
    inner: u32,
    k: u32,
    numel: u32,
    rank: u32,
    dim: u32,
    column: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read> index: array<i32>;
@group(0) @binding(3) var<storage, read_write> out: array<u32>;
@group(0) @binding(4) var<storage, read> shapes: array<u32>;

const WORKGROUP: u32 = 256u;

fn linear_index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * WORKGROUP;
}

@compute @workgroup_size(256)
fn index_select(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let p = linear_index(gid, groups);
    if (p >= params.numel) {
        return;
    }
    let i = p % params.inner;
    let row = p / params.inner; // = o · k + j
    let o = row / params.k;
    let j = row % params.k;
    out[p] = x[(o * params.d + u32(index[j])) * params.inner + i];
}

@compute @workgroup_size(256)
fn gather(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let p = linear_index(gid, groups);
    if (p >= params.numel) {
        return;
    }
    // Unravel p over the index (= output) shape; re-ravel over x's shape with dim replaced.
    var rem = p;
    var src = 0u;
    var x_stride = 1u;
    for (var d = i32(params.rank) - 1; d >= 0; d = d - 1) {
        let x_size = shapes[u32(d)];
        let i_size = shapes[params.rank + u32(d)];
        var coord = rem % i_size;
        rem = rem / i_size;
        if (u32(d) == params.dim) {
            coord = u32(index[p]);
        }
        src = src + coord * x_stride;
        x_stride = x_stride * x_size;
    }
    out[p] = x[src];
}

@compute @workgroup_size(256)
fn copy_block(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let p = linear_index(gid, groups);
    if (p >= params.numel) {
        return;
    }
    // p runs over x = (outer, d, inner); params.k holds the output's total size of the dim.
    let i = p % params.inner;
    let row = p / params.inner;
    let o = row / params.d;
    let j = row % params.d;
    out[(o * params.k + params.column + j) * params.inner + i] = x[p];
}
