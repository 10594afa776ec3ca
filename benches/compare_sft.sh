#!/usr/bin/env bash
# GPT-2 124M fine-tuning step (B=4, T=64), deltaw against PyTorch in the same sitting:
# full fine-tuning and LoRA r=8 on c_attn, each in its own process so peak RSS is per mode.
#
#   benches/compare_sft.sh [steps] [python]      # defaults: 5, /work/venv/bin/python
#
# Prints each run's JSON line, then the ratios the issue targets:
#   full: deltaw tokens/s / PyTorch tokens/s  (target >= 1.0)
#   LoRA step speed-up over full, in deltaw    (target >= 1.3)
#   LoRA peak RSS / full peak RSS, in deltaw   (target <= 0.5)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
steps="${1:-5}"
python="${2:-/work/venv/bin/python}"
cd "$root"
cargo build --release -q -p deltaw-benches --example sft_step
bin="${CARGO_TARGET_DIR:-$root/target}/release/examples/sft_step"
out=$(mktemp)
for mode in full lora; do
  "$bin" "$mode" "$steps" | tee -a "$out"
  HF_HUB_OFFLINE=1 "$python" benches/compare_sft.py "$mode" "$steps" 2>/dev/null | tee -a "$out"
done
python3 - "$out" <<'PY'
import json, sys
runs = {(r["impl"], r["mode"]): r for r in map(json.loads, open(sys.argv[1]))}
d_full, d_lora = runs["deltaw", "full"], runs["deltaw", "lora"]
p_full, p_lora = runs["pytorch", "full"], runs["pytorch", "lora"]
print(f"full tokens/s deltaw/PyTorch: {d_full['tokens_per_s'] / p_full['tokens_per_s']:.2f} (target >= 1.0)")
print(f"LoRA tokens/s deltaw/PyTorch: {d_lora['tokens_per_s'] / p_lora['tokens_per_s']:.2f}")
print(f"deltaw LoRA speed-up over full: {d_lora['tokens_per_s'] / d_full['tokens_per_s']:.2f} (target >= 1.3)")
print(f"deltaw LoRA/full peak RSS: {d_lora['peak_rss_mib'] / d_full['peak_rss_mib']:.2f} (target <= 0.5)")
print(f"PyTorch LoRA/full peak RSS: {p_lora['peak_rss_mib'] / p_full['peak_rss_mib']:.2f}")
PY
rm -f "$out"
