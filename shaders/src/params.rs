//! Rust mirrors of each WGSL file's uniform `Params` struct: same field names, same order,
//! `#[repr(C)]` and `Pod` so they upload with `bytemuck::bytes_of`. Uniform buffers are read in
//! 16-byte rows, so every struct is padded to a multiple of 16 bytes.

use bytemuck::{Pod, Zeroable};

/// `elementwise.wgsl`. Shapes and strides travel separately in the `strided` buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct ElementwiseParams {
    /// Output elements.
    pub numel: u32,
    /// Dims of the (broadcast) output shape.
    pub rank: u32,
    /// Op code: the index of the op in `UnaryOp` / `BinaryOp`.
    pub op: u32,
    /// The constant of scalar ops (`x + s`, `x^s`...).
    pub scalar: f32,
}

/// `reduce.wgsl`: the `(outer, d, inner)` view and the op code of `ReduceOp`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct ReduceParams {
    pub outer: u32,
    pub d: u32,
    pub inner: u32,
    pub op: u32,
}

/// `softmax.wgsl`: `rows` rows of length `c` (forward and backward).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct SoftmaxParams {
    pub rows: u32,
    pub c: u32,
    pub _pad0: u32,
    pub _pad1: u32,
}

/// `layer_norm.wgsl`: `rows` rows of length `c` and the forward's `eps` (unused by the
/// backward).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct LayerNormParams {
    pub rows: u32,
    pub c: u32,
    pub eps: f32,
    pub _pad: u32,
}

/// `rms_norm.wgsl`: `rows` rows of length `c` and the forward's `eps` (unused by the
/// backward).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct RmsNormParams {
    pub rows: u32,
    pub c: u32,
    pub eps: f32,
    pub _pad: u32,
}

/// `rope.wgsl`: `pairs = positions · nh · hs/2` rotated pairs, heads per position, head size,
/// and the rotation's sign (1 forward, -1 backward).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct RopeParams {
    pub pairs: u32,
    pub nh: u32,
    pub hs: u32,
    pub sign: f32,
}

/// `swiglu.wgsl`: element count (forward and backward).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct SwigluParams {
    pub numel: u32,
    pub _pad0: u32,
    pub _pad1: u32,
    pub _pad2: u32,
}

/// `index.wgsl`: `(outer, d, inner)` views (`index_select`, `index_add`), `k` indices (or the
/// output's total dim for `copy_block`), output `numel`, and for `gather` and `scatter_add` the
/// `rank` and `dim` (their shapes travel in the `shapes` buffer); `column` is where a `cat`
/// part starts.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct IndexParams {
    pub outer: u32,
    pub d: u32,
    pub inner: u32,
    pub k: u32,
    pub numel: u32,
    pub rank: u32,
    pub dim: u32,
    pub column: u32,
}

/// `cross_entropy.wgsl`: `rows` rows of `v` logits and the target to skip (forward and
/// backward).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct CrossEntropyParams {
    pub rows: u32,
    pub v: u32,
    pub ignore_index: i32,
    pub _pad: u32,
}

/// `matmul.wgsl` and `matmul_f16.wgsl`: sizes and the strides of A and B in elements.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct MatmulParams {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub batch: u32,
    pub a_row_stride: u32,
    pub a_col_stride: u32,
    pub b_row_stride: u32,
    pub b_col_stride: u32,
}

/// `quant.wgsl`: the block type (its index in `QuantType::ALL`) and size, the sizes of the
/// entry point (see the WGSL header: `rows`, `n`, `k`), and where weight rows start in the
/// block bytes (`w_base`, `w_row_stride`, in bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct QuantParams {
    pub ty: u32,
    pub block_bytes: u32,
    pub block_elems: u32,
    pub rows: u32,
    pub n: u32,
    pub k: u32,
    pub w_base: u32,
    pub w_row_stride: u32,
}

/// `convert.wgsl`: element count (the packed side has `numel.div_ceil(2)` words).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct ConvertParams {
    pub numel: u32,
    pub _pad0: u32,
    pub _pad1: u32,
    pub _pad2: u32,
}

/// `optim.wgsl`: element count and the AdamW scalars of `AdamWScalars` (`decay` is 1 when there
/// is no weight decay).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct AdamWParams {
    pub numel: u32,
    pub decay: f32,
    pub one_minus_beta1: f32,
    pub beta2: f32,
    pub one_minus_beta2: f32,
    pub bias2_sqrt: f32,
    pub eps: f32,
    pub step_size: f32,
}

/// `topk.wgsl`: `rows` rows of `n` elements, padded to `p` (a power of two; the current row
/// length of the pairs buffer), `k` outputs per row; the run length K as `size` (reduce), the
/// bitonic stages `size ..= size_end` (local sort) or the one `step` of stage `size`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct TopKParams {
    pub rows: u32,
    pub n: u32,
    pub p: u32,
    pub k: u32,
    pub size: u32,
    pub size_end: u32,
    pub step: u32,
    pub _pad: u32,
}
