"""ONNX Runtime's side of the embedding comparison (see compare_minilm.sh).

Exports the transformer of the same all-MiniLM-L6-v2 folder that compare_minilm.py loads
(`model[0].auto_model`: input_ids, attention_mask and token_type_ids in, last_hidden_state out,
batch and sequence axes dynamic) with torch.onnx.export into a temporary folder, and runs it with
an onnxruntime InferenceSession on the CPU provider (intra-op threads = all cores, as the other
two sides; inter-op 1; default graph optimizations, ORT_ENABLE_ALL). The rest of the pipeline is
what sentence-transformers does around the transformer, in numpy: its tokenizer on batches of 32
(the texts sorted by length as encode() sorts them, padded to the longest in the batch, truncated
at max_seq_length), mean pooling over the attention mask, L2 normalisation. Same 256 texts (taken
from compare_minilm.py), batch 32, one warm-up batch, then `runs` timed passes over all texts,
tokenization included, as encode() does. Prints one JSON line with sentences/s, the first values of
the first embedding, and the largest absolute difference from sentence-transformers' embeddings
of all 256 texts (computed once, untimed).

    HF_HUB_OFFLINE=1 /work/venv/bin/python benches/compare_minilm_onnx.py [runs] [model dir]
"""
import contextlib
import json
import os
import sys
import tempfile
import time
import warnings

import numpy as np
import onnxruntime as ort
import torch
from sentence_transformers import SentenceTransformer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare_minilm import BATCH, SENTENCES, texts  # noqa: E402

INPUTS = ["input_ids", "attention_mask", "token_type_ids"]


class Hidden(torch.nn.Module):
    """The transformer with positional inputs and its last hidden state as the one output."""

    def __init__(self, auto_model):
        super().__init__()
        self.model = auto_model

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.model(input_ids=input_ids, attention_mask=attention_mask,
                          token_type_ids=token_type_ids).last_hidden_state


def export(model, path):
    """Writes the ONNX file; returns which exporter wrote it."""
    hidden = Hidden(model[0].auto_model).eval()
    sample = model.tokenizer(["a short example", "and a somewhat longer second example text"], padding=True,
                             return_tensors="pt")
    args = tuple(sample[name] for name in INPUTS)
    axes = {name: {0: "batch", 1: "sequence"} for name in INPUTS}
    axes["last_hidden_state"] = {0: "batch", 1: "sequence"}
    # the exporters' progress messages go to stderr: stdout is the JSON line alone
    with warnings.catch_warnings(), torch.no_grad(), contextlib.redirect_stdout(sys.stderr):
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(hidden, args, path, input_names=INPUTS, output_names=["last_hidden_state"],
                              dynamic_axes=axes, opset_version=17, dynamo=False)
            return "torchscript"
        except Exception as e:  # noqa: BLE001 - fall back to the dynamo exporter
            print(f"compare_minilm_onnx: TorchScript export failed ({e}), trying dynamo", file=sys.stderr)
        batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence")
        shapes = {name: {0: batch, 1: seq} for name in INPUTS}
        program = torch.onnx.export(hidden, args, input_names=INPUTS, output_names=["last_hidden_state"],
                                    dynamic_shapes=shapes, dynamo=True)
        program.save(path)
        return "dynamo"


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    default = os.path.expanduser("~/.cache/deltaw/all-MiniLM-L6-v2")
    model_dir = sys.argv[2] if len(sys.argv) > 2 else os.environ.get("DELTAW_MINILM_DIR", default)
    model = SentenceTransformer(model_dir, device="cpu")
    data = texts()
    reference = model.encode(data, batch_size=BATCH)  # sentence-transformers' embeddings, untimed

    threads = len(os.sched_getaffinity(0))
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "minilm.onnx")
        exporter = export(model, path)
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    tokenizer, max_len = model.tokenizer, model.max_seq_length
    feeds = {i.name for i in session.get_inputs()}

    def embed(batch_texts):
        order = np.argsort([-len(t) for t in batch_texts])  # encode()'s length sort
        out = np.empty((len(batch_texts), reference.shape[1]), dtype=np.float32)
        for start in range(0, len(order), BATCH):
            idx = order[start:start + BATCH]
            enc = tokenizer([batch_texts[i] for i in idx], padding=True, truncation="longest_first",
                            max_length=max_len, return_tensors="np")
            inputs = {name: enc[name].astype(np.int64) for name in INPUTS if name in feeds}
            (hidden,) = session.run(None, inputs)
            mask = enc["attention_mask"][:, :, None].astype(np.float32)
            pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
            out[idx] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return out

    embed(data[:BATCH])  # warm-up
    start = time.perf_counter()
    for _ in range(runs):
        emb = embed(data)
    secs = time.perf_counter() - start
    tokens = sum(len(tokenizer(t)["input_ids"]) for t in data)
    print(json.dumps({
        "impl": "onnxruntime", "sentences": SENTENCES, "batch_size": BATCH, "mean_tokens": tokens / SENTENCES,
        "runs": runs, "seconds_per_run": round(secs / runs, 3), "sentences_per_s": round(runs * SENTENCES / secs, 1),
        "first": [round(float(x), 5) for x in emb[0][:4]],
        "max_abs_diff_vs_pytorch": float(np.abs(emb - reference).max()), "threads": threads,
        "exporter": exporter, "onnxruntime": ort.__version__,
    }))


if __name__ == "__main__":
    main()
