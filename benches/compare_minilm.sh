#!/usr/bin/env bash
# all-MiniLM-L6-v2 sentence embeddings (256 texts of 128 tokens, batch 32, all cores), deltaw
# against sentence-transformers in the same sitting, each in its own process.
#
#   benches/compare_minilm.sh [runs] [python]     # defaults: 3, /work/venv/bin/python
#
# The model folder is $DELTAW_MINILM_DIR, else ~/.cache/deltaw/all-MiniLM-L6-v2. Prints each
# run's JSON line, then the ratio the issue targets: deltaw sentences/s / PyTorch (>= 1.2), and
# how far apart the first values of the first embedding are (both embed the same texts).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
runs="${1:-3}"
python="${2:-/work/venv/bin/python}"
cd "$root"
cargo build --release -q -p deltaw-benches --example minilm_embed
out=$(mktemp)
"${CARGO_TARGET_DIR:-$root/target}/release/examples/minilm_embed" "$runs" | tee -a "$out"
HF_HUB_OFFLINE=1 "$python" benches/compare_minilm.py "$runs" 2>/dev/null | tee -a "$out"
python3 - "$out" <<'PY'
import json, sys
runs = {r["impl"]: r for r in map(json.loads, open(sys.argv[1]))}
d, p = runs["deltaw"], runs["pytorch"]
diff = max(abs(a - b) for a, b in zip(d["first"], p["first"]))
print(f"sentences/s deltaw/PyTorch: {d['sentences_per_s'] / p['sentences_per_s']:.2f} (target >= 1.2)")
print(f"mean tokens per text: deltaw {d['mean_tokens']}, PyTorch {p['mean_tokens']}; first embedding max abs diff {diff:.1e}")
PY
rm -f "$out"
