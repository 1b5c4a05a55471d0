"""Static HTML view of a report: what stays in the cell output after the run.

Self-contained so that a saved notebook, nbconvert HTML, VS Code or GitHub shows it without
the extension: CSS inline and scoped under `.nanwatch-report`, figures as small data-URI PNGs,
no JavaScript, no external resources. Every string taken from the report goes through
`html.escape` (`esc`): op names, layer names, code and fixes come from user code and data.
The pieces (`first_card_html`, `diagnosis_html`, `layers_table_html`, ...) are reused by the
live panel so both views show a NaN the same way.
"""

from __future__ import annotations

import contextlib
import gc
import html

from ..numfmt import VIEW, fmt
from . import _format as f

STATIC_LAYER_ROWS = 20

# JupyterLab styles rendered HTML with selectors of two or three classes, e.g.
# `.jp-ThemedContainer .jp-RenderedHTMLCommon pre` (no padding, no background) and
# `:not(.jp-RenderedMarkdown).jp-RenderedHTMLCommon td` (right-aligned). Measured in JupyterLab
# 4.6: one scoping class loses to them. So `style_html` doubles the scoping class
# (`.nanwatch-report.nanwatch-report`) and table cells get a class of their own (`.nw-t`): equal
# specificity, and our <style>, later in the document than JupyterLab's, wins.
CSS = """
.nanwatch-report{font-family:var(--jp-ui-font-family,system-ui,-apple-system,sans-serif);font-size:13px;
 line-height:1.4;color:var(--jp-ui-font-color1,#1b1b1b);max-width:980px}
.nanwatch-report .nw-head{font-weight:600;padding:6px 10px;border-radius:4px;border-left:5px solid #888}
.nanwatch-report .nw-healthy{background:#e8f5e9;border-color:#2e7d32;color:#1b5e20}
.nanwatch-report .nw-warning{background:#fff8e1;border-color:#f9a825;color:#5d4300}
.nanwatch-report .nw-nonfinite,.nanwatch-report .nw-error{background:#fdecea;border-color:#c62828;color:#8e0000}
.nanwatch-report .nw-running{background:#e3f2fd;border-color:#1565c0;color:#0d3c78}
.nanwatch-report .nw-verified{font-size:12px;color:var(--jp-ui-font-color2,#666)}
.nanwatch-report .nw-verified-true{color:#2e7d32}.nanwatch-report .nw-verified-false{color:#c62828}
.nanwatch-report .nw-meta{color:var(--jp-ui-font-color2,#666);font-size:12px;margin:2px 0 6px 2px}
.nanwatch-report h4{margin:10px 0 4px;font-size:13px;font-weight:600}
.nanwatch-report .nw-t{border-collapse:collapse;font-size:12px;margin:0;table-layout:auto}
.nanwatch-report .nw-t td,.nanwatch-report .nw-t th{padding:2px 8px;text-align:left;vertical-align:top;
 line-height:1.4;border:none;border-bottom:1px solid var(--jp-border-color2,#e0e0e0)}
.nanwatch-report .nw-kv th{color:var(--jp-ui-font-color2,#555);font-weight:500;white-space:nowrap}
.nanwatch-report .nw-t .nw-num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.nanwatch-report code,.nanwatch-report pre{font-family:var(--jp-code-font-family,monospace);font-size:12px}
.nanwatch-report pre{background:var(--jp-layout-color2,#f5f5f5);padding:6px 8px;border-radius:3px;
 overflow-x:auto;margin:4px 0;white-space:pre}
.nanwatch-report pre code{background:transparent;padding:0;border:0}
.nanwatch-report .nw-bad{background:#fdecea;color:#b71c1c;font-weight:600}
.nanwatch-report .nw-newest{outline:2px solid #c62828;outline-offset:-2px}
.nanwatch-report .nw-dim{color:var(--jp-ui-font-color2,#777)}
.nanwatch-report .nw-figs{display:flex;flex-wrap:wrap;gap:8px}
.nanwatch-report .nw-figs img{max-width:100%;height:auto;border:1px solid var(--jp-border-color2,#e0e0e0)}
.nanwatch-report ol,.nanwatch-report ul{margin:2px 0;padding-left:22px}
.nanwatch-report .nw-scroll{max-height:300px;overflow:auto}
.nanwatch-report .nw-sparks{display:flex;flex-wrap:wrap;gap:4px 18px;margin:2px 0 4px}
.nanwatch-report .nw-spark svg{display:block}
"""


def esc(value) -> str:
    """`value` as HTML text (None -> ""); the live panel escapes through it too."""
    return html.escape("" if value is None else str(value), quote=True)


def style_html() -> str:
    css = " ".join(CSS.split()).replace("} ", "}").replace(".nanwatch-report", ".nanwatch-report.nanwatch-report")
    return f"<style>{css}</style>"


