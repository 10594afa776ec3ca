//! Property tests for views and broadcasting: random chains of view ops and random
//! broadcast-compatible operands, checked element by element against a naive row-major
//! reference that copies index by index.

use deltaw_tensor::{Device, Layout, Tensor};
use proptest::prelude::*;

const DEV: Device = Device::Cpu;

/// The most dims a view chain may reach (unsqueeze and split stop there).
const MAX_RANK: usize = 6;

/// The most elements an `expand` may produce, to keep each case fast.
const MAX_NUMEL: usize = 4096;

// ---------------------------------------------------------------------------------------
// The naive reference: a row-major array and index-by-index copies.
// ---------------------------------------------------------------------------------------

/// A row-major array: what every `Tensor` result is compared with.
#[derive(Clone, Debug)]
struct Naive {
    data: Vec<f32>,
    shape: Vec<usize>,
}

/// The multi-index of row-major position `flat` in `shape`.
fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut index = vec![0; shape.len()];
    for (i, &size) in index.iter_mut().zip(shape).rev() {
        *i = flat % size;
        flat /= size;
    }
    index
}

/// The row-major position of `index` in `shape`.
fn ravel(index: &[usize], shape: &[usize]) -> usize {
    index.iter().zip(shape).fold(0, |acc, (&i, &size)| acc * size + i)
}

impl Naive {
    /// The array of `shape` whose element at multi-index `i` is `self`'s element at `source(i)`.
    fn gather(&self, shape: Vec<usize>, source: impl Fn(&[usize]) -> Vec<usize>) -> Naive {
        let numel = shape.iter().product();
        let data = (0..numel).map(|f| self.data[ravel(&source(&unravel(f, &shape)), &self.shape)]).collect();
        Naive { data, shape }
    }

    /// Output dim `a` is input dim `perm[a]`.
    fn permute(&self, perm: &[usize]) -> Naive {
        let shape = perm.iter().map(|&p| self.shape[p]).collect();
        self.gather(shape, |out| {
            let mut src = vec![0; perm.len()];
            for (a, &p) in perm.iter().enumerate() {
                src[p] = out[a];
            }
            src
        })
    }

    fn narrow(&self, dim: usize, start: usize, len: usize) -> Naive {
        let mut shape = self.shape.clone();
        shape[dim] = len;
        self.gather(shape, |out| {
            let mut src = out.to_vec();
            src[dim] += start;
            src
        })
    }

    /// NumPy broadcasting of `self` to `shape`: trailing dims align, size-1 dims repeat.
    fn expand(&self, shape: Vec<usize>) -> Naive {
        let extra = shape.len() - self.shape.len();
        let own = self.shape.clone();
        self.gather(shape, |out| {
            own.iter().enumerate().map(|(i, &s)| if s == 1 { 0 } else { out[extra + i] }).collect()
        })
    }

    /// Reshape, squeeze and unsqueeze keep the row-major order: only the shape changes.
    fn reshape(&self, shape: Vec<usize>) -> Naive {
        assert_eq!(shape.iter().product::<usize>(), self.data.len());
        Naive { data: self.data.clone(), shape }
    }

    /// The element at `out_index` of `self` broadcast to a shape of rank `out_index.len()`.
    fn broadcast_value(&self, out_index: &[usize]) -> f32 {
        let extra = out_index.len() - self.shape.len();
        let src: Vec<usize> =
            self.shape.iter().enumerate().map(|(i, &s)| if s == 1 { 0 } else { out_index[extra + i] }).collect();
        self.data[ravel(&src, &self.shape)]
    }
}

/// The NumPy broadcast of several shapes (they are generated compatible).
fn broadcast_shape(shapes: &[&[usize]]) -> Vec<usize> {
    let rank = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    (0..rank)
        .map(|i| {
            let sizes = shapes.iter().filter_map(|s| (i + s.len()).checked_sub(rank).map(|j| s[j]));
            sizes.max().unwrap_or(1)
        })
        .collect()
}

