#!/usr/bin/env bash
# Greedy decode on the Qwen2.5-0.5B shape from block-quantized GGUF files (Q8_0 and Q4_0, every
# matrix quantized, the tied embedding too), deltaw against llama.cpp (llama-cpp-python) on the
# SAME file in the same sitting, each run in its own process: 16-token prompt, 64 new tokens,
# KV cache, 2 threads; only the decode phase (63 single-token steps) is timed on both sides.
#
#   benches/compare_quant_decode.sh [rounds] [python] [weights dir] [types] [model]
#       # defaults: 3, /work/venv/bin/python, target/llama-bench, "q8_0 q4_0", qwen2
#
# model gpt2: GPT-2 124M instead (compare_generate.py's random weights), from
# target/gpt2-bench/gpt2-TYPE.gguf, which benches/gpt2_gguf.py writes (torch needed); the
# weights dir is then unused.
#
# The files come from benches/llama_gguf.py (numpy + gguf only) over WEIGHTS/f32, which
# llama_weights.py (torch) or, without torch, the llama_bench_weights example writes. deltaw
# reads a file as `deltaw generate` does (WeightDtype::Stored: the blocks kept, read by
# cpu::qdot); its JSON line names the qdot kernel that ran. Runs in rounds, each type once
# per round with llama.cpp and deltaw back to back (decode_ratios.py says why). Prints the load
# average around each round, each run's JSON line, whether both sides produce the same greedy
# tokens (they need not: llama.cpp and deltaw quantize the activations differently), and per
# type the median over the rounds of
#   deltaw decode tokens/s / llama.cpp decode tokens/s, same round    (issue 14's target: >= 1.0)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
runs="${1:-3}"
python="${2:-/work/venv/bin/python}"
weights="${3:-$root/target/llama-bench}"
types="${4:-q8_0 q4_0}"
model="${5:-qwen2}"
cd "$root"
export RAYON_NUM_THREADS=2 OMP_NUM_THREADS=2
if [ "$model" = gpt2 ]; then
  for ty in $types; do
    HF_HUB_OFFLINE=1 "$python" benches/gpt2_gguf.py "$root/target/gpt2-bench/gpt2-$ty.gguf"
  done
elif [ ! -f "$weights/f32/model.safetensors" ]; then
  if "$python" -c "import torch" 2>/dev/null; then
    "$python" benches/llama_weights.py "$weights"
  else
    cargo run --release -q -p deltaw-benches --example llama_bench_weights -- "$weights"
  fi
fi
# shellcheck disable=SC2086
[ "$model" = gpt2 ] || "$python" benches/llama_gguf.py "$weights" $types
cargo build --release -q -p deltaw-benches --example llama_decode
bin="${CARGO_TARGET_DIR:-$root/target}/release/examples/llama_decode"
out=$(mktemp)
load() { echo "load average: $(cut -d" " -f1-3 /proc/loadavg)" >&2; }
# Rounds: every type once per round, llama.cpp and deltaw back to back (see decode_ratios.py);
# each process times 2 generations after its warm-up.
for round in $(seq "$runs"); do
  for ty in $types; do
    file="$weights/qwen2-$ty.gguf"
    [ "$model" = gpt2 ] && file="$root/target/gpt2-bench/gpt2-$ty.gguf"
    load; echo "round $round, $ty" >&2
    "$python" benches/compare_llama_decode.py "$file" 2 2>/dev/null | tee -a "$out"
    "$bin" "$file" "$ty" 2 | tee -a "$out"
  done
done
load
# shellcheck disable=SC2046
python3 benches/decode_ratios.py "$out" $(for ty in $types; do echo "$ty:$ty"; done)
rm -f "$out"
