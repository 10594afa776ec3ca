//! `topk`: the k largest elements along the last dim, with their indices, in a total order that
//! is the same on every device.

use crate::cpu::topk as kernels;
use crate::storage::{CpuStorage, Storage};
use crate::Tensor;

/// The result of [`Tensor::topk`]: `values` `(..., k)` in the input's dtype and `indices`
/// `(..., k)` i32, both best first.
#[derive(Clone, Debug)]
pub struct TopK {
    /// The k largest elements of each row, largest first, bit for bit as in the input.
    pub values: Tensor,
    /// Where each of `values` sits in its row (i32, `0..n`).
    pub indices: Tensor,
}

impl Tensor {
    /// The `k` largest elements of each row along the last dim and their indices, largest
    /// first, as `torch.topk(x, k, dim=-1, sorted=True)`.
    ///
    /// Input `(..., n)` f32; outputs `(..., k)`: `values` f32, `indices` i32. The order is total,
    /// so the result is fully determined and the same on the CPU and the GPU:
    /// larger values first; equal values (and -0 with +0) by lower index; NaN ranks last,
    /// below -inf. Values therefore match `torch.topk`'s, and indices do too except among
    /// equal values, whose order PyTorch leaves unspecified. A 0-d tensor is one row of one
    /// element. Views of any layout are read as they are (a copy when not contiguous).
    ///
    /// CPU: per row, a partial selection then a sort of the k winners (`O(n + k log k)`).
    /// GPU (`topk.wgsl`): bitonic networks over each row's (key, index) pairs; for k ≤ 256 a
    /// bitonic top-k reduction (`O(n log² k)` work, each dispatch shrinking the rows 512/K-fold
    /// for K the power of two ≥ k), above that a full bitonic sort (`O(n log² n)`); then the
    /// first k are gathered. Nothing is read back.
    ///
    /// ```
    /// use deltaw_tensor::{Device, Tensor};
    /// let x = Tensor::from_vec(vec![0.1f32, f32::NAN, 0.7, 0.7, f32::NEG_INFINITY, 9.0], (2, 3), &Device::Cpu)?;
    /// let top = x.topk(2); // rows [0.1, NaN, 0.7] and [0.7, -inf, 9.0]
    /// assert_eq!(top.values.to_vec(), vec![0.7, 0.1, 9.0, 0.7]);
    /// assert_eq!(top.indices.to_vec_i32(), vec![2, 0, 2, 0]);
    /// // Ties go to the lower index; NaN ranks below -inf.
    /// let row = Tensor::from_vec(vec![0.5f32, f32::NAN, 0.5, f32::NEG_INFINITY], 4, &Device::Cpu)?;
    /// assert_eq!(row.topk(4).indices.to_vec_i32(), vec![0, 2, 3, 1]);
    /// # Ok::<(), deltaw_tensor::Error>(())
    /// ```
    ///
    /// # Panics
    /// If `k` exceeds the last dim, naming `k` and the shape; if the dtype is not f32.
    #[track_caller]
    pub fn topk(&self, k: usize) -> TopK {
        if self.rank() == 0 {
            return self.reshape(1).topk(k);
        }
        let n = self.dim(-1);
        if k > n {
            panic!("topk: k = {k} is larger than the last dim ({n}) of shape {:?}", self.shape());
        }
        let mut shape = self.dims().to_vec();
        *shape.last_mut().expect("rank ≥ 1") = k;
        if shape.iter().product::<usize>() == 0 {
            return empty_topk(self, shape);
        }
        match self.storage() {
            Storage::Cpu(_) => {
                let (values, indices) = kernels::topk(&self.f32_values("topk"), n, k);
                TopK {
                    values: Tensor::from_f32(values, shape.clone()),
                    indices: Tensor::from_cpu(CpuStorage::I32(indices), shape),
                }
            }
            #[cfg(feature = "gpu")]
            Storage::Gpu(_) => super::on_gpu::topk(self, n, k, shape),
        }
    }
}

