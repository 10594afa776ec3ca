"""GGUF files of the benches' Qwen2.5-0.5B-shaped weights in f32, f16, Q8_0 and Q4_0, for the
quantized decode comparison (compare_quant_decode.sh), with numpy and the `gguf` package only.

    /work/venv/bin/python benches/llama_gguf.py WEIGHTS_DIR [types...]   # default: f32 f16 q8_0 q4_0

Reads WEIGHTS_DIR/f32/model.safetensors (written by llama_weights.py, or by the torch-free
`llama_bench_weights` example) and writes WEIGHTS_DIR/qwen2-<type>.gguf unless it exists, as
llama_weights.py writes its GGUFs (llama.cpp's qwen2 names, no q/k permutation, tied head as
`token_embd` alone, tokenizer model "none" with `qwen2.vocab_size`: the benches drive both
sides by token ids). Every matrix, the token embedding included (llama.cpp's `--outtype q8_0`
does the same), is stored in the type with gguf's quantizer (llama.cpp's reference rounding);
norms and biases stay f32. The same file is then decoded by llama.cpp and by deltaw.
"""
import json
import struct
import sys
from pathlib import Path

import gguf
import numpy as np

TYPES = {"f32": None, "f16": None, "q8_0": gguf.GGMLQuantizationType.Q8_0, "q4_0": gguf.GGMLQuantizationType.Q4_0}
FILE_TYPES = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
              "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0, "q4_0": gguf.LlamaFileType.MOSTLY_Q4_0}


def read_safetensors(path):
    """Name -> float32 array, from an all-F32 safetensors file."""
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            raise SystemExit(f"{path}: {name} is {info['dtype']}, expected F32")
        start, end = info["data_offsets"]
        out[name] = np.frombuffer(data[8 + n + start:8 + n + end], dtype="<f4").reshape(info["shape"])
    return out


def write(weights, config, path, kind):
    writer = gguf.GGUFWriter(str(path), "qwen2")
    writer.add_name("deltaw-bench-qwen2.5-0.5b-random")
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_head_count_kv(config["num_key_value_heads"])
    writer.add_rope_freq_base(config.get("rope_theta", 1e6))
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_file_type(FILE_TYPES[kind])
    writer.add_vocab_size(config["vocab_size"])
    writer.add_tokenizer_model("none")
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.QWEN2, config["num_hidden_layers"])
    for key, array in sorted(weights.items()):
        if key == "lm_head.weight":  # tied: llama.cpp falls back to token_embd
            continue
        name = names.get_name(key, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise SystemExit(f"no GGUF name for {key}")
        add_tensor(writer, name, array, kind)
    finish(writer)


def add_tensor(writer, name, array, kind):
    """One tensor in the file's type: matrices in f16 or quantized with gguf's quantizer,
    vectors (norms, biases) in f32. Shared with gpt2_gguf.py."""
    if array.ndim == 2 and kind == "f16":
        writer.add_tensor(name, np.ascontiguousarray(array, dtype=np.float16))
    elif array.ndim == 2 and TYPES[kind] is not None:
        q = gguf.quants.quantize(np.ascontiguousarray(array), TYPES[kind])
        writer.add_tensor(name, q, raw_dtype=TYPES[kind])
    else:
        writer.add_tensor(name, np.ascontiguousarray(array))


def finish(writer):
    """Header, metadata and tensors to the file, then closes it."""
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def main():
    out = Path(sys.argv[1])
    kinds = sys.argv[2:] or ["f32", "f16", "q8_0", "q4_0"]
    todo = [k for k in kinds if not (out / f"qwen2-{k}.gguf").exists()]
    if not todo:
        return
    config = json.loads((out / "f32" / "config.json").read_text())
    weights = read_safetensors(out / "f32" / "model.safetensors")
    for kind in todo:
        write(weights, config, out / f"qwen2-{kind}.gguf", kind)
        print(f"wrote {out / f'qwen2-{kind}.gguf'}", file=sys.stderr)


if __name__ == "__main__":
    main()
