#!/usr/bin/env bash
# Set up, train the default encoder (packaged MiniLM) on the shipped demo corpus, then extract.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
.venv/bin/medner train --config configs/demo.toml --out runs/demo
.venv/bin/medner extract runs/demo \
    "she was suffering from Malaria and fits so to cure she used amodiaquine and she has slightly fever and pain on hip"