/// Outputs with no elements (`k = 0` or an empty batch) on `x`'s device; the dtype is still
/// checked, as for a full result.
#[track_caller]
fn empty_topk(x: &Tensor, shape: Vec<usize>) -> TopK {
    if x.dtype() != crate::DType::F32 {
        panic!(
            "topk: expects an f32 tensor, got {} of shape {:?}; convert with to_dtype(DType::F32)",
            x.dtype(),
            x.shape()
        );
    }
    let dev = x.device();
    let values = Tensor::from_vec(Vec::<f32>::new(), shape.clone(), &dev);
    let indices = Tensor::from_vec(Vec::<i32>::new(), shape, &dev);
    match (values, indices) {
        (Ok(values), Ok(indices)) => TopK { values, indices },
        (Err(e), _) | (_, Err(e)) => panic!("topk: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use crate::{DType, Device, Tensor};

    fn t(data: Vec<f32>, dims: &[usize]) -> Tensor {
        Tensor::from_vec(data, dims, &Device::Cpu).unwrap()
    }

    #[test]
    fn topk_orders_ties_by_index_and_nan_below_minus_infinity() {
        let x = t(vec![2.0, f32::NAN, f32::NEG_INFINITY, 2.0, f32::INFINITY, -1.0], &[6]);
        let top = x.topk(6);
        assert_eq!(top.indices.to_vec_i32(), vec![4, 0, 3, 5, 2, 1]);
        let v = top.values.to_vec();
        assert_eq!(v[..5], [f32::INFINITY, 2.0, 2.0, -1.0, f32::NEG_INFINITY]);
        assert!(v[5].is_nan());
        assert_eq!((top.values.dtype(), top.indices.dtype()), (DType::F32, DType::I32));
    }

    #[test]
    fn topk_with_k_equal_to_n_sorts_each_row() {
        let x = t(vec![3.0, 1.0, 2.0, 5.0, 6.0, 4.0], &[2, 3]);
        let top = x.topk(3);
        assert_eq!(top.values.to_vec(), vec![3.0, 2.0, 1.0, 6.0, 5.0, 4.0]);
        assert_eq!(top.indices.to_vec_i32(), vec![0, 2, 1, 1, 0, 2]);
    }

    #[test]
    fn topk_of_zero_gives_empty_outputs_of_the_right_shape() {
        let top = t(vec![1.0; 6], &[2, 3]).topk(0);
        assert_eq!((top.values.dims(), top.indices.dims()), (&[2, 0][..], &[2, 0][..]));
        assert_eq!(top.indices.dtype(), DType::I32);
        assert_eq!(Tensor::zeros((0, 4), &Device::Cpu).topk(2).values.dims(), &[0, 2]);
    }

    #[test]
    fn topk_runs_over_batched_rows_of_a_transposed_view() {
        // (2, 3, 4) → transpose(1, 2): rows of length 3 with stride 4.
        let data: Vec<f32> = (0..24).map(|i| ((i * 5) % 7) as f32).collect();
        let x = t(data, &[2, 3, 4]).transpose(1, 2);
        assert!(!x.is_contiguous());
        let top = x.topk(2);
        assert_eq!(top.values.dims(), &[2, 4, 2]);
        let dense = x.contiguous().to_vec();
        for (r, row) in dense.chunks(3).enumerate() {
            let mut order: Vec<usize> = (0..3).collect();
            order.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
            let ids: Vec<i32> = order[..2].iter().map(|&i| i as i32).collect();
            assert_eq!(top.indices.to_vec_i32()[r * 2..r * 2 + 2], ids, "row {r}: {row:?}");
            assert_eq!(top.values.to_vec()[r * 2..r * 2 + 2], [row[order[0]], row[order[1]]]);
        }
    }

    #[test]
    fn topk_of_a_scalar_is_itself() {
        let top = Tensor::scalar(4.5, &Device::Cpu).topk(1);
        assert_eq!((top.values.to_vec(), top.indices.to_vec_i32()), (vec![4.5], vec![0]));
    }

    #[test]
    #[should_panic(expected = "topk: k = 4 is larger than the last dim (3) of shape")]
    fn topk_past_the_row_length_panics_naming_k_and_the_shape() {
        t(vec![1.0; 6], &[2, 3]).topk(4);
    }

    #[test]
    #[should_panic(expected = "topk: expects an f32 tensor, got i32")]
    fn topk_of_indices_panics_naming_the_dtype() {
        Tensor::from_vec(vec![1i32, 2], 2, &Device::Cpu).unwrap().topk(1);
    }
}
