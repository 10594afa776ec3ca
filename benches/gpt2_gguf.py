"""A GGUF file of the generation benchmark's GPT-2 124M, for llama.cpp's side of compare_generate.sh.

    /work/venv/bin/python benches/gpt2_gguf.py [OUT.gguf] [f32|f16|q8_0|q4_0]   # default: target/gpt2-bench/gpt2-f32.gguf

The weights are compare_generate.py's (torch.manual_seed(0); GPT2LMHeadModel(GPT2Config())), the
same random ones deltaw's gpt2_generate and transformers decode, so all three continue the prompt
alike. Written with numpy and the `gguf` package as llama.cpp's converter writes GPT-2: its "gpt2"
architecture and tensor names (token_embd, position_embd, blk.N.attn_norm / attn_qkv / attn_output
/ ffn_norm / ffn_up / ffn_down with weights and biases, output_norm), the Conv1D matrices (stored
(in, out) by transformers) transposed to llama.cpp's (out, in), and the head tied: no output.weight,
llama.cpp falls back to token_embd. Tokenizer model "none" with gpt2.vocab_size, as llama_gguf.py
writes Qwen: the benches drive both sides by token ids. The type defaults to the file name's
suffix (gpt2-q4_0.gguf: q4_0), else f32; f16 stores the matrices and embeddings in half precision,
q8_0 and q4_0 quantize them with the `gguf` package's quantizer (llama.cpp's reference, as its
converter and llama-quantize write them: the token and position embeddings too), norms and biases
stay f32. An existing file is left as it is.
"""
import os
import sys
from pathlib import Path

import gguf
import torch
from transformers import GPT2Config, GPT2LMHeadModel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from llama_gguf import FILE_TYPES, add_tensor, finish  # noqa: E402

CONV1D = (".attn.c_attn.weight", ".attn.c_proj.weight", ".mlp.c_fc.weight", ".mlp.c_proj.weight")


def weights():
    """compare_generate.py's model, name -> float32 array (transformers' names and layout)."""
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config()).eval()
    return model.config, {k: v.detach().float().numpy() for k, v in model.state_dict().items()}


def write(config, tensors, path, kind):
    writer = gguf.GGUFWriter(str(path), "gpt2")
    writer.add_name("deltaw-bench-gpt2-124m-random")
    writer.add_context_length(config.n_positions)
    writer.add_embedding_length(config.n_embd)
    writer.add_feed_forward_length(config.n_inner or 4 * config.n_embd)
    writer.add_block_count(config.n_layer)
    writer.add_head_count(config.n_head)
    writer.add_layer_norm_eps(config.layer_norm_epsilon)
    writer.add_file_type(FILE_TYPES[kind])
    writer.add_vocab_size(config.vocab_size)
    writer.add_tokenizer_model("none")
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.GPT2, config.n_layer)
    for key, array in sorted(tensors.items()):
        if key == "lm_head.weight":  # tied to transformer.wte: llama.cpp falls back to token_embd
            continue
        if key.endswith((".attn.bias", ".attn.masked_bias")):  # causal-mask buffers of older transformers
            continue
        name = names.get_name(key, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise SystemExit(f"no GGUF name for {key}")
        if key.endswith(CONV1D):
            array = array.T  # Conv1D (in, out) -> (out, in), as llama.cpp's converter does
        add_tensor(writer, name, array, kind)
    finish(writer)


def main():
    default = Path(__file__).resolve().parent.parent / "target" / "gpt2-bench" / "gpt2-f32.gguf"
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else default
    suffix = out.stem.rsplit("-", 1)[-1]
    kind = sys.argv[2] if len(sys.argv) > 2 else (suffix if suffix in FILE_TYPES else "f32")
    if kind not in FILE_TYPES:
        raise SystemExit(f"type {kind}: expected one of {', '.join(FILE_TYPES)}")
    if out.exists():
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    config, tensors = weights()
    tmp = out.with_name(out.name + ".partial")
    write(config, tensors, tmp, kind)
    tmp.rename(out)
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
