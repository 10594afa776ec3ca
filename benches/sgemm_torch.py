"""PyTorch's side of the quick sgemm comparison in compare_all.sh: `torch.mm` (MKL on x86) of two
n×n f32 matrices, one warm-up product then the best of seven, as `cargo run --release -p
deltaw-benches --example sgemm_rate` times deltaw's sgemm. One JSON line per size.

    OMP_NUM_THREADS=2 /work/venv/bin/python benches/sgemm_torch.py [n ...]   # default 1024 2048
"""
import json
import sys
import time

import torch


def main():
    sizes = [int(s) for s in sys.argv[1:]] or [1024, 2048]
    for n in sizes:
        gen = torch.Generator().manual_seed(n)
        a = torch.rand(n, n, generator=gen) * 2 - 1
        b = torch.rand(n, n, generator=gen) * 2 - 1
        c = torch.empty(n, n)
        best = float("inf")
        for i in range(8):
            start = time.perf_counter()
            torch.mm(a, b, out=c)
            if i > 0:
                best = min(best, time.perf_counter() - start)
        print(json.dumps({
            "impl": "pytorch", "n": n, "best_seconds": round(best, 5), "gflops": round(2 * n**3 / best / 1e9, 1),
            "threads": torch.get_num_threads(), "torch": torch.__version__,
            "mkl": torch.backends.mkl.is_available(),
        }))


if __name__ == "__main__":
    main()
