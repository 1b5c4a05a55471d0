"""Tests of the static views (text, HTML, matplotlib figures) on realistic schema-1 report dicts.

They never import TensorFlow: views only read report dicts, so the dicts are built with
`Report` (see tests/support/report_samples.py) and the tests stay fast. Figures are checked for what they
show (axes labels, lines, the x of the NaN marker, bar count), not merely for existing.
"""

from __future__ import annotations

import base64
import copy
import re
import struct
import subprocess
import sys
from html.parser import HTMLParser

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from nanwatch.views import figures
from nanwatch.views.html import render_html
from nanwatch.views.text import render_text
from tests.support import REPO
from tests.support.report_samples import DIAGNOSIS, NAN_STEP, WARNINGS, healthy_report, nan_report

EVIL = "<script>alert(1)</script>"


# --- helpers ------------------------------------------------------------------------------

class _Tags(HTMLParser):
    """Collects every start tag with its attributes, and the text of <style> elements."""

    def __init__(self):
        super().__init__()
        self.tags, self.styles, self._in_style = [], [], False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.styles.append(data)


def parse(html_text: str) -> _Tags:
    p = _Tags()
    p.feed(html_text)
    return p


def png_size(b64: str) -> tuple[int, int]:
    raw = base64.b64decode(b64)
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", raw[16:24])


def images(html_text: str) -> list[str]:
    return re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html_text)


def text_field(text: str, label: str) -> list[str]:
    """The values of the lines '  label:  value' in the text view."""
    return [m.group(1) for m in re.finditer(rf"^  {re.escape(label)}:\s+(.*)$", text, re.M)]


# --- no TensorFlow ----------------------------------------------------------------------------

