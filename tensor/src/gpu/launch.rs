//! Launching kernels: upload, record a dispatch into the pending batch, submit, read back.
//!
//! Dispatches are recorded into one pending command encoder and submitted every
//! `dispatches_per_submit` dispatches and before every read-back, so a chain of ops costs one
//! submit, and only [`GpuContext::read_back`] waits for the GPU.

use std::sync::mpsc;
use std::time::Duration;

use bytemuck::Pod;
use deltaw_shaders::Kernel;

use super::context::GpuContext;
use super::error::GpuError;
use super::pool::{BufferKind, GpuBuffer};

/// Workgroups per dimension allowed by every WebGPU implementation.
const MAX_GROUPS_PER_DIM: u32 = 65_535;

/// The pending command encoder and its open compute pass. Buffers dropped while it is pending
/// (uniforms included) are retired by the pool until it is submitted, so no later dispatch of
/// the batch can be handed, and overwrite, a buffer that an earlier one still reads.
pub(crate) struct Batch {
    encoder: wgpu::CommandEncoder,
    /// Consecutive dispatches share one pass (a pass costs more than a dispatch); WebGPU still
    /// orders each dispatch's writes before the next one's reads, since every dispatch is its own
    /// usage scope. Ended before a copy or the submit, which the encoder refuses mid-pass.
    pass: Option<wgpu::ComputePass<'static>>,
    dispatches: usize,
}

impl Batch {
    /// The open compute pass, begun if needed. `forget_lifetime` lets the pass live beside its
    /// encoder; wgpu keeps the encoder locked until the pass is dropped.
    fn pass(&mut self) -> &mut wgpu::ComputePass<'static> {
        let encoder = &mut self.encoder;
        self.pass.get_or_insert_with(|| {
            encoder
                .begin_compute_pass(&wgpu::ComputePassDescriptor { label: None, timestamp_writes: None })
                .forget_lifetime()
        })
    }

    /// The encoder, with any open pass ended first.
    fn encoder(&mut self) -> &mut wgpu::CommandEncoder {
        self.pass = None;
        &mut self.encoder
    }
}

/// One kernel launch: the kernel, its `Params` bytes, the buffers of its other bindings
/// (binding number, buffer) and the grid.
pub(crate) struct Launch<'a> {
    pub(crate) kernel: Kernel,
    pub(crate) params: &'a [u8],
    pub(crate) buffers: &'a [(u32, &'a GpuBuffer)],
    pub(crate) grid: Grid,
}

/// Workgroup counts. `Linear(n)` is folded into 2-D when n exceeds 65,535 (the kernels
/// rebuild the index as `x + y · num_workgroups.x`); `Xyz` is used as given.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Grid {
    Linear(u32),
    Xyz(u32, u32, u32),
}

impl Grid {
    /// One invocation per element of `numel`, in workgroups of 256.
    pub(crate) fn per_element(numel: u32) -> Grid {
        Grid::Linear(numel.div_ceil(256))
    }
}

/// `(x, y)` with `x · y >= groups` and both within the per-dimension limit; the few extra
/// workgroups fail the kernels' bounds checks and do nothing.
pub(crate) fn fold_grid(groups: u32) -> (u32, u32) {
    if groups <= MAX_GROUPS_PER_DIM {
        return (groups, 1);
    }
    let y = groups.div_ceil(MAX_GROUPS_PER_DIM);
    (groups.div_ceil(y), y)
}

/// `n` as a u32 kernel argument; GPU indices are 32-bit.
pub(crate) fn u32_arg(n: usize, what: &str) -> u32 {
    u32::try_from(n).unwrap_or_else(|_| panic!("gpu: {what} = {n} does not fit the kernels' 32-bit indices"))
}

impl GpuContext {
    #[doc(hidden)]
    /// A storage buffer of `bytes` (contents undefined until a kernel writes it).
    pub fn alloc(&self, bytes: u64) -> Result<GpuBuffer, GpuError> {
        self.check_failure()?;
        self.inner.pool.alloc(&self.inner.device, BufferKind::Storage, bytes)
    }