/// Contiguity recomputed from the strides: element `f` in row-major order must sit at
/// `offset + f`. Independent of `Layout::is_contiguous`, which skips size-1 dims by rule.
fn naive_is_contiguous(layout: &Layout) -> bool {
    let dims = layout.dims();
    let numel: usize = dims.iter().product();
    (0..numel).all(|f| {
        let index = unravel(f, dims);
        let at: usize = index.iter().zip(layout.strides()).map(|(i, s)| i * s).sum();
        at == f
    })
}

// ---------------------------------------------------------------------------------------
// View chains.
// ---------------------------------------------------------------------------------------

/// A view op with its arguments resolved against the current shape. Dims are signed so that
/// negative dims, as a caller would write them, are exercised too.
#[derive(Clone, Debug)]
enum ViewOp {
    Transpose(isize, isize),
    Permute(Vec<usize>),
    Narrow(isize, usize, usize),
    Unsqueeze(isize),
    Squeeze(isize),
    Expand(Vec<usize>),
    Reshape(Vec<usize>),
}

/// Raw random numbers for one op: which op, then arguments taken modulo the current shape
/// (the shape is only known while the chain is applied, so the strategy cannot see it).
type RawOp = (u8, usize, usize, usize);

fn raw_op() -> impl Strategy<Value = RawOp> {
    (0..7u8, any::<usize>(), any::<usize>(), any::<usize>())
}

/// `d` in `0..rank`, written negatively when `flip` says so (`-1` is the last dim).
fn signed_dim(d: usize, rank: usize, flip: bool) -> isize {
    if flip {
        d as isize - rank as isize
    } else {
        d as isize
    }
}

fn resolve_dim(d: isize, rank: usize) -> usize {
    if d < 0 {
        (d + rank as isize) as usize
    } else {
        d as usize
    }
}

/// Turns raw numbers into an op valid for `shape`, or `None` when that op does not apply.
fn resolve_op((kind, a, b, c): RawOp, shape: &[usize]) -> Option<ViewOp> {
    let rank = shape.len();
    let numel: usize = shape.iter().product();
    let dim = |x: usize| signed_dim(x % rank.max(1), rank, x & 1 == 1);
    match kind {
        0 if rank >= 1 => Some(ViewOp::Transpose(dim(a), dim(b))),
        1 if rank >= 1 => Some(ViewOp::Permute(random_permutation(rank, a))),
        2 if rank >= 1 => {
            let d = dim(a);
            let size = shape[resolve_dim(d, rank)];
            let start = b % size;
            Some(ViewOp::Narrow(d, start, 1 + c % (size - start)))
        }
        3 if rank < MAX_RANK => Some(ViewOp::Unsqueeze(signed_dim(a % (rank + 1), rank + 1, b & 1 == 1))),
        4 => {
            let ones: Vec<usize> = (0..rank).filter(|&d| shape[d] == 1).collect();
            (!ones.is_empty()).then(|| ViewOp::Squeeze(signed_dim(ones[a % ones.len()], rank, b & 1 == 1)))
        }
        5 => expand_target(shape, a, b, c).filter(|t| t.iter().product::<usize>() <= MAX_NUMEL).map(ViewOp::Expand),
        _ => reshape_target(shape, numel, a, b).map(ViewOp::Reshape),
    }
}

/// A permutation of `0..rank` from a Fisher–Yates shuffle driven by `seed`.
fn random_permutation(rank: usize, mut seed: usize) -> Vec<usize> {
    let mut perm: Vec<usize> = (0..rank).collect();
    for i in (1..rank).rev() {
        perm.swap(i, seed % (i + 1));
        seed /= i + 1;
    }
    perm
}

/// Grows some size-1 dims to 2..4 and maybe adds a new leading dim; `None` if nothing changes.
fn expand_target(shape: &[usize], a: usize, b: usize, c: usize) -> Option<Vec<usize>> {
    let mut target = shape.to_vec();
    for (d, size) in target.iter_mut().enumerate() {
        if *size == 1 && (b >> d) & 1 == 1 {
            *size = 2 + (c >> (2 * d)) % 3;
        }
    }
    if a & 1 == 1 && shape.len() < MAX_RANK {
        target.insert(0, 1 + (a >> 1) % 3);
    }
    (target != shape).then_some(target)
}

