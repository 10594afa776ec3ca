// quant.wgsl: block-quantized weights (llama.cpp's Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K,
// Q6_K byte layouts, drawn in tensor/src/quant/) read in place: dequantize to f32, gather
// whole rows of blocks, and `y = x · Wᵀ` with x f32 (M, K) and W quantized (N, K).
//
// WGSL has no u8, so the weight is an array of u32 words holding the blocks' bytes
// back to back (byte i is bits 8·(i%4).. of word i/4, little-endian, the tail padded to a
// word). Blocks of 18, 20, 22, 34 or 210 bytes do not start on a word, so every read is by
// byte offset: `word_at(o)` assembles the 4 bytes at o from one or two words, `f16_at(o)` widens
// the f16 at an even offset on its bits (exact). Block sizes are even, so an f16 field never
// straddles two words.
//
// One decoder, `decode8`, turns 8 consecutive values of one block into f32 with the same f32
// operations, in the same order, as the CPU's dequantize (`d · q`, `d · q + m`,
// `(d · sc) · q - dmin · mn`), so dequantized values agree with the CPU bit for bit (when the
// driver does not contract a multiply-add into an fma). Every kernel calls it.
//
// Type codes (`params.ty`, the order of QuantType::ALL): 0 Q4_0, 1 Q4_1, 2 Q5_0, 3 Q5_1,
// 4 Q8_0, 5 Q4_K, 6 Q5_K, 7 Q6_K. A weight row j starts at byte w_base + j·w_row_stride.
//
// Entry points:
//   quant_dequantize:  y (rows, n) f32 = the values of `rows` weight rows of n values; one
//                      invocation per 8 values.
//   quant_gather_rows: `words` = whole rows of bytes picked by `index` (index_select over
//                      (outer, n, row) with row = w_row_stride bytes); one invocation per
//                      output word.
//   quant_gemv:        y (M, N) = x · Wᵀ for M ≤ 8 (decoding): one workgroup of 64 per weight
//                      row j; each invocation decodes every 64th group of 8 values of row j
//                      once and multiplies it into all M rows of x; a shared-memory tree sums
//                      the 64 partial dots of each x row.
//   quant_matmul:      y (M, N) = x · Wᵀ for any M (prefill, training): 64×64 tiles of y per
//                      workgroup of 16×16 as matmul.wgsl, staging 32-deep slices of x and of
//                      the decoded W (one group of 8 per invocation) in workgroup memory.
// Bindings: 0 `params` (uniform), 1 `w` (storage, read, u32 words of blocks), 2 `x`
// (storage, read, f32, dense (M, K)), 3 `y` (storage, read_write, f32), 4 `index` (storage,
// read, i32), 5 `words` (storage, read_write, u32). Each entry point binds the ones it uses.

