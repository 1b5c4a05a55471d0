"""Tests of the live ipywidgets panel, run without a frontend (ipywidgets falls back to a dummy comm).

What matters for a live view under a training loop: it keeps the comm traffic low (Jupyter Server
drops iopub traffic above 1000 msgs/s), so the tests count the widget state messages really sent
(`Widget._send`, through which every state update goes) against the elapsed time; the final state
holds the last step; a first NaN shows at once; and it reads well with 2 and with 200 layers.
No TensorFlow: events are the dicts the engine sends (see tests/support/report_samples.py).
"""

from __future__ import annotations

import collections
import math
import subprocess
import sys
import time
from pathlib import Path

import ipywidgets
import pytest

from nanwatch.views import panel as panel_mod
from nanwatch.views.panel import LivePanel, _Series, make_panel_or_none, sparkline_svg
from tests.support import REPO
from tests.support.report_samples import healthy_report, nan_report
EVIL = "<script>alert(1)</script>"
RUN = {"run_id": "r1", "cell": 12, "mode": "fast", "started": 0.0}


@pytest.fixture
def sent(monkeypatch):
    """Counts the state messages each widget sends, by widget model id."""
    counts = collections.Counter()
    original = ipywidgets.Widget._send

    def counting_send(self, msg, buffers=None):
        counts[self.model_id] += 1
        return original(self, msg, buffers)

    monkeypatch.setattr(ipywidgets.Widget, "_send", counting_send)
    return counts


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def sections(panel: LivePanel) -> dict:
    return {name: w for name, w in panel._widgets.items()}


def values(panel: LivePanel) -> str:
    return "".join(child.value for child in panel.widget.children)


def layer(name: str, bad: bool = False) -> dict:
    rec = {"layer": name, "weight_norm": 3.2, "grad_norm": 0.1, "activation_norm": None, "min": -0.5, "max": 0.5,
           "mean": 0.0, "std": 0.1, "nan": 0, "inf": 0}
    if bad:
        rec.update(grad_norm=float("inf"), inf=4)
    return rec


# --- throttling -------------------------------------------------------------------------------

def test_2000_quick_steps_send_few_messages_and_end_on_the_last_step(sent):
    report = healthy_report(n_steps=2000)
    panel = LivePanel(throttle_hz=10)
    ids = {name: w.model_id for name, w in sections(panel).items()}
    start = time.monotonic()
    panel.run_started(RUN)
    for record in report["steps"]:
        panel.step(record)
    panel.run_finished(report)
    elapsed = time.monotonic() - start
    budget = elapsed * 10 + 3  # + the run_started push, the leading-edge push, the final flush
    print(f"2000 steps in {elapsed:.3f} s: {sum(sent.values())} messages, {panel.flushes} flushes")
    assert panel.flushes <= budget + 1  # +1: the constructor's own push
    assert all(sent[ids[name]] <= budget for name in ids)
    assert sum(sent.values()) <= len(ids) * budget
    progress = sections(panel)["progress"].value
    assert "step 1999 · epoch 20 · train · 2000 steps seen" in progress
    assert "healthy: 2000 steps, no NaN/Inf" in sections(panel)["banner"].value


def test_steady_steps_update_about_ten_times_a_second(sent):
    clock = FakeClock()
    panel = LivePanel(throttle_hz=10, clock=clock)
    progress_id = sections(panel)["progress"].model_id
    panel.run_started(RUN)
    for record in healthy_report(n_steps=2000)["steps"]:  # 2000 steps, 1 ms apart: 2 s
        panel.step(record)
        clock.now += 0.001
    assert 19 <= sent[progress_id] <= 21  # about one push per 0.1 s (and none in between)
    shown = int(sections(panel)["progress"].value.split("<b>step ")[1].split(" ")[0])
    assert 1890 <= shown < 1999  # the newest steps are held back until the next push is due
    panel.run_finished(healthy_report(n_steps=2000))
    assert "<b>step 1999 · epoch 20" in sections(panel)["progress"].value


def test_real_time_paced_steps_respect_the_rate(sent):
    panel = LivePanel(throttle_hz=10)
    progress_id = sections(panel)["progress"].model_id
    start = time.monotonic()
    for record in healthy_report(n_steps=300)["steps"]:
        panel.step(record)
        time.sleep(0.002)
    elapsed = time.monotonic() - start
    assert 3 <= sent[progress_id] <= elapsed * 10 + 2


