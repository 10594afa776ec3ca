#!/usr/bin/env bash
# deltaw's GPU sgemm from the last `cargo bench -p deltaw-benches --features gpu --bench
# sgemm_gpu`, beside PyTorch CUDA f32 matmul (TF32 off) at the same sizes, measured now.
#
#   benches/compare_sgemm_gpu.sh [python] [criterion dir]
#
# Defaults: /work/venv/bin/python (else python3), and $CARGO_TARGET_DIR/criterion/sgemm_gpu
# (else target/criterion/sgemm_gpu). Prints GFLOP/s (2n³ / mean time) of deltaw's f32 and f16
# kernels, PyTorch's, and the ratio deltaw f32 / PyTorch (> 1: deltaw is faster). Without
# PyTorch or CUDA it prints deltaw's figures, says why, and exits 0.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
python="${1:-/work/venv/bin/python}"
[ -x "$python" ] || python=python3
dir="${2:-${CARGO_TARGET_DIR:-$root/target}/criterion/sgemm_gpu}"
exec "$python" "$root/benches/compare_sgemm_gpu.py" "$dir"
