#!/usr/bin/env bash
# Peak RSS of a QLoRA step against the f32 LoRA step on the Qwen2.5-0.5B shape (random weights;
# r=16 on every linear layer, B=2, T=128, 2 threads; llama_sft_step), each base in its own
# process so peak RSS is per run: f32 (widened), bf16 (kept as stored), and quantized bases
# (the f32 folder with every decoder projection block-quantized as it streams in; the embedding,
# which is also the tied head, and the norms stay f32).
#
#   benches/compare_qlora_rss.sh [steps] [python] [weights dir] [bases]
#       # defaults: 2, /work/venv/bin/python, target/llama-bench,
#       #   "f32 bf16 q8_0 q4_0 q4_0-bf16 q4_0-bf16:checkpoint"
#       # (bases: f32, bf16, a llama.cpp type name quantized from the f32 folder, or TYPE-bf16
#       # quantized from the bf16 folder, its embedding kept bf16; ":checkpoint" turns on
#       # gradient checkpointing; f32 among them, the ratios' reference)
#
# The weights come from benches/llama_weights.py when the python has torch; without it, from the
# llama_bench_weights example: deltaw's own initialisation, the same distribution (N(0, 0.02²)
# matrices, unit norms, zero biases) with other values, so the losses differ from PyTorch's run
# but the memory and timings do not. Prints the load average around each run, each run's JSON
# line, then peak RSS / the f32 run's for each base (the issue's target: q4_0 <= 0.35).
#
# Figures of 2026-12-06 (AMD EPYC, avx512f 12x32 GEMM kernel, 2 timed steps, weights from
# llama_weights.py):
#   base                     peak RSS        loaded (before step 1)   tokens/s (median / fastest step)
#   f32                      2915 MiB 1.00   1924 MiB                 119.2 / 121.4
#   bf16                     1973 MiB 0.68    982 MiB                 119.3 / 120.2
#   q8_0                     1915 MiB 0.66    928 MiB                  73.7 /  77.8
#   q4_0                     1745 MiB 0.60    751 MiB                  82.2 /  83.6   (f32 embedding)
#   q4_0-bf16                1485 MiB 0.51    491 MiB                  83.6 /  84.0   (bf16 embedding)
#   q4_0-bf16 checkpointing   974 MiB 0.33    491 MiB                  65.2 /  66.3   (target <= 0.35: met)
# What the step adds over the weights: the activations every backward rule reads (the graph
# frees the rest as soon as nothing holds it: matmul outputs feeding adds, the LoRA path's
# intermediates), the logits (B·T·V f32 = 148 MiB) and their gradient, the adapters with their
# gradients and AdamW state (8.8M values, 140 MiB). Gradient checkpointing keeps each layer's
# input only and runs the layer again in backward: about a quarter fewer tokens/s, a third of
# the memory. On 2026-12-05, before values were freed early and before the CPU buffer pool
# stopped holding idle buffers, the same runs took f32 4440, bf16 3499 and q4_0 3536 MiB.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
steps="${1:-2}"
python="${2:-/work/venv/bin/python}"
weights="${3:-$root/target/llama-bench}"
bases="${4:-f32 bf16 q8_0 q4_0 q4_0-bf16 q4_0-bf16:checkpoint}"
cd "$root"
export RAYON_NUM_THREADS=2 OMP_NUM_THREADS=2 HF_HUB_OFFLINE=1
examples="${CARGO_TARGET_DIR:-$root/target}/release/examples"
if "$python" -c "import torch, transformers, gguf" 2>/dev/null; then
  "$python" benches/llama_weights.py "$weights"
else
  echo "no torch in $python: weights from deltaw's init (same distribution, other values)" >&2
  cargo build --release -q -p deltaw-benches --example llama_bench_weights
  "$examples/llama_bench_weights" "$weights"
fi
cargo build --release -q -p deltaw-benches --example llama_sft_step
out=$(mktemp)
load() { echo "load average: $(cut -d" " -f1-3 /proc/loadavg)" >&2; }
for spec in $bases; do
  base="${spec%%:*}"
  extra=$([ "$spec" != "$base" ] && echo "${spec#*:}" || true)
  load; "$examples/llama_sft_step" "$weights" "$base" "$steps" $extra | tee -a "$out"
done
load
python3 - "$out" <<'PY'
import json, sys
runs = {r["base"] + (" checkpointing" if r.get("checkpointing") else ""): r for r in map(json.loads, open(sys.argv[1]))}
f32 = runs["f32"]
for name, r in runs.items():
    target = " (target <= 0.35)" if name.startswith("q4_0") else ""
    print(f"{name:22}: peak RSS {r['peak_rss_mib']:5.0f} MiB = {r['peak_rss_mib'] / f32['peak_rss_mib']:.2f} x f32{target}, "
          f"loaded {r['load_rss_mib']:5.0f} MiB, {r['tokens_per_s']:5.1f} tokens/s (fastest step {r['best_tokens_per_s']:.1f})")
PY
rm -f "$out"
