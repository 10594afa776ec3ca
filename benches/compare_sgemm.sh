#!/usr/bin/env bash
# Prints deltaw's sgemm speed against matrixmultiply's from the last `cargo bench --bench sgemm`.
#
# Reads the mean time of each size from criterion's estimates.json files and prints both
# throughputs (2n³ FLOP / mean time) and the ratio deltaw / matrixmultiply (> 1: deltaw is
# faster). Both were measured in the same run, so the ratio is what to compare across runs on
# a shared, noisy machine. Usage: benches/compare_sgemm.sh [criterion dir]
set -euo pipefail
dir="${1:-$(cd "$(dirname "$0")/.." && pwd)/target/criterion/sgemm}"
python3 - "$dir" <<'PY'
import json, os, sys

root = sys.argv[1]

def mean_ns(lib, n):
    path = os.path.join(root, lib, str(n), "new", "estimates.json")
    with open(path) as f:
        return json.load(f)["mean"]["point_estimate"]

sizes = sorted(int(d) for d in os.listdir(os.path.join(root, "deltaw")) if d.isdigit())
print(f"{'n':>6} {'deltaw GFLOP/s':>15} {'matrixmultiply GFLOP/s':>23} {'ratio':>7}")
for n in sizes:
    d, m = mean_ns("deltaw", n), mean_ns("matrixmultiply", n)
    flop = 2 * n**3
    print(f"{n:>6} {flop / d:>15.1f} {flop / m:>23.1f} {m / d:>7.3f}")
PY
