"""Plain-text view of a report: the text/plain fallback for terminals, CI logs and any frontend
that cannot show HTML (and the text a saved notebook keeps next to the HTML).

Compact on purpose: the status line first, then only the sections the report fills.
"""

from __future__ import annotations

import textwrap

from ..numfmt import VIEW, fmt
from . import _format as f

_MAX_UNHEALTHY_LAYERS = 10


def render_text(report: dict) -> str:
    lines = [f"nanwatch: {f.headline(report)}", f"  {f.run_meta(report)}"]
    if report.get("status") == "healthy" and not report.get("first_nonfinite"):
        lines += _last_loss_lines(report)
    for section in (_first_lines, _diagnosis_lines, _warning_lines, _layer_lines):
        block = section(report)
        if block:
            lines += [""] + block
    lines += _bullets("Info", report.get("info"))
    lines += _bullets("Run notes", (report.get("run") or {}).get("notes"))
    return "\n".join(lines)


def _last_loss_lines(report: dict) -> list[str]:
    losses = [s for s in report.get("steps") or [] if f.num(s.get("loss")) is not None]
    if not losses:
        return []
    last = losses[-1]
    return [f"  last loss {fmt(last['loss'], VIEW)} at step {last.get('step')}"]


def _first_lines(report: dict) -> list[str]:
    first = report.get("first_nonfinite")
    if not first:
        return []
    op = f"{f.op_label(first)}  {first.get('op_name') or ''}".rstrip()
    if first.get("output_slot") is not None and first.get("op_type"):
        op += f"  (output {first['output_slot']})"
    rows = [("op", op), ("layer", first.get("layer") or "– (not inside a Keras layer)"),
            ("phase", first.get("phase") or "?"), ("when", f.when_text(first)),
            ("values", f.counts_text(first.get("counts")))]
    if f.context_text(first):
        rows.append(("where", f.context_text(first)))
    rows += [("input", f.input_text(i)) for i in (first.get("inputs") or [])[:8]]
    rows += f.data_lines(first.get("data"))
    rows += _source_rows(first.get("source"))
    return ["First non-finite tensor"] + [f"  {label + ':':<11} {text}" for label, text in rows]


def _source_rows(source: dict | None) -> list[tuple[str, str]]:
    if not source:
        return []
    rows = [("source", f.source_text(source))]
    if source.get("code"):
        rows.append(("code", str(source["code"]).strip()))
    return rows


def _diagnosis_lines(report: dict) -> list[str]:
    diagnosis = report.get("diagnosis") or []
    if not diagnosis:
        return []
    lines = ["Likely causes (most likely first)"]
    for rank, d in enumerate(diagnosis, 1):
        conf = f" ({round(100 * f.num(d['confidence']))}%)" if f.is_finite(d.get("confidence")) else ""
        lines.append(f"  {rank}. {d.get('cause')}{conf}")
        lines += _evidence_and_fix(d, indent=5)
    return lines


def _warning_lines(report: dict) -> list[str]:
    warnings = report.get("warnings") or []
    if not warnings:
        return []
    lines = ["Warnings"]
    for w in warnings:
        lines.append(f"  - {w.get('cause')}")
        lines += _evidence_and_fix(w, indent=4)
    return lines


def _evidence_and_fix(item: dict, indent: int) -> list[str]:
    pad = " " * indent
    lines = []
    if item.get("evidence"):
        lines += textwrap.wrap(str(item["evidence"]), width=96, initial_indent=pad + "evidence: ",
                               subsequent_indent=pad + "  ")
    if item.get("fix"):
        lines.append(pad + "fix:")
        lines += [pad + "    " + line for line in str(item["fix"]).rstrip().splitlines()]
    verdict = f.verdict_text(item)
    if verdict:
        lines += textwrap.wrap(verdict, width=96, initial_indent=pad + "    ", subsequent_indent=pad + "      ")
    return lines


def _layer_lines(report: dict) -> list[str]:
    bad = [r for r in report.get("layers") or [] if f.layer_unhealthy(r)]
    if not bad:
        return []
    lines = [f"Unhealthy layers ({len(bad)} of {len(report['layers'])})"]
    for rec in bad[:_MAX_UNHEALTHY_LAYERS]:
        fields = ", ".join(f"{k} {fmt(rec.get(k), VIEW)}" for k in f.layer_bad_fields(rec))
        lines.append(f"  {rec.get('layer')}: {fields}")
    if len(bad) > _MAX_UNHEALTHY_LAYERS:
        lines.append(f"  (+{len(bad) - _MAX_UNHEALTHY_LAYERS} more)")
    return lines


def _bullets(title: str, items: list | None) -> list[str]:
    if not items:
        return []
    return ["", title] + [f"  - {item}" for item in items]
