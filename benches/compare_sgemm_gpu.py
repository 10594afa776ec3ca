"""The table of compare_sgemm_gpu.sh: deltaw's GPU GEMM from criterion beside PyTorch CUDA.

deltaw's figures are the mean times in <criterion dir>/{f32,f16}/<n>/new/estimates.json, as
2n³ FLOP / mean. PyTorch multiplies n×n f32 matrices with `torch.mm(out=)`, TF32 off, timed the
way the bench times deltaw: each product followed by a wait (`torch.cuda.synchronize()`, where
deltaw reads one element back), the median of 5 runs of many products. The pipelined column
syncs once per run instead, the kernels' own speed without the per-product wait.

    python3 benches/compare_sgemm_gpu.py <criterion dir>/sgemm_gpu
"""
import json
import os
import statistics
import sys
import time

RUNS = 5
SECONDS_PER_RUN = 0.2


def deltaw_gflops(root):
    """{variant: {n: GFLOP/s}} for the variants and sizes found under root."""
    out = {}
    for variant in ("f32", "f16"):
        vdir = os.path.join(root, variant)
        if not os.path.isdir(vdir):
            continue
        for d in os.listdir(vdir):
            path = os.path.join(vdir, d, "new", "estimates.json")
            if d.isdigit() and os.path.exists(path):
                with open(path) as f:
                    mean_ns = json.load(f)["mean"]["point_estimate"]
                n = int(d)
                out.setdefault(variant, {})[n] = 2 * n**3 / mean_ns
    return out


def torch_gflops(torch, n):
    """(synced each product, pipelined) GFLOP/s of an n×n f32 product on the current GPU."""
    gen = torch.Generator(device="cuda").manual_seed(0)
    a = torch.rand(n, n, device="cuda", generator=gen) * 2 - 1  # (n, n)
    b = torch.rand(n, n, device="cuda", generator=gen) * 2 - 1  # (n, n)
    c = torch.empty(n, n, device="cuda")  # (n, n)
    for _ in range(3):
        torch.mm(a, b, out=c)
    torch.cuda.synchronize()
    start = time.perf_counter()
    torch.mm(a, b, out=c)
    torch.cuda.synchronize()
    reps = max(10, min(2000, int(SECONDS_PER_RUN / (time.perf_counter() - start))))

    def run(sync_each):
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(reps):
            torch.mm(a, b, out=c)
            if sync_each:
                torch.cuda.synchronize()
        torch.cuda.synchronize()
        return (time.perf_counter() - start) / reps

    flop = 2 * n**3
    synced = statistics.median(run(True) for _ in range(RUNS))
    pipelined = statistics.median(run(False) for _ in range(RUNS))
    return flop / synced / 1e9, flop / pipelined / 1e9


def cuda_torch():
    """(torch, None) when CUDA is usable, else (None, why not)."""
    try:
        import torch
    except ImportError:
        return None, "PyTorch is not installed"
    if not torch.cuda.is_available():
        return None, f"PyTorch {torch.__version__} sees no CUDA device"
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    return torch, None


def fmt(x):
    """GFLOP/s with two decimals below 10 (software adapters), one above; `-` when absent."""
    if x is None:
        return "-"
    return f"{x:.2f}" if x < 10 else f"{x:.1f}"


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "target/criterion/sgemm_gpu"
    deltaw = deltaw_gflops(root)
    if "f32" not in deltaw:
        sys.exit(f"no sgemm_gpu results under {root}: run "
                 "`cargo bench -p deltaw-benches --features gpu --bench sgemm_gpu` first")
    sizes = sorted(deltaw["f32"])
    torch, why_not = cuda_torch()
    if torch is not None:
        print(f"PyTorch {torch.__version__} on {torch.cuda.get_device_name()}, f32, TF32 off")
    header = f"{'n':>6} {'deltaw f32':>11} {'deltaw f16':>11}"
    if torch is not None:
        header += f" {'torch f32':>10} {'torch pipelined':>16} {'ratio':>7}"
    print("GFLOP/s" + ("; ratio: deltaw f32 / torch f32 (each product waited for)" if torch is not None else ""))
    print(header)
    for n in sizes:
        line = f"{n:>6} {fmt(deltaw['f32'][n]):>11} {fmt(deltaw.get('f16', {}).get(n)):>11}"
        if torch is not None:
            synced, pipelined = torch_gflops(torch, n)
            line += f" {synced:>10.1f} {pipelined:>16.1f} {deltaw['f32'][n] / synced:>7.3g}"
        print(line)
    if torch is None:
        print(f"no PyTorch comparison: {why_not} (GFLOP/s above are deltaw's alone)")


if __name__ == "__main__":
    main()
