//! `Epilogue::Bias` against the product followed by a separate broadcast add: the same bits,
//! for every kernel, on shapes that cross every path (gemv rows and columns, k = 0, edge
//! tiles, several depth slices, parallel blocks).

use super::dispatch::available;
use super::tests::{random_vec, Layout, Operand};
use super::{driver, Epilogue};

const ROW: Layout = Layout::RowMajor { offset: 0, pad: 0 };
const COL: Layout = Layout::ColMajor { offset: 0, pad: 0 };

/// C (row stride n + 3, padding filled with a sentinel) from the fused bias, compared bit for
/// bit with `Write` then `C[i, j] += bias[j]`; the padding must stay untouched.
fn check_bias(kern: &super::dispatch::Kernel, (m, n, k): (usize, usize, usize), lb: Layout) {
    let a = Operand::new(m, k, ROW, 5 + m as u64);
    let b = Operand::new(k, n, lb, 6 + n as u64);
    let bias = random_vec(n, 7);
    let ldc = n + 3;
    let sentinel = -3.25f32;
    let mut want = vec![sentinel; m * ldc];
    driver::gemm(kern, m, n, k, a.view(), b.view(), &mut want, ldc, Epilogue::Write);
    for i in 0..m {
        for j in 0..n {
            want[i * ldc + j] += bias[j];
        }
    }
    let mut got = vec![sentinel; m * ldc];
    driver::gemm(kern, m, n, k, a.view(), b.view(), &mut got, ldc, Epilogue::Bias(&bias));
    let differ = got.iter().zip(&want).position(|(g, w)| g.to_bits() != w.to_bits());
    if let Some(at) = differ {
        let (i, j) = (at / ldc, at % ldc);
        panic!("{} m={m} n={n} k={k} B {lb:?}: C[{i}, {j}] = {} fused, {} unfused", kern.name, got[at], want[at]);
    }
}

#[test]
fn bias_epilogue_has_the_bits_of_a_separate_add() {
    for kern in available() {
        let (mr, nr, kc) = (kern.mr, kern.nr, kern.kc);
        let shapes = [
            (1, 37, 300),                      // gemv: one row
            (41, 1, 257),                      // gemv: one column
            (5, 7, 0),                         // an empty sum: C = bias
            (mr, nr, 9),                       // one full tile
            (2 * mr + 1, 3 * nr + 5, 17),      // edge tiles in both directions
            (mr + 1, nr + 1, 2 * kc + 1),      // three depth slices: the bias goes on the last
            (3 * mr + 1, kern.nc + 1, kc + 1), // big enough to run in parallel
        ];
        for mnk in shapes {
            check_bias(&kern, mnk, ROW);
            check_bias(&kern, mnk, COL);
        }
    }
}

#[test]
#[should_panic(expected = "a bias of 3 floats for 4 columns")]
fn a_bias_of_the_wrong_length_panics() {
    let a = Operand::new(2, 2, ROW, 1);
    let b = Operand::new(2, 4, ROW, 2);
    super::sgemm_into(2, 4, 2, a.view(), b.view(), &mut [0.0; 8], 4, Epilogue::Bias(&[1.0; 3]));
}
