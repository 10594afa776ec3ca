//! Property test: random shapes, layouts and kernels against the naive f64 loop.

use super::dispatch::available;
use super::tests::{check_case, Layout};
use proptest::prelude::*;

/// Any of the layouts the packing code distinguishes, with small random offsets and pads.
fn layout() -> impl Strategy<Value = Layout> {
    prop_oneof![
        (0..20usize, 0..9usize).prop_map(|(offset, pad)| Layout::RowMajor { offset, pad }),
        (0..20usize, 0..9usize).prop_map(|(offset, pad)| Layout::ColMajor { offset, pad }),
        Just(Layout::Strided),
    ]
}

proptest! {
    // 48 cases of up to 300³ multiply-adds each run in a few seconds at opt-level 1.
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn random_shapes_and_layouts_match_naive(
        m in 1..300usize,
        n in 1..300usize,
        k in 1..300usize,
        la in layout(),
        lb in layout(),
        accumulate in any::<bool>(),
        kernel in any::<prop::sample::Index>(),
    ) {
        let kernels = available();
        check_case(&kernels[kernel.index(kernels.len())], (m, n, k), la, lb, accumulate);
    }
}
