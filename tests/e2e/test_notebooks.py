"""The example notebooks, executed in a real kernel (nbclient), and the live panel's comm traffic.

Each notebook in example_notebooks/ runs once per test session (nbclient, store_widget_state=True;
the kernel imports nanwatch from this checkout through PYTHONPATH, installed or not). Then:
- every `%%nanwatch` cell's outputs hold the report as text/plain, text/html and the report payload
  (application/vnd.nanwatch.report.v1+json);
- the reports, in cell order, say what the notebook's markdown says: the failing cells name the
  expected op, layer, phase and cause; the fixes rerun healthy;
- the report's figures (data-URI PNGs in the HTML) are as many as the report has data for, decode
  as PNGs, and the figures rebuilt from the saved payload (Agg) plot the losses and mark the
  first non-finite step;
- the notebook's stored widget state holds the live panel, with a per-layer statistics table
  naming the model's layers;
- the executed notebook stays small.
Also: `python -m nanwatch run` exits 1 / 0 / 2, and the panel's comm traffic on a 2,000-step
`fit` in a real kernel (jupyter_client, every iopub message counted) stays under ~10 updates per
second per widget.

Run: .venv/bin/pytest -q tests/e2e/test_notebooks.py   (about 3 minutes on 2 cores)
"""

from __future__ import annotations

import base64
import collections
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "example_notebooks"
MIME = "application/vnd.nanwatch.report.v1+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
MAX_EXECUTED_BYTES = 1_500_000