/// Flattens, merges two adjacent dims, or splits a dim into two factors.
fn reshape_target(shape: &[usize], numel: usize, a: usize, b: usize) -> Option<Vec<usize>> {
    let rank = shape.len();
    match a % 3 {
        0 => Some(vec![numel]),
        1 if rank >= 2 => {
            let d = b % (rank - 1);
            let mut target = shape.to_vec();
            let merged = target.remove(d + 1);
            target[d] *= merged;
            Some(target)
        }
        _ if (1..MAX_RANK).contains(&rank) => {
            let d = b % rank;
            let divisors: Vec<usize> = (1..=shape[d]).filter(|&f| shape[d].is_multiple_of(f)).collect();
            let f = divisors[(a / 3) % divisors.len()];
            let mut target = shape.to_vec();
            target[d] = shape[d] / f;
            target.insert(d, f);
            Some(target)
        }
        _ => None,
    }
}

fn apply(t: &Tensor, op: &ViewOp) -> Tensor {
    match op {
        ViewOp::Transpose(d0, d1) => t.transpose(*d0, *d1),
        ViewOp::Permute(perm) => t.permute(perm),
        ViewOp::Narrow(d, start, len) => t.narrow(*d, *start, *len),
        ViewOp::Unsqueeze(d) => t.unsqueeze(*d),
        ViewOp::Squeeze(d) => t.squeeze(*d),
        ViewOp::Expand(shape) => t.expand(shape.clone()),
        // `view` is the no-copy promise; `reshape` must copy when the data is not contiguous.
        ViewOp::Reshape(shape) if t.is_contiguous() => t.view(shape.clone()),
        ViewOp::Reshape(shape) => t.reshape(shape.clone()),
    }
}

fn apply_naive(r: &Naive, op: &ViewOp) -> Naive {
    let rank = r.shape.len();
    match op {
        ViewOp::Transpose(d0, d1) => {
            let mut perm: Vec<usize> = (0..rank).collect();
            perm.swap(resolve_dim(*d0, rank), resolve_dim(*d1, rank));
            r.permute(&perm)
        }
        ViewOp::Permute(perm) => r.permute(perm),
        ViewOp::Narrow(d, start, len) => r.narrow(resolve_dim(*d, rank), *start, *len),
        ViewOp::Unsqueeze(d) => {
            let mut shape = r.shape.clone();
            shape.insert(resolve_dim(*d, rank + 1), 1);
            r.reshape(shape)
        }
        ViewOp::Squeeze(d) => {
            let mut shape = r.shape.clone();
            shape.remove(resolve_dim(*d, rank));
            r.reshape(shape)
        }
        ViewOp::Expand(shape) => r.expand(shape.clone()),
        ViewOp::Reshape(shape) => r.reshape(shape.clone()),
    }
}

fn shape_strategy() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1..=6usize, 0..=5)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// Each step of the chain must equal the reference exactly (values are distinct, so a
    /// wrong index cannot go unnoticed), share the storage unless it is a reshape of
    /// non-contiguous data, and report contiguity as the strides really are.
    #[test]
    fn view_chains_match_index_by_index_reference(
        shape in shape_strategy(),
        raw_ops in prop::collection::vec(raw_op(), 0..10),
    ) {
        let numel: usize = shape.iter().product();
        let data: Vec<f32> = (0..numel).map(|i| i as f32).collect();
        let mut t = Tensor::from_vec(data.clone(), shape.clone(), &DEV).unwrap();
        let mut r = Naive { data, shape };
        let mut base = t.clone();
        for raw in raw_ops {
            let Some(op) = resolve_op(raw, &r.shape) else { continue };
            let copies = matches!(op, ViewOp::Reshape(_)) && !t.is_contiguous();
            t = apply(&t, &op);
            r = apply_naive(&r, &op);
            prop_assert_eq!(t.dims(), &r.shape[..], "shape after {:?}", op);
            prop_assert_eq!(t.to_vec(), r.data.clone(), "values after {:?}", op);
            prop_assert_eq!(t.is_contiguous(), naive_is_contiguous(t.layout()), "contiguity after {:?}", op);
            prop_assert_eq!(t.shares_storage_with(&base), !copies, "storage sharing after {:?}", op);
            if copies {
                base = t.clone();
            }
        }
        let c = t.contiguous();
        prop_assert!(c.is_contiguous());
        prop_assert_eq!(c.shares_storage_with(&t), t.is_contiguous());
        prop_assert_eq!(c.to_vec(), r.data);
    }
}

