//! `GpuContext`: the instance, adapter, device and queue, shared cheaply by every GPU buffer op.

use std::sync::{Arc, Mutex};

use super::error::GpuError;
use super::launch::Batch;
use super::pipelines::PipelineCache;
use super::pool::{BufferPool, PoolStats};

/// How to pick the adapter. `WGPU_BACKEND` (e.g. `vulkan`, `metal`, `dx12`) restricts the
/// backends, as in every wgpu program.
#[derive(Clone, Debug)]
pub struct GpuOptions {
    /// Case-insensitive substring of the adapter's name; `None` reads `DELTAW_GPU_ADAPTER`,
    /// and when that is unset too the first adapter by preference (discrete, integrated,
    /// virtual, CPU) is used.
    pub adapter_name: Option<String>,
    /// Dispatches recorded before the pending command encoder is submitted.
    pub dispatches_per_submit: usize,
}

impl Default for GpuOptions {
    fn default() -> Self {
        GpuOptions { adapter_name: None, dispatches_per_submit: 64 }
    }
}

/// A device and queue with a pipeline cache, a buffer pool and a pending command encoder.
/// Cloning is cheap (an `Arc`); all clones share the same device.
#[derive(Clone)]
pub struct GpuContext {
    pub(crate) inner: Arc<ContextInner>,
}

pub(crate) struct ContextInner {
    pub(crate) adapter_info: wgpu::AdapterInfo,
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub(crate) limits: wgpu::Limits,
    pub(crate) has_f16: bool,
    pub(crate) pipelines: PipelineCache,
    pub(crate) pool: BufferPool,
    pub(crate) batch: Mutex<Option<Batch>>,
    pub(crate) dispatches_per_submit: usize,
    /// Set by wgpu's device-lost callback or by an uncaptured error; checked before each wait.
    pub(crate) failure: Arc<Mutex<Option<GpuError>>>,
}

impl std::fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let info = &self.inner.adapter_info;
        write!(f, "GpuContext({} on {:?})", info.name, info.backend)
    }
}

/// Contexts are equal when they are clones of one another (the same wgpu device).
impl PartialEq for GpuContext {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for GpuContext {}

impl GpuContext {
    /// Opens the adapter chosen by `options` (see [`GpuOptions`]) with its own limits, so that
    /// buffers over the 128 MiB WebGPU default work wherever the hardware allows.
    ///
    /// # Errors
    /// [`GpuError::NoAdapter`] naming the backends tried and the adapters found;
    /// [`GpuError::RequestDevice`] if the adapter refuses.
    pub fn new(options: &GpuOptions) -> Result<GpuContext, GpuError> {
        let desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        // Only the backends compiled in can be tried; name just those in errors.
        let backends = desc.backends & wgpu::Instance::enabled_backend_features();
        let instance = wgpu::Instance::new(desc);
        let filter = options.adapter_name.clone().or_else(|| std::env::var("DELTAW_GPU_ADAPTER").ok());
        let adapter = pick_adapter(&instance, backends, filter.as_deref())?;
        let (device, queue, limits, has_f16) = open_device(&adapter)?;
        let failure = Arc::new(Mutex::new(None));
        watch_failures(&device, &failure);
        let pool = BufferPool::new(limits.max_buffer_size, limits.max_storage_buffer_binding_size);
        let inner = ContextInner {
            adapter_info: adapter.get_info(),
            device,
            queue,
            limits,
            has_f16,
            pipelines: PipelineCache::default(),
            pool,
            batch: Mutex::new(None),
            dispatches_per_submit: options.dispatches_per_submit.max(1),
            failure,
        };
        Ok(GpuContext { inner: Arc::new(inner) })
    }

    /// The adapter's name, e.g. `"llvmpipe (LLVM 15.0.6, 256 bits)"`.
    pub fn adapter_name(&self) -> &str {
        &self.inner.adapter_info.name
    }

    /// The adapter's description: name, backend, device type (discrete, integrated, CPU...).
    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.inner.adapter_info
    }

    /// True for software rasterisers such as lavapipe ("llvmpipe"), which run kernels on the
    /// CPU about a thousand times slower than a GPU: tests and benches shrink their sizes.
    pub fn is_software(&self) -> bool {
        self.inner.adapter_info.device_type == wgpu::DeviceType::Cpu
    }

