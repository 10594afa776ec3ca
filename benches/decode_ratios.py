"""Summary of a decode comparison run in rounds (compare_llama_decode.sh, compare_quant_decode.sh).

Each round runs every configuration once, each side in its own process, llama.cpp and deltaw
back to back. This machine's memory bandwidth moves by up to a factor of two over minutes
(other tenants), and a decode step is bound by it, so a ratio of two runs minutes apart says
more about the minutes than about the programs; the ratio of the two runs of one round (seconds
apart) is the comparison, and its median over the rounds the figure reported.

    python3 benches/decode_ratios.py FILE DELTAW_WEIGHTS:LLAMA_CPP_WEIGHTS ...

FILE holds the JSON lines of the runs in order (the k-th line of a configuration is its round
k). For each pair, prints both sides' median decode tokens/s over the rounds, every round's
ratio, their median (the target's figure: >= 1.0), the ratio of the fastest steps, and whether
the greedy tokens agree.
"""
import json
import statistics
import sys


def main():
    runs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    for pair in sys.argv[2:]:
        dw, cpp = pair.split(":")
        d = [r for r in runs if r["impl"] == "deltaw" and r["weights"] == dw]
        c = [r for r in runs if r["impl"] == "llama.cpp" and r["weights"] == cpp]
        rounds = min(len(d), len(c))
        if rounds == 0:
            print(f"{dw} / llama.cpp {cpp}: no runs")
            continue
        ratios = [d[i]["decode_tokens_per_s"] / c[i]["decode_tokens_per_s"] for i in range(rounds)]
        best = max(r["best_step_tokens_per_s"] for r in d[:rounds]) / max(r["best_step_tokens_per_s"] for r in c[:rounds])
        n = next((i for i, (x, y) in enumerate(zip(d[0]["tokens"], c[0]["tokens"])) if x != y), None)
        same = "yes" if n is None else f"no (first difference at new token {n})"
        med = lambda rs: statistics.median(r["decode_tokens_per_s"] for r in rs[:rounds])
        print(f"deltaw {dw} / llama.cpp {cpp}: {med(d):.1f} vs {med(c):.1f} tokens/s (medians of {rounds} rounds); "
              f"per round {', '.join(f'{x:.2f}' for x in ratios)}; median {statistics.median(ratios):.2f} "
              f"(target >= 1.0); fastest steps {best:.2f}; qdot {d[0].get('qdot', '-')}; same tokens: {same}")


if __name__ == "__main__":
    main()