def render_html(report: dict, figures: bool = True, dpi: int = 80) -> str:
    parts = [style_html(), status_html(report)]
    parts.append(first_card_html(report.get("first_nonfinite")))
    parts.append(diagnosis_html(report.get("diagnosis")))
    parts.append(warnings_html(report.get("warnings")))
    if figures:
        parts.append(figures_html(report, dpi))
    parts.append(layers_section_html(report.get("layers")))
    parts.append(bullets_html("Info", report.get("info")))
    parts.append(bullets_html("Run notes", (report.get("run") or {}).get("notes")))
    status = esc(report.get("status") or "healthy")
    return f'<div class="nanwatch-report nw-report-{status}">' + "".join(p for p in parts if p) + "</div>"


def status_html(report: dict) -> str:
    status = report.get("status") or "healthy"
    return (f'<div class="nw-head nw-{esc(status)}">nanwatch: {esc(f.headline(report))}</div>'
            f'<div class="nw-meta">{esc(f.run_meta(report))}</div>')


def banner_html(status: str, text: str, meta: str = "") -> str:
    """A status line for the live panel (status: healthy, warning, nonfinite, error, running)."""
    meta_html = f'<div class="nw-meta">{esc(meta)}</div>' if meta else ""
    return f'<div class="nw-head nw-{esc(status)}">{esc(text)}</div>{meta_html}'


def _kv_table(rows: list[tuple[str, str]]) -> str:
    """rows: (label, already-escaped HTML)."""
    body = "".join(f"<tr><th>{esc(label)}</th><td>{value}</td></tr>" for label, value in rows)
    return f'<table class="nw-t nw-kv">{body}</table>'


def first_card_html(first: dict | None) -> str:
    """The first-NaN card: op, layer, phase, when, counts, inputs, data rows, source line."""
    if not first:
        return ""
    op = f"<b>{esc(f.op_label(first))}</b> <code>{esc(first.get('op_name') or '')}</code>"
    if first.get("output_slot") is not None and first.get("op_type"):
        op += f" output {esc(first['output_slot'])}"
    rows = [("op", op), ("layer", esc(first.get("layer") or "– (not inside a Keras layer)")),
            ("phase", esc(first.get("phase") or "?")), ("when", esc(f.when_text(first))),
            ("values", f'<span class="nw-bad">{esc(f.counts_text(first.get("counts")))}</span>')]
    if f.context_text(first):
        rows.append(("where", esc(f.context_text(first))))
    rows += [("input", _input_html(i)) for i in (first.get("inputs") or [])[:8]]
    rows += [(label, esc(text)) for label, text in f.data_lines(first.get("data"))]
    rows += _source_rows(first.get("source"))
    return f'<div class="nw-card"><h4>First non-finite tensor</h4>{_kv_table(rows)}</div>'


def _input_html(inp: dict) -> str:
    text = esc(f.input_text(inp))
    return f'<span class="nw-bad">{text}</span>' if inp.get("finite") is False else text


def _source_rows(source: dict | None) -> list[tuple[str, str]]:
    if not source:
        return []
    attrs = f' data-cell-id="{esc(source.get("cell_id"))}"' if source.get("cell_id") else ""
    if source.get("line") is not None:
        attrs += f' data-line="{esc(source["line"])}"'
    rows = [("source", f'<span class="nw-source"{attrs}>{esc(f.source_text(source))}</span>')]
    if source.get("code"):
        rows.append(("code", f"<code>{esc(str(source['code']).strip())}</code>"))
    return rows


def _evidence_fix_html(item: dict) -> str:
    out = f"<div>{esc(item['evidence'])}</div>" if item.get("evidence") else ""
    if item.get("fix"):
        out += f"<pre><code>{esc(str(item['fix']).rstrip())}</code></pre>"
    verdict = f.verdict_text(item)
    if verdict:
        out += f'<div class="nw-verified nw-verified-{esc(str(item.get("verified")).replace(" ", "-"))}">{esc(verdict)}</div>'
    return out


def diagnosis_html(diagnosis: list | None) -> str:
    """The ranked causes, each with its evidence and a copyable fix."""
    if not diagnosis:
        return ""
    items = []
    for d in diagnosis:
        conf = f.num(d.get("confidence"))
        conf_html = f' <span class="nw-dim">{round(100 * conf)}%</span>' if f.is_finite(conf) else ""
        items.append(f"<li><b>{esc(d.get('cause'))}</b>{conf_html}{_evidence_fix_html(d)}</li>")
    return f'<div class="nw-diagnosis"><h4>Likely causes (most likely first)</h4><ol>{"".join(items)}</ol></div>'


