//! Shapes and dimension indices (negative dims count from the end, as in PyTorch).

use std::fmt;

/// The sizes of a tensor's dimensions, outermost first. A 0-d (scalar) tensor has an empty shape.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Shape(Vec<usize>);

impl Shape {
    /// The sizes, outermost first.
    pub fn dims(&self) -> &[usize] {
        &self.0
    }

    /// Number of dimensions (0 for a scalar).
    pub fn rank(&self) -> usize {
        self.0.len()
    }

    /// Number of elements: the product of the sizes (1 for a scalar).
    pub fn numel(&self) -> usize {
        self.0.iter().product()
    }

    /// Row-major (C-order) strides of a contiguous tensor of this shape, in elements.
    pub fn contiguous_strides(&self) -> Vec<usize> {
        let mut strides = vec![0; self.rank()];
        let mut acc = 1;
        for (stride, &size) in strides.iter_mut().zip(&self.0).rev() {
            *stride = acc;
            acc *= size;
        }
        strides
    }

    /// The shape both operands broadcast to, by NumPy's rules: align trailing dims; each pair
    /// must be equal or contain a 1. Returns `None` when the shapes are incompatible.
    pub fn broadcast(&self, other: &Shape) -> Option<Shape> {
        let rank = self.rank().max(other.rank());
        let mut dims = vec![0; rank];
        for (i, dim) in dims.iter_mut().enumerate() {
            let a = self.size_from_end(rank - i);
            let b = other.size_from_end(rank - i);
            *dim = match (a, b) {
                (a, b) if a == b => a,
                (1, b) => b,
                (a, 1) => a,
                _ => return None,
            };
        }
        Some(Shape(dims))
    }

    /// Size of the `k`-th dimension counted from the end (k = 1 is the last); 1 past the rank.
    fn size_from_end(&self, k: usize) -> usize {
        if k > self.rank() {
            1
        } else {
            self.0[self.rank() - k]
        }
    }
}

impl fmt::Debug for Shape {
    /// Prints like a Python tuple: `(2, 3)`, `(5,)`, `()`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "(")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{d}")?;
        }
        if self.0.len() == 1 {
            write!(f, ",")?;
        }
        write!(f, ")")
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl From<Vec<usize>> for Shape {
    fn from(dims: Vec<usize>) -> Self {
        Shape(dims)
    }
}

impl From<&[usize]> for Shape {
    fn from(dims: &[usize]) -> Self {
        Shape(dims.to_vec())
    }
}

impl<const N: usize> From<[usize; N]> for Shape {
    fn from(dims: [usize; N]) -> Self {
        Shape(dims.to_vec())
    }
}

impl From<&Shape> for Shape {
    fn from(shape: &Shape) -> Self {
        shape.clone()
    }
}

impl From<()> for Shape {
    fn from(_: ()) -> Self {
        Shape(Vec::new())
    }
}

impl From<usize> for Shape {
    fn from(d0: usize) -> Self {
        Shape(vec![d0])
    }
}

impl From<(usize,)> for Shape {
    fn from((d0,): (usize,)) -> Self {
        Shape(vec![d0])
    }
}

impl From<(usize, usize)> for Shape {
    fn from((d0, d1): (usize, usize)) -> Self {
        Shape(vec![d0, d1])
    }
}

impl From<(usize, usize, usize)> for Shape {
    fn from((d0, d1, d2): (usize, usize, usize)) -> Self {
        Shape(vec![d0, d1, d2])
    }
}

impl From<(usize, usize, usize, usize)> for Shape {
    fn from((d0, d1, d2, d3): (usize, usize, usize, usize)) -> Self {
        Shape(vec![d0, d1, d2, d3])
    }
}

impl From<(usize, usize, usize, usize, usize)> for Shape {
    fn from((d0, d1, d2, d3, d4): (usize, usize, usize, usize, usize)) -> Self {
        Shape(vec![d0, d1, d2, d3, d4])
    }
}

/// A dimension index. Negative values count from the end (`-1` is the last dim), as in PyTorch,
/// so `x.softmax(-1)` and `x.sum(0)` both read naturally.
pub trait Dim: Copy + fmt::Debug {
    /// The index as a signed number.
    fn as_isize(self) -> isize;

    /// The non-negative index into a tensor of `rank` dims.
    ///
    /// # Panics
    /// If the dim is outside `-rank..rank`; the message names `op` and the shape.
    #[track_caller]
    fn resolve(self, rank: usize, op: &str, shape: &Shape) -> usize {
        let d = self.as_isize();
        let r = rank as isize;
        let resolved = if d < 0 { d + r } else { d };
        if resolved < 0 || resolved >= r {
            panic!("{op}: dim {d} is out of range for a tensor of shape {shape:?} (valid: {}..{r})", -r);
        }
        resolved as usize
    }
}

impl Dim for usize {
    fn as_isize(self) -> isize {
        self as isize
    }
}

impl Dim for isize {
    fn as_isize(self) -> isize {
        self
    }
}

impl Dim for i32 {
    fn as_isize(self) -> isize {
        self as isize
    }
}

impl Dim for i64 {
    fn as_isize(self) -> isize {
        self as isize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_follows_numpy_rules() {
        let a = Shape::from((4, 1, 5));
        let b = Shape::from((3, 1));
        assert_eq!(a.broadcast(&b), Some(Shape::from((4, 3, 5))));
        assert_eq!(Shape::from(()).broadcast(&a), Some(a.clone()));
        assert_eq!(Shape::from((2, 3)).broadcast(&Shape::from(4)), None);
    }

    #[test]
    fn contiguous_strides_are_row_major() {
        assert_eq!(Shape::from((2, 3, 4)).contiguous_strides(), vec![12, 4, 1]);
        assert!(Shape::from(()).contiguous_strides().is_empty());
    }

    #[test]
    fn negative_dims_count_from_the_end() {
        let s = Shape::from((2, 3));
        assert_eq!((-1).resolve(2, "t", &s), 1);
        assert_eq!(0usize.resolve(2, "t", &s), 0);
    }

    #[test]
    #[should_panic(expected = "sum: dim 2 is out of range for a tensor of shape (2, 3)")]
    fn out_of_range_dim_panics_with_shape() {
        let s = Shape::from((2, 3));
        2.resolve(2, "sum", &s);
    }

    #[test]
    fn debug_prints_like_python_tuples() {
        assert_eq!(format!("{:?}", Shape::from(5)), "(5,)");
        assert_eq!(format!("{:?}", Shape::from(())), "()");
        assert_eq!(format!("{:?}", Shape::from((2, 3))), "(2, 3)");
    }
}
