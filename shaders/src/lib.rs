//! # deltaw-shaders
//!
//! deltaw's GPU compute kernels as plain WGSL, one readable file per op family in `wgsl/`,
//! and a small registry that hands the GPU backend a kernel's source and entry point.
//! Each WGSL file opens with what it computes, its bindings, and what one invocation does.
//!
//! Scalar arguments travel in a uniform `Params` struct; the `#[repr(C)]` structs in
//! [`params`] mirror them field by field (a test checks the sizes against naga's layout).
//!
//! ```
//! use deltaw_shaders::Kernel;
//! let k = Kernel::SoftmaxForward;
//! assert_eq!(k.entry_point(), "softmax_forward");
//! assert!(k.source().contains("fn softmax_forward"));
//! assert!(!k.needs_f16());
//! ```

#![forbid(unsafe_code)]

pub mod params;

/// One compute entry point of one WGSL file. Each op family's backward sits beside its
/// forward, here as in the WGSL files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// `elementwise.wgsl`: `out = f(x)` over a strided view (op codes of `UnaryOp`).
    Unary,
    /// `elementwise.wgsl`: exact (erf) GELU's backward, `dx = dy · gelu'(x)`.
    GeluBackward,
    /// `elementwise.wgsl`: tanh GELU's backward.
    GeluTanhBackward,
    /// `elementwise.wgsl`: `out = g(a, b)` with broadcasting (op codes of `BinaryOp`).
    Binary,
    /// `elementwise.wgsl`: `out = cond != 0 ? a : b` (`where_`, `masked_fill`).
    SelectWhere,
    /// `elementwise.wgsl`: row-major copy of any strided view (`contiguous()`).
    CopyStrided,
    /// `reduce.wgsl`: one workgroup per contiguous row.
    ReduceRows,
    /// `reduce.wgsl`: one invocation per output, looping down a column.
    ReduceColumns,
    /// `softmax.wgsl`
    SoftmaxForward,
    /// `softmax.wgsl`: from the softmax output, one workgroup per row.
    SoftmaxBackward,
    /// `softmax.wgsl`
    LogSoftmaxForward,
    /// `softmax.wgsl`: from the log-softmax output, one workgroup per row.
    LogSoftmaxBackward,
    /// `layer_norm.wgsl`: saves mean and rstd.
    LayerNormForward,
    /// `layer_norm.wgsl`: `dx` from the saved mean and rstd, one workgroup per row.
    LayerNormBackward,
    /// `layer_norm.wgsl`: `dweight` and `dbias`, one workgroup per block of 32 columns.
    LayerNormParamsBackward,
    /// `rms_norm.wgsl`: saves rstd.
    RmsNormForward,
    /// `rms_norm.wgsl`: `dx` from the saved rstd, one workgroup per row.
    RmsNormBackward,
    /// `rms_norm.wgsl`: `dweight`, one workgroup per block of 32 columns.
    RmsNormWeightBackward,
    /// `rope.wgsl`: rotate-half rotary embedding by ±θ (forward and backward), one invocation
    /// per pair.
    RopeRotate,
    /// `swiglu.wgsl`: `silu(gate) · up`.
    SwigluForward,
    /// `swiglu.wgsl`: `dgate` and `dup`.
    SwigluBackward,
    /// `index.wgsl`: rows by index (`index_select`, `embedding`).
    IndexSelect,
    /// `index.wgsl`: `torch.index_add` (backward of `index_select`, embedding).
    IndexAdd,
    /// `index.wgsl`: `torch.index_add` from the sources (fewer indices than rows).
    IndexAddSources,
    /// `index.wgsl`: `torch.gather`.
    Gather,
    /// `index.wgsl`: `torch.scatter_add` (backward of `gather`).
    ScatterAdd,
    /// `index.wgsl`: one part of a `cat`.
    CopyBlock,
    /// `cross_entropy.wgsl`: per-row cross-entropy and valid flags.
    CrossEntropyRows,
    /// `cross_entropy.wgsl`: mean cross-entropy's backward with `ignore_index`, one workgroup
    /// per row.
    CrossEntropyBackward,
    /// `matmul.wgsl`: tiled, batched, strided f32 GEMM.
    Matmul,
    /// `matmul_f16.wgsl`: the same with f16 storage, f32 accumulation.
    MatmulF16,
    /// `matmul_w16.wgsl`: f32 A times a bf16 B (a frozen weight), widened in the kernel.
    MatmulBf16Weight,
    /// `matmul_w16.wgsl`: f32 A times an f16 B, widened on its bits.
    MatmulF16Weight,
    /// `quant.wgsl`: block-quantized weight rows to f32 (`to_dtype`, embedding rows).
    QuantDequantize,
    /// `quant.wgsl`: whole rows of blocks by index, as bytes (`index_select`, copies).
    QuantGatherRows,
    /// `quant.wgsl`: `x · Wᵀ` for a few rows of x, one workgroup per weight row (decoding).
    QuantGemv,
    /// `quant.wgsl`: `x · Wᵀ` in 64×64 tiles (prefill, training).
    QuantMatmul,
    /// `convert.wgsl`
    F32ToF16,
    /// `convert.wgsl`
    F16ToF32,
    /// `convert.wgsl`
    F32ToBf16,
    /// `convert.wgsl`
    Bf16ToF32,
    /// `convert.wgsl`: indices to floats.
    I32ToF32,
    /// `convert.wgsl`: floats to indices, flagging the first that is not an integer.
    F32ToI32,
    /// `optim.wgsl`: the fused AdamW step.
    AdamWUpdate,
    /// `topk.wgsl`: each row's (sort key, index) pairs, padded to a power of two.
    TopKKeys,
    /// `topk.wgsl`: each segment of up to 512 pairs cut to its best K, sorted (small k).
    TopKReduceLocal,
    /// `topk.wgsl`: bitonic stages and steps that stay within a block of 512 pairs.
    TopKSortLocal,
    /// `topk.wgsl`: one bitonic compare-exchange step across blocks.
    TopKSortStep,
    /// `topk.wgsl`: the first k sorted pairs' values and i32 indices.
    TopKGather,
}

