//! Buffer pool: GPU buffers recycled by size class, handed out as reference-counted `GpuBuffer`s.
//!
//! Size classes: four per octave (2^e · {1, 1.25, 1.5, 1.75}), at least 256 bytes, so a
//! buffer wastes at most 25% of its size and a slowly growing sequence length still hits the
//! pool instead of allocating. A class above the device's binding limit falls back to the exact
//! size (GPT-2's 154 MB embedding must not be rounded past the limit).
//!
//! Ordering rule: a dropped buffer is *retired*, not freed, until the pending command batch is
//! submitted ([`BufferPool::recycle`]). Commands already recorded may still read it, and
//! `queue.write_buffer` runs before the pending batch, so handing it out earlier could let an
//! upload overwrite data that a recorded dispatch has not read yet.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::error::GpuError;

/// What a pooled buffer is used for; each kind has its own free lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum BufferKind {
    /// Kernel operands: storage, copy source and destination.
    Storage,
    /// Small `Params` structs.
    Uniform,
    /// Read-back staging: mappable for reading.
    ReadBack,
}

impl BufferKind {
    fn usage(self) -> wgpu::BufferUsages {
        use wgpu::BufferUsages as U;
        match self {
            BufferKind::Storage => U::STORAGE | U::COPY_SRC | U::COPY_DST,
            BufferKind::Uniform => U::UNIFORM | U::COPY_DST,
            BufferKind::ReadBack => U::MAP_READ | U::COPY_DST,
        }
    }
}

/// Pool counters, for tests that check that repeated work does not allocate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolStats {
    /// wgpu buffers created since the context was opened.
    pub buffers_created: u64,
    /// Bytes of all buffers created (freed ones included).
    pub bytes_allocated: u64,
    /// Buffers now waiting in the free lists.
    pub buffers_free: u64,
}

type Key = (BufferKind, u64);

#[derive(Default)]
struct Lists {
    free: HashMap<Key, Vec<wgpu::Buffer>>,
    retired: Vec<(Key, wgpu::Buffer)>,
}

/// Free and retired buffers plus counters; shared by the context and every `GpuBuffer`.
pub(crate) struct BufferPool {
    shared: Arc<PoolShared>,
}

struct PoolShared {
    lists: Mutex<Lists>,
    created: AtomicU64,
    bytes: AtomicU64,
    max_buffer_size: u64,
    max_binding_size: u64,
}

/// A GPU buffer of `len_bytes` meaningful bytes (the allocation may be larger). Cloning shares
/// it; the last clone dropped returns it to the pool.
#[derive(Clone)]
pub struct GpuBuffer {
    inner: Arc<BufferInner>,
}

struct BufferInner {
    buffer: Option<wgpu::Buffer>,
    key: Key,
    len_bytes: u64,
    pool: Arc<PoolShared>,
}

impl std::fmt::Debug for GpuBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GpuBuffer({} bytes)", self.inner.len_bytes)
    }
}

impl GpuBuffer {
    /// Meaningful bytes (what kernels bind and read-back copies).
    pub fn len_bytes(&self) -> u64 {
        self.inner.len_bytes
    }

    pub(crate) fn raw(&self) -> &wgpu::Buffer {
        self.inner.buffer.as_ref().expect("buffer present until drop")
    }

    /// The binding of the meaningful bytes, rounded up to the 4-byte granularity of storage
    /// bindings (f16 data may have an odd element count).
    pub(crate) fn binding(&self) -> wgpu::BindingResource<'_> {
        let size = self.inner.len_bytes.max(4).next_multiple_of(4);
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: self.raw(),
            offset: 0,
            size: wgpu::BufferSize::new(size),
        })
    }
}

impl Drop for BufferInner {
    fn drop(&mut self) {
        if let Some(buffer) = self.buffer.take() {
            self.pool.lists.lock().unwrap().retired.push((self.key, buffer));
        }
    }
}

