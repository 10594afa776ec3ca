//! Scalar math that `std` lacks or that we want bit-for-bit under our control.

/// Complementary error function, `erfc(x) = 1 - erf(x)`, with relative error below 1.2e-7 for
/// every x (Chebyshev fit of `erfc(z) = t·exp(-z² + P(t))`, `t = 1 / (1 + z/2)`, z = |x|;
/// Press et al., Numerical Recipes §6.2). Evaluated in f64 so the f32 result is correctly
/// rounded in practice. Relative accuracy matters for GELU at negative inputs, where
/// `1 + erf(x)` is tiny and an absolute-error erf would lose every digit.
#[inline(always)]
pub fn erfc(x: f32) -> f32 {
    erfc_with(x, exp_f64)
}

/// [`erfc`]'s formula with the f64 `exp` given (the tests compare [`exp_f64`] with libm's).
#[inline(always)]
fn erfc_with(x: f32, exp: impl Fn(f64) -> f64) -> f32 {
    let z = (x as f64).abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98 + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * exp(-z * z + poly);
    (if x >= 0.0 { r } else { 2.0 - r }) as f32
}

/// `e^x` in f64 for [`erfc`], without a library call so that GELU's loop vectorises (libm's
/// `exp`, one call per element, was 9% of a MiniLM forward pass). `x = n·ln2 + r` with integer n and
/// |r| ≤ ln2/2, e^r a degree-13 Taylor polynomial in Horner form,
/// `1 + r(1 + r/2(1 + r/3(… (1 + r/13))))` (truncation below 4e-18 relative), and 2^n built
/// from exponent bits: within a few f64 ulp of e^x, far below the f32 rounding that ends
/// [`erfc`], which then gives the bits it gave with `f64::exp` (a test sweeps millions of
/// inputs). Returns 0 below -708, where erfc's f32 result is 0 anyway; erfc's argument never
/// exceeds 1.
#[inline(always)]
fn exp_f64(x: f64) -> f64 {
    const LN2_HI: f64 = 6.931_471_803_691_238e-1; // ln 2 to 32 significant bits: n·LN2_HI is exact for |n| ≤ 1024
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    const ROUND: f64 = 6_755_399_441_055_744.0; // 1.5·2^52: adding it rounds to an integer
    const MIN: f64 = -708.0;
    const INV: [f64; 13] = [
        1.0,
        1.0 / 2.0,
        1.0 / 3.0,
        1.0 / 4.0,
        1.0 / 5.0,
        1.0 / 6.0,
        1.0 / 7.0,
        1.0 / 8.0,
        1.0 / 9.0,
        1.0 / 10.0,
        1.0 / 11.0,
        1.0 / 12.0,
        1.0 / 13.0,
    ];
    let xc = x.clamp(MIN, 709.0);
    let shifted = xc * std::f64::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = (xc - n * LN2_HI) - n * LN2_LO;
    let mut p = 1.0;
    for inv in INV.iter().rev() {
        p = 1.0 + r * inv * p;
    }
    let n = shifted.to_bits() as i64 - ROUND.to_bits() as i64; // in [-1021, 1023] after the clamp
    let y = p * f64::from_bits(((n + 1023) as u64) << 52);
    if x < MIN {
        0.0
    } else {
        y
    }
}

/// GELU with the exact Gaussian CDF: `x · Φ(x) = x/2 · erfc(-x/√2)` (BERT's activation).
///
/// In f32 so that it vectorises 16 wide: `Φ(-|x|) = t/2 · exp(P(t) - z²)` with [`erfc`]'s
/// Chebyshev fit (`z = |x|/√2`, `t = 1/(1 + z/2)`), and the exponent `P(t) - z²` carried in two
/// f32s (the rounding errors of `z²` and of the sum) so that only the fit
/// (1.2e-7), [`exp_fast`] (2 ulp) and a few products round: within 7e-7 relative of the f64
/// [`erfc`] version on |x| < 9 (a test sweeps it), a third of its cost. A MiniLM forward spent
/// 12% of its time in the f64 version.
#[inline(always)]
pub fn gelu_erf(x: f32) -> f32 {
    // Past z = 10 the tail is below 1e-45 (0 in f32); the cap keeps z² finite for x = ±inf.
    let z = (x.abs() * std::f32::consts::FRAC_1_SQRT_2).min(10.0);
    let t = 1.0 / (1.0 + 0.5 * z);
    let p = erfc_fit(t);
    let (hi, lo) = square_exact(z);
    let s = p - hi;
    let b = s - p;
    let err = (p - (s - b)) + (-hi - b); // p - hi = s + err exactly (TwoSum)
    let tail = 0.5 * t * exp_fast(s) * (1.0 + (err - lo)); // Φ(-|x|)
    if x >= 0.0 {
        x * (1.0 - tail)
    } else {
        x * tail
    }
}