    /// The limits the device was opened with (the adapter's own).
    pub fn limits(&self) -> &wgpu::Limits {
        &self.inner.limits
    }

    /// Whether f16 kernels ([`super::matmul_f16`]) can run.
    pub fn has_f16(&self) -> bool {
        self.inner.has_f16
    }

    #[doc(hidden)]
    /// Buffer pool counters (buffers created, bytes allocated).
    pub fn pool_stats(&self) -> PoolStats {
        self.inner.pool.stats()
    }

    /// Destroys the device now, freeing its memory; every later launch or read-back on any
    /// clone returns [`GpuError::DeviceLost`].
    pub fn destroy(&self) {
        self.inner
            .failure
            .lock()
            .unwrap()
            .get_or_insert(GpuError::DeviceLost("destroyed by GpuContext::destroy".into()));
        self.inner.device.destroy();
    }

    /// The first recorded device loss or uncaptured wgpu error, if any.
    pub(crate) fn check_failure(&self) -> Result<(), GpuError> {
        match &*self.inner.failure.lock().unwrap() {
            None => Ok(()),
            Some(GpuError::DeviceLost(m)) => Err(GpuError::DeviceLost(m.clone())),
            Some(other) => Err(GpuError::Wgpu(other.to_string())),
        }
    }
}

/// Enumerates the adapters of `backends` and picks the preferred one whose name contains
/// `filter`; the error lists everything seen.
fn pick_adapter(
    instance: &wgpu::Instance,
    backends: wgpu::Backends,
    filter: Option<&str>,
) -> Result<wgpu::Adapter, GpuError> {
    let adapters = pollster::block_on(instance.enumerate_adapters(backends));
    let wanted = filter.map(str::to_lowercase);
    let matches = |a: &wgpu::Adapter| wanted.as_ref().is_none_or(|w| a.get_info().name.to_lowercase().contains(w));
    // Lower is better: real GPUs before software rasterisers.
    let rank = |a: &wgpu::Adapter| match a.get_info().device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    };
    let seen: Vec<String> =
        adapters.iter().map(|a| format!("{:?} ({:?})", a.get_info().name, a.get_info().backend)).collect();
    let best = adapters.into_iter().filter(matches).min_by_key(rank);
    best.ok_or_else(|| GpuError::NoAdapter {
        backends: format!("{backends:?}"),
        adapters: if seen.is_empty() { "none".into() } else { seen.join(", ") },
        filter: filter.map(|f| format!("; none named like {f:?}")).unwrap_or_default(),
    })
}

/// Requests the device with the adapter's full limits and SHADER_F16 when offered.
fn open_device(adapter: &wgpu::Adapter) -> Result<(wgpu::Device, wgpu::Queue, wgpu::Limits, bool), GpuError> {
    let limits = adapter.limits();
    let has_f16 = adapter.features().contains(wgpu::Features::SHADER_F16);
    let features = if has_f16 { wgpu::Features::SHADER_F16 } else { wgpu::Features::empty() };
    let desc = wgpu::DeviceDescriptor {
        label: Some("deltaw"),
        required_features: features,
        required_limits: limits.clone(),
        ..Default::default()
    };
    let (device, queue) = pollster::block_on(adapter.request_device(&desc))
        .map_err(|e| GpuError::RequestDevice { adapter: adapter.get_info().name, message: e.to_string() })?;
    Ok((device, queue, limits, has_f16))
}

/// Records the first device loss or uncaptured error instead of panicking (wgpu's default),
/// so that the next wait returns it as a `GpuError`.
fn watch_failures(device: &wgpu::Device, failure: &Arc<Mutex<Option<GpuError>>>) {
    let lost = Arc::clone(failure);
    device.set_device_lost_callback(move |reason, message| {
        let mut slot = lost.lock().unwrap();
        slot.get_or_insert(GpuError::DeviceLost(format!("{reason:?}: {message}")));
    });
    let errors = Arc::clone(failure);
    device.on_uncaptured_error(Arc::new(move |error: wgpu::Error| {
        let mut slot = errors.lock().unwrap();
        slot.get_or_insert(GpuError::Wgpu(error.to_string()));
    }));
}
