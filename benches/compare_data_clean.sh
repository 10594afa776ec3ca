#!/usr/bin/env bash
# `deltaw data clean` against a datasketch MinHash LSH pipeline on the same generated records:
# records/s at 2 threads, and peak RSS of deltaw at two input sizes (streaming and out-of-core
# deduplication: it should stay flat as the input grows).
#
#   benches/compare_data_clean.sh [MB_SMALL MB_LARGE]     # default 50 200
#   DELTAW=target/release/deltaw  PY=/work/venv/bin/python  PEER_RECORDS=200000
#
# The peer reads the same JSONL, normalises with unicodedata NFKC, shingles words in 3-grams,
# builds datasketch MinHash(128) signatures and queries/inserts a MinHashLSH(0.8) in input
# order, keeping a record when the query finds nothing: the near-duplicate half of the job,
# without filters or PII masking, so the comparison favours the peer. The peer runs on its
# first PEER_RECORDS records only (its rate is per record, so the rates compare).
set -euo pipefail
cd "$(dirname "$0")/.."
SMALL=${1:-50}; LARGE=${2:-200}
DELTAW=${DELTAW:-target/release/deltaw}; PY=${PY:-/work/venv/bin/python}; PEER_RECORDS=${PEER_RECORDS:-200000}
WORK=${WORK:-$(mktemp -d)}
echo "machine load: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores; deltaw: $DELTAW"
gen() { # MB FILE: Alpaca records from a 5000-word vocabulary, ~1 in 5 a near copy of an earlier one
  "$PY" - "$1" "$2" <<'PY'
import json, random, sys
mb, path = int(sys.argv[1]), sys.argv[2]
rng = random.Random(1); vocab = ["".join(rng.choice("abcdefghijklmnop") for _ in range(rng.randint(3, 8))) for _ in range(5000)]
recent, size = [], 0
with open(path, "w") as f:
    while size < mb * 1_000_000:
        if recent and rng.random() < 0.2:
            words = list(rng.choice(recent)); words[rng.randrange(len(words))] = rng.choice(vocab)
        else:
            words = [rng.choice(vocab) for _ in range(rng.randint(30, 80))]
        recent = (recent + [words])[-1000:]
        line = json.dumps({"instruction": "Summarise the text.", "output": " ".join(words)}) + "\n"
        f.write(line); size += len(line)
PY
}
for mb in "$SMALL" "$LARGE"; do
  gen "$mb" "$WORK/in$mb.jsonl"
  n=$(wc -l < "$WORK/in$mb.jsonl")
  start=$(date +%s.%N)
  RAYON_NUM_THREADS=2 /usr/bin/time -f "%M" -o "$WORK/rss$mb" "$DELTAW" data clean "$WORK/in$mb.jsonl" --out "$WORK/out$mb" --overwrite -q > /dev/null
  secs=$(echo "$(date +%s.%N) - $start" | bc)
  echo "deltaw   ${mb} MB: $n records in ${secs}s = $(echo "$n / $secs" | bc) records/s, peak RSS $(( $(cat "$WORK/rss$mb") / 1024 )) MiB"
done
"$PY" - "$WORK/in$SMALL.jsonl" "$PEER_RECORDS" <<'PY'
import json, sys, time, unicodedata
from datasketch import MinHash, MinHashLSH
path, limit = sys.argv[1], int(sys.argv[2])
lsh, kept, n, start = MinHashLSH(threshold=0.8, num_perm=128), 0, 0, time.time()
for n, line in enumerate(open(path), 1):
    r = json.loads(line)
    words = unicodedata.normalize("NFKC", r["instruction"] + "\n" + r["output"]).lower().split()
    m = MinHash(num_perm=128, seed=0)
    m.update_batch([" ".join(words[i:i + 3]).encode() for i in range(max(1, len(words) - 2))])
    if not lsh.query(m):
        lsh.insert(n, m); kept += 1
    if n >= limit:
        break
secs = time.time() - start
print(f"datasketch: {n} records in {secs:.1f}s = {n / secs:.0f} records/s (one Python thread), kept {kept}")
PY
rm -rf "$WORK"
