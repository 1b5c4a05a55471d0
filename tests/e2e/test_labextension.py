"""The JupyterLab extension from the Python suite: its jest tests, and that it is installed.

`jlpm test` runs the frontend unit tests (labextension/test: protocol validation, the
per-notebook store, the DOM view); this test fails when they fail, so the README's one
test command covers them. The install check is what a user sees after `pip install .`:
`jupyter labextension list` shows nanwatch enabled and OK.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def _env():
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("CI", "true")
    return env


def _jlpm():
    exe = VENV_BIN / "jlpm"
    return str(exe) if exe.exists() else "jlpm"


def test_jest_unit_tests_pass():
    if not (ROOT / "node_modules" / ".bin" / "jest").exists():
        install = subprocess.run([_jlpm(), "install"], cwd=ROOT, env=_env(), capture_output=True, text=True,
                                 timeout=900)
        assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    run = subprocess.run([_jlpm(), "test", "--ci"], cwd=ROOT, env=_env(), capture_output=True, text=True,
                         timeout=600)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-6000:]
    summary = re.search(r"Tests:\s+(\d+) passed, (\d+) total", out)
    assert summary and summary.group(1) == summary.group(2) and int(summary.group(2)) > 0, out[-3000:]


def test_labextension_is_installed_and_ok():
    exe = VENV_BIN / "jupyter"
    run = subprocess.run([str(exe) if exe.exists() else "jupyter", "labextension", "list"], env=_env(),
                         capture_output=True, text=True, timeout=120)
    out = re.sub(r"\x1b\[[0-9;]*m", "", run.stdout + run.stderr)
    assert re.search(r"nanwatch v0\.1\.0 enabled\s+OK \(python, nanwatch\)", out), out
