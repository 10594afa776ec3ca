//! Printing tensors the way PyTorch does: nested brackets, aligned columns, and `...` in the
//! middle of long dims, followed by shape, dtype and device.

use crate::Tensor;
use std::fmt;

/// Above this many elements, dims longer than `2 * EDGE` are summarised with `...`.
const SUMMARY_THRESHOLD: usize = 1000;
/// Elements shown at each end of a summarised dim.
const EDGE: usize = 3;

impl fmt::Display for Tensor {
    /// ```text
    /// tensor([[1.0000, 2.0000, 3.0000],
    ///         [4.0000, 5.0000, 6.0000]], shape=(2, 3), dtype=f32, device=cpu)
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let values = self.to_vec();
        let number = NumberFormat::for_values(&values);
        let summarise = values.len() > SUMMARY_THRESHOLD;
        let mut body = String::new();
        write_nested(&mut body, &values, self.dims(), 0, &number, summarise);
        write!(f, "tensor({body}, shape={:?}, dtype={}, device={})", self.shape(), self.dtype(), self.device())
    }
}

impl fmt::Debug for Tensor {
    /// One line: `Tensor { shape: (2, 3), dtype: f32, device: cpu, values: [1.0, 2.0, ...] }`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = 8.min(self.numel());
        let values = self.flatten_all().narrow(0, 0, shown).to_vec();
        let more = if self.numel() > shown { ", ..." } else { "" };
        write!(
            f,
            "Tensor {{ shape: {:?}, dtype: {}, device: {}, values: {values:?}{more} }}",
            self.shape(),
            self.dtype(),
            self.device()
        )
    }
}

/// One format for all numbers of a tensor, chosen from its values as PyTorch does: integers
/// print as `3.`, moderate values with 4 decimals, very large or small ones in scientific form.
struct NumberFormat {
    kind: Kind,
    width: usize,
}

enum Kind {
    Integer,
    Fixed,
    Scientific,
}

impl NumberFormat {
    fn for_values(values: &[f32]) -> Self {
        let finite: Vec<f32> = values.iter().copied().filter(|v| v.is_finite()).collect();
        let max = finite.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let min_nonzero = finite.iter().filter(|v| **v != 0.0).fold(f32::INFINITY, |m, v| m.min(v.abs()));
        let kind = if finite.iter().all(|v| v.fract() == 0.0) && max < 1e8 {
            Kind::Integer
        } else if max >= 1e4 || min_nonzero < 1e-4 {
            Kind::Scientific
        } else {
            Kind::Fixed
        };
        let mut format = NumberFormat { kind, width: 0 };
        format.width = values.iter().map(|&v| format.render(v).len()).max().unwrap_or(0);
        format
    }

    fn render(&self, v: f32) -> String {
        if !v.is_finite() {
            return format!("{v}");
        }
        match self.kind {
            Kind::Integer => format!("{v:.0}."),
            Kind::Fixed => format!("{v:.4}"),
            Kind::Scientific => format!("{v:.4e}"),
        }
    }
}

/// Writes `values` (row-major, shape `dims`) as nested lists; `depth` sets the indentation.
fn write_nested(
    out: &mut String,
    values: &[f32],
    dims: &[usize],
    depth: usize,
    number: &NumberFormat,
    summarise: bool,
) {
    let Some((&n, rest)) = dims.split_first() else {
        out.push_str(&format!("{:>w$}", number.render(values[0]), w = number.width));
        return;
    };
    let stride: usize = rest.iter().product();
    let shown: Vec<Option<usize>> = if summarise && n > 2 * EDGE {
        (0..EDGE).map(Some).chain([None]).chain((n - EDGE..n).map(Some)).collect()
    } else {
        (0..n).map(Some).collect()
    };
    let separator = if rest.is_empty() {
        ", ".to_string()
    } else {
        format!(",{}{}", "\n".repeat(rest.len()), " ".repeat(depth + 8))
    };
    out.push('[');
    for (pos, item) in shown.iter().enumerate() {
        if pos > 0 {
            out.push_str(&separator);
        }
        match item {
            Some(i) => write_nested(out, &values[i * stride..(i + 1) * stride], rest, depth + 1, number, summarise),
            None => out.push_str("..."),
        }
    }
    out.push(']');
}

#[cfg(test)]
mod tests {
    use crate::{Device, Tensor};

    #[test]
    fn display_prints_values_shape_dtype_device() {
        let t = Tensor::from_vec(vec![1.5f32, 2.0, 3.0, 4.0], (2, 2), &Device::Cpu).unwrap();
        assert_eq!(
            t.to_string(),
            "tensor([[1.5000, 2.0000],\n        [3.0000, 4.0000]], shape=(2, 2), dtype=f32, device=cpu)"
        );
    }

    #[test]
    fn long_tensors_are_summarised() {
        let s = Tensor::arange(0.0, 2000.0, &Device::Cpu).to_string();
        assert!(s.starts_with("tensor([   0.,    1.,    2., ..., 1997., 1998., 1999.]"), "{s}");
    }

    #[test]
    fn debug_is_one_line() {
        let t = Tensor::zeros(10, &Device::Cpu);
        assert_eq!(
            format!("{t:?}"),
            "Tensor { shape: (10,), dtype: f32, device: cpu, values: [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], ... }"
        );
    }
}
