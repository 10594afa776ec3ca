//! Parses and validates every WGSL file with naga, so broken shaders fail CI even on machines
//! with no GPU adapter, and checks that the Rust `Params` mirrors have naga's sizes.

use deltaw_shaders::{params, Kernel};
use naga::valid::{Capabilities, ValidationFlags, Validator};
use std::collections::HashSet;

fn parse(kernel: Kernel) -> naga::Module {
    naga::front::wgsl::parse_str(kernel.source())
        .unwrap_or_else(|e| panic!("{}: {}", kernel.file(), e.emit_to_string(kernel.source())))
}

#[test]
fn every_shader_parses_and_validates() {
    let files: HashSet<&str> = Kernel::ALL.iter().map(|k| k.file()).collect();
    assert_eq!(files.len(), 16, "one file per op family");
    for &kernel in Kernel::ALL {
        let module = parse(kernel);
        let caps = if kernel.needs_f16() { Capabilities::all() } else { Capabilities::default() };
        Validator::new(ValidationFlags::all(), caps)
            .validate(&module)
            .unwrap_or_else(|e| panic!("{}: {}", kernel.file(), e.emit_to_string(kernel.source())));
    }
}

#[test]
fn every_entry_point_exists_as_a_compute_shader() {
    for &kernel in Kernel::ALL {
        let module = parse(kernel);
        let found = module.entry_points.iter().find(|e| e.name == kernel.entry_point());
        let ep = found.unwrap_or_else(|| panic!("{} has no entry point {}", kernel.file(), kernel.entry_point()));
        assert_eq!(ep.stage, naga::ShaderStage::Compute, "{}", kernel.entry_point());
    }
}

#[test]
fn every_file_starts_with_a_comment_naming_itself() {
    for &kernel in Kernel::ALL {
        let first = kernel.source().lines().next().unwrap_or_default();
        assert!(first.starts_with(&format!("// {}:", kernel.file())), "{} starts with {first:?}", kernel.file());
    }
}

/// The byte size naga computes for the WGSL struct named `Params` in `kernel`'s file.
fn wgsl_params_size(kernel: Kernel) -> u32 {
    let module = parse(kernel);
    let (_, ty) = module.types.iter().find(|(_, t)| t.name.as_deref() == Some("Params")).expect("a Params struct");
    match ty.inner {
        naga::TypeInner::Struct { span, .. } => span,
        _ => panic!("Params is not a struct"),
    }
}

#[test]
fn rust_params_mirror_wgsl_sizes() {
    let cases = [
        (Kernel::Unary, size_of::<params::ElementwiseParams>()),
        (Kernel::ReduceRows, size_of::<params::ReduceParams>()),
        (Kernel::SoftmaxForward, size_of::<params::SoftmaxParams>()),
        (Kernel::LayerNormForward, size_of::<params::LayerNormParams>()),
        (Kernel::RmsNormForward, size_of::<params::RmsNormParams>()),
        (Kernel::RopeRotate, size_of::<params::RopeParams>()),
        (Kernel::SwigluForward, size_of::<params::SwigluParams>()),
        (Kernel::IndexSelect, size_of::<params::IndexParams>()),
        (Kernel::CrossEntropyRows, size_of::<params::CrossEntropyParams>()),
        (Kernel::Matmul, size_of::<params::MatmulParams>()),
        (Kernel::MatmulF16, size_of::<params::MatmulParams>()),
        (Kernel::QuantGemv, size_of::<params::QuantParams>()),
        (Kernel::F32ToF16, size_of::<params::ConvertParams>()),
        (Kernel::AdamWUpdate, size_of::<params::AdamWParams>()),
        (Kernel::TopKKeys, size_of::<params::TopKParams>()),
    ];
    for (kernel, rust) in cases {
        assert_eq!(wgsl_params_size(kernel) as usize, rust, "{} Params", kernel.file());
        assert_eq!(rust % 16, 0, "{} Params must be padded to 16 bytes", kernel.file());
    }
}