/// `z² = hi + lo` exactly, with `hi = fl(z²)`: Dekker's product, splitting z into two 12-bit
/// halves (Veltkamp) so that every partial product is exact. Plain multiplies and adds, so it
/// vectorises at every SIMD level and gives the same bits on each (`f32::mul_add` would be a
/// library call where the target lacks FMA). Exact for |z| below about 2^100.
#[inline(always)]
fn square_exact(z: f32) -> (f32, f32) {
    let hi = z * z;
    let c = 4097.0 * z; // 2^12 + 1
    let zh = c - (c - z);
    let zl = z - zh;
    let lo = ((zh * zh - hi) + 2.0 * zh * zl) + zl * zl;
    (hi, lo)
}

/// The Chebyshev polynomial of [`erfc`]'s fit, in f32: `erfc(z) ≈ t · exp(-z² + P(t))`.
#[inline(always)]
fn erfc_fit(t: f32) -> f32 {
    -1.265_512_2
        + t * (1.000_023_7
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_204 + t * (1.488_515_9 + t * (-0.822_152_2 + t * 0.170_872_77))))))))
}

/// `1 / √(2π)`, the standard normal density at 0.
const INV_SQRT_2PI: f32 = 0.398_942_3;

/// The standard normal CDF `Φ(x)` and density `φ(x)` in f32, sharing one `exp(-x²/2)`.
///
/// `Φ(x) = erfc(-x/√2) / 2`, with `erfc(z) = t · exp(-z² + P(t))`, `t = 1 / (1 + |z|/2)`: the
/// Chebyshev fit of [`erfc`] (relative error < 1.2e-7), here in f32
/// with the vectorising `exp_fast` (the f64 original costs twice a GEMM of the same rows in a
/// training step). `exp(-z²) = exp(-x²/2)` is also `√(2π) · φ(x)`. For |x| up to ~13, where Φ
/// underflows, rounding `z²` in f32 keeps the relative error of Φ below ~1e-5.
#[inline(always)]
fn normal_cdf_pdf(x: f32) -> (f32, f32) {
    let z = x.abs() * std::f32::consts::FRAC_1_SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = erfc_fit(t);
    let gauss = exp_fast(-z * z); // exp(-x²/2)
    let tail = 0.5 * t * gauss * exp_fast(poly); // Φ(-|x|) = erfc(|x|/√2) / 2
    let cdf = if x >= 0.0 { 1.0 - tail } else { tail };
    (cdf, gauss * INV_SQRT_2PI)
}

/// Exact GELU's derivative: `d/dx [x · Φ(x)] = Φ(x) + x · φ(x)`.
#[inline(always)]
pub fn gelu_erf_grad(x: f32) -> f32 {
    let (cdf, pdf) = normal_cdf_pdf(x);
    cdf + x * pdf
}

/// √(2/π), the constant of the tanh approximation.
pub const SQRT_2_OVER_PI: f32 = 0.797_884_6;

/// GELU's tanh approximation (GPT-2's activation):
/// `x/2 · (1 + tanh(u))` with `u = √(2/π) · (x + 0.044715 x³)`.
///
/// Evaluated as `x · sigmoid(2u) = x / (1 + e^(-2u))`, the same function since
/// `(1 + tanh u)/2 = 1/(1 + e^(-2u))`, because `1 + tanh(u)` cancels catastrophically for
/// negative x (tanh u ≈ -1) while the sigmoid form keeps full relative precision there. The
/// exponential is [`exp_fast`] (2 ulp), so the loop over a tensor vectorises.
#[inline(always)]
pub fn gelu_tanh(x: f32) -> f32 {
    let u = SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x);
    x / (1.0 + exp_fast(-2.0 * u))
}

