// elementwise.wgsl: elementwise maps over strided, broadcast f32 operands.
//
// Computes, for every element i of a contiguous output of `numel` elements:
//   unary:  out[i] = f(in0[at(0, i)])            (f chosen by `op`, see UnaryOp in Rust)
//   binary: out[i] = g(in0[at(0, i)], in1[at(1, i)])   (g chosen by `op`, see BinaryOp)
//   select: out[i] = in0[at(0, i)] != 0 ? in1[at(1, i)] : in2[at(2, i)]   (where_)
//   copy:   out[i] = in0[at(0, i)]               (contiguous() of any view)
//   gelu_backward, gelu_tanh_backward: out[i] = in1[i] · gelu'(in0[i]), the backward of the
//           GELU unary ops (dx = dy · gelu'(x), x = in0 and dy = in1 contiguous, no `strided`):
//           exact  gelu'(x) = Φ(x) + x · φ(x);
//           tanh   gelu'(x) = d/dx [x/2 · (1 + tanh u)], u = √(2/π)(x + 0.044715 x³).
// where at(k, i) is operand k's storage index of output element i: unravel i over the output
// shape (row-major), then offset_k + Σ coord_d · stride_k[d]. Broadcast dims have stride 0,
// so transposed, sliced and broadcast operands are all read in place, without a copy.
//
// Bindings: 0 `params` (uniform), 1 `strided` (storage, read): u32 shape[rank], then for each
// operand k: strides[rank] followed by its offset; 2, 3, 4 inputs in0..in2 (storage, read);
// 5 `out` (storage, read_write).
// One invocation computes one output element. Grids larger than 65,535 workgroups are
// dispatched in 2-D: the linear index is x + y · (num_workgroups.x · 256).
// Comparisons write 1.0 / 0.0. maximum/minimum propagate NaN as the CPU does (WGSL's max/min
// leave it unspecified), and ne is true on NaN, testing NaN on the bits.

struct Params {
    numel: u32,
    rank: u32,
    op: u32,
    scalar: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> strided: array<u32>;
@group(0) @binding(2) var<storage, read> in0: array<f32>;
@group(0) @binding(3) var<storage, read> in1: array<f32>;
@group(0) @binding(4) var<storage, read> in2: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

const WORKGROUP: u32 = 256u;

fn linear_index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * WORKGROUP;
}

// Storage index of output element i in operand k (k = 0, 1, 2).
fn at(k: u32, i: u32) -> u32 {
    let rank = params.rank;
    let base = rank + k * (rank + 1u); // operand k's strides start here in `strided`
    var rem = i;
    var offset = strided[base + rank];
    for (var d = i32(rank) - 1; d >= 0; d = d - 1) {
        let size = strided[u32(d)];
        offset = offset + (rem % size) * strided[base + u32(d)];
        rem = rem / size;
    }
    return offset;
}

// erfc with relative error < 1.2e-7 (Chebyshev fit, Numerical Recipes §6.2), as the CPU.
fn erfc_approx(x: f32) -> f32 {
    let z = abs(x);
    let t = 1.0 / (1.0 + 0.5 * z);
    let p = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806
        + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
    let r = t * exp(-z * z + p);
    return select(2.0 - r, r, x >= 0.0);
}

// Φ(x) and φ(x) sharing one exp(-x²/2), as the CPU: Φ(-|x|) = erfc(|x|/√2) / 2 with the
// Chebyshev fit erfc(z) = t · exp(-z² + P(t)), t = 1 / (1 + z/2) (relative error < 1.2e-7).
fn normal_cdf_pdf(v: f32) -> vec2<f32> {
    let z = abs(v) * 0.70710678;
    let t = 1.0 / (1.0 + 0.5 * z);
    let p = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806
        + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
    let gauss = exp(-z * z); // exp(-x²/2)
    let tail = 0.5 * t * gauss * exp(p);
    return vec2<f32>(select(tail, 1.0 - tail, v >= 0.0), gauss * 0.39894228);
}

fn sigmoid(x: f32) -> f32 {
    return 1.0 / (1.0 + exp(-x));
}

// tanh through exp of a non-positive argument, so large |x| never overflows to inf/inf.
fn tanh_safe(x: f32) -> f32 {
    let e = exp(-2.0 * abs(x));
    return sign(x) * (1.0 - e) / (1.0 + e);
}

