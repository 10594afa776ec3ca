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
# Figures of 2026-12-05 (2 cores shared with other jobs, load average 4-6, so tokens/s are noisy;
# peak RSS repeats within a few MiB; avx512f 12x32 GEMM kernel, 2 timed steps, weights from
# llama_bench_weights):
#   base   peak RSS        loaded (before step 1)   tokens/s (median / fastest step)
#   f32    4440 MiB 1.00   1918 MiB                 29.5 / 30.9
#   bf16   3499 MiB 0.79    975 MiB                 34.6 / 35.5
#   q8_0   3708 MiB 0.84   1435 MiB                 26.7 / 27.5
#   q4_0   3536 MiB 0.80   1263 MiB                 30.8 / 37.8   (target <= 0.35: not met)
#   q4_K   4219 MiB 0.95   1973 MiB                 33.1 / 40.1   (only down_proj: 256 does not divide C = 896)
#   q4_0 on the bf16 folder (embedding kept bf16; a weights dir whose f32/ links to bf16/):
#          3129 MiB 0.70    491 MiB                 28.3 / 30.4
# What the rest is: every mode adds 2270-2640 MiB during the step, more than the whole q4_0 base
# (712 MiB: the f32 embedding, also the tied head, 136M values = 520 MiB, plus 192 MiB of Q4_0
# projections). Forward alone adds about 1680 MiB: the recorded graph keeps every op's output
# until backward (about 64 MiB per decoder layer at B·T = 256; counting op outputs, mostly the
# MLP's 4864-wide tensors: base and LoRA outputs of gate/up, their sums, SiLU, the product),
# plus the logits (B·T·V f32 = 148 MiB), the loss's log-softmax (148 MiB) and in backward
# their gradient.
# These figures were taken while quantizing on load still left the f32 read buffers in the CPU
# buffer pool (deltaw_tensor::cpu::pool, up to 512 MiB) where nothing of the step reuses them:
# the q4_0 and q8_0 "loaded" figures are about 510 MiB above their weights. Checkpoint::load_as
# now clears the pool after a quantizing load; a one-off run with that clear gave q4_0 3241 MiB
# (0.73).
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
