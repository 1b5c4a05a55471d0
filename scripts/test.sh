#!/usr/bin/env bash
# Runs all of nanwatch's tests (the README's test command).
set -euo pipefail
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=3
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
