"""Matplotlib figures of a report: loss per step, per-layer gradient norms, the culprit's inputs.

Rendered with the Agg canvas on `matplotlib.figure.Figure` objects made directly, never through
pyplot: the user's notebook has its own pyplot state (current figure, backend, inline hooks)
and a report must not add figures to it or change its backend. Each builder returns None when
the report lacks the data, so callers can simply skip that figure.
"""

from __future__ import annotations

import base64
import io
import math

from matplotlib import ticker
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from . import _format as f

FIGSIZE = (4.4, 2.5)
WIDE_FIGSIZE = (5.8, 2.5)  # room for the layer legend on the right
NAN_COLOR = "#c62828"
TOP_LAYERS = 8


# Fixed margins (fractions of the figure), not a layout engine: constrained layout measured every
# text twice and took about a third of the NaN-to-report time (issue 14 asks for <= 1 s).
MARGINS = dict(left=0.15, bottom=0.18, top=0.9, right=0.97)
WIDE_RIGHT = 0.72   # the wide figure keeps its right side for the legend


def _new_figure(figsize: tuple[float, float] = FIGSIZE) -> tuple[Figure, object]:
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(**dict(MARGINS, right=MARGINS["right"] if figsize == FIGSIZE else WIDE_RIGHT))
    ax = fig.add_subplot()
    ax.tick_params(which="both", labelsize=7)
    ax.grid(True, alpha=0.3, linewidth=0.5)
    return fig, ax


def _nan_step(report: dict) -> int | None:
    """The step to mark: the culprit's step, else the first step whose loss is not finite."""
    first = report.get("first_nonfinite") or {}
    if first.get("step") is not None:
        return first["step"]
    for s in report.get("steps") or []:
        if f.is_nonfinite(s.get("loss")):
            return s.get("step")
    return None


def _mark_nan_step(ax, step: int | None, kind: str = "NaN/Inf") -> None:
    """A dashed vertical line at `step`, labelled on the side where the label fits."""
    if step is None:
        return
    ax.axvline(step, color=NAN_COLOR, linestyle="--", linewidth=1, label=f"first {kind}: step {step}")
    lo, hi = ax.get_xlim()
    left = step > (lo + hi) / 2
    ax.annotate(f"{kind} @ step {step}", xy=(step, 1), xycoords=("data", "axes fraction"),
                xytext=(-3 if left else 3, -10), textcoords="offset points", ha="right" if left else "left",
                color=NAN_COLOR, fontsize=7)


def _set_title(ax, text: str) -> None:
    """A title at a fixed height: matplotlib's automatic placement measures every tick label."""
    ax.set_title(text, fontsize=9, y=1.0, pad=4)


def _log_y(ax) -> None:
    """Log scale with plain-text tick labels ("1e-03"): the default mathtext labels are parsed
    and typeset one by one, the slowest part of drawing these small figures."""
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(ticker.LogFormatter(labelOnlyBase=False))
    ax.yaxis.set_minor_formatter(ticker.LogFormatter(labelOnlyBase=False, minor_thresholds=(1, 0.4)))


def _use_log_scale(values: list[float]) -> bool:
    positive = [v for v in values if v > 0]
    return len(positive) == len(values) and bool(values) and max(values) / min(values) > 1e3


def loss_figure(report: dict) -> Figure | None:
    """Loss per step (one line per phase), the first NaN/Inf step marked by a vertical line."""
    by_phase: dict[str, tuple[list, list]] = {}
    for s in report.get("steps") or []:
        loss = f.num(s.get("loss"))
        if s.get("step") is None or loss is None or not math.isfinite(loss):
            continue
        xs, ys = by_phase.setdefault(str(s.get("phase") or "train"), ([], []))
        xs.append(s["step"])
        ys.append(loss)
    if not by_phase:
        return None
    fig, ax = _new_figure()
    for phase, (xs, ys) in by_phase.items():
        ax.plot(xs, ys, linewidth=1, label=f"loss ({phase})" if len(by_phase) > 1 else "loss")
    if _use_log_scale([y for _, ys in by_phase.values() for y in ys]):
        _log_y(ax)
    kind = f.nonfinite_kind((report.get("first_nonfinite") or {}).get("counts"))
    _mark_nan_step(ax, _nan_step(report), kind)
    ax.set_xlabel("step", fontsize=8)
    ax.set_ylabel("loss", fontsize=8)
    _set_title(ax, "Loss per step")
    ax.legend(fontsize=7, loc="best")
    return fig


