// index.wgsl: moving rows by index on 32-bit words (so f32 and i32 tensors alike), each gather
// followed by its backward, a scatter-add of f32 values.
//
//   index_select: out[o, j, :] = x[o, index[j], :] for x viewed as (outer, d, inner) and
//                 out as (outer, k, inner); embedding lookup is index_select on dim 0.
//   index_add:    out[o, r, :] = x[o, r, :] + Σ_{j : index[j] == r} src[o, j, :] for x and out
//                 viewed as (outer, d, inner) and src as (outer, k, inner): torch.index_add, the
//                 backward of index_select and of embedding lookup (with x = 0).
//   gather:       out[p] = x[q] where q equals p's coordinates with the `dim` coordinate
//                 replaced by index[p] (torch.gather); shapes travel in `shapes`.
//   scatter_add:  out = x, then out[q] += src[p] for every element p of src, where q is p's
//                 coordinates with the `dim` coordinate replaced by index[p]: torch.scatter_add,
//                 the backward of gather. index and src share a shape (in `shapes`).
//   copy_block:   out viewed as (outer, total, inner) gets x (outer, d, inner) at column
//                 `column`: one part of a `cat`.
// The scatter-adds read x and write out as f32 (bitcast from and to the words, exactly), and
// are deterministic, without atomics, in the CPU's order (each sum starts from x and adds the
// sources that land on it in increasing source order), so GPU and CPU agree to the bit:
//   index_add:         one invocation per output element scans all k indices:
//                      O(outer · d · k · inner) compares, the cheaper form when k ≥ d.
//   index_add_sources: one invocation per source element; only the first source of each
//                      destination row (no earlier j with the same index) works, summing the
//                      later ones: O(outer · k² · inner), the cheaper form when k < d (an
//                      embedding backward: d = vocabulary, k = tokens). `out` must already be a
//                      copy of x, since rows no index names are not written.
//   scatter_add:       one invocation per output element scans only the line along `dim`
//                      that can reach it: index_dims[dim] compares.
// Indices are i32 and checked on the host before dispatch (an out-of-range id is an error
// there, not an out-of-bounds read here).
// Bindings (each entry point uses the ones its formula names): 0 `params` (uniform), 1 `x`
// (storage, read, u32 words), 2 `index` (storage, read, i32), 3 `out` (storage, read_write,
// u32 words), 4 `shapes` (storage, read: x (or out) dims then index dims; gather and
// scatter_add), 5 `src` (storage, read, f32; the scatter-adds).
// One invocation writes one output element (index_add_sources: reads one source element).
// Grids over 65,535 workgroups are 2-D.

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
@group(0) @binding(5) var<storage, read> src: array<f32>;

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
fn index_add(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let p = linear_index(gid, groups);
    if (p >= params.numel) {
        return;
    }
    let i = p % params.inner;
    let row = p / params.inner; // = o · d + r of the (outer, d, inner) output
    let o = row / params.d;
    let r = i32(row % params.d);
    var acc = bitcast<f32>(x[p]);
    for (var j = 0u; j < params.k; j = j + 1u) {
        if (index[j] == r) {
            acc = acc + src[(o * params.k + j) * params.inner + i]; // row o·k + j of src
        }
    }
    out[p] = bitcast<u32>(acc);
}

@compute @workgroup_size(256)
fn index_add_sources(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let p = linear_index(gid, groups);
    if (p >= params.outer * params.k * params.inner) {
        return;
    }
    let i = p % params.inner;
    let row = p / params.inner; // = o · k + j of the (outer, k, inner) source
    let o = row / params.k;
    let j = row % params.k;
    let r = index[j];
    for (var earlier = 0u; earlier < j; earlier = earlier + 1u) {
        if (index[earlier] == r) {
            return; // an earlier source owns this destination row
        }
    }
    let dst = (o * params.d + u32(r)) * params.inner + i;
    var acc = bitcast<f32>(x[dst]);
    for (var later = j; later < params.k; later = later + 1u) {
        if (index[later] == r) {
            acc = acc + src[(o * params.k + later) * params.inner + i];
        }
    }
    out[dst] = bitcast<u32>(acc);
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
fn scatter_add(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let q = linear_index(gid, groups);
    if (q >= params.numel) {
        return;
    }
    // Unravel q over the out shape. The sources that can land on q are the index elements with
    // q's coordinates off `dim` (which must lie inside the index shape) and any coordinate j
    // along it: flat index base + j · dim_stride in the index (= src) shape.
    var rem = q;
    var base = 0u;
    var stride = 1u;
    var dim_stride = 0u;
    var wanted = 0;
    var inside = true;
    for (var d = i32(params.rank) - 1; d >= 0; d = d - 1) {
        let out_size = shapes[u32(d)];
        let index_size = shapes[params.rank + u32(d)];
        let coord = rem % out_size;
        rem = rem / out_size;
        if (u32(d) == params.dim) {
            wanted = i32(coord);
            dim_stride = stride;
        } else {
            inside = inside && coord < index_size;
            base = base + coord * stride;
        }
        stride = stride * index_size;
    }
    var acc = bitcast<f32>(x[q]);
    if (inside) {
        let along = shapes[params.rank + params.dim];
        for (var j = 0u; j < along; j = j + 1u) {
            let p = base + j * dim_stride;
            if (index[p] == wanted) {
                acc = acc + src[p];
            }
        }
    }
    out[q] = bitcast<u32>(acc);
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
