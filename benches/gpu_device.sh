#!/usr/bin/env bash
# Issue 15's GPU figures in one call, for a machine with a real GPU (run it there as one
# prepared script; it takes a few minutes):
#   1. sgemm at n = 4096 (f32, and f16 storage where the adapter has SHADER_F16) as a fraction
#      of the card's FP32 peak;
#   2. the GPT-2 124M fine-tuning step (B=4, T=64), full and LoRA r=8, on the GPU;
#   3. GPT-2 124M greedy decode tokens/s (16-token prompt, 64 new tokens, KV cache) on the GPU;
# and, for the same-sitting ratio, the GPT-2 step and decode on that machine's CPU.
#
#   benches/gpu_device.sh [bin dir]
#
# bin dir holds sgemm_gpu_rate, sft_step and gpt2_generate built with the gpu feature
# (`cargo build --release -p deltaw-benches --features gpu --example sgemm_gpu_rate --example
# sft_step --example gpt2_generate`, then target/release/examples); without it the script runs
# that build itself, which needs the crates (a machine with no registry access takes the
# binaries built elsewhere). wgpu needs the Vulkan loader and the vendor's ICD (NVIDIA's driver
# ships it); the adapter chosen is printed (DELTAW_GPU_ADAPTER picks another).
# PEAK_TFLOPS is the card's FP32 (non-tensor-core) peak; unset, it is looked up from
# nvidia-smi's name for the cards listed below (vendor datasheets), else the fraction is "?".
# SGEMM_N changes the sgemm size (4096 by default; 256 makes a quick check on a software
# adapter, where GPT-2's 154 MB embedding also exceeds lavapipe's 128 MiB storage-buffer limit,
# so its GPU rows fail there and say so).
# Prints each run's JSON line and a summary table; the logs stay in target/gpu-device/<time>/.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bin="${1:-}"
if [ -z "$bin" ]; then
  cargo build --release -q -p deltaw-benches --features gpu \
    --example sgemm_gpu_rate --example sft_step --example gpt2_generate || exit 1
  bin="${CARGO_TARGET_DIR:-$root/target}/release/examples"
fi
logs="$root/target/gpu-device/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$logs"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 | tee "$logs/nvidia-smi.txt"
peak="${PEAK_TFLOPS:-}"
if [ -z "$peak" ]; then
  case "$name" in
    *H100*PCIe*) peak=51.2 ;;
    *H100* | *H200* | *GH200*) peak=66.9 ;;
    *A100*) peak=19.5 ;;
    *L40S*) peak=91.6 ;;
    *L4*) peak=30.3 ;;
    *A10G* | *A10*) peak=31.2 ;;
    *"RTX 4090"*) peak=82.6 ;;
  esac
fi
echo "GPU: ${name:-unknown}, FP32 peak: ${peak:-unknown} TFLOP/s; CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2), $(nproc) cores"
# One measurement: its JSON line(s) into the log, a failure noted, never fatal.
run() {
  local label=$1
  shift
  echo "== $label ($(date -u +%H:%M:%S))" >&2
  "$@" 2>"$logs/$label.err" | tee "$logs/$label.json" || echo "   $label failed: see $logs/$label.err" >&2
}
run sgemm_gpu "$bin/sgemm_gpu_rate" "${SGEMM_N:-4096}"
for mode in full lora; do
  run "step_gpu_$mode" env DELTAW_BENCH_DEVICE=gpu "$bin/sft_step" "$mode" 5
  run "step_cpu_$mode" env DELTAW_BENCH_DEVICE=cpu "$bin/sft_step" "$mode" 5
done
run decode_gpu env DELTAW_BENCH_DEVICE=gpu "$bin/gpt2_generate" 3
run decode_cpu env DELTAW_BENCH_DEVICE=cpu "$bin/gpt2_generate" 3
python3 - "$logs" "${peak:-}" <<'PY' | tee "$logs/table.md"
import json, os, sys
logs, peak = sys.argv[1], sys.argv[2]
def get(label):
    try:
        return json.loads(open(os.path.join(logs, label + ".json")).read().strip().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        return None
print("| work | GPU | CPU (same machine) | GPU / CPU or share of peak |")
print("| --- | ---: | ---: | ---: |")
s = get("sgemm_gpu")
if s:
    share = f"{s['gflops_best'] / (float(peak) * 1000):.1%} of {peak} TFLOP/s" if peak else "? (PEAK_TFLOPS unset)"
    print(f"| sgemm f32 n = {s['n']}, GFLOP/s ({s['adapter']}) | {s['gflops_best']} | – | {share} |")
    if s.get("f16_gflops_best") is not None:
        print(f"| sgemm f16 storage n = {s['n']}, GFLOP/s | {s['f16_gflops_best']} | – | – |")
else:
    print("| sgemm | failed | – | – |")
for mode in ("full", "lora"):
    g, c = get(f"step_gpu_{mode}"), get(f"step_cpu_{mode}")
    gv, cv = (g["tokens_per_s"] if g else None), (c["tokens_per_s"] if c else None)
    ratio = f"{gv / cv:.2f}" if gv and cv else "–"
    print(f"| GPT-2 124M {mode} step B=4 T=64, tokens/s | {gv or 'failed'} | {cv or 'failed'} | {ratio} |")
g, c = get("decode_gpu"), get("decode_cpu")
gv, cv = (g["tokens_per_s"] if g else None), (c["tokens_per_s"] if c else None)
ratio = f"{gv / cv:.2f}" if gv and cv else "–"
print(f"| GPT-2 124M greedy decode, tokens/s | {gv or 'failed'} | {cv or 'failed'} | {ratio} |")
PY
