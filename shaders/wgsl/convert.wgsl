// convert.wgsl: dtype conversion between f32 and the 16-bit storage types, on packed words.
//
// f16 and bf16 tensors are stored two per u32 (element 2w in the low half of word w), and
// the conversions are done on the bits, so these kernels need no f16 shader feature and
// round exactly like the CPU (nearest, ties to even; overflow to ±inf; NaN stays NaN):
//   f32_to_f16:  each half = IEEE binary16 bits of x (subnormals included)
//   f16_to_f32:  each half widened exactly
//   f32_to_bf16: each half = the upper 16 bits of the f32, rounded to nearest-even
//   bf16_to_f32: each half shifted back into the upper 16 bits of an f32
// An odd element count pads the last word with a zero half.
// And between f32 and i32 (indices), one element per word:
//   i32_to_f32:  x = f32(i), rounded to nearest as a cast (exact below 2^24)
//   f32_to_i32:  i = i32(x) when x is an integer in i32's range; otherwise the smallest such
//                element index goes to `first_bad` (atomicMin; the host starts it at
//                0xffffffff and reads it back to name the element, as the CPU's error does)
// Bindings: 0 `params` (uniform), 1 `wide` (f32 words), 2 `packed` (u32 words: two 16-bit
// elements or one i32), 3 `first_bad` (f32_to_i32 only); the one written is read_write.
// One invocation converts one packed word (two elements), or one element for i32.

struct Params {
    numel: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> wide: array<f32>;
@group(0) @binding(2) var<storage, read_write> packed: array<u32>;
@group(0) @binding(3) var<storage, read_write> first_bad: atomic<u32>;

const WORKGROUP: u32 = 256u;

fn word_index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * WORKGROUP;
}

// The pair (x[2w], x[2w+1]), with 0 past the end.
fn pair(w: u32) -> vec2<f32> {
    let i = 2u * w;
    var hi = 0.0;
    if (i + 1u < params.numel) {
        hi = wide[i + 1u];
    }
    return vec2<f32>(wide[i], hi);
}

// f32 bits → bf16 bits, round to nearest-even; NaN stays a (quiet) NaN.
fn to_bf16(x: f32) -> u32 {
    let bits = bitcast<u32>(x);
    if ((bits & 0x7fffffffu) > 0x7f800000u) {
        return (bits >> 16u) | 0x40u;
    }
    let rounding = 0x7fffu + ((bits >> 16u) & 1u);
    return (bits + rounding) >> 16u;
}

// f32 → binary16 bits. The f16 exponent is the f32 exponent - 112 (biases 127 and 15);
// mantissas keep their top 10 of 23 bits, rounded to nearest-even on the 13 dropped bits.
fn to_f16(x: f32) -> u32 {
    let bits = bitcast<u32>(x);
    let sign = (bits >> 16u) & 0x8000u;
    let magnitude = bits & 0x7fffffffu;
    if (magnitude > 0x7f800000u) {
        return sign | 0x7e00u; // NaN
    }
    if (magnitude >= 0x477ff000u) {
        return sign | 0x7c00u; // rounds to ≥ 65520: infinity
    }
    if (magnitude < 0x38800000u) {
        // Subnormal f16 (or zero): value = mantissa · 2^-24. Shift the full significand
        // (implicit 1 included) right, rounding to nearest-even.
        if (magnitude < 0x33000000u) {
            return sign; // below half the smallest subnormal
        }
        let exponent = magnitude >> 23u;
        let significand = (magnitude & 0x7fffffu) | 0x800000u;
        let shift = 126u - exponent; // 14..24
        let half_ulp = 1u << (shift - 1u);
        let kept = significand >> shift;
        let rest = significand & ((1u << shift) - 1u);
        let round_up = rest > half_ulp || (rest == half_ulp && (kept & 1u) == 1u);
        return sign | (kept + select(0u, 1u, round_up));
    }
    let rebased = magnitude - 0x38000000u; // exponent - 112, in place
    let round = 0xfffu + ((rebased >> 13u) & 1u);
    return sign | ((rebased + round) >> 13u);
}

// binary16 bits → f32, exactly (subnormals renormalised).
fn from_f16(h: u32) -> f32 {
    let sign = (h & 0x8000u) << 16u;
    let exponent = (h >> 10u) & 0x1fu;
    let mantissa = h & 0x3ffu;
    if (exponent == 0x1fu) {
        return bitcast<f32>(sign | 0x7f800000u | (mantissa << 13u)); // inf or NaN
    }
    if (exponent == 0u) {
        // value = mantissa · 2^-24, exact in f32
        let magnitude = f32(mantissa) * 5.9604644775390625e-8;
        return select(magnitude, -magnitude, sign != 0u);
    }
    return bitcast<f32>(sign | ((exponent + 112u) << 23u) | (mantissa << 13u));
}

@compute @workgroup_size(256)
fn f32_to_f16(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let w = word_index(gid, groups);
    if (2u * w >= params.numel) {
        return;
    }
    let v = pair(w);
    packed[w] = to_f16(v.x) | (to_f16(v.y) << 16u);
}

@compute @workgroup_size(256)
fn f16_to_f32(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let w = word_index(gid, groups);
    if (2u * w >= params.numel) {
        return;
    }
    let word = packed[w];
    wide[2u * w] = from_f16(word & 0xffffu);
    if (2u * w + 1u < params.numel) {
        wide[2u * w + 1u] = from_f16(word >> 16u);
    }
}

@compute @workgroup_size(256)
fn f32_to_bf16(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let w = word_index(gid, groups);
    if (2u * w >= params.numel) {
        return;
    }
    let v = pair(w);
    packed[w] = to_bf16(v.x) | (to_bf16(v.y) << 16u);
}

@compute @workgroup_size(256)
fn bf16_to_f32(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let w = word_index(gid, groups);
    if (2u * w >= params.numel) {
        return;
    }
    let word = packed[w];
    wide[2u * w] = bitcast<f32>(word << 16u);
    if (2u * w + 1u < params.numel) {
        wide[2u * w + 1u] = bitcast<f32>(word & 0xffff0000u);
    }
}

@compute @workgroup_size(256)
fn i32_to_f32(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = word_index(gid, groups);
    if (i >= params.numel) {
        return;
    }
    wide[i] = f32(bitcast<i32>(packed[i]));
}

@compute @workgroup_size(256)
fn f32_to_i32(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = word_index(gid, groups);
    if (i >= params.numel) {
        return;
    }
    let x = wide[i];
    // -2^31 is representable; 2^31 is not. NaN fails every comparison, so it is caught too.
    let exact = x == floor(x) && x >= -2147483648.0 && x < 2147483648.0;
    if (exact) {
        packed[i] = bitcast<u32>(i32(x));
    } else {
        packed[i] = 0u;
        atomicMin(&first_bad, i);
    }
}