fn unary_op(op: u32, x: f32, s: f32) -> f32 {
    switch op {
        case 0u: { return -x; }
        case 1u: { return abs(x); }
        case 2u: { return exp(x); }
        case 3u: { return log(x); }
        case 4u: { return sqrt(x); }
        case 5u: { return 1.0 / sqrt(x); }
        case 6u: { return tanh_safe(x); }
        case 7u: { return sigmoid(x); }
        case 8u: { return max(x, 0.0); }
        case 9u: { return x * sigmoid(x); }
        // GELU (erf): x/2 · erfc(-x/√2)
        case 10u: { return 0.5 * x * erfc_approx(-x * 0.70710678); }
        // GELU (tanh): x · sigmoid(2u), u = √(2/π)(x + 0.044715x³); see the CPU kernel for why
        case 11u: { return x * sigmoid(2.0 * 0.7978846 * (x + 0.044715 * x * x * x)); }
        case 12u: { return pow_signed(x, s); }
        case 13u: { return x + s; }
        case 14u: { return x * s; }
        case 15u: { return x / s; }
        case 16u: { return s / x; }
        default: { return x; }
    }
}

// x^e with IEEE-like handling of negative bases for integer exponents (WGSL's pow is
// undefined for x < 0).
fn pow_signed(x: f32, e: f32) -> f32 {
    if (e == 2.0) {
        return x * x;
    }
    let magnitude = pow(abs(x), e);
    if (x >= 0.0) {
        return magnitude;
    }
    if (fract(e) != 0.0) {
        return bitcast<f32>(0x7fc00000u); // NaN
    }
    let odd = (i32(e) & 1) == 1;
    return select(magnitude, -magnitude, odd);
}

// NaN test on the bits: `a != a` may be folded to false, since WGSL lets compilers assume no NaN.
fn is_nan(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

fn binary_op(op: u32, a: f32, b: f32) -> f32 {
    switch op {
        case 0u: { return a + b; }
        case 1u: { return a - b; }
        case 2u: { return a * b; }
        case 3u: { return a / b; }
        case 4u: { return select(b, a, a >= b || is_nan(a)); }
        case 5u: { return select(b, a, a <= b || is_nan(a)); }
        case 6u: { return select(0.0, 1.0, a == b); }
        // IEEE: NaN != anything; some compilers lower != as an ordered compare (false on NaN).
        case 7u: { return select(0.0, 1.0, a != b || is_nan(a) || is_nan(b)); }
        case 8u: { return select(0.0, 1.0, a < b); }
        case 9u: { return select(0.0, 1.0, a <= b); }
        case 10u: { return select(0.0, 1.0, a > b); }
        case 11u: { return select(0.0, 1.0, a >= b); }
        default: { return a; }
    }
}

@compute @workgroup_size(256)
fn unary(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = linear_index(gid, groups);
    if (i >= params.numel) {
        return;
    }
    out[i] = unary_op(params.op, in0[at(0u, i)], params.scalar);
}

@compute @workgroup_size(256)
fn gelu_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = linear_index(gid, groups);
    if (i >= params.numel) {
        return;
    }
    let v = in0[i]; // x
    let cdf_pdf = normal_cdf_pdf(v);
    out[i] = in1[i] * (cdf_pdf.x + v * cdf_pdf.y);
}

@compute @workgroup_size(256)
fn gelu_tanh_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = linear_index(gid, groups);
    if (i >= params.numel) {
        return;
    }
    let v = in0[i]; // x
    let u = 0.7978846 * (v + 0.044715 * v * v * v);
    // 1 + t and 1 - t from e = exp(-2|u|), never from t: in the tails t ≈ ±1 and they cancel.
    let e = exp(-2.0 * abs(u));
    let near = 2.0 / (1.0 + e);
    let far = 2.0 * e / (1.0 + e);
    let one_plus_t = select(far, near, u >= 0.0);
    let one_minus_t = select(near, far, u >= 0.0);
    let du = 0.7978846 * (1.0 + 3.0 * 0.044715 * v * v);
    out[i] = in1[i] * (0.5 * one_plus_t + 0.5 * v * (one_plus_t * one_minus_t) * du);
}

@compute @workgroup_size(256)
fn binary(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = linear_index(gid, groups);
    if (i >= params.numel) {
        return;
    }
    out[i] = binary_op(params.op, in0[at(0u, i)], in1[at(1u, i)]);
}

@compute @workgroup_size(256)
fn select_where(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = linear_index(gid, groups);
    if (i >= params.numel) {
        return;
    }
    out[i] = select(in2[at(2u, i)], in1[at(1u, i)], in0[at(0u, i)] != 0.0);
}

@compute @workgroup_size(256)
fn copy_strided(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = linear_index(gid, groups);
    if (i >= params.numel) {
        return;
    }
    out[i] = in0[at(0u, i)];
}
