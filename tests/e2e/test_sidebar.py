"""End to end: the NaN inspector in a real JupyterLab, driven in headless Debian Chromium.

A real `jupyter lab` on 127.0.0.1 (free port, token, temp root with copies of
tests/e2e/notebooks), the extension as installed by `pip install` (scripts/setup.sh),
Playwright's Python package driving /usr/bin/chromium. One test walks a user's path:

 1. open nan_log.ipynb, open the sidebar: nanwatch is not loaded yet -> the %load_ext hint
 2. Run All: the run shows up live (status "running", its step count growing) and ends as NaN
 3. the first-NaN card names op Log, layer scorer, phase forward; the diagnosis names
    log_of_nonpositive with its text; the layer table and the loss sparkline are there
 4. a click on the source location makes the training cell the active one, in edit
    mode, with the cursor on line 5 (`return tf.math.log(x)`), as the status bar says
 5. open healthy.ipynb: the sidebar switches to it (hint, none of the first notebook's
    runs); Run All there gives one healthy run
 6. switch back: the NaN run is shown again
 7. reload the page (a frontend that connects after the run): the run is back from the
    kernel's snapshot
 8. restart the first notebook's kernel: its runs are cleared (hint again); the second
    notebook still has its healthy run
Screenshots of each step go to artifacts/e2e/.
"""

from __future__ import annotations

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

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = Path(__file__).resolve().parent / "notebooks"
ARTIFACTS = ROOT / "artifacts" / "e2e"
CHROMIUM = "/usr/bin/chromium"
VENV_BIN = Path(sys.executable).parent

PANEL = "#nanwatch-inspector"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _jupyter() -> str:
    exe = VENV_BIN / "jupyter"
    return str(exe) if exe.exists() else (shutil.which("jupyter") or "jupyter")


@pytest.fixture(scope="module")
def lab():
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian Chromium is missing: apt-get install -y chromium (scripts/setup.sh does it)")
    listed = subprocess.run([_jupyter(), "labextension", "list"], capture_output=True, text=True, timeout=120)
    out = re.sub(r"\x1b\[[0-9;]*m", "", listed.stdout + listed.stderr)
    assert re.search(r"nanwatch v\S+ enabled\s+OK", out), (
        "the nanwatch labextension is not installed (run scripts/setup.sh, i.e. pip install .):\n" + out)

    tmp = Path(tempfile.mkdtemp(prefix="nanwatch-e2e-"))
    root = tmp / "root"
    root.mkdir()
    for nb in NOTEBOOKS.glob("*.ipynb"):
        shutil.copy(nb, root / nb.name)
    settings = tmp / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    # no news / update toasts over the sidebar
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    env = dict(os.environ)
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
    port, token = _free_port(), "nanwatch-e2e-" + os.urandom(8).hex()
    log = open(tmp / "lab.log", "w")
    proc = subprocess.Popen(
        [_jupyter(), "lab", "--allow-root", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--port={port}",
         "--port-retries=0", f"--ServerApp.token={token}", f"--ServerApp.root_dir={root}",
         "--LabApp.news_url=", "--ServerApp.terminals_enabled=False"],
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
                pytest.fail("jupyter lab did not start:\n" + (tmp / "lab.log").read_text()[-3000:])
            time.sleep(0.3)
        yield {"base": base, "token": token, "root": root, "log": tmp / "lab.log"}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM,
                              args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            yield b
        finally:
            b.close()


class UI:
    """What a user does and sees, in JupyterLab's own terms."""

    def __init__(self, page, lab):
        self.page = page
        self.lab = lab
        self.shots = []

    def shot(self, name):
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{len(self.shots) + 1:02d}-{name}.png"
        self.page.screenshot(path=str(path))
        self.shots.append(path)

    def panel(self):
        return self.page.locator(PANEL)

    def panel_text(self, selector):
        return self.page.locator(f"{PANEL} {selector}").first.text_content(timeout=30_000)

    def wait_panel(self, selector, timeout=60_000):
        self.page.wait_for_selector(f"{PANEL} {selector}", state="attached", timeout=timeout)

    def wait_idle(self, timeout=120_000):
        # the status bar's kernel item: "Python 3 (ipykernel) | Idle"
        self.page.wait_for_function(
            """() => [...document.querySelectorAll('.jp-StatusBar-Widget *')]
                 .some(e => e.children.length === 0 && /\\|\\s*Idle/.test(e.textContent || ''))""",
            timeout=timeout)

    def open_sidebar(self):
        tab = self.page.locator('.jp-SideBar.jp-mod-right .lm-TabBar-tab[title="NaN inspector"]')
        tab.wait_for(timeout=30_000)
        if not self.panel().is_visible():
            tab.click()
        self.panel().wait_for(state="visible", timeout=10_000)

    def menu(self, top, item):
        self.page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{top}$")).click()
        self.page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(item)}$")).first.click()

    def run_all(self):
        self.menu("Run", "Run All Cells")

    def focus_notebook(self, name):
        self.page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text=name).first.click()
        self.page.wait_for_selector(f'{PANEL} .nanwatch-body[data-notebook="{name}"]', timeout=10_000)

    def open_from_browser(self, name):
        self.page.locator(".jp-DirListing-item", has_text=name).first.dblclick()
        self.page.wait_for_selector(f'{PANEL} .nanwatch-body[data-notebook="{name}"]', timeout=30_000)

    def runs(self):
        return self.page.eval_on_selector_all(
            f"{PANEL} .nanwatch-run",
            "els => els.map(e => ({status: e.dataset.status, text: e.textContent}))")

    def status_bar_line_col(self):
        return self.page.evaluate(
            """() => { const m = [...document.querySelectorAll('.jp-StatusBar-Widget *')]
                 .map(e => (e.textContent || '').match(/^\\s*Ln (\\d+), Col (\\d+)\\s*$/)).find(Boolean);
                 return m ? [Number(m[1]), Number(m[2])] : null; }""")


