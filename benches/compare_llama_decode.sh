#!/usr/bin/env bash
# Greedy decode on the Qwen2.5-0.5B shape (random weights, 16-token prompt, 64 new tokens, KV
# cache, no end-of-text stop, 2 threads), deltaw against llama.cpp (llama-cpp-python) on the same
# weights in the same sitting, each run in its own process: llama.cpp f32 and f16 GGUFs, deltaw
# f32 and bf16 (WeightDtype::Stored). Only the decode phase (the 63 single-token steps after the
# prompt) is timed on both sides.
#
#   benches/compare_llama_decode.sh [runs] [python] [weights dir]
#       # defaults: 3, /work/venv/bin/python, target/llama-bench (written on first use)
#
# Prints the load average around each run (the machine may be shared), each run's JSON line,
# whether deltaw f32 and llama.cpp f32 produce the same greedy tokens, then the ratios the issue
# targets (of the median run, and of the fastest single step, which other processes disturbed
# least; llama.cpp's spinning thread barriers suffer most from a busy machine):
#   deltaw f32 / llama.cpp f32 decode tokens/s   (target >= 1.0)
#   deltaw bf16 / llama.cpp f16 decode tokens/s  (target >= 1.0)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
runs="${1:-3}"
python="${2:-/work/venv/bin/python}"
weights="${3:-$root/target/llama-bench}"
cd "$root"
export RAYON_NUM_THREADS=2 OMP_NUM_THREADS=2 HF_HUB_OFFLINE=1
if "$python" -c "import torch" 2>/dev/null; then
  "$python" benches/llama_weights.py "$weights"
else
  # Without torch: deltaw's own initialisation of the same shape, and the GGUFs from numpy + gguf.
  [ -f "$weights/f32/model.safetensors" ] ||
    cargo run --release -q -p deltaw-benches --example llama_bench_weights -- "$weights"
  "$python" benches/llama_gguf.py "$weights" f32 f16
fi
cargo build --release -q -p deltaw-benches --example llama_decode
bin="${CARGO_TARGET_DIR:-$root/target}/release/examples/llama_decode"
out=$(mktemp)
load() { echo "load average: $(cut -d" " -f1-3 /proc/loadavg)" >&2; }
for dtype in f32 f16; do
  load; "$python" benches/compare_llama_decode.py "$weights/qwen2-$dtype.gguf" "$runs" 2>/dev/null | tee -a "$out"
done
for base in f32 bf16; do
  load; "$bin" "$weights" "$base" "$runs" | tee -a "$out"
done
load
python3 - "$out" <<'PY'
import json, sys
runs = {(r["impl"], r["weights"]): r for r in map(json.loads, open(sys.argv[1]))}
c32, c16 = runs["llama.cpp", "f32"], runs["llama.cpp", "f16"]
d32, d16 = runs["deltaw", "f32"], runs["deltaw", "bf16"]
def same(a, b):
    n = next((i for i, (x, y) in enumerate(zip(a["tokens"], b["tokens"])) if x != y), None)
    return "yes" if n is None else f"no (first difference at new token {n})"
print(f"same tokens, deltaw f32 vs llama.cpp f32: {same(d32, c32)}")
print(f"same tokens, deltaw bf16 vs llama.cpp f16: {same(d16, c16)} (different roundings of the weights)")
print(f"same tokens, deltaw bf16 vs deltaw f32: {same(d16, d32)}")
print(f"deltaw GEMM kernel: {d32['kernel']}")
for name, d, c in [("f32 / llama.cpp f32", d32, c32), ("bf16 / llama.cpp f16", d16, c16)]:
    ratio = d["decode_tokens_per_s"] / c["decode_tokens_per_s"]
    best = d["best_step_tokens_per_s"] / c["best_step_tokens_per_s"]
    print(f"decode tokens/s deltaw {name}: {ratio:.2f} median run, {best:.2f} fastest step (target >= 1.0)")
PY
rm -f "$out"
