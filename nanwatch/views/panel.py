"""The live panel: an ipywidgets view under the cell that follows a watched run as it goes.

It is a sink (common.md): the engine calls run_started, step, layers, first_nonfinite and
run_finished from its own thread, possibly every training step. Jupyter Server drops iopub
traffic above 1000 msgs/s and each widget `.value` change is one comm message, so the panel
only records events in memory and pushes its widgets at most `throttle_hz` times a second
(time-based coalescing in the caller's thread; no timer thread, no clear_output). A first
NaN/Inf and the end of the run are pushed at once. Widgets are updated in place and only when
their HTML changed. Every string shown goes through `html.escape` (via the html view's helpers).
"""

from __future__ import annotations

import math
import time
from typing import Callable

from ..numfmt import VIEW, fmt
from . import _format as f
from .html import banner_html, diagnosis_html, esc, first_card_html, layers_table_html, style_html, warnings_html

PANEL_ROWS = 25          # layer rows shown before "+N more"
SPARK_POINTS = 100       # a sparkline keeps between SPARK_POINTS and 2 x SPARK_POINTS points
SPARK_SERIES = 6         # loss, grad norm and a few metrics
SPARK_W, SPARK_H = 200, 34
SECTIONS = ("banner", "progress", "table")


def widget_frontend_available() -> bool:
    """True when widgets can be shown: ipywidgets imports and we run in a kernel with comms."""
    try:
        import ipywidgets  # noqa: F401
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def make_panel_or_none(**options) -> "LivePanel | None":
    """A LivePanel, or None when there is no widget frontend (the engine then shows text/HTML only)."""
    if not widget_frontend_available():
        return None
    return LivePanel(**options)


def _records_step(records: list | None) -> int | None:
    """The step layer records describe: the newest step of their history, if they carry one."""
    steps = [rec["history"][-1].get("step") for rec in records or [] if rec.get("history")]
    steps = [s for s in steps if s is not None]
    return max(steps) if steps else None


class _Series:
    """A bounded history of one scalar: when it holds 2 x max_points, every other point goes and
    the sampling stride doubles. Non-finite values and the newest value are always kept."""

    def __init__(self, max_points: int = SPARK_POINTS):
        self.max_points, self.stride, self.seen = max_points, 1, 0
        self.points: list[tuple[int, float]] = []
        self.last: tuple[int, float] | None = None

    def add(self, step: int, value: float) -> None:
        self.last = (step, value)
        if self.seen % self.stride == 0 or not math.isfinite(value):
            self.points.append((step, value))
            if len(self.points) > 2 * self.max_points:
                self.points, self.stride = self.points[::2], self.stride * 2
        self.seen += 1

    def shown(self) -> list[tuple[int, float]]:
        if self.last is not None and (not self.points or self.points[-1] != self.last):
            return self.points + [self.last]
        return self.points


def sparkline_svg(points: list[tuple[int, float]], width: int = SPARK_W, height: int = SPARK_H) -> str:
    """An inline SVG line of (step, value) points; non-finite values are red ticks, gaps in the line."""
    if not points:
        return ""
    x_of, y_of = _scales(points, width, height)
    shapes = [_run_svg([(x_of(s), y_of(v)) for s, v in run]) for run in _finite_runs(points)]
    shapes += [f'<line x1="{x_of(s):.1f}" x2="{x_of(s):.1f}" y1="0" y2="{height}" stroke="#c62828" stroke-width="1.5"/>'
               for s, v in points if not math.isfinite(v)]
    return f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}">{"".join(shapes)}</svg>'


def _scales(points: list[tuple[int, float]], width: int, height: int):
    """Functions step -> x and value -> y (log10 when positive values span more than 1e3)."""
    lo_x, hi_x = points[0][0], points[-1][0]
    finite = [v for _, v in points if math.isfinite(v)]
    log = bool(finite) and min(finite) > 0 and max(finite) / min(finite) > 1e3
    ys = [math.log10(v) if log else v for v in finite]
    lo_y, hi_y = (min(ys), max(ys)) if ys else (0.0, 1.0)

    def x_of(step):
        return 1 + (width - 2) * ((step - lo_x) / (hi_x - lo_x) if hi_x > lo_x else 1.0)

    def y_of(v):
        v = math.log10(v) if log else v
        return height - 2 - (height - 4) * ((v - lo_y) / (hi_y - lo_y) if hi_y > lo_y else 0.5)

    return x_of, y_of


def _finite_runs(points: list[tuple[int, float]]) -> list[list[tuple[int, float]]]:
    """The stretches of consecutive finite points (a non-finite value breaks the line)."""
    runs: list[list[tuple[int, float]]] = [[]]
    for step, v in points:
        if math.isfinite(v):
            runs[-1].append((step, v))
        elif runs[-1]:
            runs.append([])
    return [run for run in runs if run]


