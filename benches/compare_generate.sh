#!/usr/bin/env bash
# GPT-2 124M greedy generation (16-token prompt, 64 new tokens, KV cache, no end-of-text stop),
# deltaw against transformers' generate() in the same sitting, each in its own process.
#
#   benches/compare_generate.sh [runs] [python]    # defaults: 3, /work/venv/bin/python
#
# Prints each run's JSON line, then the ratio the issue targets: deltaw tokens/s / transformers
# tokens/s (>= 1.5).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
runs="${1:-3}"
python="${2:-/work/venv/bin/python}"
cd "$root"
cargo build --release -q -p deltaw-benches --example gpt2_generate
out=$(mktemp)
"${CARGO_TARGET_DIR:-$root/target}/release/examples/gpt2_generate" "$runs" | tee -a "$out"
HF_HUB_OFFLINE=1 "$python" benches/compare_generate.py "$runs" 2>/dev/null | tee -a "$out"
python3 - "$out" <<'PY'
import json, sys
runs = {r["impl"]: r for r in map(json.loads, open(sys.argv[1]))}
d, p = runs["deltaw"], runs["pytorch"]
print(f"tokens/s deltaw/transformers: {d['tokens_per_s'] / p['tokens_per_s']:.2f} (target >= 1.5)")
PY
rm -f "$out"