struct Params {
    ty: u32,
    block_bytes: u32,
    block_elems: u32,
    // quant_dequantize: weight rows; gather: output rows (outer · index count); matmul: M.
    rows: u32,
    // quant_dequantize: values per row; gather: the selected dim's size; matmul: N.
    n: u32,
    // matmul: K (a multiple of 32); gather: the index count.
    k: u32,
    w_base: u32,
    w_row_stride: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read> index: array<i32>;
@group(0) @binding(5) var<storage, read_write> words: array<u32>;

// ---- reading bytes from words ----

// The byte at offset `o`.
fn byte_at(o: u32) -> u32 {
    return (w[o >> 2u] >> ((o & 3u) * 8u)) & 0xffu;
}

// The 4 bytes at offset `o` (any alignment) as a little-endian u32: the high bytes of word
// o/4 and, when o is not word-aligned, the low bytes of the next word (which then holds
// bytes of the same block, so it exists).
fn word_at(o: u32) -> u32 {
    let i = o >> 2u;
    let shift = (o & 3u) * 8u;
    if (shift == 0u) {
        return w[i];
    }
    return (w[i] >> shift) | (w[i + 1u] << (32u - shift));
}

// The 8 bytes at offset `o`, byte u of them at bits 8·(u%4) of component u/4.
fn bytes8_at(o: u32) -> vec2<u32> {
    return vec2<u32>(word_at(o), word_at(o + 4u));
}

// Byte u (0..8) of a `bytes8_at` pair, shifted right by `shift` bits and masked to `mask`.
fn field(q: vec2<u32>, u: u32, shift: u32, mask: u32) -> u32 {
    return (q[u >> 2u] >> ((u & 3u) * 8u + shift)) & mask;
}

// The little-endian f16 at the even offset `o`, widened exactly.
fn f16_at(o: u32) -> f32 {
    return f16_bits_to_f32((w[o >> 2u] >> ((o & 2u) * 8u)) & 0xffffu);
}

// IEEE half to f32 on the bits, as matmul_w16.wgsl (WGSL has no includes): unpack2x16float
// would need naga's FLOAT16_IN_FLOAT32 capability. A normal number re-biases its exponent by
// 127 - 15 = 112 and shifts its mantissa up 13 bits; a subnormal is mantissa · 2^-24 (exact);
// exponent 31 is infinity or NaN.
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

// ---- one decoder per type: values e..e+8 (e a multiple of 8) of the block at byte b ----

// Q8_0 | d: f16 | qs[32]: i8 |, value = d · q. The i8 is sign-extended by shifting it to the
// top of an i32 and back.
fn decode_q8_0(b: u32, e: u32) -> array<f32, 8> {
    let d = f16_at(b);
    let q = bytes8_at(b + 2u + e);
    var v: array<f32, 8>;
    for (var u = 0u; u < 8u; u = u + 1u) {
        let byte = field(q, u, 0u, 0xffu);
        v[u] = f32(bitcast<i32>(byte << 24u) >> 24u) * d;
    }
    return v;
}

// Q4_0 | d | qs[16] |: element j < 16 is the low nibble of byte j, element j + 16 its high
// nibble; value = d · (nibble - 8). Q4_1 | d | m | qs[16] |: value = d · nibble + m.
// Q5_0 | d | qh: u32 | qs[16] | and Q5_1 | d | m | qh | qs[16] |: bit j of qh is bit 4 of
// element j; values d · (q - 16) and d · q + m. `head` is the offset of qs, `has_qh` and
// `has_m` pick the variant (uniform across the dispatch).
fn decode_legacy(b: u32, e: u32, has_m: bool, has_qh: bool) -> array<f32, 8> {
    let d = f16_at(b);
    var m = 0.0;
    var head = b + 2u;
    if (has_m) {
        m = f16_at(b + 2u);
        head = b + 4u;
    }
    var qh = 0u;
    if (has_qh) {
        qh = word_at(head);
        head = head + 4u;
    }
    let upper = e / 16u;                     // 0: low nibbles, 1: high nibbles
    let q = bytes8_at(head + e % 16u);
    var v: array<f32, 8>;
    for (var u = 0u; u < 8u; u = u + 1u) {
        var nib = field(q, u, 4u * upper, 0xfu);
        if (has_qh) {
            nib = nib | (((qh >> (e + u)) & 1u) << 4u);
        }
        if (has_m) {
            v[u] = f32(nib) * d + m;
        } else if (has_qh) {
            v[u] = f32(i32(nib) - 16) * d;
        } else {
            v[u] = f32(i32(nib) - 8) * d;
        }
    }
    return v;
}

// Sub-block s's 6-bit (scale, min) from the 12 packed bytes at `o` (llama.cpp's
// get_scale_min_k4): s < 4 in the low 6 bits of bytes s and s + 4; s ≥ 4 in the nibbles of
// byte s + 4 with the top 2 bits from the high bits of bytes s - 4 and s.
fn scale_min_k4(s: u32, o: u32) -> vec2<u32> {
    if (s < 4u) {
        return vec2<u32>(byte_at(o + s) & 63u, byte_at(o + s + 4u) & 63u);
    }
    let low = byte_at(o + s + 4u);
    let sc = (low & 0xfu) | ((byte_at(o + s - 4u) >> 6u) << 4u);
    let mn = (low >> 4u) | ((byte_at(o + s) >> 6u) << 4u);
    return vec2<u32>(sc, mn);
}

// Q4_K | d | dmin | scales[12] | qs[128] | and Q5_K (| qh[32] | before qs): 8 sub-blocks s
// of 32; qs chunk c = s/2 holds sub-block 2c in its low nibbles, 2c+1 in its high ones
// (element l in byte l of the chunk); Q5_K's bit s of qh[l] is bit 4 of element l.
// value = (d · sc) · q - (dmin · mn).
fn decode_k4(b: u32, e: u32, has_qh: bool) -> array<f32, 8> {
    let d = f16_at(b);
    let dmin = f16_at(b + 2u);
    let s = e / 32u;
    let l0 = e % 32u;
    let sm = scale_min_k4(s, b + 4u);
    let d1 = d * f32(sm.x);
    let m1 = dmin * f32(sm.y);
    var qs = b + 16u;
    var qh = vec2<u32>(0u, 0u);
    if (has_qh) {
        qh = bytes8_at(b + 16u + l0);
        qs = b + 48u;
    }
    let q = bytes8_at(qs + 32u * (s / 2u) + l0);
    var v: array<f32, 8>;
    for (var u = 0u; u < 8u; u = u + 1u) {
        let nib = field(q, u, 4u * (s & 1u), 0xfu) | (field(qh, u, s, 1u) << 4u);
        v[u] = d1 * f32(nib) - m1;
    }
    return v;
}

// Q6_K | ql[128] | qh[64] | scales[16]: i8 | d: f16 |: two halves h of 128; in half h,
// element l + 32·t (t = 0..4) takes a nibble of ql[64h + l + 32·(t&1)] (high when t ≥ 2) and
// bits 2t..2t+2 of qh[32h + l] as its bits 4..6; sub-block of 16 = scale
// scales[8h + 2t + l/16]. value = (d · scale) · (q - 32).
fn decode_q6_k(b: u32, e: u32) -> array<f32, 8> {
    let h = e / 128u;
    let t = (e % 128u) / 32u;
    let l0 = e % 32u;
    let ql = bytes8_at(b + 64u * h + 32u * (t & 1u) + l0);
    let qh = bytes8_at(b + 128u + 32u * h + l0);
    let sc = bitcast<i32>(byte_at(b + 192u + 8u * h + 2u * t + l0 / 16u) << 24u) >> 24u;
    let ds = f16_at(b + 208u) * f32(sc);
    var v: array<f32, 8>;
    for (var u = 0u; u < 8u; u = u + 1u) {
        let q = field(ql, u, 4u * (t >> 1u), 0xfu) | (field(qh, u, 2u * t, 3u) << 4u);
        v[u] = ds * f32(i32(q) - 32);
    }
    return v;
}

// Values e..e+8 of the block at byte b, for the type of this dispatch.
fn decode8(b: u32, e: u32) -> array<f32, 8> {
    switch (params.ty) {
        case 0u: { return decode_legacy(b, e, false, false); }
        case 1u: { return decode_legacy(b, e, true, false); }
        case 2u: { return decode_legacy(b, e, false, true); }
        case 3u: { return decode_legacy(b, e, true, true); }
        case 4u: { return decode_q8_0(b, e); }
        case 5u: { return decode_k4(b, e, false); }
        case 6u: { return decode_k4(b, e, true); }
        default: { return decode_q6_k(b, e); }
    }
}

// Values p..p+8 (p a multiple of 8) of weight row j.
fn weight8(j: u32, p: u32) -> array<f32, 8> {
    let block = params.w_base + j * params.w_row_stride + (p / params.block_elems) * params.block_bytes;
    return decode8(block, p % params.block_elems);
}

const WORKGROUP: u32 = 256u;

// ---- dequantize and gather ----

@compute @workgroup_size(256)
fn quant_dequantize(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let g = gid.x + gid.y * groups.x * WORKGROUP;  // group of 8 outputs
    let per_row = params.n / 8u;
    if (g >= params.rows * per_row) {
        return;
    }
    let row = g / per_row;
    let col = (g % per_row) * 8u;
    let v = weight8(row, col);
    let out = row * params.n + col;
    for (var u = 0u; u < 8u; u = u + 1u) {
        y[out + u] = v[u];
    }
}

@compute @workgroup_size(256)
fn quant_gather_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let word = gid.x + gid.y * groups.x * WORKGROUP;
    let row_bytes = params.w_row_stride;
    let total = params.rows * row_bytes;
    if (word * 4u >= total) {
        return;
    }
    var packed = 0u;
    for (var t = 0u; t < 4u; t = t + 1u) {
        let ob = word * 4u + t;                  // output byte
        if (ob < total) {
            let r = ob / row_bytes;              // output row = (outer o, pick i)
            let o = r / params.k;
            let i = r % params.k;
            let src_row = o * params.n + u32(index[i]);
            packed = packed | (byte_at(params.w_base + src_row * row_bytes + ob % row_bytes) << (8u * t));
        }
    }
    words[word] = packed;
}

