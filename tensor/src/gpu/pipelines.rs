//! Pipeline cache: each `Kernel` becomes a compute pipeline (and its bind group layout) on first
//! use, from a shader module compiled once per WGSL file.
//!
//! Layouts are derived by wgpu from the entry point (`layout: None`), so a bind group must
//! carry exactly the bindings that entry point uses: the kernel functions list them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use deltaw_shaders::Kernel;

use super::context::GpuContext;
use super::error::GpuError;

/// A compiled kernel.
pub(crate) struct Pipeline {
    pub(crate) pipeline: wgpu::ComputePipeline,
    pub(crate) layout: wgpu::BindGroupLayout,
}

#[derive(Default)]
pub(crate) struct PipelineCache {
    modules: Mutex<HashMap<&'static str, wgpu::ShaderModule>>,
    pipelines: Mutex<HashMap<Kernel, Arc<Pipeline>>>,
}

impl GpuContext {
    /// The pipeline of `kernel`, compiled now if this is its first use.
    ///
    /// # Errors
    /// [`GpuError::NeedsF16`] for an f16 kernel on an adapter without SHADER_F16;
    /// [`GpuError::Wgpu`] if the shader or pipeline fails validation.
    pub(crate) fn pipeline(&self, kernel: Kernel) -> Result<Arc<Pipeline>, GpuError> {
        let cache = &self.inner.pipelines;
        if let Some(p) = cache.pipelines.lock().unwrap().get(&kernel) {
            return Ok(Arc::clone(p));
        }
        if kernel.needs_f16() && !self.inner.has_f16 {
            return Err(GpuError::NeedsF16 { kernel, adapter: self.adapter_name().to_string() });
        }
        let pipeline = Arc::new(self.compile(kernel)?);
        cache.pipelines.lock().unwrap().insert(kernel, Arc::clone(&pipeline));
        Ok(pipeline)
    }

    /// Compiles the module (once per file) and the pipeline, catching validation errors in an
    /// error scope so they come back as a `Result` instead of a panic.
    fn compile(&self, kernel: Kernel) -> Result<Pipeline, GpuError> {
        let device = &self.inner.device;
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = self.module(kernel);
        let desc = wgpu::ComputePipelineDescriptor {
            label: Some(kernel.entry_point()),
            layout: None,
            module: &module,
            entry_point: Some(kernel.entry_point()),
            compilation_options: wgpu::PipelineCompilationOptions::default(),
            cache: None,
        };
        let pipeline = device.create_compute_pipeline(&desc);
        if let Some(error) = pollster::block_on(scope.pop()) {
            return Err(GpuError::Wgpu(format!("{} ({}): {error}", kernel.entry_point(), kernel.file())));
        }
        let layout = pipeline.get_bind_group_layout(0);
        Ok(Pipeline { pipeline, layout })
    }

    /// The shader module of the kernel's file. Runtime bounds checks stay on: naga's checks
    /// make an out-of-range index read zero instead of faulting.
    fn module(&self, kernel: Kernel) -> wgpu::ShaderModule {
        let mut modules = self.inner.pipelines.modules.lock().unwrap();
        let module = modules.entry(kernel.file()).or_insert_with(|| {
            let source = wgpu::ShaderSource::Wgsl(kernel.source().into());
            self.inner.device.create_shader_module(wgpu::ShaderModuleDescriptor { label: Some(kernel.file()), source })
        });
        module.clone()
    }
}
