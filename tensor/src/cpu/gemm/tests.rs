//! sgemm against a naive f64 triple loop: every shape class, layout and available kernel.

use super::dispatch::{available, Kernel};
use super::{check_shapes, driver, sgemm, MatRef};

/// How an r×c operand is stored.
#[derive(Clone, Copy, Debug)]
pub(super) enum Layout {
    /// Row-major, rows `pad` floats longer than needed, starting at `offset`.
    RowMajor { offset: usize, pad: usize },
    /// Column-major (a transposed operand), columns `pad` floats longer than needed.
    ColMajor { offset: usize, pad: usize },
    /// Neither stride is 1: every other element of every other row of a bigger matrix.
    Strided,
}

/// An r×c operand with pseudo-random entries in [-1, 1), stored as `layout` says.
pub(super) struct Operand {
    pub data: Vec<f32>,
    pub offset: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl Operand {
    pub(super) fn new(rows: usize, cols: usize, layout: Layout, seed: u64) -> Self {
        let (offset, row_stride, col_stride) = match layout {
            Layout::RowMajor { offset, pad } => (offset, cols + pad, 1),
            Layout::ColMajor { offset, pad } => (offset, 1, rows + pad),
            Layout::Strided => (3, 4 * cols + 1, 2),
        };
        // One past the last element, plus slack so slicing bugs read real (wrong) numbers.
        let len = offset + rows * row_stride + cols * col_stride + 5;
        Operand { data: random_vec(len, seed), offset, row_stride, col_stride }
    }

    pub(super) fn view(&self) -> MatRef<'_> {
        let (offset, row_stride, col_stride) = (self.offset, self.row_stride, self.col_stride);
        MatRef { data: &self.data, offset, row_stride, col_stride }
    }
}

