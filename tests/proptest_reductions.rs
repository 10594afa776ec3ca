//! Property tests for reductions against f64 references, and for `Tensor::matmul` (transposed,
//! sliced and batch-broadcast operands) against a naive f64 triple loop.

use deltaw_tensor::{Device, Seed, Tensor};
use proptest::prelude::*;

const DEV: Device = Device::Cpu;
const EPS: f64 = f32::EPSILON as f64;

// ---------------------------------------------------------------------------------------
// Reductions.
// ---------------------------------------------------------------------------------------

/// A random input: row-major `shape`, maybe stored transposed (first and last dims swapped,
/// so the kernel gets a strided view), `randn` values shifted by `offset` (a large offset
/// makes the variance suffer cancellation if it were computed in one pass).
fn reduction_input(shape: &[usize], seed: u64, transposed: bool, offset: f32) -> Tensor {
    let rank = shape.len();
    let x = if transposed && rank >= 2 {
        let mut stored = shape.to_vec();
        stored.swap(0, rank - 1);
        Tensor::randn(stored, Seed(seed), &DEV).transpose(0, -1)
    } else {
        Tensor::randn(shape.to_vec(), Seed(seed), &DEV)
    };
    &x + offset
}

/// Rank 1..=4 with dims 1..=7, one of which may be long (up to 300) so that rows exceed the
/// 16-way unrolled sum and its tail.
fn reduction_shape() -> impl Strategy<Value = Vec<usize>> {
    (
        prop::collection::vec(1..=7usize, 1..=4),
        any::<prop::sample::Index>(),
        prop_oneof![Just(None), (1..=300usize).prop_map(Some)],
    )
        .prop_map(|(mut shape, which, long)| {
            if let Some(len) = long {
                let i = which.index(shape.len());
                shape[i] = len;
            }
            shape
        })
}

/// `f` applied to every fiber of `x` (row-major `dims`) along `d`, in the order of the
/// output `(dims[..d], dims[d+1..])`. Fiber `(o, i)` is `x[(o·n + j)·inner + i]` for `j < n`.
fn reduce_ref<T>(x: &[f32], dims: &[usize], d: usize, f: impl Fn(&[f64]) -> T) -> Vec<T> {
    let outer: usize = dims[..d].iter().product();
    let n = dims[d];
    let inner: usize = dims[d + 1..].iter().product();
    let mut out = Vec::with_capacity(outer * inner);
    for o in 0..outer {
        for i in 0..inner {
            let fiber: Vec<f64> = (0..n).map(|j| x[(o * n + j) * inner + i] as f64).collect();
            out.push(f(&fiber));
        }
    }
    out
}

/// A reduction's f64 reference value and the error it may carry.
struct Expected {
    value: f64,
    tol: f64,
}

/// Sum: recursive f32 summation in any order errs by at most γ_(n-1)·Σ|x| ≈ (n/2)·eps·Σ|x|
/// (Higham, Accuracy and Stability, §4.2). `8·n·eps·Σ|x|` is that bound with 16× slack, so
/// only a real bug (a lost, doubled or misplaced element) can exceed it; the 1e-6 floor covers
/// results that are tiny by cancellation. `sums_of_integers_are_exact` checks the structure
/// without any slack.
fn sum_ref(xs: &[f64]) -> Expected {
    let n = xs.len() as f64;
    let abs: f64 = xs.iter().map(|x| x.abs()).sum();
    Expected { value: xs.iter().sum(), tol: 8.0 * n * EPS * abs + 1e-6 }
}

/// Mean: the sum's error divided by n, plus the division's rounding.
fn mean_ref(xs: &[f64]) -> Expected {
    let n = xs.len() as f64;
    let sum = sum_ref(xs);
    let value = sum.value / n;
    Expected { value, tol: sum.tol / n + EPS * value.abs() }
}

/// Unbiased variance, two-pass in the kernel: the mean's error δ enters only as n·δ²
/// (Σ(x - m) = 0 cancels the first-order term); each of the n squared deviations and their
/// sum add a few eps relative, so 8·(n + 3)·eps relative to the variance, plus n·δ²/(n - 1).
/// A single element has no unbiased variance: NaN, as PyTorch.
fn var_ref(xs: &[f64]) -> Expected {
    let n = xs.len() as f64;
    if xs.len() < 2 {
        return Expected { value: f64::NAN, tol: 0.0 };
    }
    let mean = mean_ref(xs);
    let value = xs.iter().map(|x| (x - mean.value).powi(2)).sum::<f64>() / (n - 1.0);
    Expected { value, tol: 8.0 * (n + 3.0) * EPS * value + n * mean.tol * mean.tol / (n - 1.0) + 1e-6 }
}