def _run_svg(xy: list[tuple[float, float]]) -> str:
    if len(xy) == 1:
        return f'<circle cx="{xy[0][0]:.1f}" cy="{xy[0][1]:.1f}" r="1.5" fill="#1f77b4"/>'
    coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
    return f'<polyline points="{coords}" fill="none" stroke="#1f77b4" stroke-width="1.3"/>'


class LivePanel:
    """Banner (status, then the first-NaN card), step counter with sparklines, per-layer table."""

    def __init__(self, throttle_hz: float = 10, max_rows: int = PANEL_ROWS, spark_points: int = SPARK_POINTS,
                 clock: Callable[[], float] = time.monotonic):
        import ipywidgets as widgets

        if not throttle_hz or throttle_hz <= 0:
            raise ValueError(f"throttle_hz must be > 0, got {throttle_hz!r}")
        self._interval, self._clock = 1.0 / throttle_hz, clock
        self.max_rows, self.spark_points = max_rows, spark_points
        self._widgets = {name: widgets.HTML() for name in SECTIONS}
        self.widget = widgets.VBox([widgets.HTML(style_html())] + [self._widgets[n] for n in SECTIONS])
        self.widget.add_class("nanwatch-panel")
        self.flushes = 0
        self._reset({})
        self.flush()

    def _reset(self, run: dict) -> None:
        self._run, self._last_step, self._steps_seen = run, None, 0
        self._series: dict[str, _Series] = {}
        self._layers: dict[str, dict] = {}
        self._layers_step: int | None = None
        self._bad_since: dict[tuple[str, str], int] = {}
        self._warning: str | None = None
        self._first, self._diagnosis, self._final = None, [], None
        self._dirty, self._last_flush = set(SECTIONS), -math.inf

    # --- the sink interface -----------------------------------------------------------------
    def run_started(self, run: dict) -> None:
        self._reset(dict(run or {}))
        self.flush()

    def step(self, record: dict) -> None:
        self._record_step(record)
        self._changed("progress")

    def layers(self, records: list) -> None:
        for rec in records or []:
            self._layers[str(rec.get("layer"))] = rec
        step = _records_step(records)
        self._layers_step = step if step is not None else self._current_step()
        self._track_unhealthy()
        self._changed("table")

    def first_nonfinite(self, first: dict, diagnosis: list) -> None:
        self._first, self._diagnosis = first, list(diagnosis or [])
        self._dirty.add("banner")
        self.flush()

    def run_finished(self, report: dict) -> None:
        self._final = report
        if not self._series:
            for record in report.get("steps") or []:
                self._record_step(record)
        if not self._layers and report.get("layers"):
            self.layers(report["layers"])
        self._dirty.update(SECTIONS)
        self.flush()

    def display(self) -> None:
        from IPython.display import display

        display(self.widget)

    # --- throttling ---------------------------------------------------------------------------
    def _changed(self, section: str) -> None:
        self._dirty.add(section)
        if self._clock() - self._last_flush >= self._interval:
            self.flush()

    def flush(self) -> None:
        """Push every section that changed since the last push (one comm message per changed widget)."""
        render = {"banner": self._banner_html, "progress": self._progress_html, "table": self._table_html}
        for section in SECTIONS:
            if section in self._dirty:
                self._widgets[section].value = render[section]()  # traitlets sends only if it differs
        self._dirty.clear()
        self._last_flush = self._clock()
        self.flushes += 1

    # --- state --------------------------------------------------------------------------------
    def _record_step(self, record: dict) -> None:
        step = record.get("step")
        if step is None:
            return
        self._last_step, self._steps_seen = record, self._steps_seen + 1
        if self._steps_seen == 1:
            self._dirty.add("banner")  # "waiting for the first step" -> "healthy so far"
        suffix = "" if record.get("phase") in (None, "train") else f" ({record['phase']})"
        values = {"loss": record.get("loss"), "grad norm": record.get("grad_norm"), **(record.get("metrics") or {})}
        for name, value in values.items():
            x = f.num(value)
            if x is None or (name + suffix not in self._series and len(self._series) >= SPARK_SERIES):
                continue
            self._series.setdefault(name + suffix, _Series(self.spark_points)).add(step, x)
            if not math.isfinite(x) and self._warning is None:
                self._set_warning(f"{name}{suffix} is {fmt(x, VIEW)} at step {step}")

    def _current_step(self) -> int | None:
        return (self._last_step or {}).get("step")

    def _track_unhealthy(self) -> None:
        """Remember since when each bad (layer, field) is bad; the newest one gets highlighted."""
        step = self._layers_step if self._layers_step is not None else 0
        now_bad = {(name, field) for name, rec in self._layers.items() for field in f.layer_bad_fields(rec)}
        self._bad_since = {key: self._bad_since.get(key, step) for key in now_bad}
        if now_bad and self._warning is None:
            layer, _ = self._newest_bad()
            rec = self._layers[layer]
            bad = ", ".join(f"{field} {fmt(rec.get(field), VIEW)}" for field in f.layer_bad_fields(rec))
            self._set_warning(f"layer '{layer}' has {bad} at step {step}")

    def _set_warning(self, text: str) -> None:
        self._warning = text
        self._dirty.add("banner")

    def _newest_bad(self) -> tuple[str, str] | None:
        """The (layer, field) that went bad most recently; ties go to the first in model order."""
        newest, since = None, -math.inf
        for name, rec in self._layers.items():
            for field in f.layer_bad_fields(rec):
                if self._bad_since.get((name, field), -math.inf) > since:
                    newest, since = (name, field), self._bad_since[(name, field)]
        return newest

    # --- rendering ------------------------------------------------------------------------------
    def _banner_html(self) -> str:
        if self._final is not None:  # the static report below the panel has the details: fold them
            r = self._final
            details = (first_card_html(r.get("first_nonfinite")) + diagnosis_html(r.get("diagnosis"))
                       + warnings_html(r.get("warnings")))
            body = banner_html(r.get("status") or "healthy", "nanwatch: " + f.headline(r), f.run_meta(r))
            if details:
                body += f"<details><summary>first non-finite tensor, causes and fixes</summary>{details}</details>"
        elif self._first is not None:
            text = f"nanwatch: {f.nonfinite_kind(self._first.get('counts'))} found at {f.when_text(self._first)}: " \
                   f"{f.where_text(self._first)}"
            body = banner_html("nonfinite", text) + first_card_html(self._first) + diagnosis_html(self._diagnosis)
        elif self._warning is not None:
            body = banner_html("warning", f"nanwatch: warning: {self._warning}", "still running")
        elif self._steps_seen:
            body = banner_html("healthy", "nanwatch: healthy so far: no NaN/Inf", self._run_meta())
        else:
            body = banner_html("running", "nanwatch: watching, waiting for the first step", self._run_meta())
        return f'<div class="nanwatch-report">{body}</div>'

    def _run_meta(self) -> str:
        run = self._run or {}
        parts = [f"{run['mode']} mode"] if run.get("mode") else []
        if run.get("cell") is not None:
            parts.append(f"cell [{run['cell']}]")
        return " · ".join(parts)

    def _progress_html(self) -> str:
        rec = self._last_step
        if rec is None:
            return ""
        counter = f"step {rec.get('step')}"
        if rec.get("epoch") is not None:
            counter += f" · epoch {rec['epoch']}"
        counter += f" · {rec.get('phase') or 'train'} · {f.plural(self._steps_seen, 'step')} seen"
        sparks = "".join(self._spark_html(name, s) for name, s in self._series.items())
        return (f'<div class="nanwatch-report"><div class="nw-meta"><b>{esc(counter)}</b></div>'
                f'<div class="nw-sparks">{sparks}</div></div>')

    @staticmethod
    def _spark_html(name: str, series: _Series) -> str:
        points = series.shown()
        finite = [v for _, v in points if math.isfinite(v)]
        span = f"{fmt(min(finite), VIEW)} … {fmt(max(finite), VIEW)}" if finite else ""
        last = fmt(series.last[1], VIEW) if series.last else "–"
        bad = "" if series.last and math.isfinite(series.last[1]) else ' class="nw-bad"'
        return (f'<div class="nw-spark"><div><b>{esc(name)}</b> <span{bad}>{esc(last)}</span> '
                f'<span class="nw-dim">{esc(span)}</span></div>{sparkline_svg(points)}</div>')

    def _table_html(self) -> str:
        if not self._layers:
            return ""
        recs = list(self._layers.values())
        since = {}
        for (layer, _), step in self._bad_since.items():
            since[layer] = max(step, since.get(layer, step))
        bad = sorted((r for r in recs if str(r.get("layer")) in since), key=lambda r: -since[str(r.get("layer"))])
        rows = bad + [r for r in recs if str(r.get("layer")) not in since]
        at = f" · stats at step {self._layers_step}" if self._layers_step is not None else ""
        title = f"{f.plural(len(recs), 'layer')} · {len(bad)} unhealthy{at}"
        table = layers_table_html(rows, self.max_rows, newest=self._newest_bad(), ordered=True, scroll=True)
        return f'<div class="nanwatch-report"><div class="nw-meta">{esc(title)}</div>{table}</div>'
