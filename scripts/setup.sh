#!/usr/bin/env bash
# Installs what nanwatch, its tests and its notebooks need into ./.venv (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
    || echo "setup: could not install chromium; browser tests will fail" >&2
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q "tensorflow-cpu==2.21.*" "jupyterlab==4.6.*" "ipywidgets==8.1.*" "ipython>=9" \
  matplotlib nbclient nbformat nbconvert ipykernel pytest playwright pandas hatchling hatch-jupyter-builder "notebook==7.*" \
  "tf-keras==2.21.*" editables
# A second venv with a TensorFlow older than nanwatch supports, for the "TensorFlow too old" test.
[ -x .venv-tf215/bin/python ] || python3 -m venv .venv-tf215
.venv-tf215/bin/python -c "import tensorflow, IPython" 2>/dev/null \
  || .venv-tf215/bin/pip install -q "tensorflow-cpu==2.15.1" "ipython>=9"
# The build hook (hatch-jupyter-builder) runs `jlpm install` and `jlpm build:prod` (Node.js, npm registry),
# and the install copies the built JupyterLab extension to .venv/share/jupyter/labextensions/nanwatch.
export PATH="$PWD/.venv/bin:$PATH"
.venv/bin/pip install -q -e . --no-build-isolation
