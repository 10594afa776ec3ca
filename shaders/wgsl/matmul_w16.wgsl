// matmul_w16.wgsl: batched C = A · B with A f32 and B a 16-bit weight (bf16 or f16).
//
// The same kernel as matmul.wgsl (read that file's header for the tiling and the strided,
// batched operands), except that B is stored in 16 bits, two elements per 32-bit word
// (element e in the low half of word e/2 when e is even, the high half when odd), so a frozen
// bf16 or f16 weight is read at half the bytes and never copied to f32. Each element of B is
// widened exactly when staged into workgroup memory; every multiply-add and C are f32.
// WGSL has no bf16 type: bf16 is the top half of an f32, `bitcast<f32>(bits << 16)`. f16 is
// widened on its bits (`f16_bits_to_f32`), so this file needs no SHADER_F16.
// Entry points: `matmul_bf16_weight`, `matmul_f16_weight`.
// Bindings: 0 `params` (uniform), 1 `a` (storage, read, f32), 2 `b` (storage, read, u32
// words of 16-bit pairs), 3 `c` (storage, read_write, f32), 4 `batch_offsets` (storage, read,
// 2 per batch, in elements).

struct Params {
    m: u32,
    n: u32,
    k: u32,
    batch: u32,
    a_row_stride: u32,
    a_col_stride: u32,
    b_row_stride: u32,
    b_col_stride: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<u32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
@group(0) @binding(4) var<storage, read> batch_offsets: array<u32>;

const TILE: u32 = 64u;   // rows and columns of C per workgroup
const DEPTH: u32 = 16u;  // slice of K staged per step
const BLOCK: u32 = 4u;   // rows and columns of C per invocation

// tile_a[p][i]: K-major so that an invocation's 4 rows are adjacent; tile_b[p][j].
var<workgroup> tile_a: array<array<f32, 64>, 16>;
var<workgroup> tile_b: array<array<f32, 64>, 16>;

// Element e of B as f32: its 16 bits are half (e & 1) of word e / 2.
fn b_at(e: u32, is_bf16: bool) -> f32 {
    let bits = (b[e >> 1u] >> ((e & 1u) * 16u)) & 0xffffu;
    if (is_bf16) {
        return bitcast<f32>(bits << 16u);
    }
    return f16_bits_to_f32(bits);
}

// IEEE half (1 sign, 5 exponent bits biased by 15, 10 mantissa bits) to f32, exactly, on the
// bits (no SHADER_F16 or f16-in-f32 capability needed): a normal number re-biases its
// exponent by 127 - 15 = 112 and shifts its mantissa up 13 bits; a subnormal is
// mantissa · 2^-24 (exact in f32); exponent 31 is infinity or NaN.
fn f16_bits_to_f32(h: u32) -> f32 {
    let sign = (h & 0x8000u) << 16u;
    let exponent = (h >> 10u) & 0x1fu;
    let mantissa = h & 0x3ffu;
    if (exponent == 0u) {
        let magnitude = f32(mantissa) * 5.9604644775390625e-8;
        return bitcast<f32>(sign | bitcast<u32>(magnitude));
    }
    if (exponent == 31u) {
        return bitcast<f32>(sign | 0x7f800000u | (mantissa << 13u));
    }
    return bitcast<f32>(sign | ((exponent + 112u) << 23u) | (mantissa << 13u));
}

@compute @workgroup_size(16, 16)
fn matmul_bf16_weight(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    matmul_tile(wid, lid, true);
}

@compute @workgroup_size(16, 16)
fn matmul_f16_weight(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    matmul_tile(wid, lid, false);
}

// One 64×64 tile of C (workgroup wid), as `matmul` in matmul.wgsl; `is_bf16` is uniform.
fn matmul_tile(wid: vec3<u32>, lid: vec3<u32>, is_bf16: bool) {
    let batch = wid.z;
    let row0 = wid.y * TILE;
    let col0 = wid.x * TILE;
    let a_base = batch_offsets[2u * batch];
    let b_base = batch_offsets[2u * batch + 1u];
    let flat = lid.y * 16u + lid.x; // 0..256, used to spread the tile loads
    var acc: array<array<f32, 4>, 4>;
    for (var p0 = 0u; p0 < params.k; p0 = p0 + DEPTH) {
        // Stage A (64 rows × 16 deep) and B (16 deep × 64 columns): 1024 elements each.
        for (var e = 0u; e < 4u; e = e + 1u) {
            let idx = flat + e * 256u;
            let ai = idx / DEPTH;        // row within the A tile
            let ap = idx % DEPTH;        // depth within the tile
            let gi = row0 + ai;
            let gp = p0 + ap;
            var av = 0.0;
            if (gi < params.m && gp < params.k) {
                av = a[a_base + gi * params.a_row_stride + gp * params.a_col_stride];
            }
            tile_a[ap][ai] = av;
            let bp = idx / TILE;         // depth within the B tile
            let bj = idx % TILE;         // column within the tile
            let gq = p0 + bp;
            let gj = col0 + bj;
            var bv = 0.0;
            if (gq < params.k && gj < params.n) {
                bv = b_at(b_base + gq * params.b_row_stride + gj * params.b_col_stride, is_bf16);
            }
            tile_b[bp][bj] = bv;
        }
        workgroupBarrier();
        for (var p = 0u; p < DEPTH; p = p + 1u) {
            var ar: array<f32, 4>;
            var br: array<f32, 4>;
            for (var r = 0u; r < BLOCK; r = r + 1u) {
                ar[r] = tile_a[p][lid.y * BLOCK + r];
                br[r] = tile_b[p][lid.x * BLOCK + r];
            }
            for (var r = 0u; r < BLOCK; r = r + 1u) {
                for (var s = 0u; s < BLOCK; s = s + 1u) {
                    acc[r][s] = fma(ar[r], br[s], acc[r][s]);
                }
            }
        }
        workgroupBarrier();
    }
    let c_base = batch * params.m * params.n;
    for (var r = 0u; r < BLOCK; r = r + 1u) {
        let i = row0 + lid.y * BLOCK + r;
        for (var s = 0u; s < BLOCK; s = s + 1u) {
            let j = col0 + lid.x * BLOCK + s;
            if (i < params.m && j < params.n) {
                c[c_base + i * params.n + j] = acc[r][s];
            }
        }
    }
}
