#!/usr/bin/env bash
# Do files from `deltaw export` run in llama.cpp and decode what deltaw decodes? For each tiny
# fixture folder (Qwen2 with biases and a padded vocabulary; Llama 3 with its rope bands, which
# travel as rope_freqs.weight; Mistral, q/k permuted), export an f16 GGUF, take deltaw's greedy
# tokens on the FOLDER for a text prompt, and llama.cpp's (llama-cpp-python) on the FILE for the
# same prompt ids, and print both. Mistral's fixture has a 6-token sliding window that GGUF
# cannot carry (the export says so), so its prompt is short enough to stay inside it.
#
#   benches/check_export_llama_cpp.sh [python]      # default /work/venv/bin/python
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
python="${1:-/work/venv/bin/python}"
cd "$root"
cargo build -q -p deltaw-cli
bin="${CARGO_TARGET_DIR:-$root/target}/debug/deltaw"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for case in "qwen2_bias_gqa3 qwen2 Hello-world,-the-quick-brown-fox 8" \
            "llama3_gqa4 llama3 Hello-world,-the-quick-brown-fox 8" "mistral_bf16_shards mistral Hi 2"; do
  set -- $case
  model="$tmp/$1"; mkdir -p "$model"
  cp tests/fixtures/llama/"$1"/* "$model"/
  cp tests/fixtures/chat/"$2"/* "$model"/
  "$bin" export --model "$model" --format gguf --quant f16 --out "$model.gguf" | grep -E "note|wrote" >&2
  prompt="${3//-/ }"
  ours=$("$bin" generate --model "$model" --prompt "$prompt" --greedy --max-new-tokens "$4" --json)
  ids=$(echo "$ours" | python3 -c "import json, sys; print(json.dumps(json.load(sys.stdin)['prompt_ids']))")
  theirs=$("$python" benches/check_export_llama_cpp.py "$model.gguf" "$ids" "$4" 2>/dev/null)
  python3 - "$1" "$ours" "$theirs" <<'PY'
import json, sys
name, ours, theirs = sys.argv[1], json.loads(sys.argv[2])["new_ids"], json.loads(sys.argv[3])["new_ids"]
print(f"{name}: deltaw {ours}, llama.cpp {theirs}: {'same' if ours == theirs else 'DIFFERENT'}")
PY
done