def test_sidebar_end_to_end(lab, browser):
    t_start = time.monotonic()
    context = browser.new_context(viewport={"width": 1500, "height": 950})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" and "nanwatch" in m.text.lower() else None)
    ui = UI(page, lab)
    try:
        # 1. open the notebook and the sidebar: nanwatch not loaded in this kernel yet
        page.goto(f"{lab['base']}/lab/tree/nan_log.ipynb?token={lab['token']}")
        page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=60_000)
        ui.open_sidebar()
        ui.wait_idle()
        ui.wait_panel('.nanwatch-body[data-state="not-loaded"]')
        assert "%load_ext nanwatch" in ui.panel_text(".nanwatch-hint-load")
        ui.shot("not-loaded-hint")

        # 2. run it: live "running" entry, then the NaN
        ui.run_all()
        ui.wait_panel('.nanwatch-run[data-status="running"]', timeout=120_000)
        # live: while the cell still runs, the entry counts steps (progress messages)
        live = page.wait_for_function(
            """() => { const r = document.querySelector('#nanwatch-inspector .nanwatch-run');
                       if (!r) return null;
                       if (r.dataset.status !== 'running') return 'finished first';
                       const m = (r.textContent || '').match(/(\\d+) steps/);
                       return m && Number(m[1]) > 0 ? 'live ' + m[1] : null; }""", timeout=120_000).json_value()
        assert live.startswith("live"), live
        ui.shot("live-progress")
        ui.wait_panel('.nanwatch-run[data-status="nonfinite"]', timeout=180_000)
        ui.wait_idle()
        page.wait_for_timeout(300)
        ui.shot("nan-run")

        # 3. what the sidebar says
        runs = ui.runs()
        assert len(runs) == 1 and runs[0]["status"] == "nonfinite", runs
        assert "NaN" in runs[0]["text"] and "Cell [2]" in runs[0]["text"]
        steps = int(re.search(r"(\d+) steps", runs[0]["text"]).group(1))
        assert steps > 0
        assert ui.panel_text(".nanwatch-first-op") == "Log"
        assert ui.panel_text(".nanwatch-first-layer") == "scorer"
        assert ui.panel_text(".nanwatch-first-phase") == "forward"
        assert re.search(r"NaN \d+", ui.panel_text(".nanwatch-counts"))
        cause = page.locator(f'{PANEL} .nanwatch-cause[data-cause="log_of_nonpositive"]')
        assert cause.count() == 1, ui.panel_text(".nanwatch-detail")
        assert "Log of a non-positive value" in cause.locator(".nanwatch-cause-title").text_content()
        assert (cause.locator(".nanwatch-evidence").text_content() or "").strip()
        assert (cause.locator(".nanwatch-fix-code").text_content() or "").strip()
        layers = page.eval_on_selector_all(f"{PANEL} .nanwatch-layer-table tbody tr", "rs => rs.map(r => r.dataset.layer)")
        assert "proj" in layers, layers
        assert page.locator(f"{PANEL} .nanwatch-loss .nanwatch-sparkline polyline").count() >= 1
        assert ui.panel_text(".nanwatch-source-link") == "Cell [2], line 5"

        # 4. jump to the source line
        page.locator(f"{PANEL} .nanwatch-source-link").click()
        page.wait_for_function(
            """() => { const c = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell.jp-mod-active');
                       return c && c.querySelector('.cm-editor.cm-focused'); }""", timeout=10_000)
        active = page.evaluate(
            """() => { const nb = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook');
                       const cells = [...nb.querySelectorAll(':scope .jp-Cell')];
                       const c = nb.querySelector('.jp-Cell.jp-mod-active');
                       return {index: cells.indexOf(c), prompt: c.querySelector('.jp-InputPrompt').textContent,
                               text: c.querySelector('.cm-content').textContent,
                               editMode: nb.classList.contains('jp-mod-editMode')}; }""")
        assert active["index"] == 2, active
        assert "[2]" in active["prompt"], active
        assert "class Scorer" in active["text"], active
        assert active["editMode"], active
        page.wait_for_function(
            """() => [...document.querySelectorAll('.jp-StatusBar-Widget *')]
                 .some(e => /^\\s*Ln 5, Col \\d+\\s*$/.test(e.textContent || ''))""", timeout=10_000)
        assert ui.status_bar_line_col() == [5, 9]  # first character of `return tf.math.log(x)`
        ui.shot("jumped-to-line")

        # 5. a second notebook: its own view, never the first one's runs
        ui.open_from_browser("healthy.ipynb")
        ui.wait_idle()
        ui.wait_panel('.nanwatch-body[data-notebook="healthy.ipynb"][data-state="not-loaded"]')
        assert ui.runs() == []
        ui.shot("second-notebook-hint")
        ui.run_all()
        ui.wait_panel('.nanwatch-run[data-status="healthy"]', timeout=180_000)
        ui.wait_idle()
        runs = ui.runs()
        assert [r["status"] for r in runs] == ["healthy"], runs
        assert page.locator(f"{PANEL} .nanwatch-first").count() == 0
        ui.shot("second-notebook-healthy")

        # 6. back to the first notebook: its NaN run again
        ui.focus_notebook("nan_log.ipynb")
        assert [r["status"] for r in ui.runs()] == ["nonfinite"]
        assert ui.panel_text(".nanwatch-first-op") == "Log"

        # 7. a frontend that connects after the run: reload the page, the kernel's snapshot brings it back
        page.reload()
        page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=60_000)
        ui.open_sidebar()
        ui.focus_notebook("nan_log.ipynb")
        ui.wait_panel('.nanwatch-run[data-status="nonfinite"]', timeout=30_000)
        assert ui.panel_text(".nanwatch-first-layer") == "scorer"
        ui.shot("after-reload-snapshot")

        # 8. restart the first notebook's kernel: its runs go, the other notebook keeps its own
        ui.menu("Kernel", "Restart Kernel…")
        page.locator(".jp-Dialog .jp-Dialog-button.jp-mod-accept").click()
        ui.wait_panel('.nanwatch-body[data-notebook="nan_log.ipynb"][data-state="not-loaded"]', timeout=60_000)
        assert ui.runs() == []
        ui.shot("after-restart")
        ui.focus_notebook("healthy.ipynb")
        assert [r["status"] for r in ui.runs()] == ["healthy"]
        ui.shot("second-notebook-kept")

        assert not errors, errors
    except Exception:
        ui.shot("failure")
        print("lab log tail:\n" + Path(lab["log"]).read_text()[-4000:])
        raise
    finally:
        print(f"e2e walk: {time.monotonic() - t_start:.1f} s; screenshots: {[str(p) for p in ui.shots]}")
        context.close()