    #[doc(hidden)]
    /// Copies `data` into a new storage buffer. The write is queued, not waited for.
    pub fn upload<T: Pod>(&self, data: &[T]) -> Result<GpuBuffer, GpuError> {
        self.upload_kind(BufferKind::Storage, bytemuck::cast_slice(data))
    }

    /// A buffer of `kind` holding `bytes`. Safe without waiting: a buffer in the free lists is
    /// referenced by no unsubmitted command, and the write lands before the next submit.
    fn upload_kind(&self, kind: BufferKind, bytes: &[u8]) -> Result<GpuBuffer, GpuError> {
        self.check_failure()?;
        let buffer = self.inner.pool.alloc(&self.inner.device, kind, bytes.len() as u64)?;
        // write_buffer needs a multiple of 4 bytes; f16 data may be 2 bytes short.
        if bytes.len().is_multiple_of(4) {
            self.inner.queue.write_buffer(buffer.raw(), 0, bytes);
        } else {
            let mut padded = bytes.to_vec();
            padded.resize(bytes.len().next_multiple_of(4), 0);
            self.inner.queue.write_buffer(buffer.raw(), 0, &padded);
        }
        Ok(buffer)
    }

    /// Uploads a small metadata array (shapes, strides, offsets); never empty, since a
    /// zero-sized binding is invalid.
    pub(crate) fn upload_meta(&self, words: &[u32]) -> Result<GpuBuffer, GpuError> {
        self.upload(if words.is_empty() { &[0u32][..] } else { words })
    }

    /// [`GpuContext::launch`] with the kernel's `Params` struct passed as a value.
    pub(crate) fn run<P: Pod>(
        &self,
        kernel: Kernel,
        params: &P,
        buffers: &[(u32, &GpuBuffer)],
        grid: Grid,
    ) -> Result<(), GpuError> {
        self.launch(&Launch { kernel, params: bytemuck::bytes_of(params), buffers, grid })
    }

    /// Records one dispatch: params into a uniform buffer (binding 0), a bind group of the
    /// listed buffers, and the grid. Submits when the batch is full.
    pub(crate) fn launch(&self, launch: &Launch<'_>) -> Result<(), GpuError> {
        self.check_failure()?;
        let pipeline = self.pipeline(launch.kernel)?;
        let params = self.upload_kind(BufferKind::Uniform, launch.params)?;
        let mut entries = vec![wgpu::BindGroupEntry { binding: 0, resource: params.binding() }];
        entries.extend(
            launch.buffers.iter().map(|(binding, b)| wgpu::BindGroupEntry { binding: *binding, resource: b.binding() }),
        );
        let desc = wgpu::BindGroupDescriptor {
            label: Some(launch.kernel.entry_point()),
            layout: &pipeline.layout,
            entries: &entries,
        };
        let bind_group = self.inner.device.create_bind_group(&desc);
        let (x, y, z) = match launch.grid {
            Grid::Linear(n) => {
                let (x, y) = fold_grid(n);
                (x, y, 1)
            }
            Grid::Xyz(x, y, z) => (x, y, z),
        };
        let full = self.with_batch(|batch| {
            if x > 0 && y > 0 && z > 0 {
                let pass = batch.pass();
                pass.set_pipeline(&pipeline.pipeline);
                pass.set_bind_group(0, &bind_group, &[]);
                pass.dispatch_workgroups(x, y, z);
            }
            batch.dispatches += 1;
            batch.dispatches >= self.inner.dispatches_per_submit
        });
        if full {
            self.submit();
        }
        Ok(())
    }

