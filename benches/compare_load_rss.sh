#!/usr/bin/env bash
# Peak RSS of loading GPT-2 124M in f32 against its weight bytes (target <= 1.3x).
#
#   benches/compare_load_rss.sh [dir]     # default: a temp folder, removed afterwards
#
# Saves a random GPT-2 124M once (its own process), then in fresh processes loads it with
# Gpt2::from_dir ("load") and reads the same file tensor by tensor into f32 buffers ("stream",
# the floor a loader can reach), printing each JSON line and the ratios peak RSS / file size.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${1:-$(mktemp -d)}"
cd "$root"
cargo build --release -q -p deltaw-benches --example load_rss
bin="${CARGO_TARGET_DIR:-$root/target}/release/examples/load_rss"
[ -f "$dir/model.safetensors" ] || "$bin" save "$dir"
out=$(mktemp)
for mode in load stream; do
  "$bin" "$mode" "$dir" | tee -a "$out"
done
python3 - "$out" <<'PY'
import json, sys
runs = {r["mode"]: r for r in map(json.loads, open(sys.argv[1]))}
print(f"Gpt2::from_dir peak RSS / weight bytes: {runs['load']['ratio']:.2f} (target <= 1.3)")
print(f"tensor-by-tensor read peak RSS / weight bytes: {runs['stream']['ratio']:.2f}")
PY
rm -f "$out"
[ -n "${1:-}" ] || rm -rf "$dir"
