//! Peak memory of one training step of a 4-layer MLP against the ledger: everything the step
//! allocates at its peak must be within 1.2× of parameters + gradients + optimizer state +
//! what the graph reports holding (inputs and activations). A hidden copy of an activation or
//! a gradient kept past its use would show up here. Its own test binary: the counting
//! allocator sees every allocation of the process. The CPU buffer pool is kept out of the
//! measured step: what it holds is idle and reusable, not held by the graph.

use deltaw_autograd::{AdamW, AdamWConfig, Var};
use deltaw_tensor::{Device, Seed, Tensor};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The system allocator, counting live bytes and their high-water mark.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let now = LIVE.fetch_add(bytes, Ordering::SeqCst) + bytes;
    PEAK.fetch_max(now, Ordering::SeqCst);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        grew(new_size);
        LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const N: usize = 128;
const C: usize = 256;

fn loss(layers: &[(Var, Var)], x: &Var) -> Var {
    let mut h = x.clone();
    for (i, (w, b)) in layers.iter().enumerate() {
        h = &h.matmul(&w.t()) + b; // (N, C)
        if i + 1 < layers.len() {
            h = h.gelu();
        }
    }
    (&h * &h).mean_all()
}

#[test]
fn training_step_peak_memory_is_within_1p2x_of_the_ledger() {
    let dev = Device::Cpu;
    let layers: Vec<(Var, Var)> = (0..4)
        .map(|i| {
            (
                Var::parameter(Tensor::randn((C, C), Seed(i), &dev).mul_scalar(0.06)),
                Var::parameter(Tensor::zeros(C, &dev)),
            )
        })
        .collect();
    let params: Vec<Var> = layers.iter().flat_map(|(w, b)| [w.clone(), b.clone()]).collect();
    let x = Var::constant(Tensor::randn((N, C), Seed(9), &dev));
    let mut opt = AdamW::new(params, AdamWConfig::default());
    let step = |opt: &mut AdamW| {
        let l = loss(&layers, &x);
        let ledger = l.graph().memory;
        let mut grads = l.backward().unwrap();
        drop(l); // the graph goes before the update, as PyTorch frees it in backward
        grads.clip_global_norm(1.0);
        opt.step(&grads);
        (ledger, grads.bytes())
    };
    step(&mut opt); // the first step creates the optimizer state

    // Buffers dropped go back to the allocator, not to the CPU buffer pool, whose idle
    // buffers would count here as live though they are only kept for reuse.
    deltaw_tensor::cpu::pool::clear();
    PEAK.store(LIVE.load(Ordering::SeqCst), Ordering::SeqCst);
    let (ledger, grad_bytes) = deltaw_tensor::cpu::pool::unpooled(|| step(&mut opt));
    let peak = PEAK.load(Ordering::SeqCst);
    let budget = ledger.parameter_bytes + ledger.input_bytes + ledger.activation_bytes + grad_bytes + opt.state_bytes();
    let ratio = peak as f64 / budget as f64;
    eprintln!(
        "peak {peak} B, ledger {budget} B ({ledger:?}, grads {grad_bytes}, state {}): {ratio:.3}×",
        opt.state_bytes()
    );
    assert!(ratio <= 1.2, "peak {peak} B is {ratio:.3}× the ledger's {budget} B");
}