def _grad_history(layer: dict) -> tuple[list, list, bool]:
    """(steps, finite positive grad norms, whether any grad norm was non-finite)."""
    xs, ys, broken = [], [], False
    for h in layer.get("history") or []:
        g = f.num(h.get("grad_norm"))
        if g is None or h.get("step") is None:
            continue
        if not math.isfinite(g):
            broken = True
        elif g > 0:
            xs.append(h["step"])
            ys.append(g)
    return xs, ys, broken


def grad_norm_figure(report: dict) -> Figure | None:
    """Per-layer gradient norm over steps (log scale), the top layers by largest norm."""
    series = []
    for layer in report.get("layers") or []:
        xs, ys, broken = _grad_history(layer)
        if xs:
            series.append(((broken, max(ys)), str(layer.get("layer")), xs, ys, broken))
    if not series:
        return None
    series.sort(key=lambda item: item[0], reverse=True)
    fig, ax = _new_figure(WIDE_FIGSIZE)
    for _, name, xs, ys, broken in series[:TOP_LAYERS]:
        ax.plot(xs, ys, linewidth=1, label=_short(name, 22) + (" (non-finite)" if broken else ""))
    _log_y(ax)
    _mark_nan_step(ax, _nan_step(report))
    shown = min(TOP_LAYERS, len(series))
    title = "Gradient norm per layer" + (f" (top {shown} of {len(series)})" if len(series) > shown else "")
    _set_title(ax, title)
    ax.set_xlabel("step", fontsize=8)
    ax.set_ylabel("gradient norm (log)", fontsize=8)
    fig.legend(fontsize=6, loc="outside right upper")
    return fig


def _short(text: str, limit: int) -> str:
    """A label that fits the legend's fixed column (the figure has fixed margins)."""
    return text if len(text) <= limit else "…" + text[-(limit - 1):]


def _edges_and_widths(bins: list[float], n: int) -> tuple[list[float], list[float]] | None:
    """Left edges and widths: `bins` holds n+1 edges (numpy style) or n centres."""
    if len(bins) == n + 1:
        return bins[:-1], [b - a for a, b in zip(bins[:-1], bins[1:])]
    if len(bins) == n and n > 0:
        width = (bins[-1] - bins[0]) / (n - 1) if n > 1 else 1.0
        return [b - width / 2 for b in bins], [width] * n
    return None


def input_histogram_figure(report: dict) -> Figure | None:
    """Histogram of the culprit op's input values (first_nonfinite.histogram), one bar per bin."""
    first = report.get("first_nonfinite") or {}
    hist = first.get("histogram") or {}
    bins = [f.num(b) for b in hist.get("bins") or []]
    counts = [f.num(c) or 0 for c in hist.get("counts") or []]
    if not counts or any(b is None or not math.isfinite(b) for b in bins):
        return None
    geometry = _edges_and_widths(bins, len(counts))
    if geometry is None:
        return None
    fig, ax = _new_figure()
    lefts, widths = geometry
    ax.bar(lefts, counts, width=widths, align="edge", color="#1f77b4", edgecolor="white", linewidth=0.4)
    name = f"{hist['input']} " if hist.get("input") else ""
    _set_title(ax, f"Input {name}of {first.get('op_type') or 'the op'}")
    ax.set_xlabel("value", fontsize=8)
    ax.set_ylabel("count", fontsize=8)
    _note_left_out(ax, _left_out_text(first, hist))
    return fig


def _left_out_text(first: dict, hist: dict) -> str | None:
    """The histogram holds finite values only: which non-finite ones it leaves out, if any."""
    for inp in first.get("inputs") or []:
        if hist.get("input") and inp.get("name") == hist["input"] and inp.get("finite") is False:
            return "not shown: " + f.counts_text({k: inp.get(k) for k in ("nan", "pos_inf", "neg_inf")})
    if hist.get("nonfinite"):
        return f"not shown: {hist['nonfinite']} non-finite"
    return None


def _note_left_out(ax, text: str | None) -> None:
    if text:
        ax.text(0.98, 0.95, text, transform=ax.transAxes, ha="right", va="top", fontsize=7, color=NAN_COLOR)


def figure_to_png_b64(fig: Figure, dpi: int = 80) -> str:
    """The figure as a base64 PNG (ASCII), for a data: URI. Low dpi keeps notebooks small."""
    buf = io.BytesIO()
    FigureCanvasAgg(fig)
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return base64.b64encode(buf.getvalue()).decode("ascii")


def report_figures(report: dict) -> list[tuple[str, Figure]]:
    """(description, figure) for each figure the report has data for, in display order."""
    builders = (("loss per step", loss_figure), ("gradient norm per layer", grad_norm_figure),
                ("histogram of the culprit op's input", input_histogram_figure))
    out = []
    for description, build in builders:
        fig = build(report)
        if fig is not None:
            out.append((description, fig))
    return out