def kernel_env() -> dict:
    """The kernel is this Python, imports nanwatch from this checkout, and keeps its IPython dir apart."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in [env.get("PYTHONPATH")] if p])
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    env["IPYTHONDIR"] = env.get("IPYTHONDIR") or tempfile.mkdtemp(prefix="nanwatch-ipython-")
    env["MPLBACKEND"] = "Agg"
    return env


# --- what each notebook must show -------------------------------------------------------------
# One entry per %%nanwatch cell, in order. Keys: status; for a NaN: op (op_type, None for the data
# itself), phase, layer, line (text of the source line), cause (diagnosis[0]); rows/columns (data);
# warning (a warnings[*].cause that must be present). `layers`: the model layers the panel's
# per-layer table must name.
def nonfinite(op, phase, layer, cause, line=None, **more):
    return dict(status="nonfinite", op=op, phase=phase, layer=layer, cause=cause, line=line, **more)


HEALTHY = dict(status="healthy")

EXPECTED = {
    "quickstart.ipynb": dict(
        reports=[nonfinite("Log", "forward", "log_scale", "log_of_nonpositive", line="tf.math.log(x)"), HEALTHY],
        layers=["hidden", "out"]),
    "seed0_predicting_nan.ipynb": dict(
        reports=[HEALTHY,
                 nonfinite("Log", "loss", None, "log_of_nonpositive", line="tf.math.log(1 - y_pred)"),
                 HEALTHY, HEALTHY],
        layers=["logits"]),
    "seed1_weights_nan.ipynb": dict(
        reports=[nonfinite(None, "input", None, "nan_in_input", line="model.fit(X, y", rows=[5], columns=[2]),
                 HEALTHY, HEALTHY],
        layers=["hidden", "out"]),
    "seed2_accuracy_nan.ipynb": dict(
        reports=[nonfinite("Log", "forward", None, "log_of_nonpositive", line="loss_2 = "),
                 nonfinite("Log", "loss", None, "log_of_nonpositive", line="tf.math.log(y_pred)",
                           warning="unscaled_input"),
                 HEALTHY,
                 dict(status="warning", warning="unscaled_input")],
        layers=["prob"]),
    "seed3_predict_nan.ipynb": dict(
        reports=[HEALTHY,
                 nonfinite(None, "input", None, "nan_in_input", line="model.predict(X", rows=[0, 2], columns=[1, 2]),
                 HEALTHY, HEALTHY,
                 nonfinite("Exp", "forward", "softmax", "exp_overflow", line="tf.exp(z)", warning="input_drift"),
                 HEALTHY],
        layers=["hidden", "logits"]),
    "seed4_regression_loss_nan.ipynb": dict(
        reports=[dict(status="warning", warning="outlier_input"), HEALTHY,
                 dict(status="warning", warning="learning_rate_too_high"),
                 nonfinite("Square", "loss", None, "learning_rate_too_high", line="model.fit(X, y"),
                 HEALTHY],
        layers=["hidden", "out"]),
}


def test_every_notebook_has_expectations():
    found = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    assert found == sorted(EXPECTED), "a notebook was added or removed: update EXPECTED"


def test_notebooks_are_committed_without_outputs():
    import nbformat
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        assert "widgets" not in nb.metadata, path.name
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{path.name}: clear the outputs"


# --- executing the notebooks (once per session) -----------------------------------------------
_executed: dict = {}


def executed(name: str, tmp_root: Path):
    """(notebook node, executed file size in bytes, seconds) of one notebook, executed once."""
    if name not in _executed:
        import nbformat
        from nanwatch.__main__ import run_notebook

        saved = dict(os.environ)
        os.environ.update(kernel_env())
        try:
            start = time.monotonic()
            out = tmp_root / name
            run_notebook(str(NOTEBOOKS / name), timeout=300, output=str(out), store_widget_state=True)
            seconds = time.monotonic() - start
        finally:
            os.environ.clear()
            os.environ.update(saved)
        _executed[name] = (nbformat.read(out, as_version=4), out.stat().st_size, seconds)
    return _executed[name]


@pytest.fixture(scope="module")
def tmp_root(tmp_path_factory):
    return tmp_path_factory.mktemp("executed")


def watched_cells(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code" and c.source.lstrip().startswith("%%nanwatch")]


def report_output(cell) -> dict:
    outs = [o for o in cell.outputs if o.get("output_type") in ("display_data", "execute_result")
            and MIME in o.get("data", {})]
    assert len(outs) == 1, f"expected one report in the outputs of:\n{cell.source}"
    return outs[0]


def payload(output) -> dict:
    data = output["data"][MIME]
    return json.loads(data) if isinstance(data, str) else data


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_notebook_runs_and_each_watched_cell_shows_its_report(name, tmp_root):
    nb, size, seconds = executed(name, tmp_root)
    print(f"\n{name}: executed in {seconds:.1f} s, {size / 1e3:.0f} kB")
    for cell in nb.cells:
        if cell.cell_type == "code":
            errors = [o for o in cell.outputs if o.get("output_type") == "error"]
            assert not errors, f"{name}: cell raised {errors[0].get('ename')}: {errors[0].get('evalue')}"
    cells = watched_cells(nb)
    assert len(cells) == len(EXPECTED[name]["reports"])
    for cell in cells:
        out = report_output(cell)
        text, html, data = out["data"]["text/plain"], out["data"]["text/html"], payload(out)
        assert text.startswith("nanwatch: "), text[:200]
        assert 'class="nanwatch-report' in html
        assert data["schema"] == 1 and data["status"] in ("healthy", "warning", "nonfinite")
        headline = text.splitlines()[0]
        assert headline.startswith(f"nanwatch: {'healthy' if data['status'] == 'healthy' else ''}")
        if data["status"] == "nonfinite":
            assert data["first_nonfinite"]["phase"] in headline
            assert data["first_nonfinite"]["phase"] in html


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_reports_name_the_expected_op_layer_phase_and_cause(name, tmp_root):
    nb, _, _ = executed(name, tmp_root)
    reports = [payload(report_output(c)) for c in watched_cells(nb)]
    for number, (got, want) in enumerate(zip(reports, EXPECTED[name]["reports"]), 1):
        where = f"{name}, watched cell {number}"
        assert got["status"] == want["status"], f"{where}: {got['status']}, {got['first_nonfinite']}"
        assert got["run"]["error"] is None, where
        causes = [d["cause"] for d in got["diagnosis"]] + [w["cause"] for w in got["warnings"]]
        if "warning" in want:
            assert want["warning"] in [w["cause"] for w in got["warnings"]], f"{where}: {causes}"
        if want["status"] != "nonfinite":
            assert got["first_nonfinite"] is None, where
            continue
        first = got["first_nonfinite"]
        assert first["op_type"] == want["op"], f"{where}: {first['op_type']}"
        assert first["phase"] == want["phase"], f"{where}: {first['phase']}"
        assert first["layer"] == want["layer"], f"{where}: {first['layer']}"
        assert got["diagnosis"] and got["diagnosis"][0]["cause"] == want["cause"], f"{where}: {causes}"
        assert got["diagnosis"][0]["fix"], where
        if want.get("line"):
            assert want["line"] in (first.get("source") or {}).get("code", ""), f"{where}: {first.get('source')}"
        if "rows" in want:
            rows = first["data"].get("array_rows") or first["data"]["rows"]
            assert sorted(rows) == want["rows"] and sorted(first["data"]["columns"]) == want["columns"], \
                f"{where}: {first['data']}"
        counts = first["counts"]
        assert sum(counts.get(k) or 0 for k in ("nan", "pos_inf", "neg_inf")) > 0, f"{where}: {counts}"


def _png_size(b64: str) -> tuple[int, int]:
    raw = base64.b64decode(b64)
    assert raw[:8] == b"\x89PNG\r\n\x1a\n" and raw[12:16] == b"IHDR"
    return int.from_bytes(raw[16:20], "big"), int.from_bytes(raw[20:24], "big")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_report_figures_plot_the_run_and_mark_the_first_nonfinite_step(name, tmp_root):
    from nanwatch.views.figures import report_figures

    nb, _, _ = executed(name, tmp_root)
    for cell in watched_cells(nb):
        out = report_output(cell)
        data = payload(out)
        pngs = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', out["data"]["text/html"])
        figures = dict(report_figures(data))
        assert len(pngs) == len(figures), f"{name}: {len(pngs)} PNGs, figures {sorted(figures)}"
        for b64 in pngs:
            width, height = _png_size(b64)
            assert width >= 200 and height >= 100
        finite_losses = [s for s in data["steps"] if isinstance(s.get("loss"), float)]
        if finite_losses:
            ax = figures["loss per step"].axes[0]
            assert ax.get_xlabel() == "step" and ax.get_ylabel() == "loss"
            plotted = [line for line in ax.get_lines() if len(line.get_xdata()) > 0 and line.get_linestyle() == "-"]
            assert plotted and sum(len(line.get_xdata()) for line in plotted) == len(finite_losses)
            marks = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
            first = data["first_nonfinite"]
            if first is not None and first.get("step") is not None:
                assert [list(m.get_xdata()) for m in marks] == [[first["step"], first["step"]]], name
            else:
                assert not marks, name
        for figure in figures.values():
            assert figure.canvas.__class__.__name__ == "FigureCanvasAgg"


def _widget_models(nb) -> dict:
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    assert state, "no widget state stored in the notebook metadata"
    return state


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_stored_widget_state_holds_the_panel_with_per_layer_statistics(name, tmp_root):
    nb, _, _ = executed(name, tmp_root)
    models = _widget_models(nb)
    tables = []
    for cell in watched_cells(nb):
        views = [o["data"][WIDGET_VIEW]["model_id"] for o in cell.outputs if WIDGET_VIEW in o.get("data", {})]
        assert len(views) == 1, f"{name}: one live panel per watched cell"
        panel = models[views[0]]
        assert panel["model_name"] == "VBoxModel"
        children = [models[ref.removeprefix("IPY_MODEL_")] for ref in panel["state"]["children"]]
        values = [child["state"].get("value", "") for child in children]
        assert all(child["model_name"] == "HTMLModel" for child in children)
        report = payload(report_output(cell))
        # the banner ends on the report's verdict
        assert any(f"nanwatch: {report['status'] if report['status'] != 'nonfinite' else ''}" in v
                   for v in values), values
        tables += [v for v in values if "stats at step" in v]
    assert tables, f"{name}: no panel showed per-layer statistics"
    for layer in EXPECTED[name]["layers"]:
        assert any(f"<td>{layer}</td>" in table for table in tables), f"{name}: layer {layer!r} not in the panel"
    assert any(re.search(r"<th[^>]*>[^<]*(weight|grad)[^<]*</th>", t) for t in tables), tables[0][:500]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_executed_notebook_stays_small(name, tmp_root):
    _, size, _ = executed(name, tmp_root)
    committed = (NOTEBOOKS / name).stat().st_size
    print(f"\n{name}: committed {committed / 1e3:.1f} kB, executed {size / 1e3:.0f} kB")
    assert committed < 30_000
    assert size < MAX_EXECUTED_BYTES


# --- the headless runner's exit status --------------------------------------------------------
def _notebook(path: Path, *sources: str) -> Path:
    import nbformat
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def _run_cli(path: Path):
    return subprocess.run([sys.executable, "-m", "nanwatch", "run", str(path)], capture_output=True, text=True,
                          env=kernel_env(), cwd=path.parent, timeout=300)


def test_headless_run_exits_1_on_a_nan_0_when_healthy_2_when_the_notebook_fails(tmp_path):
    setup = "%load_ext nanwatch\nimport tensorflow as tf"
    bad = _run_cli(_notebook(tmp_path / "bad.ipynb", setup, "%%nanwatch\nx = tf.math.log(tf.zeros(3))"))
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "Log" in bad.stdout and "NaN/Inf found" in bad.stdout
    good = _run_cli(_notebook(tmp_path / "good.ipynb", setup, "%%nanwatch\nx = tf.math.log(tf.ones(3))"))
    assert good.returncode == 0, good.stdout + good.stderr
    assert "nanwatch: healthy" in good.stdout and "no NaN/Inf" in good.stdout
    broken = _run_cli(_notebook(tmp_path / "broken.ipynb", "raise ValueError('boom')"))
    assert broken.returncode == 2, broken.stdout + broken.stderr
    assert "boom" in broken.stderr


# --- the live panel's comm traffic on a 2,000-step fit ------------------------------------------
RATE_SETUP = """
import numpy as np, keras
keras.utils.set_random_seed(0)
X = np.random.rand(16000, 8).astype("float32"); y = np.random.rand(16000, 1).astype("float32")
model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu", name="hidden"),
                          keras.layers.Dense(1, name="out")])
