//! sgemm with a bf16 or f16 B equals, bit for bit, sgemm with B widened to f32 first: every
//! kernel, every layout of B, the packed and the gemv paths.

use super::dispatch::available;
use super::tests::{random_vec, Layout, Operand};
use super::{driver, MatRef, Widen};
use half::{bf16, f16};

/// B's elements as `T`, and the f32 copy of exactly those (rounded) values, same strides.
/// `data` with B's offset and strides.
fn view_as<'a, U>(b: &Operand, data: &'a [U]) -> MatRef<'a, U> {
    MatRef { data, offset: b.offset, row_stride: b.row_stride, col_stride: b.col_stride }
}

fn narrowed<T: Widen>(b: &Operand, from_f32: fn(f32) -> T) -> (Vec<T>, Vec<f32>) {
    let narrow: Vec<T> = b.data.iter().map(|&x| from_f32(x)).collect();
    let wide = narrow.iter().map(|x| x.widen()).collect();
    (narrow, wide)
}

/// Runs `kern` on A · B16 and on A · widen(B16), with C pre-filled for `accumulate`, and
/// asserts the two results have the same bits everywhere.
fn check_bitwise<T: Widen>((m, n, k): (usize, usize, usize), lb: Layout, accumulate: bool, from_f32: fn(f32) -> T) {
    let a = Operand::new(m, k, Layout::RowMajor { offset: 1, pad: 2 }, 11 + m as u64);
    let b = Operand::new(k, n, lb, 12 + n as u64);
    let (narrow, wide) = narrowed(&b, from_f32);
    let c0 = random_vec(m * n, 13);
    for kern in available() {
        let (mut c16, mut c32) = (c0.clone(), c0.clone());
        driver::gemm(&kern, m, n, k, a.view(), view_as(&b, &narrow), &mut c16, n, accumulate.into());
        driver::gemm(&kern, m, n, k, a.view(), view_as(&b, &wide), &mut c32, n, accumulate.into());
        let name = std::any::type_name::<T>();
        for (i, (x, y)) in c16.iter().zip(&c32).enumerate() {
            assert_eq!(
                x.to_bits(),
                y.to_bits(),
                "{} {name} m={m} n={n} k={k} B {lb:?} acc={accumulate}: C[{i}] {x} vs {y}",
                kern.name
            );
        }
    }
}

/// Shapes through the gemv path (m = 1, n = 1) and the packed one, with tails in every block.
const SHAPES: [(usize, usize, usize); 7] =
    [(1, 70, 45), (1, 1500, 300), (37, 1, 29), (5, 9, 3), (17, 33, 65), (64, 48, 40), (70, 130, 530)];

/// Row-major B (an `(K, N)` weight, `dy @ W`), column-major B (`x @ W.t()` with W `(N, K)`),
/// and B strided both ways.
const LAYOUTS: [Layout; 4] = [
    Layout::RowMajor { offset: 0, pad: 0 },
    Layout::ColMajor { offset: 0, pad: 0 },
    Layout::ColMajor { offset: 3, pad: 5 },
    Layout::Strided,
];

#[test]
fn bf16_b_gives_the_bits_of_the_widened_f32_b() {
    for mnk in SHAPES {
        for lb in LAYOUTS {
            check_bitwise(mnk, lb, false, bf16::from_f32);
            check_bitwise(mnk, lb, true, bf16::from_f32);
        }
    }
}

#[test]
fn f16_b_gives_the_bits_of_the_widened_f32_b() {
    for mnk in SHAPES {
        for lb in LAYOUTS {
            check_bitwise(mnk, lb, false, f16::from_f32);
        }
    }
}

/// An f16 B through the scalar path (as on a CPU without F16C) equals the F16C path: both
/// are exact, so the packed panels and the products agree.
#[test]
fn f16_scalar_widening_matches_simd_widening_in_a_panel() {
    let src: Vec<f16> = random_vec(1000, 5).into_iter().map(|x| f16::from_f32(x * 70000.0)).collect();
    let mut simd = vec![0.0f32; src.len()];
    let mut scalar = vec![0.0f32; src.len()];
    f16::widen_into(&src, &mut simd);
    super::widen::widen_f16_portable(&src, &mut scalar);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&simd), bits(&scalar));
}