def test_views_do_not_import_tensorflow():
    code = ("import sys, nanwatch.views.text, nanwatch.views.html, nanwatch.views.figures;"
            "print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=str(REPO))
    assert out.stdout.split() == ["False", "False"]


# --- text -------------------------------------------------------------------------------------

def test_text_healthy_run_says_healthy_with_step_count():
    text = render_text(healthy_report(n_steps=384))
    first_line = text.splitlines()[0]
    assert "healthy" in first_line and "384 steps" in first_line and "no NaN/Inf" in first_line
    assert "First non-finite" not in text and "Likely causes" not in text
    assert re.search(r"last loss 0\.\d+ at step 383", text)


def test_text_nan_card_has_every_fact():
    text = render_text(nan_report())
    assert text.splitlines()[0] == ("nanwatch: NaN/Inf found at step 137 (epoch 1): "
                                    "Log in layer 'scorer' (loss phase)")
    assert text_field(text, "op") == ["Log  sequential/scorer/Log  (output 0)"]
    assert text_field(text, "layer") == ["scorer"]
    assert text_field(text, "phase") == ["loss"]
    assert text_field(text, "when") == ["step 137 (epoch 1)"]
    assert text_field(text, "values") == ["5 NaN, 2 -Inf of 100 values", "nan"]
    assert text_field(text, "input") == ["sequential/scorer/Softmax:0 (Softmax): finite, min 0, max 1, 7 zeros"]
    assert text_field(text, "rows") == ["77, 78, 104 (in your array)"]
    assert text_field(text, "batch rows") == ["13, 14, 40"]
    assert text_field(text, "columns") == ["4"]
    assert text_field(text, "source") == ["cell [12], line 4"]
    assert text_field(text, "code") == ["loss = -tf.reduce_mean(tf.math.log(p))"]


def test_text_diagnosis_is_ranked_with_evidence_and_fix():
    text = render_text(nan_report())
    first, second = text.index("1. log_of_nonpositive (90%)"), text.index("2. nan_in_input (20%)")
    assert first < second
    for item in DIAGNOSIS + WARNINGS:
        assert item["evidence"] in text.replace("\n" + " " * 7, " ")
        for fix_line in item["fix"].splitlines():
            assert "    " + fix_line in text
    assert "Warnings\n  - unscaled_input" in text
    assert "Info\n  - jit_compile was turned off" in text
    assert "Run notes\n  - Training stopped" in text


def test_text_stays_compact_with_200_layers_and_long_row_lists():
    report = nan_report(n_layers=200)
    report["first_nonfinite"]["data"]["array_rows"] = list(range(1000))
    text = render_text(report)
    assert len(text.splitlines()) < 60
    assert max(len(line) for line in text.splitlines()) < 200
    assert "(+988 more)" in text
    assert "Unhealthy layers (1 of 200)\n  block_0_norm: grad_norm +inf, activation_norm nan, nan 5, inf 2" in text
    assert "block_5_dense" not in text  # healthy layers are not listed


def test_text_warning_and_error_status_lines():
    report = healthy_report()
    report.update(status="warning", warnings=copy.deepcopy(WARNINGS))
    assert render_text(report).splitlines()[0] == "nanwatch: warning: no NaN/Inf in 384 steps, but 1 warning"
    report.update(status="error", warnings=[])
    report["run"]["error"] = "ValueError: shapes (3,) and (4,) differ"
    assert render_text(report).splitlines()[0].startswith(
        "nanwatch: error: ValueError: shapes (3,) and (4,) differ (after 384 steps")


# --- HTML -------------------------------------------------------------------------------------

def _evil_report() -> dict:
    report = nan_report(layer=EVIL, op_name="model/" + EVIL)
    report["layers"][0]["layer"] = EVIL
    report["first_nonfinite"]["source"]["code"] = "x = a < b and c > d  # <img src=x onerror=alert(2)>"
    report["diagnosis"][0]["evidence"] = "evidence " + EVIL
    report["diagnosis"][0]["fix"] = "</code></pre>" + EVIL
    report["warnings"][0]["cause"] = EVIL
    report["info"] = [EVIL]
    return report


def test_html_escapes_every_report_string():
    out = render_html(_evil_report(), figures=False)
    assert "<script" not in out.lower() and "<img src=x" not in out
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert f"<code>model/{escaped}</code>" in out            # op name
    assert f"<td>{escaped}</td>" in out                       # layer name in the table
    assert f"<th>layer</th><td>{escaped}</td>" in out         # layer name in the card
    assert f"<pre><code>&lt;/code&gt;&lt;/pre&gt;{escaped}</code></pre>" in out  # fix
    assert "a &lt; b and c &gt; d" in out                     # code
    tags = parse(out).tags
    assert {t for t, _ in tags} <= {"div", "style", "h4", "table", "tr", "th", "td", "b", "code", "span",
                                    "ol", "ul", "li", "pre", "img"}
    assert not [a for _, attrs in tags for a in attrs if a.startswith("on")]


def test_html_fix_is_a_copyable_pre_code_block():
    out = render_html(nan_report(), figures=False)
    for item in DIAGNOSIS + WARNINGS:
        assert f"<pre><code>{__import__('html').escape(item['fix'])}</code></pre>" in out


def test_html_is_self_contained_and_css_is_scoped():
    out = render_html(nan_report())
    parsed = parse(out)
    assert parsed.tags[0] == ("div", {"class": "nanwatch-report nw-report-nonfinite"})
    assert "<script" not in out and "http://" not in out and "https://" not in out
    srcs = [attrs["src"] for tag, attrs in parsed.tags if tag == "img"]
    assert len(srcs) == 3 and all(s.startswith("data:image/png;base64,") for s in srcs)
    rules = [r for r in "".join(parsed.styles).split("}") if r.strip()]
    selectors = [s.strip() for r in rules for s in r.split("{")[0].split(",")]
    assert selectors and all(s.startswith(".nanwatch-report") for s in selectors)


def test_css_outweighs_jupyterlab_output_styles():
    # JupyterLab 4.6 styles outputs with e.g. `.jp-ThemedContainer .jp-RenderedHTMLCommon pre` (2 classes):
    # measured in a browser, a single scoping class lost (no padding on fixes, right-aligned cells).
    css = parse(render_html(nan_report(), figures=False)).styles[0]
    assert ".nanwatch-report.nanwatch-report pre{" in css
    assert ".nanwatch-report.nanwatch-report .nw-t td," in css


def test_report_reprs_use_these_views():
    from nanwatch.report import Report

    report = Report(mode="exact", cell=3)
    report.first_nonfinite = nan_report()["first_nonfinite"]
    report.diagnosis = [dict(d) for d in DIAGNOSIS]
    bundle = report.finish()._repr_mimebundle_()
    assert bundle["text/plain"].startswith("nanwatch: NaN/Inf found at step 137 (epoch 1): Log in layer 'scorer'")
    assert bundle["text/html"].startswith('<div class="nanwatch-report nw-report-nonfinite"><style>')


def test_html_nan_report_with_figures_stays_small():
    report = nan_report(n_layers=200, nan_step=1999)  # long run, many layers: the worst case
    out = render_html(report)
    size = len(out.encode())
    print(f"HTML bytes, NaN report, 200 layers, 2000 steps, 3 figures: {size}")
    assert size < 150_000
    sizes = [png_size(b64) for b64 in images(out)]
    assert len(sizes) == 3 and all(w <= 500 and h <= 220 for w, h in sizes)


def test_html_card_diagnosis_and_status():
    out = render_html(nan_report())
    assert '<div class="nw-head nw-nonfinite">nanwatch: NaN/Inf found at step 137 (epoch 1)' in out
    assert "<b>Log</b> <code>sequential/scorer/Log</code> output 0" in out
    assert '<span class="nw-source" data-cell-id="a1b2c3" data-line="4">cell [12], line 4</span>' in out
    assert out.index("<b>log_of_nonpositive</b>") < out.index("<b>nan_in_input</b>")
    healthy = render_html(healthy_report())
    assert '<div class="nw-head nw-healthy">nanwatch: healthy: 384 steps, no NaN/Inf</div>' in healthy
    assert len(images(healthy)) == 2  # loss and gradient norms; no culprit, no histogram


def test_html_layer_table_puts_unhealthy_first_and_caps_rows():
    out = render_html(nan_report(n_layers=200), figures=False)
    table = out[out.index('<table class="nw-t nw-layers">'):]
    rows = re.findall(r"<tr><td>([^<]*)</td>", table)
    assert len(rows) == 20 and rows[0] == "block_0_norm"
    assert "+180 more layers (all healthy)" in table
    assert '<td class="nw-num nw-bad">+inf</td>' in table


def test_views_do_not_modify_the_report():
    report = nan_report(n_layers=200)
    before = copy.deepcopy(report)
    render_text(report)
    render_html(report)
    assert report == before


# --- figures ----------------------------------------------------------------------------------

def _vlines_at(ax) -> list[float]:
    """x of every vertical line (the NaN marker)."""
    return [line.get_xdata()[0] for line in ax.get_lines()
            if len(line.get_xdata()) == 2 and line.get_xdata()[0] == line.get_xdata()[1]]


def test_loss_figure_plots_finite_losses_and_marks_the_nan_step():
    report = nan_report()
    fig = figures.loss_figure(report)
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("step", "loss")
    lines = ax.get_lines()
    assert len(lines) == 2  # the loss and the marker
    assert _vlines_at(ax) == [report["first_nonfinite"]["step"]] == [NAN_STEP]
    xs, ys = lines[0].get_data()
    assert list(xs) == list(range(NAN_STEP))  # the NaN loss itself is not drawn
    assert ys[0] == pytest.approx(report["steps"][0]["loss"])
    assert any(f"step {NAN_STEP}" in t.get_text() for t in ax.texts)


def test_loss_figure_of_a_healthy_run_has_no_marker():
    fig = figures.loss_figure(healthy_report(n_steps=50))
    ax = fig.axes[0]
    assert len(ax.get_lines()) == 1 and _vlines_at(ax) == []
    assert len(ax.get_lines()[0].get_xdata()) == 50


def test_figures_are_none_without_data():
    empty = healthy_report()
    empty.update(steps=[], layers=[])
    assert figures.loss_figure(empty) is None
    assert figures.grad_norm_figure(empty) is None
    assert figures.input_histogram_figure(empty) is None
    assert figures.input_histogram_figure(healthy_report()) is None
    broken = nan_report()
    broken["first_nonfinite"]["histogram"]["bins"] = [0.0, 1.0]  # 2 edges for 20 counts
    assert figures.input_histogram_figure(broken) is None


def test_grad_norm_figure_shows_top_8_layers_on_log_scale():
    report = nan_report(n_layers=200)
    fig = figures.grad_norm_figure(report)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("step", "gradient norm (log)")
    assert ax.get_title() == "Gradient norm per layer (top 8 of 200)"
    data_lines = [line for line in ax.get_lines() if line.get_label().startswith("block_")]
    assert len(data_lines) == 8 and _vlines_at(ax) == [NAN_STEP]
    assert data_lines[0].get_label() == "block_0_norm (non-finite)"  # blew up: ranked first
    finite_max = {r["layer"]: max(h["grad_norm"] for h in r["history"] if isinstance(h["grad_norm"], float))
                  for r in report["layers"] if r["layer"] != "block_0_norm"}
    expected = sorted(finite_max, key=finite_max.get, reverse=True)[:7]
    assert [line.get_label() for line in data_lines[1:]] == expected


def test_grad_norm_figure_with_two_layers():
    ax = figures.grad_norm_figure(healthy_report(n_layers=2)).axes[0]
    assert sorted(line.get_label() for line in ax.get_lines()) == ["hidden", "scorer"]


def test_input_histogram_has_one_bar_per_bin():
    report = nan_report()
    hist = report["first_nonfinite"]["histogram"]
    ax = figures.input_histogram_figure(report).axes[0]
    bars = ax.patches
    assert len(bars) == len(hist["counts"]) == 20
    assert [b.get_height() for b in bars] == hist["counts"]
    assert bars[0].get_x() == pytest.approx(0.0) and bars[0].get_width() == pytest.approx(0.05)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("value", "count")
    assert ax.get_title() == "Input sequential/scorer/Softmax:0 of Log"


def test_input_histogram_says_what_non_finite_values_it_leaves_out():
    report = nan_report()
    report["first_nonfinite"]["inputs"][0].update(finite=False, nan=3, pos_inf=1)
    ax = figures.input_histogram_figure(report).axes[0]
    assert [t.get_text() for t in ax.texts] == ["not shown: 3 NaN, 1 +Inf"]


def test_input_histogram_from_the_engines_histogram_format():
    report = nan_report()
    # nanwatch.engine.stats.histogram: numpy edges, a count of the non-finite values, no input name
    report["first_nonfinite"]["histogram"] = {"bins": [0.0, 0.5, 1.0], "counts": [3, 4], "nonfinite": 2}
    ax = figures.input_histogram_figure(report).axes[0]
    assert len(ax.patches) == 2 and ax.get_title() == "Input of Log"
    assert [t.get_text() for t in ax.texts] == ["not shown: 2 non-finite"]


def test_figures_leave_pyplot_alone_and_render_with_agg():
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    figs = [fig for _, fig in figures.report_figures(nan_report(n_layers=200))]
    assert len(figs) == 3
    for fig in figs:
        assert isinstance(fig.canvas, FigureCanvasAgg)
        width, height = png_size(figures.figure_to_png_b64(fig, dpi=50))
        assert width == round(fig.get_figwidth() * 50) and height == round(fig.get_figheight() * 50)
    assert plt.get_fignums() == before


@pytest.mark.parametrize("enabled", [True, False])
def test_figures_hold_gc_while_drawing_and_give_back_the_users_setting(enabled, monkeypatch):
    """A full collection made due by a fit ran inside the report (0.2-1.7 s measured): the
    figures hold the collector while they draw, and leave gc.isenabled() as the user had it."""
    import gc

    while_drawing = []
    draw = figures.figure_to_png_b64

    def watched_draw(fig, dpi=80):
        while_drawing.append(gc.isenabled())
        return draw(fig, dpi=dpi)

    monkeypatch.setattr(figures, "figure_to_png_b64", watched_draw)
    (gc.enable if enabled else gc.disable)()
    try:
        html = render_html(nan_report(n_layers=20))
        after = gc.isenabled()
    finally:
        gc.enable()
    assert len(images(html)) == 3
    assert while_drawing == [False, False, False]
    assert after is enabled
