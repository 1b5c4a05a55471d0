#!/usr/bin/env bash
# The main job: installs (idempotent), then opens JupyterLab on the example notebooks.
# With --headless NOTEBOOK: executes that notebook without a browser and prints its reports.
set -euo pipefail
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=3
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
if [ "${1:-}" = "--headless" ]; then
  exec .venv/bin/python -m nanwatch run "${2:-example_notebooks/quickstart.ipynb}"
fi
exec .venv/bin/jupyter lab example_notebooks --ip 127.0.0.1 --port "${PORT:-8888}" --no-browser --allow-root