impl Kernel {
    /// Every kernel, for tests and pipeline warm-up.
    pub const ALL: &'static [Kernel] = &[
        Kernel::Unary,
        Kernel::GeluBackward,
        Kernel::GeluTanhBackward,
        Kernel::Binary,
        Kernel::SelectWhere,
        Kernel::CopyStrided,
        Kernel::ReduceRows,
        Kernel::ReduceColumns,
        Kernel::SoftmaxForward,
        Kernel::SoftmaxBackward,
        Kernel::LogSoftmaxForward,
        Kernel::LogSoftmaxBackward,
        Kernel::LayerNormForward,
        Kernel::LayerNormBackward,
        Kernel::LayerNormParamsBackward,
        Kernel::RmsNormForward,
        Kernel::RmsNormBackward,
        Kernel::RmsNormWeightBackward,
        Kernel::RopeRotate,
        Kernel::SwigluForward,
        Kernel::SwigluBackward,
        Kernel::IndexSelect,
        Kernel::IndexAdd,
        Kernel::IndexAddSources,
        Kernel::Gather,
        Kernel::ScatterAdd,
        Kernel::CopyBlock,
        Kernel::CrossEntropyRows,
        Kernel::CrossEntropyBackward,
        Kernel::Matmul,
        Kernel::MatmulF16,
        Kernel::MatmulBf16Weight,
        Kernel::MatmulF16Weight,
        Kernel::QuantDequantize,
        Kernel::QuantGatherRows,
        Kernel::QuantGemv,
        Kernel::QuantMatmul,
        Kernel::F32ToF16,
        Kernel::F16ToF32,
        Kernel::F32ToBf16,
        Kernel::Bf16ToF32,
        Kernel::I32ToF32,
        Kernel::F32ToI32,
        Kernel::AdamWUpdate,
        Kernel::TopKKeys,
        Kernel::TopKReduceLocal,
        Kernel::TopKSortLocal,
        Kernel::TopKSortStep,
        Kernel::TopKGather,
    ];

    /// The WGSL file this kernel lives in.
    pub fn file(self) -> &'static str {
        match self {
            Kernel::Unary
            | Kernel::GeluBackward
            | Kernel::GeluTanhBackward
            | Kernel::Binary
            | Kernel::SelectWhere
            | Kernel::CopyStrided => "elementwise.wgsl",
            Kernel::ReduceRows | Kernel::ReduceColumns => "reduce.wgsl",
            Kernel::SoftmaxForward
            | Kernel::SoftmaxBackward
            | Kernel::LogSoftmaxForward
            | Kernel::LogSoftmaxBackward => "softmax.wgsl",
            Kernel::LayerNormForward | Kernel::LayerNormBackward | Kernel::LayerNormParamsBackward => "layer_norm.wgsl",
            Kernel::RmsNormForward | Kernel::RmsNormBackward | Kernel::RmsNormWeightBackward => "rms_norm.wgsl",
            Kernel::RopeRotate => "rope.wgsl",
            Kernel::SwigluForward | Kernel::SwigluBackward => "swiglu.wgsl",
            Kernel::IndexSelect
            | Kernel::IndexAdd
            | Kernel::IndexAddSources
            | Kernel::Gather
            | Kernel::ScatterAdd
            | Kernel::CopyBlock => "index.wgsl",
            Kernel::CrossEntropyRows | Kernel::CrossEntropyBackward => "cross_entropy.wgsl",
            Kernel::Matmul => "matmul.wgsl",
            Kernel::MatmulF16 => "matmul_f16.wgsl",
            Kernel::MatmulBf16Weight | Kernel::MatmulF16Weight => "matmul_w16.wgsl",
            Kernel::QuantDequantize | Kernel::QuantGatherRows | Kernel::QuantGemv | Kernel::QuantMatmul => "quant.wgsl",
            Kernel::F32ToF16
            | Kernel::F16ToF32
            | Kernel::F32ToBf16
            | Kernel::Bf16ToF32
            | Kernel::I32ToF32
            | Kernel::F32ToI32 => "convert.wgsl",
            Kernel::AdamWUpdate => "optim.wgsl",
            Kernel::TopKKeys
            | Kernel::TopKReduceLocal
            | Kernel::TopKSortLocal
            | Kernel::TopKSortStep
            | Kernel::TopKGather => "topk.wgsl",
        }
    }

    /// The whole WGSL source of the kernel's file.
    pub fn source(self) -> &'static str {
        match self.file() {
            "elementwise.wgsl" => include_str!("../wgsl/elementwise.wgsl"),
            "reduce.wgsl" => include_str!("../wgsl/reduce.wgsl"),
            "softmax.wgsl" => include_str!("../wgsl/softmax.wgsl"),
            "layer_norm.wgsl" => include_str!("../wgsl/layer_norm.wgsl"),
            "rms_norm.wgsl" => include_str!("../wgsl/rms_norm.wgsl"),
            "rope.wgsl" => include_str!("../wgsl/rope.wgsl"),
            "swiglu.wgsl" => include_str!("../wgsl/swiglu.wgsl"),
            "index.wgsl" => include_str!("../wgsl/index.wgsl"),
            "cross_entropy.wgsl" => include_str!("../wgsl/cross_entropy.wgsl"),
            "matmul.wgsl" => include_str!("../wgsl/matmul.wgsl"),
            "matmul_f16.wgsl" => include_str!("../wgsl/matmul_f16.wgsl"),
            "matmul_w16.wgsl" => include_str!("../wgsl/matmul_w16.wgsl"),
            "quant.wgsl" => include_str!("../wgsl/quant.wgsl"),
            "optim.wgsl" => include_str!("../wgsl/optim.wgsl"),
            "topk.wgsl" => include_str!("../wgsl/topk.wgsl"),
            _ => include_str!("../wgsl/convert.wgsl"),
        }
    }

    /// The `@compute` function to run.
    pub fn entry_point(self) -> &'static str {
        match self {
            Kernel::Unary => "unary",
            Kernel::Binary => "binary",
            Kernel::SelectWhere => "select_where",
            Kernel::CopyStrided => "copy_strided",
            Kernel::ReduceRows => "reduce_rows",
            Kernel::ReduceColumns => "reduce_columns",
            Kernel::SoftmaxForward => "softmax_forward",
            Kernel::LogSoftmaxForward => "log_softmax_forward",
            Kernel::LayerNormForward => "layer_norm_forward",
            Kernel::IndexSelect => "index_select",
            Kernel::Gather => "gather",
            Kernel::CopyBlock => "copy_block",
            Kernel::CrossEntropyRows => "cross_entropy_rows",
            Kernel::Matmul => "matmul",
            Kernel::MatmulF16 => "matmul_f16",
            Kernel::MatmulBf16Weight => "matmul_bf16_weight",
            Kernel::MatmulF16Weight => "matmul_f16_weight",
            Kernel::QuantDequantize => "quant_dequantize",
            Kernel::QuantGatherRows => "quant_gather_rows",
            Kernel::QuantGemv => "quant_gemv",
            Kernel::QuantMatmul => "quant_matmul",
            Kernel::F32ToF16 => "f32_to_f16",
            Kernel::F16ToF32 => "f16_to_f32",
            Kernel::F32ToBf16 => "f32_to_bf16",
            Kernel::Bf16ToF32 => "bf16_to_f32",
            Kernel::SoftmaxBackward => "softmax_backward",
            Kernel::LogSoftmaxBackward => "log_softmax_backward",
            Kernel::LayerNormBackward => "layer_norm_backward",
            Kernel::LayerNormParamsBackward => "layer_norm_params_backward",
            Kernel::RmsNormForward => "rms_norm_forward",
            Kernel::RmsNormBackward => "rms_norm_backward",
            Kernel::RmsNormWeightBackward => "rms_norm_weight_backward",
            Kernel::RopeRotate => "rope_rotate",
            Kernel::SwigluForward => "swiglu_forward",
            Kernel::SwigluBackward => "swiglu_backward",
            Kernel::GeluBackward => "gelu_backward",
            Kernel::GeluTanhBackward => "gelu_tanh_backward",
            Kernel::CrossEntropyBackward => "cross_entropy_backward",
            Kernel::IndexAdd => "index_add",
            Kernel::IndexAddSources => "index_add_sources",
            Kernel::ScatterAdd => "scatter_add",
            Kernel::AdamWUpdate => "adamw_update",
            Kernel::I32ToF32 => "i32_to_f32",
            Kernel::F32ToI32 => "f32_to_i32",
            Kernel::TopKKeys => "topk_keys",
            Kernel::TopKReduceLocal => "topk_reduce_local",
            Kernel::TopKSortLocal => "topk_sort_local",
            Kernel::TopKSortStep => "topk_sort_step",
            Kernel::TopKGather => "topk_gather",
        }
    }

    /// Whether the kernel uses `enable f16;` (needs the adapter's SHADER_F16 feature).
    pub fn needs_f16(self) -> bool {
        self.source().contains("enable f16;")
    }
}

/// The README's examples, compiled and run as doc tests so they stay true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