// ---- y = x · Wᵀ, few rows: one workgroup per weight row ----

const GEMV_THREADS: u32 = 64u;
const GEMV_ROWS: u32 = 8u;   // the most rows of x per dispatch

var<workgroup> partial: array<array<f32, 64>, 8>;

@compute @workgroup_size(64)
fn quant_gemv(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
              @builtin(num_workgroups) groups: vec3<u32>) {
    let j = wid.x + wid.y * groups.x;        // weight row = output column (uniform)
    let t = lid.x;
    var acc: array<f32, 8>;
    if (j < params.n) {
        for (var p = 8u * t; p < params.k; p = p + 8u * GEMV_THREADS) {
            let v = weight8(j, p);
            for (var i = 0u; i < params.rows; i = i + 1u) {
                let xo = i * params.k + p;
                var s = acc[i];
                for (var u = 0u; u < 8u; u = u + 1u) {
                    s = fma(v[u], x[xo + u], s);
                }
                acc[i] = s;
            }
        }
    }
    for (var i = 0u; i < GEMV_ROWS; i = i + 1u) {
        partial[i][t] = acc[i];
    }
    workgroupBarrier();
    for (var span = GEMV_THREADS / 2u; span > 0u; span = span / 2u) {
        if (t < span) {
            for (var i = 0u; i < GEMV_ROWS; i = i + 1u) {
                partial[i][t] = partial[i][t] + partial[i][t + span];
            }
        }
        workgroupBarrier();
    }
    if (j < params.n && t < params.rows) {
        y[t * params.n + j] = partial[t][0];
    }
}