model.compile(optimizer="adam", loss="mse")
"""
RATE_CELL = "%%nanwatch\nhistory = model.fit(X, y, batch_size=8, epochs=1, verbose=0)"


def _execute(kc, code: str, cell_id: str, timeout: float = 300) -> list:
    """Run `code` as the notebook cell `cell_id`; every iopub message it caused, as (kernel time, msg)."""
    content = dict(code=code, silent=False, store_history=True, user_expressions={}, allow_stdin=False,
                   stop_on_error=True)
    request = kc.session.msg("execute_request", content)
    request["metadata"]["cellId"] = cell_id  # as JupyterLab sends it; the kernel opens the sidebar comm on it
    kc.shell_channel.send(request)
    msg_id = request["header"]["msg_id"]
    messages = []
    deadline = time.monotonic() + timeout
    while True:
        msg = kc.get_iopub_msg(timeout=max(1.0, deadline - time.monotonic()))
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        messages.append(msg)
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
    reply = kc.get_shell_msg(timeout=60)
    assert reply["content"]["status"] == "ok", reply["content"]
    for msg in messages:
        assert msg["msg_type"] != "error", msg["content"]
    return messages


def _when(msg) -> float:
    date = msg["header"]["date"]
    if isinstance(date, str):
        date = datetime.datetime.fromisoformat(date.replace("Z", "+00:00"))
    return date.timestamp()


def _max_in_window(times: list, window: float = 1.0) -> int:
    times, best, lo = sorted(times), 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] > window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


@pytest.fixture(scope="module")
def rate_run(tmp_path_factory):
    from jupyter_client.manager import start_new_kernel

    env = kernel_env()
    env["IPYTHONDIR"] = str(tmp_path_factory.mktemp("ipython"))
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(REPO), env=env, startup_timeout=120)
    try:
        load = _execute(kc, "%load_ext nanwatch", "rate-load")
        _execute(kc, RATE_SETUP, "rate-setup")
        messages = _execute(kc, RATE_CELL, "rate-fit")
        check = _execute(kc, "import nanwatch; r = nanwatch.last_report().to_dict(); "
                             "print(r['status'], r['run']['steps'], r['run']['duration_s'])", "rate-check")
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    status, steps, duration = "".join(m["content"].get("text", "") for m in check
                                      if m["msg_type"] == "stream").split()
    return dict(load=load, messages=messages, status=status, steps=int(steps), duration=float(duration))


def test_panel_updates_at_most_about_10_per_second_per_widget_on_2000_steps(rate_run):
    assert rate_run["status"] == "healthy" and rate_run["steps"] == 2000
    messages = rate_run["messages"]
    opened = {m["content"]["comm_id"]: m["content"] for m in messages if m["msg_type"] == "comm_open"}
    widgets = {cid for cid, c in opened.items() if c.get("target_name") == "jupyter.widget"}
    updates = collections.defaultdict(list)
    for m in messages:
        if m["msg_type"] == "comm_msg" and m["content"]["comm_id"] in widgets:
            updates[m["content"]["comm_id"]].append(_when(m))
    assert updates, "the panel sent no updates"
    start = min(_when(m) for m in messages)
    end = max(_when(m) for m in messages)
    seconds = end - start
    assert seconds > 1, f"the 2,000-step run took {seconds:.2f} s: too short to measure a rate"
    per_widget = {cid: len(ts) for cid, ts in updates.items()}
    windows = {cid: _max_in_window(ts) for cid, ts in updates.items()}
    names = {cid: opened[cid]["data"]["state"].get("_model_name") for cid in updates}
    print(f"\n2,000 steps in {seconds:.2f} s (report: {rate_run['duration']:.2f} s); "
          f"widget updates: {sorted(per_widget.values(), reverse=True)} "
          f"({', '.join(sorted(set(names.values())))}); busiest 1 s window per widget: "
          f"{sorted(windows.values(), reverse=True)}")
    # 10 Hz throttle: at most 11 flushes in a closed 1 s window, plus the final one at run_finished
    for cid, count in per_widget.items():
        assert count <= 10 * seconds + 2, f"{names[cid]} sent {count} updates in {seconds:.2f} s"
        assert windows[cid] <= 12, f"{names[cid]} sent {windows[cid]} updates within one second"
    # and it did update live, not only at the end: the progress widget follows the steps
    assert max(per_widget.values()) >= min(10, seconds * 2), per_widget


def test_all_comm_traffic_stays_far_below_jupyter_servers_limit(rate_run):
    messages = rate_run["messages"]
    comm = [m for m in messages if m["msg_type"].startswith("comm_")]
    sidebar = [m for m in comm if m["msg_type"] == "comm_msg"
               and (m["content"].get("data") or {}).get("v") == 1]
    # %load_ext ran as a JupyterLab cell would (cellId): the kernel opened the sidebar's comm
    assert any(m["msg_type"] == "comm_open" and m["content"].get("target_name") == "nanwatch"
               for m in rate_run["load"])
    assert sidebar, "the sidebar comm got no progress"
    # progress at most 5 per second, plus run_started and run_finished
    assert len(sidebar) <= 5 * (_when(messages[-1]) - _when(messages[0])) + 3
    everything = [_when(m) for m in messages]
    print(f"\niopub messages of the cell: {len(messages)} ({len(comm)} comm, {len(sidebar)} to the sidebar); "
          f"busiest 1 s window: {_max_in_window(everything)} messages")
    assert _max_in_window(everything) <= 100
    assert len(messages) <= 20 * (_when(messages[-1]) - _when(messages[0])) + 50
