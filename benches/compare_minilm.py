"""sentence-transformers' side of the embedding comparison (see compare_minilm.sh).

Embeds the same 256 texts of 128 tokens as `cargo run --release -p deltaw-benches --example
minilm_embed` (the LCG below is benches/minilm.rs's, word for word) with the real
all-MiniLM-L6-v2, batch 32, on all cores; one warm-up batch, then `runs` timed passes. Prints one
JSON line with sentences/s and the first values of the first embedding.

    HF_HUB_OFFLINE=1 /work/venv/bin/python benches/compare_minilm.py [runs] [model dir]
"""
import json
import os
import sys
import time

import torch
from sentence_transformers import SentenceTransformer

SENTENCES, BATCH, WORDS, SEED = 256, 32, 125, 42
VOCAB = [
    "the", "a", "of", "and", "to", "in", "is", "was", "for", "on", "with", "as", "by", "at", "from", "city", "river",
    "house", "music", "water", "light", "people", "world", "school", "family", "small", "large", "old", "new", "long",
    "green", "red", "blue", "white", "black", "dog", "cat", "bird", "tree", "road", "car", "train", "book", "song",
    "game", "team", "player", "year", "day", "night", "morning", "summer", "winter", "north", "south", "east", "west",
    "man", "woman", "child", "king", "church", "village", "market",
]
MASK = (1 << 64) - 1


def texts():
    state, out = SEED, []
    for _ in range(SENTENCES):
        words = []
        for _ in range(WORDS):
            state = (state * 6364136223846793005 + 1442695040888963407) & MASK
            words.append(VOCAB[(state >> 33) % len(VOCAB)])
        out.append(" ".join(words) + ".")
    return out


def main():
    assert len(VOCAB) == 64
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    default = os.path.expanduser("~/.cache/deltaw/all-MiniLM-L6-v2")
    model_dir = sys.argv[2] if len(sys.argv) > 2 else os.environ.get("DELTAW_MINILM_DIR", default)
    model = SentenceTransformer(model_dir, device="cpu")
    data = texts()
    tokens = sum(len(model.tokenizer(t)["input_ids"]) for t in data)
    model.encode(data[:BATCH], batch_size=BATCH)
    start = time.perf_counter()
    for _ in range(runs):
        emb = model.encode(data, batch_size=BATCH)
    secs = time.perf_counter() - start
    print(json.dumps({
        "impl": "pytorch", "sentences": SENTENCES, "batch_size": BATCH, "mean_tokens": tokens / SENTENCES,
        "runs": runs, "seconds_per_run": round(secs / runs, 3), "sentences_per_s": round(runs * SENTENCES / secs, 1),
        "first": [round(float(x), 5) for x in emb[0][:4]], "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
