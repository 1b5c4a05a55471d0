#!/usr/bin/env bash
# Runs all of nanwatch's tests (the README's test command): installs first (idempotent), then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=3
start=$SECONDS
bash scripts/setup.sh
echo "setup (venv, packages, JupyterLab extension build): $((SECONDS - start)) s"
export PATH="$PWD/.venv/bin:$PATH"
exec .venv/bin/python -m pytest -q -p no:cacheprovider --durations=15 "$@"