#[test]
fn empty_narrow_is_a_view_with_no_elements() {
    let t = Tensor::arange(0.0, 6.0, &DEV).reshape((2, 3));
    let e = t.narrow(1, 3, 0);
    assert_eq!(e.dims(), &[2, 0]);
    assert!(e.shares_storage_with(&t));
    assert!(e.to_vec().is_empty());
    assert!(e.contiguous().to_vec().is_empty());
    assert_eq!(e.t().reshape((0, 5)).dims(), &[0, 5]);
}

// ---------------------------------------------------------------------------------------
// Broadcasting.
// ---------------------------------------------------------------------------------------

/// Storage must never be read outside a view; these slots are NaN so that such a read shows.
const SENTINEL: f32 = f32::NAN;

/// How an operand's storage is arranged behind its logical row-major values.
#[derive(Clone, Copy, Debug)]
enum Arrangement {
    Contiguous,
    /// Stored with the dims reversed, then permuted back: every stride is "wrong way round".
    Reversed,
    /// Padded with sentinels along the last dim (a 0-d operand: a 3-element vector),
    /// then narrowed (and squeezed) back.
    Narrowed {
        before: usize,
        after: usize,
    },
}

fn arrangement() -> impl Strategy<Value = Arrangement> {
    prop_oneof![
        Just(Arrangement::Contiguous),
        Just(Arrangement::Reversed),
        (0..3usize, 0..3usize).prop_map(|(before, after)| Arrangement::Narrowed { before, after }),
    ]
}

/// A tensor holding `r`'s values, with its storage arranged as `how`.
fn arranged(r: &Naive, how: Arrangement) -> Tensor {
    let rank = r.shape.len();
    match how {
        Arrangement::Contiguous => Tensor::from_vec(r.data.clone(), r.shape.clone(), &DEV).unwrap(),
        Arrangement::Reversed => {
            let rev: Vec<usize> = (0..rank).rev().collect();
            let stored = r.permute(&rev);
            Tensor::from_vec(stored.data, stored.shape, &DEV).unwrap().permute(&rev)
        }
        Arrangement::Narrowed { before, after } if rank == 0 => {
            let data = [vec![SENTINEL; before], r.data.clone(), vec![SENTINEL; after]].concat();
            Tensor::from_vec(data, before + 1 + after, &DEV).unwrap().narrow(0, before, 1).squeeze(0)
        }
        Arrangement::Narrowed { before, after } => {
            let last = *r.shape.last().unwrap();
            let mut data = Vec::with_capacity(r.data.len() / last * (before + last + after));
            for row in r.data.chunks(last) {
                data.extend(std::iter::repeat_n(SENTINEL, before).chain(row.iter().copied()));
                data.extend(std::iter::repeat_n(SENTINEL, after));
            }
            let mut shape = r.shape.clone();
            shape[rank - 1] += before + after;
            Tensor::from_vec(data, shape, &DEV).unwrap().narrow(-1, before, last)
        }
    }
}

/// Operand values: a quarter on a coarse grid that includes 0 (so `eq`, ties in `maximum` and
/// division by zero all happen), the rest continuous in [-8, 8).
fn value(bits: u64) -> f32 {
    let uniform = (bits >> 40) as f32 / (1u64 << 24) as f32;
    match bits % 4 {
        0 => ((bits >> 8) % 5) as f32 * 0.5 - 1.0,
        _ => uniform * 16.0 - 8.0,
    }
}

/// A condition for `where_`: 0.0, -0.0 (also false) or a non-zero value.
fn mask_value(bits: u64) -> f32 {
    [0.0, -0.0, 1.0, -2.5][(bits % 4) as usize]
}

