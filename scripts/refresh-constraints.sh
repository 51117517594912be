#!/usr/bin/env bash
# Refresh constraints.txt: resolve medner's extras afresh (newest releases within the ranges in
# pyproject.toml) in a scratch virtual environment, run the test suite there, and only if it
# passes write the versions it passed with to constraints.txt. Review the diff, then commit.
#   bash scripts/refresh-constraints.sh            # the README's test command
#   bash scripts/refresh-constraints.sh -x -q      # other pytest arguments
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
"$PYTHON" -m venv "$scratch/venv"
MEDNER_VENV="$scratch/venv" MEDNER_CONSTRAINTS=none bash scripts/setup.sh
"$scratch/venv/bin/python" -m pytest -n 2 "$@"
{
    echo "# Versions the test suite last passed with (scripts/refresh-constraints.sh, $(date -u +%F))."
    echo "# scripts/setup.sh installs with these; pyproject.toml keeps the ranges for other installs."
    # Local version labels (torch's +cpu) are left out: ==2.13.0 matches the local CPU wheel.
    "$scratch/venv/bin/python" -m pip freeze --exclude-editable --disable-pip-version-check \
        | grep -v '^#' | sed 's/+[A-Za-z0-9.]*$//' | sort -f
} >constraints.txt.new
mv constraints.txt.new constraints.txt
echo "constraints.txt refreshed; review with: git diff constraints.txt"