fn exact(value: f64) -> Expected {
    Expected { value, tol: 0.0 }
}

fn max_ref(xs: &[f64]) -> Expected {
    exact(xs.iter().copied().fold(f64::NEG_INFINITY, f64::max))
}

fn min_ref(xs: &[f64]) -> Expected {
    exact(xs.iter().copied().fold(f64::INFINITY, f64::min))
}

/// The first index of the maximum, as PyTorch documents for ties.
fn argmax_ref(xs: &[f64]) -> Expected {
    let max = max_ref(xs).value;
    exact(xs.iter().position(|&x| x == max).unwrap() as f64)
}

/// Each reduction: its name, the public method for both keepdim settings, and its reference.
#[allow(clippy::type_complexity)]
const REDUCTIONS: [(&str, fn(&Tensor, isize) -> Tensor, fn(&Tensor, isize) -> Tensor, fn(&[f64]) -> Expected); 6] = [
    ("sum", Tensor::sum, Tensor::sum_keepdim, sum_ref),
    ("mean", Tensor::mean, Tensor::mean_keepdim, mean_ref),
    ("var", Tensor::var, Tensor::var_keepdim, var_ref),
    ("max", Tensor::max, Tensor::max_keepdim, max_ref),
    ("min", Tensor::min, Tensor::min_keepdim, min_ref),
    ("argmax", Tensor::argmax, Tensor::argmax_keepdim, argmax_ref),
];

/// The output values as f64 (argmax gives i32 indices).
fn values_f64(t: &Tensor, name: &str) -> Vec<f64> {
    if name == "argmax" {
        t.to_vec_i32().iter().map(|&i| i as f64).collect()
    } else {
        t.to_vec().iter().map(|&x| x as f64).collect()
    }
}

/// `None` when every element is within its tolerance (NaN matching NaN), else a report.
fn mismatch(got: &[f64], want: &[Expected]) -> Option<String> {
    if got.len() != want.len() {
        return Some(format!("{} values, expected {}", got.len(), want.len()));
    }
    let bad =
        got.iter().zip(want).position(|(&g, w)| !(g.is_nan() && w.value.is_nan() || (g - w.value).abs() <= w.tol))?;
    Some(format!("index {bad}: got {}, expected {} ± {:e}", got[bad], want[bad].value, want[bad].tol))
}

