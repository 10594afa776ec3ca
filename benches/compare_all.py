"""The table of benches/compare_all.sh: reads the JSON lines each comparison script printed into
its log (one folder per sitting) and prints one markdown table, deltaw against each peer.

    python3 benches/compare_all.py target/compare-all/<UTC time>

A row whose runs are missing (a peer not installed, a script that failed) says so instead of a
ratio. Floors and aims are issue 15's (CPU speed), 13's (Llama family) and 14's (quantized
decode); "floor" is what the issue requires, "aim" where the strongest peer stands.
"""
import json
import os
import platform
import statistics
import sys
from datetime import datetime, timezone


def runs(logs, name):
    """Every JSON object printed on its own line in `name`.log."""
    path = os.path.join(logs, name + ".log")
    if not os.path.exists(path):
        return []
    out = []
    for line in open(path):
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return out


def find(rs, **want):
    return next((r for r in rs if all(r.get(k) == v for k, v in want.items())), None)


def every(rs, **want):
    """All runs matching `want`, in order: one per round for the scripts that run in rounds."""
    return [r for r in rs if all(r.get(k) == v for k, v in want.items())]


def rounds_row(work, unit, ds, ps, key, peer, target, kernel=None, pkey=None):
    """A line for a comparison run in rounds (decode_ratios.py): the k-th runs of both sides
    pair up; the cells are both sides' medians and the median of the same-round ratios."""
    n = min(len(ds), len(ps))
    if n == 0:
        missing = "deltaw" if not ds else peer
        ROWS.append((work, unit, "–", "–", f"{peer}: no run ({missing} missing)", target, kernel or "–"))
        return
    ratios = sorted(ds[i][key] / ps[i][pkey or key] for i in range(n))
    med = lambda xs: statistics.median(xs)
    dv, pv = med([r[key] for r in ds[:n]]), med([r[pkey or key] for r in ps[:n]])
    cell = f"**{med(ratios):.2f}** ({ratios[0]:.2f}–{ratios[-1]:.2f}, {n} rounds)"
    ROWS.append((work, unit, f"{dv:g}", f"{pv:g} ({peer})", cell, target, kernel or ds[0].get("kernel", "–")))


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


ROWS = []


def row(work, unit, d, p, key, peer, target, kernel=None, lower_is_better=False, pkey=None):
    """One line of the table: deltaw's run `d` and the peer's run `p`, the figure under `key`."""
    if d is None or p is None:
        missing = "deltaw" if d is None else peer
        ROWS.append((work, unit, "–", "–", f"{peer}: no run ({missing} missing)", target, kernel or "–"))
        return
    dv, pv = d[key], p[pkey or key]
    ratio = pv / dv if lower_is_better else dv / pv
    kern = kernel or d.get("kernel", "–")
    ROWS.append((work, unit, f"{dv:g}", f"{pv:g} ({peer})", f"**{ratio:.2f}**", target, kern))


def single(work, unit, d, key, target, note):
    """A line for a figure of deltaw's own, held to a bound rather than to a peer."""
    if d is None or key not in d:
        ROWS.append((work, unit, "–", "–", "no run", target, "–"))
        return
    ROWS.append((work, unit, f"**{d[key]:g}**", note(d), "–", target, d.get("kernel", "–")))


def quant_rows(q, model):
    """Decode from Q8_0 and Q4_0 GGUF files, deltaw against llama.cpp on the same file."""
    for ty in ("q8_0", "q4_0"):
        ds = every(q, impl="deltaw", weights=ty)
        rounds_row(f"{model}, {ty.upper()} GGUF", "tokens/s", ds, every(q, impl="llama.cpp", weights=ty),
                   "decode_tokens_per_s", f"llama.cpp {ty.upper()}", "issue 14: ≥ 1.0",
                   kernel=ds and f"{ds[0].get('kernel')}, qdot {ds[0].get('qdot')}")