def test_first_nonfinite_shows_at_once_despite_the_throttle(sent):
    clock = FakeClock()
    report = nan_report()
    panel = LivePanel(clock=clock)
    banner = sections(panel)["banner"]
    panel.run_started(RUN)
    panel.step(report["steps"][0])       # pushed (leading edge)
    panel.step(report["steps"][1])       # held back: no time has passed
    assert "step 1 ·" not in sections(panel)["progress"].value
    panel.first_nonfinite(report["first_nonfinite"], report["diagnosis"])
    assert "NaN/Inf found at step 137 (epoch 1): Log in layer &#x27;scorer&#x27; (loss phase)" in banner.value
    assert "<b>log_of_nonpositive</b>" in banner.value and "<pre><code>eps = 1e-7" in banner.value
    assert "step 1 ·" in sections(panel)["progress"].value  # the held step went out with it


def test_widgets_are_updated_in_place_never_cleared(monkeypatch):
    import IPython.display

    def forbidden(*args, **kwargs):
        raise AssertionError("clear_output called")

    monkeypatch.setattr(IPython.display, "clear_output", forbidden)
    panel = LivePanel()
    children = list(panel.widget.children)
    report = nan_report()
    panel.run_started(RUN)
    for record in report["steps"]:
        panel.step(record)
    panel.layers(report["layers"])
    panel.first_nonfinite(report["first_nonfinite"], report["diagnosis"])
    panel.run_finished(report)
    assert list(panel.widget.children) == children


def test_throttle_must_be_positive():
    with pytest.raises(ValueError, match="throttle_hz"):
        LivePanel(throttle_hz=0)


# --- what it shows --------------------------------------------------------------------------

def test_status_banner_goes_healthy_warning_nan_then_final():
    clock = FakeClock()
    panel = LivePanel(clock=clock)
    banner = sections(panel)["banner"]
    assert "waiting for the first step" in banner.value
    panel.run_started(RUN)
    clock.now += 1
    panel.step({"step": 0, "epoch": 0, "phase": "train", "loss": 0.7, "metrics": {}, "grad_norm": 1.0})
    assert 'nw-head nw-healthy">nanwatch: healthy so far' in banner.value
    clock.now += 1
    panel.layers([layer("hidden"), layer("scorer", bad=True)])
    assert 'nw-head nw-warning">nanwatch: warning: layer &#x27;scorer&#x27; has grad_norm +inf, inf 4 at step 0' in banner.value
    report = nan_report()
    panel.first_nonfinite(report["first_nonfinite"], report["diagnosis"])
    assert 'nw-head nw-nonfinite">nanwatch: NaN/Inf found at step 137' in banner.value
    assert "<h4>First non-finite tensor</h4>" in banner.value
    panel.run_finished(report)
    assert 'nw-head nw-nonfinite">nanwatch: NaN/Inf found at step 137' in banner.value
    assert "<details><summary>first non-finite tensor, causes and fixes</summary>" in banner.value


def test_loss_and_metrics_are_sparklines_with_the_last_values():
    panel = LivePanel()
    report = nan_report()
    for record in report["steps"]:
        panel.step(record)
    panel.flush()
    progress = sections(panel)["progress"].value
    assert progress.count("<svg ") == 3  # loss, grad norm, accuracy
    assert "<b>loss</b> <span class=\"nw-bad\">nan</span>" in progress
    assert "<b>accuracy</b> <span>0.574</span>" in progress
    assert progress.count('stroke="#c62828"') == 1  # the NaN loss is marked once


def test_table_with_200_layers_puts_newest_unhealthy_first_and_caps_rows():
    clock = FakeClock()
    panel = LivePanel(clock=clock, max_rows=25)
    names = [f"dense_{i}" for i in range(200)]
    for step, bad in ((10, {"dense_150"}), (20, {"dense_150", "dense_7"}), (30, {"dense_150", "dense_7", "dense_99"})):
        panel.step({"step": step, "epoch": 0, "phase": "train", "loss": 0.5, "metrics": {}, "grad_norm": 1.0})
        panel.layers([layer(n, bad=n in bad) for n in names])
        clock.now += 1
    panel.flush()  # the last layers event came within the throttle interval of the step before it
    table = sections(panel)["table"].value
    rows = [chunk.split("</td>")[0] for chunk in table.split("<tr><td>")[1:]]
    assert rows[:3] == ["dense_99", "dense_7", "dense_150"]  # newest unhealthy first
    assert rows[3:6] == ["dense_0", "dense_1", "dense_2"]     # then the healthy ones in model order
    assert len(rows) == 25 and "+175 more layers (all healthy)" in table
    assert table.count("nw-newest") == 1
    newest_row = table.split("<tr><td>dense_99</td>")[1].split("</tr>")[0]
    assert "nw-newest" in newest_row
    assert '<div class="nw-scroll">' in table
    assert "200 layers · 3 unhealthy · stats at step 30" in table


