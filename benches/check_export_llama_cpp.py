"""Does a file from `deltaw export` run in llama.cpp, and decode what deltaw decodes?

    /work/venv/bin/python benches/check_export_llama_cpp.py FILE.gguf PROMPT_IDS_JSON [n]

Loads FILE.gguf with llama-cpp-python (llama.cpp built from source by pip), feeds the prompt's
token ids (so both sides see the same ids whatever the tokenizers do), and prints one JSON
line: the `n` greedy new ids (argmax of the last logits, the first maximum as deltaw's argmax)
and llama.cpp's tokenization of the prompt text it detokenizes, for comparing with
`deltaw generate --model FOLDER --prompt TEXT --greedy --json` (see check_export_llama_cpp.sh).
"""
import json
import sys

import llama_cpp
import numpy as np


def main():
    path, prompt = sys.argv[1], json.loads(sys.argv[2])
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 8
    llm = llama_cpp.Llama(model_path=path, n_ctx=len(prompt) + n + 8, n_batch=len(prompt), n_threads=2,
                          verbose=False)
    v = llm.n_vocab()
    llm.eval(prompt)
    new = []
    while len(new) < n:
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(v,))
        new.append(int(logits.argmax()))
        llm.eval([new[-1]])
    print(json.dumps({"file": path, "prompt_ids": prompt, "new_ids": new}))


if __name__ == "__main__":
    main()
