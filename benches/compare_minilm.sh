#!/usr/bin/env bash
# all-MiniLM-L6-v2 sentence embeddings (256 texts of 128 tokens, batch 32, all cores), deltaw
# against sentence-transformers (PyTorch) and against ONNX Runtime running the same model exported
# to ONNX (compare_minilm_onnx.py), in the same sitting, each in its own process.
#
#   benches/compare_minilm.sh [runs] [python]     # defaults: 3, /work/venv/bin/python
#
# The model folder is $DELTAW_MINILM_DIR, else ~/.cache/deltaw/all-MiniLM-L6-v2. Prints each
# run's JSON line, then deltaw sentences/s / PyTorch (issue 15's floor: >= 1.5) and how far apart
# the first values of the first embedding are (all embed the same texts), then deltaw sentences/s
# / ONNX Runtime (aim >= 1.0) and ONNX Runtime's largest difference from PyTorch's embeddings.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
runs="${1:-3}"
python="${2:-/work/venv/bin/python}"
cd "$root"
cargo build --release -q -p deltaw-benches --example minilm_embed
out=$(mktemp)
"${CARGO_TARGET_DIR:-$root/target}/release/examples/minilm_embed" "$runs" | tee -a "$out"
HF_HUB_OFFLINE=1 "$python" benches/compare_minilm.py "$runs" 2>/dev/null | tee -a "$out"
HF_HUB_OFFLINE=1 "$python" benches/compare_minilm_onnx.py "$runs" 2>/dev/null | tee -a "$out"
python3 - "$out" <<'PY'
import json, sys
runs = {r["impl"]: r for r in map(json.loads, open(sys.argv[1]))}
d, p, o = runs["deltaw"], runs["pytorch"], runs["onnxruntime"]
diff = max(abs(a - b) for a, b in zip(d["first"], p["first"]))
print(f"sentences/s deltaw/PyTorch: {d['sentences_per_s'] / p['sentences_per_s']:.2f} (floor >= 1.5)")
print(f"mean tokens per text: deltaw {d['mean_tokens']}, PyTorch {p['mean_tokens']}; first embedding max abs diff {diff:.1e}")
print(f"sentences/s deltaw/ONNX Runtime: {d['sentences_per_s'] / o['sentences_per_s']:.2f} (aim >= 1.0); "
      f"ONNX Runtime max abs diff vs PyTorch over all embeddings {o['max_abs_diff_vs_pytorch']:.1e}")
PY
rm -f "$out"
