#!/usr/bin/env bash
# Every CPU comparison back to back in one sitting, then one table (issue 15): for each piece of
# work, deltaw's figure, the peer's, their ratio, the floor or aim it is held to, and which CPU
# kernels ran; with the date, the CPU model, the thread count and the load average.
#
#   benches/compare_all.sh [runs] [python]      # defaults: 3, /work/venv/bin/python
#
# Runs, each in its own processes (the scripts' own headers say what each measures):
#   sgemm_rate + sgemm_torch.py    square sgemm, n = 1024 and 2048, against torch.mm (MKL)
#   compare_sft.sh                 GPT-2 124M fine-tuning step, full and LoRA, against PyTorch (+ PEFT)
#   compare_minilm.sh              all-MiniLM-L6-v2 embedding against sentence-transformers (and
#                                  ONNX Runtime where the script runs it)
#   compare_generate.sh            GPT-2 124M greedy decode against transformers (and llama.cpp
#                                  where the script runs it)
#   compare_llama_decode.sh        Qwen2.5-0.5B-shape decode, f32 and bf16, against llama.cpp
#   compare_quant_decode.sh        the same from Q8_0 and Q4_0 GGUF files, against llama.cpp; then
#                                  GPT-2 124M from Q8_0 and Q4_0 files
#   compare_llama_sft.sh           Qwen2.5-0.5B-shape LoRA step against PyTorch + PEFT
# The peers come from the Python registry into one virtualenv: torch, transformers, peft,
# sentence-transformers, onnxruntime, gguf, and llama-cpp-python built from source
# (CMAKE_ARGS="-DGGML_NATIVE=ON"; on a CPU with AMX add -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF
# -DGGML_AMX_BF16=OFF, whose kernels crashed llama.cpp here). A script whose peer is missing
# fails alone; its rows say so and the rest of the table stands.
#
# Every log goes to target/compare-all/<UTC time>/ (one file per script) beside table.md, the
# table printed at the end. Ratios are deltaw / peer, > 1 means deltaw is faster (for peak RSS,
# < 1 means deltaw uses less). Only ratios from the same sitting mean anything on a shared
# machine: compare the ratios across runs, not the raw figures.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
runs="${1:-3}"
python="${2:-/work/venv/bin/python}"
cd "$root"
export RAYON_NUM_THREADS="${RAYON_NUM_THREADS:-2}" OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}" HF_HUB_OFFLINE=1
logs="$root/target/compare-all/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$logs"
cargo build --release -q -p deltaw-benches \
  --example sgemm_rate --example sft_step --example minilm_embed --example gpt2_generate \
  --example llama_decode --example llama_sft_step
bin="${CARGO_TARGET_DIR:-$root/target}/release/examples"

# One comparison: its stdout and stderr into the log folder, a failure noted, never fatal.
run() {
  local name=$1
  shift
  echo "== $name ($(date -u +%H:%M:%S), load average $(cut -d' ' -f1-3 /proc/loadavg))" >&2
  if ! "$@" >"$logs/$name.log" 2>"$logs/$name.err"; then
    echo "   $name failed: see $logs/$name.err" >&2
  fi
}
run sgemm bash -c "'$bin/sgemm_rate' 1024 2048 && '$python' benches/sgemm_torch.py 1024 2048"
run sft bash benches/compare_sft.sh 5 "$python"
run minilm bash benches/compare_minilm.sh "$runs" "$python"
run generate bash benches/compare_generate.sh "$runs" "$python"
run llama_decode bash benches/compare_llama_decode.sh "$runs" "$python"
run quant_decode bash benches/compare_quant_decode.sh "$runs" "$python"
run gpt2_quant_decode bash benches/compare_quant_decode.sh "$runs" "$python" "$root/target/llama-bench" "q8_0 q4_0" gpt2
run llama_sft bash benches/compare_llama_sft.sh 3 "$python"
echo "== done ($(date -u +%H:%M:%S), load average $(cut -d' ' -f1-3 /proc/loadavg))" >&2
python3 benches/compare_all.py "$logs" | tee "$logs/table.md"
