#!/bin/bash
# The GPU check of issue 28 (see benchmarks/gpu_check.py): one script, at most 6 minutes on
# one GPU. Run from the repository root:
#   here, once:            PY=.venv/bin/python bash benchmarks/gpu_check.sh --bundle-only DATA_DIR
#   on the GPU machine:    bash benchmarks/gpu_check.sh [OUT_DIR] [gpu_check.py run options]
#   here, as a CPU check:  PY=.venv/bin/python NO_WHEELS=1 bash benchmarks/gpu_check.sh OUT --slice 40 --llm-steps 2 --llm-docs 4
# The GPU machine has torch, transformers, peft and accelerate and reaches no registry: the
# bundle (.gpu/, 53 MB) brings the rest as wheels, the encoder in bf16, SmolLM2's
# config and tokenizer, and the BC5CDR train and dev files.
set -euo pipefail
PY=${PY:-python3}
BUNDLE=${BUNDLE:-.gpu}
if [ "${1:-}" = "--bundle-only" ]; then
    DATA=${2:?usage: gpu_check.sh --bundle-only SHARED_DATA_DIR}
    # built beside, then moved into place: an interrupted build leaves no half bundle
    partial="$BUNDLE.partial"
    rm -rf "$partial"
    mkdir -p "$partial/wheels"
    # what the GPU image lacks (trl, datasets and theirs), and peft and accelerate at the
    # versions the tests passed with (transformers, 12 MB, would not fit: the image's is used)
    pins=()
    for name in trl datasets dill multiprocess peft accelerate; do
        pins+=("$(grep -i "^$name==" constraints.txt)")
    done
    "$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d "$partial/wheels" "${pins[@]}"
    "$PY" benchmarks/gpu_check.py bundle --data "$DATA" --out "$partial" | tail -3
    rm -rf "$BUNDLE"
    mv "$partial" "$BUNDLE"
    du -sh "$BUNDLE"
    exit 0
fi
if [ ! -d "$BUNDLE/data" ]; then
    echo "gpu_check.sh: no bundle at $BUNDLE; make it here first:" \
         "PY=.venv/bin/python bash benchmarks/gpu_check.sh --bundle-only SHARED_DATA_DIR" >&2
    exit 2
fi
OUT_DIR=${1:-${OUT:-/tmp/medner-gpu-check-out}}
shift || true
mkdir -p "$OUT_DIR"
if [ -z "${NO_WHEELS:-}" ]; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/medner-site "$BUNDLE"/wheels/*.whl
    export PYTHONPATH=/tmp/medner-site
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true) \
    > "$OUT_DIR/nvidia-smi.csv" 2>&1
"$PY" benchmarks/gpu_check.py run --bundle "$BUNDLE" --json "$OUT_DIR/gpu-check.json" "$@" \
    2>&1 | tee "$OUT_DIR/gpu-check.log"
