"""A real Jupyter server (JupyterLab or Notebook 7) on 127.0.0.1, and Debian's Chromium through Playwright,
for the browser tests (tests/e2e/test_sidebar.py, tests/e2e/test_notebook7.py). No TensorFlow here."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def jupyter() -> str:
    exe = VENV_BIN / "jupyter"
    return str(exe) if exe.exists() else (shutil.which("jupyter") or "jupyter")


@contextlib.contextmanager
def jupyter_server(app: str, files, prefix: str, extra_args=(), extension_build: Path | None = None):
    """`jupyter {app}` (lab or notebook) with a token on a free port, its root a temp folder holding copies of
    `files` ({name: source path}), its settings, config and IPython dirs temp too (no news toasts), and the
    nanwatch labextension checked as installed and OK. `extension_build`: a built extension folder put ahead of
    the installed one through JUPYTER_PATH when it exists. Yields {base, token, root, log}; stops the server."""
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian Chromium is missing: apt-get install -y chromium (scripts/setup.sh does it)")
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    root = tmp / "root"
    root.mkdir()
    for name, source in files.items():
        shutil.copy(source, root / name)
    env = dict(os.environ)
    if extension_build is not None and (extension_build / "package.json").exists():
        data = tmp / "data" / "labextensions"
        data.mkdir(parents=True)
        (data / "nanwatch").symlink_to(extension_build, target_is_directory=True)
        env["JUPYTER_PATH"] = os.pathsep.join([str(tmp / "data")] + [p for p in [env.get("JUPYTER_PATH")] if p])
    env.update({
        "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        "PYTHONPATH": f"{ROOT}{os.pathsep}{env.get('PYTHONPATH', '')}",
        "IPYTHONDIR": str(tmp / "ipython"),
        "JUPYTER_CONFIG_DIR": str(tmp / "config"),
        "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(tmp / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces"),
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "MPLBACKEND": "Agg",
    })
    settings = tmp / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    listed = subprocess.run([jupyter(), "labextension", "list"], capture_output=True, text=True, timeout=120,
                            env=env)
    out = re.sub(r"\x1b\[[0-9;]*m", "", listed.stdout + listed.stderr)
    assert re.search(r"nanwatch v\S+ enabled\s+OK", out), (
        "the nanwatch labextension is not installed (run scripts/setup.sh, i.e. pip install .):\n" + out)
    port, token = free_port(), prefix + os.urandom(8).hex()
    log_path = tmp / f"{app}.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [jupyter(), app, "--allow-root", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--port={port}",
         "--port-retries=0", f"--ServerApp.token={token}", f"--ServerApp.root_dir={root}",
         "--ServerApp.terminals_enabled=False", *extra_args],
        cwd=str(root), env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(f"jupyter {app} did not start:\n" + log_path.read_text()[-3000:])
            time.sleep(0.3)
        yield {"base": base, "token": token, "root": root, "log": log_path}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def chromium():
    """Debian's Chromium, headless, through Playwright (browser downloads are impossible here)."""
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
