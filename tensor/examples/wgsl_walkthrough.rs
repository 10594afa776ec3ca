//! A WGSL kernel walkthrough: `softmax.wgsl` and `matmul.wgsl` run on the GPU and checked
//! against the CPU kernels.
//!
//! 1. The kernel: `deltaw_shaders::Kernel` names a WGSL file and an entry point; the file's
//!    header says what it computes, its bindings and what one invocation does (printed here).
//! 2. The device: `Device::gpu()` opens the preferred adapter (exits 0 with a notice if none).
//! 3. Buffers: `GpuContext::upload` copies host data into a pooled storage buffer.
//! 4. The launch: `gpu::softmax` writes the `Params` uniform (binding 0), binds `x` and `y`
//!    (1, 2), and records one workgroup of 256 invocations per row into the pending batch.
//! 5. Read-back: `GpuContext::read_back` submits the batch and waits: the only wait.
//! 6. The same through tensors: `x.to_device(&gpu)?.softmax(-1)`, and a `matmul` whose right
//!    operand is a transposed view, read in place through its strides by the tiled kernel.
//!
//! Guide: docs/guide/11-gpu-kernels.md. Without a GPU, Mesa's lavapipe runs it on the CPU
//! (`apt-get install mesa-vulkan-drivers`; set `XDG_RUNTIME_DIR` if Vulkan asks for it).
//!
//! ```sh
//! cargo run -p deltaw-tensor --example wgsl_walkthrough
//! ```

#[cfg(feature = "gpu")]
fn main() {
    walkthrough::run();
}

#[cfg(not(feature = "gpu"))]
fn main() {
    println!("deltaw-tensor was built without its `gpu` feature: there is no GPU backend to show");
}

#[cfg(feature = "gpu")]
mod walkthrough {
    use deltaw_shaders::Kernel;
    use deltaw_tensor::gpu::{self, GpuContext};
    use deltaw_tensor::{cpu, Device, Seed, Tensor};

    /// Rows and row length of the softmax input: C > 256, so each invocation strides over the
    /// row (j = lid, lid + 256, ...) before the tree reductions.
    const ROWS: usize = 64;
    const C: usize = 1000;

    pub fn run() {
        show_kernel(Kernel::SoftmaxForward);
        let device = match Device::gpu() {
            Ok(device) => device,
            Err(e) => {
                println!("\nno GPU adapter, nothing to run (not a failure): {e}");
                return;
            }
        };
        let ctx = device.gpu_context().expect("Device::gpu gives a Gpu device");
        let limits = ctx.limits();
        println!("\nadapter: {} (software: {})", ctx.adapter_name(), ctx.is_software());
        println!(
            "  limits: {} workgroups per grid dimension, {} MiB per storage binding, SHADER_F16: {}",
            limits.max_compute_workgroups_per_dimension,
            limits.max_storage_buffer_binding_size >> 20,
            ctx.has_f16()
        );

        let x = Tensor::randn((ROWS, C), Seed(0), &Device::Cpu).mul_scalar(3.0).to_vec();
        let expected = cpu::nn::softmax_forward(&x, C);
        println!("\nsoftmax_forward on a ({ROWS}, {C}) buffer: grid of {ROWS} workgroups × 256 invocations");
        let mut created = Vec::new();
        for round in 1..=3 {
            let y = softmax_on_gpu(ctx, &x);
            let diff = max_diff(&y, &expected);
            let stats = ctx.pool_stats();
            created.push(stats.buffers_created);
            println!("  round {round}: max |gpu - cpu| = {diff:.2e}, buffers created so far {}", stats.buffers_created);
            // WGSL's exp may round a few ulps differently from the CPU's; probabilities are ≤ 1.
            assert!(diff < 1e-5, "softmax on the GPU differs from the CPU by {diff}");
        }
        // Buffers freed in one round are recycled once their batch is submitted: by the third
        // round every buffer comes from the pool.
        assert_eq!(created[2], created[1], "repeating the same work allocated new buffers");

        tensors(&device);
        println!("\nok: the WGSL kernels agree with the CPU");
    }

    /// Prints the kernel's file, entry point and the comment block that opens its source.
    fn show_kernel(kernel: Kernel) {
        println!("kernel {:?}: entry point `{}` in shaders/wgsl/{}", kernel, kernel.entry_point(), kernel.file());
        for line in kernel.source().lines().take_while(|l| l.starts_with("//")) {
            println!("  {line}");
        }
    }

    /// Steps 3 to 5: upload, launch, read back.
    fn softmax_on_gpu(ctx: &GpuContext, x: &[f32]) -> Vec<f32> {
        let x_buffer = ctx.upload(x).expect("upload"); // storage buffer, binding 1
        let y_buffer = gpu::softmax(ctx, &x_buffer, ROWS, C).expect("launch"); // recorded, not yet run
        ctx.read_back::<f32>(&y_buffer, ROWS * C).expect("read back") // submit + wait
    }

    /// Step 6: the same kernels behind `Tensor` ops.
    fn tensors(gpu: &Device) {
        let x = Tensor::randn((ROWS, C), Seed(0), &Device::Cpu).mul_scalar(3.0);
        let on_gpu = x.to_device(gpu).expect("upload").softmax(-1);
        println!(
            "\nTensor::softmax on {}: max |gpu - cpu| = {:.2e}",
            on_gpu.device(),
            max_diff(&on_gpu.to_vec(), &x.softmax(-1).to_vec())
        );

        // C = A · Bᵀ with B stored (N, K): Bᵀ is a view with strides (1, K), no copy.
        let (m, n, k) = (96, 80, 200);
        let a = Tensor::randn((m, k), Seed(1), &Device::Cpu);
        let b = Tensor::randn((n, k), Seed(2), &Device::Cpu);
        let expected = a.matmul(&b.t());
        let (ag, bg) = (a.to_device(gpu).expect("upload"), b.to_device(gpu).expect("upload"));
        let got = ag.matmul(&bg.t());
        let diff = max_diff(&got.to_vec(), &expected.to_vec());
        println!(
            "matmul ({m}, {k}) · ({n}, {k})ᵀ: Bᵀ strides {:?}, grid ({}, {}, 1) workgroups of 16×16, each a 64×64 tile",
            bg.t().layout().strides(),
            n.div_ceil(64),
            m.div_ceil(64)
        );
        println!("  max |gpu - cpu| = {diff:.2e} on values of size ~{:.0}", (k as f32).sqrt());
        assert!(diff < 1e-3, "matmul on the GPU differs from the CPU by {diff}");
    }

    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
    }
}
