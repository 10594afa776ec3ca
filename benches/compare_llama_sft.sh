#!/usr/bin/env bash
# LoRA fine-tuning step on the Qwen2.5-0.5B shape (random weights; r=16 on every linear layer,
# B=2, T=128, 2 threads), deltaw against PyTorch + PEFT in the same sitting, each run in its own
# process so peak RSS is per run: deltaw with an f32 base, deltaw with the bf16 base kept in bf16
# (WeightDtype::Stored), deltaw QLoRA (the bf16 folder with every decoder projection quantized to
# Q4_0 as it loads, the embedding kept bf16, gradient checkpointing on: what a QLoRA run does),
# PyTorch + PEFT f32.
#
#   benches/compare_llama_sft.sh [steps] [python] [weights dir]
#       # defaults: 3, /work/venv/bin/python, target/llama-bench (written on first use)
#
# Prints the load average around each run (the machine may be shared), each run's JSON line, then
# the ratios the issue targets (of the median step, and of the fastest step, which other processes
# disturbed least):
#   deltaw tokens/s / PyTorch + PEFT tokens/s     (target >= 1.2)
#   deltaw bf16-base peak RSS / PyTorch peak RSS  (target <= 0.6)
#   deltaw QLoRA peak RSS / deltaw f32 LoRA peak RSS  (issue 14's target: <= 0.35)
# Needs torch (for the weights and the peer); compare_qlora_rss.sh runs deltaw's bases alone,
# with weights from the llama_bench_weights example when there is no torch.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
steps="${1:-3}"
python="${2:-/work/venv/bin/python}"
weights="${3:-$root/target/llama-bench}"
cd "$root"
export RAYON_NUM_THREADS=2 OMP_NUM_THREADS=2 HF_HUB_OFFLINE=1
"$python" benches/llama_weights.py "$weights"
cargo build --release -q -p deltaw-benches --example llama_sft_step
bin="${CARGO_TARGET_DIR:-$root/target}/release/examples/llama_sft_step"
out=$(mktemp)
load() { echo "load average: $(cut -d" " -f1-3 /proc/loadavg)" >&2; }
for base in f32 bf16; do
  load; "$bin" "$weights" "$base" "$steps" | tee -a "$out"
done
load; "$bin" "$weights" q4_0-bf16 "$steps" checkpoint | tee -a "$out"
load; "$python" benches/compare_llama_sft.py "$steps" 2 2>/dev/null | tee -a "$out"
load
python3 - "$out" <<'PY'
import json, sys
runs = {(r["impl"], r["base"]): r for r in map(json.loads, open(sys.argv[1]))}
d32, d16, pt = runs["deltaw", "f32"], runs["deltaw", "bf16"], runs["pytorch", "f32"]
print(f"deltaw GEMM kernel: {d32['kernel']}")
for name, d in [("f32", d32), ("bf16", d16)]:
    ratio, best = d["tokens_per_s"] / pt["tokens_per_s"], d["best_tokens_per_s"] / pt["best_tokens_per_s"]
    print(f"tokens/s deltaw {name} base / PyTorch+PEFT: {ratio:.2f} median step, {best:.2f} fastest step (target >= 1.2)")
print(f"peak RSS deltaw bf16 base / PyTorch f32: {d16['peak_rss_mib'] / pt['peak_rss_mib']:.2f} (target <= 0.6)")
print(f"peak RSS deltaw f32 base / PyTorch f32: {d32['peak_rss_mib'] / pt['peak_rss_mib']:.2f}")
q = runs["deltaw", "q4_0-bf16"]
print(f"peak RSS deltaw QLoRA (Q4_0 base, checkpointing) / deltaw f32 LoRA: {q['peak_rss_mib'] / d32['peak_rss_mib']:.2f} "
      f"(target <= 0.35); / PyTorch f32: {q['peak_rss_mib'] / pt['peak_rss_mib']:.2f}; {q['tokens_per_s']} tokens/s")
print(f"first loss (same weights, B = 0 adapters): deltaw {d32['first_loss']}, PyTorch {pt['first_loss']}")
PY
rm -f "$out"