def warnings_html(warnings: list | None) -> str:
    if not warnings:
        return ""
    items = "".join(f"<li><b>{esc(w.get('cause'))}</b>{_evidence_fix_html(w)}</li>" for w in warnings)
    return f'<div class="nw-warnings"><h4>Warnings</h4><ul>{items}</ul></div>'


def bullets_html(title: str, items: list | None) -> str:
    if not items:
        return ""
    return f"<h4>{esc(title)}</h4><ul>" + "".join(f"<li>{esc(i)}</li>" for i in items) + "</ul>"


@contextlib.contextmanager
def gc_deferred():
    """Python's full garbage collection walks every object in the process (~400k once TensorFlow
    and Keras have traced a model) and took 0.2-1.7 s here; matplotlib allocates enough to set off
    the one a fit has made due, in the middle of the report. Hold it while the figures are drawn;
    it runs at the next allocation after, as it would have. The user's setting comes back."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def figures_html(report: dict, dpi: int = 80) -> str:
    try:
        from .figures import figure_to_png_b64, report_figures  # matplotlib only when figures are wanted
        with gc_deferred():
            figs = report_figures(report)
            imgs = [(d, figure_to_png_b64(fig, dpi=dpi)) for d, fig in figs]
    except Exception as exc:  # a broken figure must not cost the user the whole report
        return f'<div class="nw-dim">figures unavailable: {esc(type(exc).__name__)}: {esc(exc)}</div>'
    if not imgs:
        return ""
    tags = "".join(f'<img src="data:image/png;base64,{b64}" alt="{esc(d)}">' for d, b64 in imgs)
    return f'<div class="nw-figs">{tags}</div>'


# --- the layer table (static report and live panel) ------------------------------------------

_COLUMNS = (("weight_norm", "weights ‖·‖"), ("grad_norm", "grads ‖·‖"), ("activation_norm", "act ‖·‖"),
            ("min", "min"), ("max", "max"), ("mean", "mean ± std"), ("nan", "NaN"), ("inf", "Inf"))


def _columns(layers: list[dict]) -> list[tuple[str, str]]:
    """Only the columns some layer has a value for ('as available')."""
    return [(k, label) for k, label in _COLUMNS if any(r.get(k) is not None for r in layers)]


def _cell(rec: dict, key: str, newest: tuple | None) -> str:
    value = fmt(rec.get(key), VIEW)
    if key == "mean" and rec.get("std") is not None:
        value += f" ± {fmt(rec.get('std'), VIEW)}"
    bad = set(f.layer_bad_fields(rec))
    classes = ["nw-num"]
    if key in bad or (key == "mean" and "std" in bad):
        classes.append("nw-bad")
    if newest == (rec.get("layer"), key):
        classes.append("nw-newest")
    return f'<td class="{" ".join(classes)}">{esc(value)}</td>'


def layers_table_html(layers: list[dict], max_rows: int = STATIC_LAYER_ROWS, newest: tuple | None = None,
                      ordered: bool = False, scroll: bool = False) -> str:
    """Per-layer statistics, unhealthy layers first, at most `max_rows` rows then '+N more'.

    newest: (layer, field) of the most recent unhealthy value, outlined. ordered: the caller
    already sorted the layers. scroll: cap the height (the live panel); a static report shows
    all its rows so that screenshots and printouts keep them.
    """
    if not layers:
        return ""
    rows = layers if ordered else f.unhealthy_first(layers)
    cols = _columns(layers)
    head = "<tr><th>layer</th>" + "".join(f'<th class="nw-num">{esc(label)}</th>' for _, label in cols) + "</tr>"
    body = "".join(
        f'<tr><td>{esc(r.get("layer"))}</td>' + "".join(_cell(r, k, newest) for k, _ in cols) + "</tr>"
        for r in rows[:max_rows])
    more = _more_layers_html(rows[max_rows:], len(cols) + 1)
    table = f'<table class="nw-t nw-layers">{head}{body}{more}</table>'
    return f'<div class="nw-scroll">{table}</div>' if scroll else table


def _more_layers_html(hidden: list[dict], span: int) -> str:
    if not hidden:
        return ""
    bad = sum(1 for r in hidden if f.layer_unhealthy(r))
    what = f"{bad} unhealthy" if bad else "all healthy"
    return f'<tr><td class="nw-dim" colspan="{span}">+{len(hidden)} more layers ({what})</td></tr>'


def layers_section_html(layers: list | None) -> str:
    if not layers:
        return ""
    bad = sum(1 for r in layers if f.layer_unhealthy(r))
    title = f"Layers ({len(layers)}, {bad} unhealthy)" if bad else f"Layers ({len(layers)}, all healthy)"
    return f"<h4>{esc(title)}</h4>" + layers_table_html(layers)
