//! Where a tensor's data lives and where its kernels run.

use std::fmt;

#[cfg(feature = "gpu")]
use crate::gpu::{GpuContext, GpuOptions};

/// A compute device. Every tensor op runs on the device of its inputs; mixing devices in one
/// op is API misuse and panics naming both.
///
/// ```
/// use deltaw_tensor::{Device, Tensor};
/// let x = Tensor::ones(3, &Device::Cpu);
/// assert_eq!(x.device(), Device::Cpu);
/// // With the `gpu` feature: `let gpu = Device::gpu()?; let y = x.to_device(&gpu)?;`
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Device {
    /// Host memory; kernels run on all cores with rayon.
    Cpu,
    /// A wgpu device (Vulkan, Metal, DX12); kernels are the WGSL shaders of `deltaw-shaders`.
    /// Two `Gpu` devices are equal when they share one [`GpuContext`] (one wgpu device).
    #[cfg(feature = "gpu")]
    Gpu(GpuContext),
}

impl Device {
    pub fn is_cpu(&self) -> bool {
        matches!(self, Device::Cpu)
    }

    /// True for [`Device::Gpu`].
    pub fn is_gpu(&self) -> bool {
        !self.is_cpu()
    }

    /// The preferred GPU: `WGPU_BACKEND` restricts the backends tried and `DELTAW_GPU_ADAPTER`
    /// picks an adapter by (part of) its name; otherwise discrete before integrated before
    /// software adapters.
    ///
    /// ```no_run
    /// use deltaw_tensor::{Device, Tensor};
    /// let gpu = Device::gpu()?;
    /// let x = Tensor::arange(0.0, 4.0, &gpu);
    /// assert_eq!(x.relu().to_vec(), vec![0.0, 1.0, 2.0, 3.0]);
    /// # Ok::<(), deltaw_tensor::Error>(())
    /// ```
    ///
    /// # Errors
    /// When no adapter matches: the message names the backends tried and the adapters seen.
    #[cfg(feature = "gpu")]
    pub fn gpu() -> crate::Result<Device> {
        Device::gpu_with(&GpuOptions::default())
    }

    /// A GPU chosen by `options` (adapter name, submission batch size).
    ///
    /// # Errors
    /// As [`Device::gpu`].
    #[cfg(feature = "gpu")]
    pub fn gpu_with(options: &GpuOptions) -> crate::Result<Device> {
        Ok(Device::Gpu(GpuContext::new(options)?))
    }

    /// The GPU context behind a [`Device::Gpu`].
    #[cfg(feature = "gpu")]
    pub fn gpu_context(&self) -> Option<&GpuContext> {
        match self {
            Device::Gpu(ctx) => Some(ctx),
            Device::Cpu => None,
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            #[cfg(feature = "gpu")]
            Device::Gpu(ctx) => write!(f, "gpu ({})", ctx.adapter_name()),
        }
    }
}
