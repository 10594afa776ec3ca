#!/usr/bin/env bash
# Data-parallel scaling on one machine: the GPT-2 124M full fine-tuning step (2 micro-batches of
# B = 4, T = 64) at 1 rank and at 2 ranks of 1 rayon thread each, and ZeRO-1's optimizer memory.
#
#   benches/compare_mpi.sh [steps]        # default 8; needs MPI (mpiexec) and libclang
#
# Prints the machine's load and each run's JSON line (rank 0's median step time, all-reduce included), then
#   scaling efficiency = tokens/s at 2 ranks / (2 × tokens/s at 1 rank)   (target >= 0.85),
#                        for the plain all-reduce and for ZeRO-1
#   ZeRO-1 optimizer MiB per rank / plain run's                            (target <= 0.55)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
steps="${1:-8}"
cd "$root"
cargo build --release -q -p deltaw-benches --features mpi --example dist_step
bin="${CARGO_TARGET_DIR:-$root/target}/release/examples/dist_step"
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
out=$(mktemp)
RAYON_NUM_THREADS=1 mpiexec -n 1 "$bin" "$steps" | tee -a "$out"
RAYON_NUM_THREADS=1 mpiexec -n 2 "$bin" "$steps" | tee -a "$out"
RAYON_NUM_THREADS=1 mpiexec -n 2 "$bin" "$steps" zero1 | tee -a "$out"
python3 - "$out" <<'PY'
import json, sys
one, two, zero = map(json.loads, open(sys.argv[1]))
for name, run in (("plain all-reduce", two), ("ZeRO-1", zero)):
    print(f"scaling efficiency 1 -> 2 ranks, {name}: {run['tokens_per_s'] / (2 * one['tokens_per_s']):.2f} (target >= 0.85)")
print(f"ZeRO-1 optimizer memory per rank / plain: {max(zero['optimizer_mib_per_rank']) / max(two['optimizer_mib_per_rank']):.2f} (target <= 0.55)")
PY
rm -f "$out"