def main():
    logs = sys.argv[1]
    sg = runs(logs, "sgemm")
    for n in (1024, 2048):
        row(f"sgemm n = {n}", "GFLOP/s", find(sg, impl="deltaw", n=n), find(sg, impl="pytorch", n=n), "gflops",
            "PyTorch (MKL)", "floor ≥ 1.0")
    sft = runs(logs, "sft")
    row("GPT-2 124M full fine-tuning step, B=4 T=64", "tokens/s", find(sft, impl="deltaw", mode="full"),
        find(sft, impl="pytorch", mode="full"), "tokens_per_s", "PyTorch", "floor ≥ 1.2, aim ≥ 1.5")
    row("GPT-2 124M LoRA r=8 step", "tokens/s", find(sft, impl="deltaw", mode="lora"),
        find(sft, impl="pytorch", mode="lora"), "tokens_per_s", "PyTorch + PEFT", "floor ≥ 1.4, aim ≥ 1.5")
    mini = runs(logs, "minilm")
    d = find(mini, impl="deltaw")
    row("all-MiniLM-L6-v2 embedding, 256 × 128 tokens", "sentences/s", d, find(mini, impl="pytorch"),
        "sentences_per_s", "PyTorch", "floor ≥ 1.5")
    row("", "sentences/s", d, find(mini, impl="onnxruntime"), "sentences_per_s", "ONNX Runtime", "aim ≥ 1.0")
    gen = runs(logs, "generate")
    ds = every(gen, impl="deltaw")
    rounds_row("GPT-2 124M greedy decode, 64 tokens, f32", "tokens/s", ds, every(gen, impl="pytorch"),
               "tokens_per_s", "transformers", "floor ≥ 2.5")
    rounds_row("", "tokens/s", ds, every(gen, impl="llama.cpp"), "tokens_per_s", "llama.cpp f32", "aim ≥ 1.0",
               pkey="generate_tokens_per_s")
    dec = runs(logs, "llama_decode")
    rounds_row("Qwen2.5-0.5B shape decode, f32", "tokens/s", every(dec, impl="deltaw", weights="f32"),
               every(dec, impl="llama.cpp", weights="f32"), "decode_tokens_per_s", "llama.cpp f32", "issue 13: ≥ 1.0")
    rounds_row("Qwen2.5-0.5B shape decode, bf16 (llama.cpp f16)", "tokens/s",
               every(dec, impl="deltaw", weights="bf16"), every(dec, impl="llama.cpp", weights="f16"),
               "decode_tokens_per_s", "llama.cpp f16", "issue 13: ≥ 1.0")
    quant_rows(runs(logs, "quant_decode"), "Qwen2.5-0.5B shape decode")
    quant_rows(runs(logs, "gpt2_quant_decode"), "GPT-2 124M decode")
    ls = runs(logs, "llama_sft")
    pt = find(ls, impl="pytorch", base="f32")
    row("Qwen2.5-0.5B shape LoRA r=16 step, B=2 T=128", "tokens/s", find(ls, impl="deltaw", base="f32"), pt,
        "tokens_per_s", "PyTorch + PEFT", "issue 13: ≥ 1.2")
    row("the same, peak RSS with the bf16 base", "MiB", find(ls, impl="deltaw", base="bf16"), pt, "peak_rss_mib",
        "PyTorch f32", "issue 13: ≤ 0.6")
    row("the same, peak RSS of QLoRA (Q4_0 base, checkpointing)", "MiB", find(ls, impl="deltaw", base="q4_0-bf16"),
        find(ls, impl="deltaw", base="f32"), "peak_rss_mib", "deltaw f32 LoRA", "issue 14: ≤ 0.35")
    full = find(sft, impl="deltaw", mode="full")
    single("GPT-2 124M full fine-tuning step: system time / wall time", "share", full, "system_share",
           "issue 15: ≤ 0.05", lambda r: f"{r.get('page_faults_per_step', '?')} page faults per step")

    load = open("/proc/loadavg").read().split()[:3] if os.path.exists("/proc/loadavg") else ["?"]
    print(f"# deltaw against its peers, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC\n")
    print(f"CPU: {cpu_model()}; threads: RAYON_NUM_THREADS={os.environ.get('RAYON_NUM_THREADS', 'all')}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'all')}; load average at the end: {' '.join(load)}; "
          f"logs: {logs}\n")
    print("| work | unit | deltaw | peer | deltaw / peer | floor / aim | deltaw kernel |")
    print("| --- | --- | ---: | ---: | ---: | --- | --- |")
    for r in ROWS:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