// ---- y = x · Wᵀ, many rows: 64×64 tiles ----

const TILE: u32 = 64u;
const DEPTH: u32 = 32u;  // slice of K staged per step: K is a multiple of 32
const BLOCK: u32 = 4u;   // rows and columns of y per invocation

// tile_x[p][i] = x[row0 + i, p0 + p]; tile_w[p][j] = W[col0 + j, p0 + p]; 16 KiB together.
var<workgroup> tile_x: array<array<f32, 64>, 32>;
var<workgroup> tile_w: array<array<f32, 64>, 32>;

@compute @workgroup_size(16, 16)
fn quant_matmul(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = wid.y * TILE;
    let col0 = wid.x * TILE;
    let flat = lid.y * 16u + lid.x;   // 0..256
    let r = flat / 4u;                // the tile row of x and the tile column of W it stages
    let p8 = (flat % 4u) * 8u;        // its group of 8 along the slice
    var acc: array<array<f32, 4>, 4>;
    for (var p0 = 0u; p0 < params.k; p0 = p0 + DEPTH) {
        let gi = row0 + r;
        let gj = col0 + r;
        var v: array<f32, 8>;
        if (gj < params.n) {
            v = weight8(gj, p0 + p8);
        }
        for (var u = 0u; u < 8u; u = u + 1u) {
            var xv = 0.0;
            if (gi < params.rows) {
                xv = x[gi * params.k + p0 + p8 + u];
            }
            tile_x[p8 + u][r] = xv;
            tile_w[p8 + u][r] = v[u];
        }
        workgroupBarrier();
        for (var p = 0u; p < DEPTH; p = p + 1u) {
            var xr: array<f32, 4>;
            var wr: array<f32, 4>;
            for (var q = 0u; q < BLOCK; q = q + 1u) {
                xr[q] = tile_x[p][lid.y * BLOCK + q];
                wr[q] = tile_w[p][lid.x * BLOCK + q];
            }
            for (var a = 0u; a < BLOCK; a = a + 1u) {
                for (var c = 0u; c < BLOCK; c = c + 1u) {
                    acc[a][c] = fma(xr[a], wr[c], acc[a][c]);
                }
            }
        }
        workgroupBarrier();
    }
    for (var a = 0u; a < BLOCK; a = a + 1u) {
        let i = row0 + lid.y * BLOCK + a;
        for (var c = 0u; c < BLOCK; c = c + 1u) {
            let j = col0 + lid.x * BLOCK + c;
            if (i < params.rows && j < params.n) {
                y[i * params.n + j] = acc[a][c];
            }
        }
    }
}