/// Tanh-GELU's derivative. With `u = √(2/π)(x + 0.044715 x³)` and `t = tanh(u)`,
/// `y = x/2 · (1 + t)`, so `dy/dx = (1 + t)/2 + x/2 · (1 - t²) · √(2/π)(1 + 3·0.044715 x²)`.
/// `1 + t` and `1 - t` are formed directly from `e = exp(-2|u|)` (`2/(1 + e)` on the side of
/// u's sign, `2e/(1 + e)` on the other) rather than from `t`: in the tails `t ≈ ±1` and
/// `1 ± t` would cancel to nothing.
#[inline(always)]
pub fn gelu_tanh_grad(x: f32) -> f32 {
    let u = SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x);
    let e = exp_fast(-2.0 * u.abs());
    let (near, far) = (2.0 / (1.0 + e), 2.0 * e / (1.0 + e));
    let (one_plus_t, one_minus_t) = if u >= 0.0 { (near, far) } else { (far, near) };
    let du = SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044_715 * x * x);
    0.5 * one_plus_t + 0.5 * x * (one_plus_t * one_minus_t) * du
}

/// The logistic function `1 / (1 + e^-x)`; saturates cleanly (e^-x = inf gives 0).
///
/// `e^-x` is [`exp_fast`] (2 ulp; PyTorch's own vectorised CPU exp is not libm's either), so
/// the loops of SiLU and SwiGLU vectorise: with libm's `expf`, one call per element, a
/// decoding step's SwiGLU (4,864 values at the Qwen2.5-0.5B shape) took about 10 µs a layer
/// on the leading thread while the helpers waited.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp_fast(-x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erfc_matches_known_values() {
        // Reference values from the series of erf to 1e-12.
        let cases = [
            (0.0, 1.0),
            (0.5, 0.479_500_122_186_953_5),
            (1.0, 0.157_299_207_050_285_1),
            (3.0, 2.209_049_699_858_544e-5),
            (-1.0, 1.842_700_792_949_715),
        ];
        for (x, want) in cases {
            let got = erfc(x) as f64;
            assert!(((got - want) / want).abs() < 2e-7, "erfc({x}) = {got}, want {want}");
        }
    }

    /// The version [`erfc`] had before [`exp_f64`]: libm's `exp`.
    fn erfc_libm(x: f32) -> f32 {
        erfc_with(x, f64::exp)
    }

    #[test]
    fn exp_f64_is_within_a_few_ulp_of_libm() {
        let mut x = -708.0f64;
        while x < 709.0 {
            let (got, want) = (exp_f64(x), x.exp());
            assert!((got - want).abs() <= 4.0 * f64::EPSILON * want, "exp_f64({x}) = {got}, want {want}");
            x += 0.001_37;
        }
        assert_eq!(exp_f64(-800.0), 0.0);
        assert_eq!(exp_f64(0.0), 1.0);
    }

    #[test]
    fn erfc_gives_the_bits_of_the_libm_version() {
        // Every 97th f32 in [-12, 12] (about 21 million), where erfc is not yet 0 or 2.
        let (lo, hi) = ((-12.0f32).to_bits(), 12.0f32.to_bits());
        let positives = (0..=hi).step_by(97).map(f32::from_bits);
        let negatives = (0x8000_0000..=lo).step_by(97).map(f32::from_bits);
        let differ: Vec<f32> =
            positives.chain(negatives).filter(|&x| erfc(x).to_bits() != erfc_libm(x).to_bits()).collect();
        assert!(differ.is_empty(), "{} inputs differ, e.g. {:?}", differ.len(), &differ[..differ.len().min(5)]);
        for x in [f32::INFINITY, f32::NEG_INFINITY, f32::MAX, f32::MIN, 30.0, -30.0] {
            assert_eq!(erfc(x).to_bits(), erfc_libm(x).to_bits(), "erfc({x})");
        }
        assert!(erfc(f32::NAN).is_nan() && gelu_erf(f32::NAN).is_nan());
    }

    #[test]
    fn gelu_erf_is_within_7e_7_of_the_f64_erfc_version() {
        // Every 61st f32 in (-9, 9); beyond, |gelu(x)| is below 1e-18 or equal to x. Below
        // 1e-30 the result x/2 is subnormal and rounds absolutely.
        let (lo, hi) = ((-9.0f32).to_bits(), 9.0f32.to_bits());
        let xs = (0..=hi).step_by(61).chain((0x8000_0000..=lo).step_by(61)).map(f32::from_bits);
        let mut worst = (0.0f64, 0.0f32);
        for x in xs {
            let want = 0.5 * x as f64 * erfc(-x * std::f32::consts::FRAC_1_SQRT_2) as f64;
            if x.abs() > 1e-30 {
                let error = ((gelu_erf(x) as f64 - want) / want).abs();
                if error > worst.0 {
                    worst = (error, x);
                }
            }
        }
        assert!(worst.0 < 7e-7, "relative error {:e} at x = {}", worst.0, worst.1);
        for (x, want) in [(0.0, 0.0), (f32::INFINITY, f32::INFINITY), (30.0, 30.0), (-30.0, -0.0)] {
            assert_eq!(gelu_erf(x), want, "gelu({x})");
        }
        assert!(gelu_erf(f32::NAN).is_nan());
    }

    #[test]
    fn gelu_variants_agree_roughly() {
        for x in [-3.0f32, -1.0, 0.0, 0.5, 2.0] {
            assert!((gelu_erf(x) - gelu_tanh(x)).abs() < 2e-3);
        }
    }
}