def test_table_with_two_layers_shows_both_and_no_more_line():
    panel = LivePanel()
    panel.layers([layer("hidden"), layer("scorer")])
    panel.flush()
    table = sections(panel)["table"].value
    assert [c.split("</td>")[0] for c in table.split("<tr><td>")[1:]] == ["hidden", "scorer"]
    assert "more layers" not in table and "2 layers · 0 unhealthy" in table
    assert "act ‖·‖" not in table  # no activation stats in these records: no empty column


def test_every_string_is_escaped_in_the_panel():
    panel = LivePanel()
    panel.run_started({**RUN, "mode": EVIL})
    panel.step({"step": 0, "epoch": 0, "phase": EVIL, "loss": 1.0, "metrics": {EVIL: 0.5}, "grad_norm": 1.0})
    panel.layers([layer(EVIL, bad=True)])
    report = nan_report(layer=EVIL, op_name=EVIL)
    report["diagnosis"][0]["fix"] = EVIL
    panel.first_nonfinite(report["first_nonfinite"], report["diagnosis"])
    everything = values(panel)
    assert "<script" not in everything
    assert everything.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 5
    report["warnings"][0]["evidence"] = EVIL
    panel.run_finished(report)
    assert "<script" not in values(panel)


def test_run_finished_alone_fills_the_panel_from_the_report():
    panel = LivePanel()
    panel.run_finished(healthy_report(n_steps=384))
    assert "step 383" in sections(panel)["progress"].value
    assert "2 layers · 0 unhealthy" in sections(panel)["table"].value


# --- pieces -----------------------------------------------------------------------------------

def test_series_stays_bounded_and_keeps_the_newest_point():
    series = _Series(max_points=100)
    for i in range(100_000):
        series.add(i, float(i))
    shown = series.shown()
    assert 100 <= len(shown) <= 201
    assert shown[0] == (0, 0.0) and shown[-1] == (99_999, 99_999.0)


def test_sparkline_breaks_at_non_finite_values_and_marks_them():
    points = [(0, 1.0), (1, 0.8), (2, math.nan), (3, 0.7), (4, 0.6), (5, math.inf)]
    svg = sparkline_svg(points, width=100, height=20)
    assert svg.count("<polyline") == 2
    assert svg.count('<line x1="40.2"') == 1 and svg.count('<line x1="99.0"') == 1
    assert sparkline_svg([]) == ""
    lone = sparkline_svg([(0, 1.0), (1, math.nan), (2, 0.5), (3, 0.4)])
    assert lone.count("<circle") == 1 and lone.count("<polyline") == 1


# --- fallback when there is no widget frontend ----------------------------------------------

def test_no_panel_without_an_ipython_kernel(monkeypatch):
    import IPython

    monkeypatch.setattr(IPython, "get_ipython", lambda: None)
    assert make_panel_or_none() is None


def test_no_panel_when_ipywidgets_is_missing(monkeypatch):
    import IPython

    monkeypatch.setattr(IPython, "get_ipython", lambda: type("Shell", (), {"kernel": object()})())
    assert isinstance(make_panel_or_none(), LivePanel)
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # import ipywidgets now raises ImportError
    assert make_panel_or_none() is None


def test_terminal_ipython_gets_no_panel(tmp_path):
    code = "from nanwatch.views.panel import make_panel_or_none; print('panel:', make_panel_or_none())"
    out = subprocess.run([str(Path(sys.executable).parent / "ipython"), f"--ipython-dir={tmp_path}", "-c", code],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert "panel: None" in out.stdout, out.stdout + out.stderr


def test_a_real_kernel_gets_a_panel(tmp_path):
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3", cwd=str(REPO), env={
        **__import__("os").environ, "IPYTHONDIR": str(tmp_path), "PYTHONPATH": str(REPO)})
    try:
        code = ("from nanwatch.views.panel import make_panel_or_none\n"
                "p = make_panel_or_none(); print('panel:', type(p).__name__)")
        lines = []
        kc.execute_interactive(code, timeout=60, output_hook=lambda msg: lines.append(msg["content"].get("text", "")))
        assert "panel: LivePanel" in "".join(lines)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_panel_module_does_not_import_tensorflow():
    code = "import sys, nanwatch.views.panel; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "False"
    assert panel_mod.SECTIONS == ("banner", "progress", "table")