/// `len` values in [-1, 1) from a 64-bit xorshift seeded by `seed`.
pub(super) fn random_vec(len: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// Runs `kern` on A (m×k) · B (k×n) with C (row stride n + 3) pre-filled with `c0`, and
/// checks every element against the f64 reference, and that C's padding is untouched.
///
/// Tolerance: each element is a sum of k products plus (when accumulating) the old value.
/// In any summation order, with or without FMA, the f32 rounding error is at most
/// γ_{k+2} · (|c0| + Σ_p |a_ip||b_pj|) with γ_j ≈ j·u and u = ε/2 (Higham, Accuracy and
/// Stability, §3.1); we allow 4(k+2)·ε times that sum, a margin of 8 over the bound.
pub(super) fn check_case(kern: &Kernel, (m, n, k): (usize, usize, usize), la: Layout, lb: Layout, accumulate: bool) {
    let a = Operand::new(m, k, la, 1 + m as u64);
    let b = Operand::new(k, n, lb, 2 + n as u64);
    let ldc = n + 3;
    let sentinel = 7.5f32;
    let c0: Vec<f32> = if accumulate {
        random_vec(m * ldc, 3)
    } else {
        vec![f32::NAN; m * ldc] // not read without accumulate, so NaN must not leak
    };
    let mut c = c0.clone();
    for i in 0..m {
        c[i * ldc + n..(i + 1) * ldc].fill(sentinel);
    }
    check_shapes(m, n, k, &a.view(), &b.view(), c.len(), ldc);
    super::driver::gemm(kern, m, n, k, a.view(), b.view(), &mut c, ldc, accumulate.into());
    let case = format!("{} m={m} n={n} k={k} A {la:?} B {lb:?} acc={accumulate}", kern.name);
    // (index, got, expected, tolerance) of every element outside its tolerance.
    let mut bad = Vec::new();
    for i in 0..m {
        for j in 0..n {
            let c_old = if accumulate { c0[i * ldc + j] as f64 } else { 0.0 };
            let (mut exact, mut scale) = (c_old, c_old.abs());
            for p in 0..k {
                let prod = a.view().at(i, p) as f64 * b.view().at(p, j) as f64;
                exact += prod;
                scale += prod.abs();
            }
            let tol = 4.0 * (k + 2) as f64 * f32::EPSILON as f64 * scale;
            let got = c[i * ldc + j] as f64;
            if (got - exact).abs() > tol || got.is_nan() {
                bad.push(((i, j), got, exact, tol));
            }
        }
        assert!(c[i * ldc + n..(i + 1) * ldc].iter().all(|&x| x == sentinel), "{case}: row {i} padding written");
    }
    if let Some(worst) = bad.iter().max_by(|x, y| (x.1 - x.2).abs().total_cmp(&(y.1 - y.2).abs())) {
        let first: Vec<_> = bad.iter().take(4).map(|(ij, got, exact, _)| (ij, got, exact)).collect();
        panic!(
            "{case}: {} elements off; worst C{:?} = {} vs {} ± {}; first (index, got, expected): {first:?}",
            bad.len(),
            worst.0,
            worst.1,
            worst.2,
            worst.3
        );
    }
}

const ROW: Layout = Layout::RowMajor { offset: 0, pad: 0 };
const COL: Layout = Layout::ColMajor { offset: 0, pad: 0 };

/// Every kernel on every shape in `shapes`, plain row-major, with and without accumulate.
fn check_shapes_all_kernels(shapes: &[(usize, usize, usize)]) {
    for kern in available() {
        for &mnk in shapes {
            check_case(&kern, mnk, ROW, ROW, false);
            check_case(&kern, mnk, ROW, ROW, true);
        }
    }
}

#[test]
fn every_kernel_the_cpu_supports_is_available() {
    let names: Vec<&str> = available().iter().map(|k| k.name).collect();
    assert!(names.last().unwrap().starts_with("portable"));
    #[cfg(target_arch = "x86_64")]
    {
        let has = |f: &str| names.iter().any(|n| n.starts_with(f));
        assert_eq!(has("avx512f"), std::arch::is_x86_feature_detected!("avx512f"));
        let avx2 = std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma");
        assert_eq!(has("avx2"), avx2);
    }
    assert!(names.contains(&super::kernel_name()));
}

#[test]
fn tiny_shapes_match_naive() {
    check_shapes_all_kernels(&[(1, 1, 1), (1, 1, 5), (2, 3, 1), (1, 7, 1), (5, 1, 3), (64, 48, 1)]);
}

#[test]
fn odd_sizes_match_naive() {
    check_shapes_all_kernels(&[(17, 33, 65), (129, 1, 7), (31, 47, 97)]);
}

#[test]
fn tall_skinny_and_short_wide_match_naive() {
    check_shapes_all_kernels(&[(1000, 3, 8), (3, 1000, 5), (1, 700, 300), (600, 1, 300)]);
}

#[test]
fn sizes_straddling_every_block_match_naive() {
    for kern in available() {
        let near = |x: usize| [x - 1, x, x + 1];
        // Each dimension crosses its block sizes while the other two stay small and odd.
        let slab_rows = driver::SLAB_ROWS - driver::SLAB_ROWS % kern.mr; // as `driver::gemm`
        for m in near(kern.mr).into_iter().chain(near(slab_rows)) {
            check_case(&kern, (m, 2 * kern.nr + 3, 9), ROW, ROW, true);
        }
        for n in near(kern.nr).into_iter().chain(near(kern.nc)).chain(near(driver::BLOCK_COLS)) {
            check_case(&kern, (2 * kern.mr + 1, n, 9), ROW, ROW, true);
        }
        for k in near(kern.kc).into_iter().chain(near(2 * kern.kc)) {
            check_case(&kern, (kern.mr + 1, kern.nr + 1, k), ROW, ROW, false);
        }
        // And all at once, big enough to run in parallel.
        check_case(&kern, (3 * kern.mr + 1, kern.nc + 1, kern.kc + 1), ROW, ROW, false);
    }
}

#[test]
fn transposed_and_sliced_operands_match_naive() {
    let sliced = Layout::RowMajor { offset: 11, pad: 5 };
    let sliced_t = Layout::ColMajor { offset: 7, pad: 3 };
    let layouts = [ROW, COL, sliced, sliced_t, Layout::Strided];
    for kern in available() {
        for la in layouts {
            for lb in layouts {
                check_case(&kern, (37, 45, 29), la, lb, false);
            }
        }
        check_case(&kern, (150, 130, 70), COL, COL, true);
        check_case(&kern, (150, 130, 70), Layout::Strided, sliced_t, true);
    }
}

#[test]
fn k_zero_gives_zero_or_leaves_c() {
    let (a, b) = (Operand::new(3, 0, ROW, 1), Operand::new(0, 4, ROW, 2));
    let mut c = vec![f32::NAN; 12];
    sgemm(3, 4, 0, a.view(), b.view(), &mut c, 4, false);
    assert!(c.iter().all(|&x| x == 0.0));
    let mut c = vec![2.5; 12];
    sgemm(3, 4, 0, a.view(), b.view(), &mut c, 4, true);
    assert!(c.iter().all(|&x| x == 2.5));
}

#[test]
fn empty_c_touches_nothing() {
    let a = Operand::new(0, 5, ROW, 1);
    let b = Operand::new(5, 4, ROW, 2);
    let mut c: Vec<f32> = Vec::new();
    sgemm(0, 4, 5, a.view(), b.view(), &mut c, 4, false);
    let a = Operand::new(3, 5, ROW, 1);
    sgemm(3, 0, 5, a.view(), MatRef::<f32> { data: &[], offset: 0, row_stride: 0, col_stride: 0 }, &mut c, 0, false);
}

#[test]
fn concurrent_and_nested_calls_agree() {
    use rayon::prelude::*;
    // Calls from inside rayon tasks share the pool and the per-thread pack buffers.
    (0..8).into_par_iter().for_each(|s| {
        let size = 90 + 7 * s;
        check_case(super::dispatch::selected(), (size, size + 1, size + 2), ROW, COL, s % 2 == 0);
    });
}

#[test]
#[should_panic(expected = "sgemm (m=4, n=4, k=4): A")]
fn short_a_panics_naming_sgemm() {
    let a = vec![0.0; 15];
    let b = Operand::new(4, 4, ROW, 1);
    let a = MatRef { data: &a, offset: 0, row_stride: 4, col_stride: 1 };
    sgemm(4, 4, 4, a, b.view(), &mut [0.0; 16], 4, false);
}

#[test]
#[should_panic(expected = "sgemm (m=4, n=4, k=4): C")]
fn short_c_panics_naming_sgemm() {
    let a = Operand::new(4, 4, ROW, 1);
    sgemm(4, 4, 4, a.view(), a.view(), &mut [0.0; 15], 4, false);
}

#[test]
#[should_panic(expected = "overlap")]
fn overlapping_rows_of_c_panic() {
    let a = Operand::new(4, 4, ROW, 1);
    sgemm(4, 4, 4, a.view(), a.view(), &mut [0.0; 64], 3, false);
}

/// The m = 1 and n = 1 shapes take the unpacked gemv path for every B layout it accepts;
/// a B strided both ways still goes through the packed kernels.
#[test]
fn vector_shapes_match_naive_in_every_layout() {
    let kern = super::dispatch::selected();
    let layouts =
        [ROW, COL, Layout::RowMajor { offset: 7, pad: 3 }, Layout::ColMajor { offset: 2, pad: 4 }, Layout::Strided];
    for &la in &layouts {
        for &lb in &layouts {
            for acc in [false, true] {
                check_case(kern, (1, 37, 300), la, lb, acc);
                check_case(kern, (41, 1, 257), la, lb, acc);
                check_case(kern, (1, 2100, 40), la, lb, acc); // several parallel column blocks
                check_case(kern, (1, 4100, 70), la, lb, acc); // rows longer than one whole-row piece
            }
        }
    }
}