/// `e^x` that vectorises: `x = n·ln2 + r` with integer n and |r| ≤ ln2/2, then
/// `e^x = 2^n · e^r`, where e^r is a degree-6 Taylor polynomial (truncation error below
/// 2.4e-8 relative on that interval) and 2^n is built from its exponent bits. Within 2 ulp of
/// the correctly rounded result on [-87.3, 88.7]; below that it returns 0 (so masked -inf
/// logits give exactly 0), above it +inf; NaN stays NaN. Used by softmax and cross-entropy,
/// whose memory-bound loops would otherwise wait on a scalar `exp` call per element.
///
/// Every step is a plain add, multiply, compare or bit operation, so the loop calling it
/// vectorises even on baseline SSE2 (where `floor` would be a library call per element).
#[inline(always)]
pub fn exp_fast(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_145_75; // ln 2 split in two so n·LN2_HI is exact
    const LN2_LO: f32 = 1.428_606_8e-6;
    const MIN: f32 = -87.336_55; // below: the result would be subnormal
    const MAX: f32 = 88.722_84;
    // Adding 1.5·2^23 pushes the fraction bits out of the mantissa: the sum is x·log2(e)
    // rounded to the nearest integer, readable both as a float and from the low bits.
    const ROUND: f32 = 12_582_912.0;
    let xc = x.clamp(MIN, MAX);
    let shifted = xc * std::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = xc - n * LN2_HI - n * LN2_LO;
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // 2^n via the exponent field. n ∈ [-126, 128] after the clamp, and both ends fall outside
    // the normal exponents, so build it as 2^(n/2) · 2^(n - n/2), each factor in range.
    let n = shifted.to_bits() as i32 - ROUND.to_bits() as i32;
    let pow2 = |e: i32| f32::from_bits(((e + 127) as u32) << 23);
    let y = p * pow2(n >> 1) * pow2(n - (n >> 1));
    if x < MIN {
        0.0
    } else if x > MAX {
        f32::INFINITY
    } else {
        y
    }
}

#[cfg(test)]
mod exp_tests {
    use super::exp_fast;

    #[test]
    fn exp_fast_is_within_two_ulp() {
        let mut x = -87.0f32;
        while x < 88.0 {
            let want = (x as f64).exp();
            let got = exp_fast(x) as f64;
            let ulp = want.abs() * f32::EPSILON as f64; // in f64: f32 would underflow here
            assert!((got - want).abs() <= 2.0 * ulp, "exp_fast({x}) = {got}, want {want}");
            x += 0.0137;
        }
        assert_eq!(exp_fast(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_fast(f32::INFINITY), f32::INFINITY);
        assert!(exp_fast(f32::NAN).is_nan());
        assert_eq!(exp_fast(0.0), 1.0);
    }
}