    /// Runs `f` on the pending batch, opening one if none is pending.
    fn with_batch<R>(&self, f: impl FnOnce(&mut Batch) -> R) -> R {
        let mut slot = self.inner.batch.lock().unwrap();
        let batch = slot.get_or_insert_with(|| Batch {
            encoder: self
                .inner
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("deltaw batch") }),
            pass: None,
            dispatches: 0,
        });
        f(batch)
    }

    #[doc(hidden)]
    /// Submits the pending batch (if any) and recycles the buffers retired before it.
    pub fn submit(&self) -> Option<wgpu::SubmissionIndex> {
        // Hold the lock until recycling is done: a batch opened meanwhile by another thread
        // could record a buffer retired after this submit, and recycling would hand it out
        // while that batch still reads it. (It would also reorder the two batches.)
        let mut slot = self.inner.batch.lock().unwrap();
        let mut batch = slot.take()?;
        batch.pass = None;
        let index = self.inner.queue.submit([batch.encoder.finish()]);
        self.inner.pool.recycle();
        Some(index)
    }

    #[doc(hidden)]
    /// Copies the first `len` elements of `buffer` back to the host: submits everything
    /// pending, copies into a staging buffer, maps it and waits.
    ///
    /// # Errors
    /// [`GpuError::DeviceLost`] (or the first uncaptured wgpu error) instead of hanging.
    pub fn read_back<T: Pod>(&self, buffer: &GpuBuffer, len: usize) -> Result<Vec<T>, GpuError> {
        let bytes = (len * size_of::<T>()) as u64;
        assert!(bytes <= buffer.len_bytes(), "read_back: {bytes} bytes asked of a {}-byte buffer", buffer.len_bytes());
        if len == 0 {
            return Ok(Vec::new());
        }
        let copy_bytes = bytes.next_multiple_of(4);
        let staging = self.inner.pool.alloc(&self.inner.device, BufferKind::ReadBack, copy_bytes)?;
        self.with_batch(|batch| batch.encoder().copy_buffer_to_buffer(buffer.raw(), 0, staging.raw(), 0, copy_bytes));
        let index = self.submit();
        let (tx, rx) = mpsc::channel();
        staging.raw().slice(..copy_bytes).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.wait_for_map(index, &rx)?;
        let view =
            staging.raw().slice(..copy_bytes).get_mapped_range().map_err(|e| GpuError::ReadBack(e.to_string()))?;
        let mut out = vec![T::zeroed(); len];
        bytemuck::cast_slice_mut::<T, u8>(&mut out).copy_from_slice(&view[..bytes as usize]);
        drop(view);
        staging.raw().unmap();
        Ok(out)
    }

    /// Submits everything recorded and waits until the GPU has finished it (for timing:
    /// results never need this, since [`GpuContext::read_back`] waits for what it reads).
    ///
    /// # Errors
    /// [`GpuError::DeviceLost`] (or the first uncaptured wgpu error) instead of hanging.
    pub fn synchronize(&self) -> Result<(), GpuError> {
        let index = self.submit();
        loop {
            self.check_failure()?;
            let wait = wgpu::PollType::Wait { submission_index: index.clone(), timeout: Some(Duration::from_secs(1)) };
            match self.inner.device.poll(wait) {
                Ok(_) => return self.check_failure(),
                Err(wgpu::PollError::Timeout) => {}
                Err(e) => return Err(GpuError::ReadBack(e.to_string())),
            }
        }
    }

    /// Polls in one-second slices until the map callback fires, returning early when the
    /// device is lost or wgpu reported an error (a lost device never calls back).
    fn wait_for_map(
        &self,
        index: Option<wgpu::SubmissionIndex>,
        rx: &mpsc::Receiver<Result<(), wgpu::BufferAsyncError>>,
    ) -> Result<(), GpuError> {
        loop {
            self.check_failure()?;
            let wait = wgpu::PollType::Wait { submission_index: index.clone(), timeout: Some(Duration::from_secs(1)) };
            match self.inner.device.poll(wait) {
                Ok(_) | Err(wgpu::PollError::Timeout) => {}
                Err(e) => return Err(GpuError::ReadBack(e.to_string())),
            }
            if let Ok(result) = rx.try_recv() {
                self.check_failure()?;
                return result.map_err(|e| GpuError::ReadBack(e.to_string()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fold_grid;

    #[test]
    fn large_grids_fold_into_two_dims_within_limits() {
        assert_eq!(fold_grid(10), (10, 1));
        assert_eq!(fold_grid(65_535), (65_535, 1));
        for n in [65_536u32, 100_000, 1 << 24, 1 << 30] {
            let (x, y) = fold_grid(n);
            assert!(x <= 65_535 && y <= 65_535 && u64::from(x) * u64::from(y) >= u64::from(n), "{n}");
        }
    }
}