/// SplitMix64, so that one proptest seed gives a whole operand.
fn splitmix(seed: u64, i: u64) -> u64 {
    let mut z = seed.wrapping_add((i + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One operand's shape: a suffix of the output shape with some dims replaced by 1.
type OperandSpec = (usize, u8, Arrangement, u64);

fn operand_spec() -> impl Strategy<Value = OperandSpec> {
    (any::<usize>(), any::<u8>(), arrangement(), any::<u64>())
}

fn operand(out_shape: &[usize], (len, ones, how, seed): OperandSpec, fill: fn(u64) -> f32) -> (Naive, Tensor) {
    let rank = out_shape.len();
    let suffix = &out_shape[rank - len % (rank + 1)..];
    let shape: Vec<usize> = suffix.iter().enumerate().map(|(i, &s)| if (ones >> i) & 1 == 1 { 1 } else { s }).collect();
    let numel: usize = shape.iter().product();
    let r = Naive { data: (0..numel as u64).map(|i| fill(splitmix(seed, i))).collect(), shape };
    let t = arranged(&r, how);
    (r, t)
}

/// Bit-exact equality, with any NaN equal to any NaN.
fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
}

/// The reference for an elementwise op of any arity: index by index over the broadcast shape.
fn naive_map(operands: &[&Naive], f: impl Fn(&[f32]) -> f32) -> Naive {
    let shapes: Vec<&[usize]> = operands.iter().map(|r| &r.shape[..]).collect();
    let shape = broadcast_shape(&shapes);
    let numel: usize = shape.iter().product();
    let data = (0..numel)
        .map(|flat| {
            let index = unravel(flat, &shape);
            f(&operands.iter().map(|r| r.broadcast_value(&index)).collect::<Vec<_>>())
        })
        .collect();
    Naive { data, shape }
}

fn bool_f32(b: bool) -> f32 {
    if b {
        1.0
    } else {
        0.0
    }
}

/// The binary ops under test with their reference: each is one IEEE operation or comparison,
/// so the result must be bit-exact.
#[allow(clippy::type_complexity)]
const BINARY_OPS: [(&str, fn(&Tensor, &Tensor) -> Tensor, fn(f32, f32) -> f32); 8] = [
    ("add", Tensor::add, |x, y| x + y),
    ("sub", Tensor::sub, |x, y| x - y),
    ("mul", Tensor::mul, |x, y| x * y),
    ("div", Tensor::div, |x, y| x / y),
    ("maximum", Tensor::maximum, f32::max),
    ("minimum", Tensor::minimum, f32::min),
    ("eq", Tensor::eq, |x, y| bool_f32(x == y)),
    ("lt", Tensor::lt, |x, y| bool_f32(x < y)),
];

fn out_shape_strategy() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1..=5usize, 0..=4)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn binary_ops_match_naive_broadcast(out in out_shape_strategy(), a in operand_spec(), b in operand_spec()) {
        let (ra, ta) = operand(&out, a, value);
        let (rb, tb) = operand(&out, b, value);
        prop_assert!(same_bits(&ta.to_vec(), &ra.data), "operand a arranged as {:?}", a.2);
        for (name, op, f) in BINARY_OPS {
            let got = op(&ta, &tb);
            let want = naive_map(&[&ra, &rb], |v| f(v[0], v[1]));
            prop_assert_eq!(got.dims(), &want.shape[..], "{} of {:?} and {:?}", name, ra.shape, rb.shape);
            prop_assert!(got.is_contiguous());
            prop_assert!(same_bits(&got.to_vec(), &want.data), "{}: got {:?}, want {:?}", name, got.to_vec(), want.data);
        }
    }

    #[test]
    fn where_matches_naive_broadcast(
        out in out_shape_strategy(),
        c in operand_spec(),
        a in operand_spec(),
        b in operand_spec(),
    ) {
        let (rc, tc) = operand(&out, c, mask_value);
        let (ra, ta) = operand(&out, a, value);
        let (rb, tb) = operand(&out, b, value);
        let got = tc.where_(&ta, &tb);
        let want = naive_map(&[&rc, &ra, &rb], |v| if v[0] != 0.0 { v[1] } else { v[2] });
        prop_assert_eq!(got.dims(), &want.shape[..]);
        prop_assert!(same_bits(&got.to_vec(), &want.data), "got {:?}, want {:?}", got.to_vec(), want.data);
    }
}