/// The allocation size for a request: the next of four classes per octave, or the exact size
/// (4-byte aligned) when the class would exceed `max`.
fn size_class(bytes: u64, max: u64) -> u64 {
    let bytes = bytes.max(256);
    let octave = 1u64 << (63 - bytes.leading_zeros()); // largest power of two <= bytes
    let step = (octave / 4).max(1);
    let class = bytes.div_ceil(step) * step;
    if class > max {
        bytes.next_multiple_of(4)
    } else {
        class
    }
}

impl BufferPool {
    pub(crate) fn new(max_buffer_size: u64, max_binding_size: u64) -> BufferPool {
        let shared = PoolShared {
            lists: Mutex::default(),
            created: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            max_buffer_size,
            max_binding_size,
        };
        BufferPool { shared: Arc::new(shared) }
    }

    /// A buffer of at least `bytes`, reused from the free list of its class when possible.
    ///
    /// # Errors
    /// [`GpuError::AllocationTooLarge`] over `max_buffer_size`, or for storage buffers over
    /// `max_storage_buffer_binding_size` (kernels bind whole buffers).
    pub(crate) fn alloc(&self, device: &wgpu::Device, kind: BufferKind, bytes: u64) -> Result<GpuBuffer, GpuError> {
        let s = &self.shared;
        let (limit, which) = if kind == BufferKind::Storage && s.max_binding_size < s.max_buffer_size {
            (s.max_binding_size, "max_storage_buffer_binding_size")
        } else {
            (s.max_buffer_size, "max_buffer_size")
        };
        if bytes > limit {
            return Err(GpuError::AllocationTooLarge { bytes, limit, which });
        }
        let key = (kind, size_class(bytes, limit));
        let reused = s.lists.lock().unwrap().free.get_mut(&key).and_then(Vec::pop);
        let buffer = reused.unwrap_or_else(|| self.create(device, key));
        let inner = BufferInner { buffer: Some(buffer), key, len_bytes: bytes, pool: Arc::clone(s) };
        Ok(GpuBuffer { inner: Arc::new(inner) })
    }

    fn create(&self, device: &wgpu::Device, (kind, size): Key) -> wgpu::Buffer {
        self.shared.created.fetch_add(1, Ordering::Relaxed);
        self.shared.bytes.fetch_add(size, Ordering::Relaxed);
        let desc =
            wgpu::BufferDescriptor { label: Some("deltaw pool"), size, usage: kind.usage(), mapped_at_creation: false };
        device.create_buffer(&desc)
    }

    /// Moves retired buffers to the free lists: call right after a submit, when no unsubmitted
    /// command can reference them any more.
    pub(crate) fn recycle(&self) {
        let mut lists = self.shared.lists.lock().unwrap();
        let retired = std::mem::take(&mut lists.retired);
        for (key, buffer) in retired {
            lists.free.entry(key).or_default().push(buffer);
        }
    }

    pub(crate) fn stats(&self) -> PoolStats {
        let lists = self.shared.lists.lock().unwrap();
        PoolStats {
            buffers_created: self.shared.created.load(Ordering::Relaxed),
            bytes_allocated: self.shared.bytes.load(Ordering::Relaxed),
            buffers_free: lists.free.values().map(|v| v.len() as u64).sum(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::size_class;

    #[test]
    fn size_classes_waste_at_most_a_quarter() {
        assert_eq!(size_class(1, u64::MAX), 256);
        assert_eq!(size_class(1000, u64::MAX), 1024);
        assert_eq!(size_class(1025, u64::MAX), 1280);
        for bytes in [300u64, 4097, 1 << 20, 154_389_504] {
            let c = size_class(bytes, u64::MAX);
            assert!(c >= bytes && c * 4 <= bytes * 5, "{bytes} -> {c}");
        }
        // Over the limit: exact size, 4-byte aligned.
        assert_eq!(size_class(154_389_503, 154_389_504), 154_389_504);
    }
}