/// Integers in -4..=4 from a SplitMix64 stream: sums of up to 2^21 of them are exact in f32.
fn small_integers(len: usize, seed: u64) -> Vec<f32> {
    let mix = |i: u64| {
        let mut z = seed.wrapping_add((i + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    (0..len as u64).map(|i| (mix(i) % 9) as f32 - 4.0).collect()
}

/// The shape a reduction over `d` leaves.
fn reduced_shape(dims: &[usize], d: usize, keepdim: bool) -> Vec<usize> {
    let mut shape = dims.to_vec();
    if keepdim {
        shape[d] = 1;
    } else {
        shape.remove(d);
    }
    shape
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn reductions_along_a_dim_match_f64_reference(
        shape in reduction_shape(),
        dim in any::<prop::sample::Index>(),
        negative in any::<bool>(),
        seed in any::<u64>(),
        transposed in any::<bool>(),
        offset in prop_oneof![Just(0.0f32), Just(10.0f32), -100.0f32..100.0],
    ) {
        let x = reduction_input(&shape, seed, transposed, offset);
        let values = x.to_vec();
        let d = dim.index(shape.len());
        let signed = if negative { d as isize - shape.len() as isize } else { d as isize };
        for (name, plain, keep, reference) in REDUCTIONS {
            let want = reduce_ref(&values, &shape, d, reference);
            for keepdim in [false, true] {
                let got = if keepdim { keep(&x, signed) } else { plain(&x, signed) };
                prop_assert_eq!(got.dims(), &reduced_shape(&shape, d, keepdim)[..], "{} over dim {}", name, signed);
                let report = mismatch(&values_f64(&got, name), &want);
                prop_assert!(report.is_none(), "{} over dim {} of {:?} (keepdim {}): {}", name, signed, shape, keepdim, report.unwrap());
            }
        }
    }

    /// Small integers make every partial sum exact in f32, so the sum must be exact whatever
    /// the order and the mean is the exact sum divided once (f64 then f32 rounds the same, as
    /// 53 ≥ 2·24 + 2). Coarse values also make ties, where argmax must pick the first index.
    #[test]
    fn sums_of_integers_are_exact_and_argmax_takes_the_first_tie(
        shape in reduction_shape(),
        dim in any::<prop::sample::Index>(),
        seed in any::<u64>(),
    ) {
        let x = Tensor::from_vec(small_integers(shape.iter().product(), seed), shape.clone(), &DEV).unwrap();
        let values = x.to_vec();
        let d = dim.index(shape.len());
        let exact_of = |f: fn(&[f64]) -> Expected| move |xs: &[f64]| exact(f(xs).value);
        let cases: [(&str, Tensor, Vec<Expected>); 4] = [
            ("sum", x.sum(d), reduce_ref(&values, &shape, d, exact_of(sum_ref))),
            ("mean", x.mean(d), reduce_ref(&values, &shape, d, |xs| exact((sum_ref(xs).value / xs.len() as f64) as f32 as f64))),
            ("max", x.max(d), reduce_ref(&values, &shape, d, exact_of(max_ref))),
            ("argmax", x.argmax(d), reduce_ref(&values, &shape, d, exact_of(argmax_ref))),
        ];
        for (name, got, want) in cases {
            let report = mismatch(&values_f64(&got, name), &want);
            prop_assert!(report.is_none(), "{} over dim {} of {:?}: {}", name, d, shape, report.unwrap());
        }
    }

    #[test]
    fn full_reductions_match_f64_reference(shape in prop::collection::vec(1..=9usize, 0..=4), seed in any::<u64>()) {
        let x = reduction_input(&shape, seed, true, 0.0);
        let values: Vec<f64> = x.to_vec().iter().map(|&v| v as f64).collect();
        let cases = [
            ("sum_all", x.sum_all(), sum_ref(&values)),
            ("mean_all", x.mean_all(), mean_ref(&values)),
            ("max_all", x.max_all(), max_ref(&values)),
            ("min_all", x.min_all(), min_ref(&values)),
        ];
        for (name, got, want) in cases {
            prop_assert_eq!(got.rank(), 0, "{} gives a 0-d tensor", name);
            let report = mismatch(&[got.to_scalar() as f64], &[want]);
            prop_assert!(report.is_none(), "{} of {:?}: {}", name, shape, report.unwrap());
        }
    }
}

/// More than 2048 columns per reduced row: the column path splits them into several tasks.
#[test]
fn sum_over_a_middle_dim_with_wide_rows_matches_reference() {
    let shape = [2, 5, 4099];
    let x = Tensor::randn(shape.to_vec(), Seed(3), &DEV);
    let want = reduce_ref(&x.to_vec(), &shape, 1, sum_ref);
    let got: Vec<f64> = x.sum(1).to_vec().iter().map(|&v| v as f64).collect();
    assert_eq!(mismatch(&got, &want), None);
}

#[test]
fn sum_over_an_empty_dim_is_zero() {
    let x = Tensor::zeros((2, 0, 3), &DEV);
    assert_eq!(x.sum(1).dims(), &[2, 3]);
    assert_eq!(x.sum(1).to_vec(), vec![0.0; 6]);
}

/// Reducing a dim that has an empty dim after it (`inner == 0`) must give an empty result.
#[test]
fn sum_next_to_an_empty_dim_is_empty() {
    let x = Tensor::zeros((2, 3, 0), &DEV);
    assert_eq!(x.sum(1).dims(), &[2, 0]);
    assert!(x.sum(1).to_vec().is_empty());
}

/// The unbiased variance of no elements is 0/0 (PyTorch: NaN); the kernel divides the empty
/// sum of squares by d - 1 = -1 and returns -0.0.
#[test]
fn var_over_an_empty_dim_is_nan() {
    let v = Tensor::zeros((2, 0), &DEV).var(1).to_vec();
    assert!(v.iter().all(|x| x.is_nan()), "got {v:?}");
}

// ---------------------------------------------------------------------------------------
// Matmul through the public API.
// ---------------------------------------------------------------------------------------

/// How a `(.., rows, cols)` operand is stored: maybe as its transpose (`.t()` of a stored
/// `(.., cols, rows)` tensor), maybe as a window (`.narrow()` twice) of a larger tensor.
#[derive(Clone, Copy, Debug)]
struct Stored {
    transposed: bool,
    /// Extra stored rows and columns around the window (0 = not sliced).
    pad: (usize, usize),
    /// Where the window starts, taken modulo `pad + 1`.
    start: (usize, usize),
}

fn stored() -> impl Strategy<Value = Stored> {
    (any::<bool>(), prop_oneof![Just((0, 0)), (0..9usize, 0..9usize)], (0..9usize, 0..9usize))
        .prop_map(|(transposed, pad, start)| Stored { transposed, pad, start })
}

/// A `batch + (rows, cols)` operand of `randn` values, stored as `how` says.
fn matmul_operand(batch: &[usize], (rows, cols): (usize, usize), how: Stored, seed: u64) -> Tensor {
    let (r, c) = if how.transposed { (cols, rows) } else { (rows, cols) };
    let shape = [batch, &[r + how.pad.0, c + how.pad.1]].concat();
    let window = Tensor::randn(shape, Seed(seed), &DEV).narrow(-2, how.start.0 % (how.pad.0 + 1), r).narrow(
        -1,
        how.start.1 % (how.pad.1 + 1),
        c,
    );
    if how.transposed {
        window.t()
    } else {
        window
    }
}

/// Offset of matrix `b` (row-major over `out_batch`) inside an operand whose batch dims
/// broadcast to `out_batch`: size-1 (or missing) dims repeat.
fn batch_offset(mut b: usize, out_batch: &[usize], own_batch: &[usize], matrix: usize) -> usize {
    let extra = out_batch.len() - own_batch.len();
    let (mut offset, mut stride) = (0, matrix);
    for d in (0..out_batch.len()).rev() {
        let i = b % out_batch[d];
        b /= out_batch[d];
        if d >= extra {
            let own = own_batch[d - extra];
            offset += if own == 1 { 0 } else { i * stride };
            stride *= own;
        }
    }
    offset
}

/// `a @ b` for every matrix of the broadcast batch in f64, with `Σ_p |a_ip·b_pj|` per element.
fn naive_matmul(a: &Tensor, b: &Tensor, out_batch: &[usize]) -> (Vec<f64>, Vec<f64>) {
    let (m, k, n) = (a.dim(-2), a.dim(-1), b.dim(-1));
    let (av, bv) = (a.to_vec(), b.to_vec());
    let (ab, bb) = (&a.dims()[..a.rank() - 2], &b.dims()[..b.rank() - 2]);
    let count: usize = out_batch.iter().product();
    let (mut value, mut abs) = (vec![0.0; count * m * n], vec![0.0; count * m * n]);
    for batch in 0..count {
        let (a0, b0) = (batch_offset(batch, out_batch, ab, m * k), batch_offset(batch, out_batch, bb, k * n));
        for i in 0..m {
            let row = (batch * m + i) * n;
            for p in 0..k {
                let x = av[a0 + i * k + p] as f64;
                for j in 0..n {
                    let y = bv[b0 + p * n + j] as f64;
                    value[row + j] += x * y;
                    abs[row + j] += (x * y).abs();
                }
            }
        }
    }
    (value, abs)
}

/// A dot product of length k in f32, in any order and with or without FMA, errs by at most
/// γ_k·Σ|a·b| ≈ (k/2)·eps·Σ|a·b| (Higham §3.1); `k·eps` relative to Σ|a·b| is that bound
/// with 2× slack, so blocking of k or the micro-kernel's order cannot exceed it, but a lost
/// or misplaced term (of size ~|a·b|) does.
fn check_matmul(a: &Tensor, b: &Tensor, out_batch: &[usize]) -> Result<(), String> {
    let got = a.matmul(b);
    let (m, k, n) = (a.dim(-2), a.dim(-1), b.dim(-1));
    let want_dims = [out_batch, &[m, n]].concat();
    if got.dims() != want_dims {
        return Err(format!("shape {:?}, expected {want_dims:?}", got.dims()));
    }
    let (value, abs) = naive_matmul(a, b, out_batch);
    let tol = |i: usize| k as f64 * EPS * abs[i];
    let got = got.to_vec();
    match (0..got.len()).find(|&i| (got[i] as f64 - value[i]).abs() > tol(i)) {
        None => Ok(()),
        Some(i) => Err(format!("element {i}: got {}, expected {} ± {:e}", got[i], value[i], tol(i))),
    }
}

/// A batch shape of rank 0..=2 with sizes 1..=3, and each operand's own batch dims: a
/// suffix of it with some dims set to 1 (so `(2, 1, m, k) @ (3, k, n)`-style broadcasts occur).
fn batch_shapes() -> impl Strategy<Value = (Vec<usize>, Vec<usize>, Vec<usize>)> {
    (prop::collection::vec(1..=3usize, 0..=2), any::<usize>(), any::<u8>(), any::<usize>(), any::<u8>()).prop_map(
        |(out, la, ones_a, lb, ones_b)| {
            let own = |len: usize, ones: u8| {
                let suffix = &out[out.len() - len % (out.len() + 1)..];
                suffix.iter().enumerate().map(|(i, &s)| if (ones >> i) & 1 == 1 { 1 } else { s }).collect::<Vec<_>>()
            };
            let (a, b) = (own(la, ones_a), own(lb, ones_b));
            // The result's batch is the broadcast of the two, which may be smaller than `out`.
            let rank = a.len().max(b.len());
            let at = |s: &[usize], d: usize| if d + s.len() >= rank { s[d + s.len() - rank] } else { 1 };
            let batch = (0..rank).map(|d| at(&a, d).max(at(&b, d))).collect();
            (a, b, batch)
        },
    )
}

proptest! {
    // Up to 300³ multiply-adds per case in the naive f64 loop: 64 cases take about 2 s
    // at the dev profile's opt-level 1.
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn matmul_of_transposed_and_sliced_operands_matches_naive(
        m in 1..300usize, n in 1..300usize, k in 1..300usize,
        how_a in stored(), how_b in stored(), seed in any::<u64>(),
    ) {
        let a = matmul_operand(&[], (m, k), how_a, seed);
        let b = matmul_operand(&[], (k, n), how_b, seed ^ 1);
        let result = check_matmul(&a, &b, &[]);
        prop_assert!(result.is_ok(), "({}, {}) @ ({}, {}), {:?} and {:?}: {}", m, k, k, n, how_a, how_b, result.unwrap_err());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn batched_matmul_with_broadcast_batch_dims_matches_naive(
        m in 1..64usize, n in 1..64usize, k in 1..64usize,
        (batch_a, batch_b, batch) in batch_shapes(),
        how_a in stored(), how_b in stored(), seed in any::<u64>(),
    ) {
        let a = matmul_operand(&batch_a, (m, k), how_a, seed);
        let b = matmul_operand(&batch_b, (k, n), how_b, seed ^ 1);
        let result = check_matmul(&a, &b, &batch);
        prop_assert!(result.is_ok(), "{:?} @ {:?}, {:?} and {:?}: {}", a.dims(), b.dims(), how_a, how_b, result.unwrap_err());
    }

    /// A 1-D lhs is a row vector and a 1-D rhs a column vector whose unit dim is dropped.
    #[test]
    fn matmul_with_vector_operands_drops_the_unit_dim(
        m in 1..40usize, k in 1..40usize, lhs_vector in any::<bool>(), rhs_vector in any::<bool>(), seed in any::<u64>(),
    ) {
        let a = if lhs_vector { Tensor::randn(k, Seed(seed), &DEV) } else { Tensor::randn((m, k), Seed(seed), &DEV) };
        let b = Tensor::randn((k, 1), Seed(seed ^ 1), &DEV);
        let b = if rhs_vector { b.squeeze(1) } else { b };
        let got = a.matmul(&b);
        let (a2, b2) = (if lhs_vector { a.unsqueeze(0) } else { a.clone() }, b.reshape((k, 1)));
        let mut want_dims = vec![a2.dim(0), 1];
        if rhs_vector { want_dims.pop(); }
        if lhs_vector { want_dims.remove(0); }
        prop_assert_eq!(got.dims(), &want_dims[..]);
        prop_assert_eq!(got.to_vec(), a2.matmul(&b2).to_vec());
        prop_assert!(check_matmul(&a2, &b2, &[]).is_ok());
    }
}

#[test]
fn matmul_broadcasts_2_1_against_3() {
    let a = Tensor::randn((2, 1, 5, 7), Seed(1), &DEV);
    let b = Tensor::randn((3, 7, 4), Seed(2), &DEV);
    assert_eq!(check_matmul(&a, &b, &[2, 3]), Ok(()));
}

#[test]
fn matmul_with_empty_inner_dim_is_zeros() {
    let a = Tensor::zeros((3, 0), &DEV);
    let b = Tensor::zeros((0, 4), &DEV);
    assert_eq!(a.matmul(&b).to_vec(), vec![0.0; 12]);
}
