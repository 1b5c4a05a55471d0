"""Small formatting helpers shared by the text, HTML and panel views.

Report dicts carry non-finite floats as the strings "nan", "inf", "-inf" (JSON cannot hold
them), while live sink events may carry real floats; every view reads numbers through `num`
and prints them with `fmt(x, VIEW)` (nanwatch.numfmt), so both look the same to the user.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

from ..numfmt import VIEW, fmt, num  # num is re-exported: the views read report numbers as f.num


def is_finite(value: Any) -> bool:
    x = num(value)
    return x is not None and math.isfinite(x)


def is_nonfinite(value: Any) -> bool:
    """True only for a number that is NaN or ±Inf (None and text are not 'non-finite')."""
    x = num(value)
    return x is not None and not math.isfinite(x)


def counts_text(counts: dict | None) -> str:
    """'5 NaN, 2 -Inf of 100 values' (zero counts left out)."""
    counts = counts or {}
    parts = [f"{counts[k]} {label}" for k, label in (("nan", "NaN"), ("pos_inf", "+Inf"), ("neg_inf", "-Inf"))
             if counts.get(k)]
    text = ", ".join(parts) or "no non-finite values counted"
    if counts.get("size") is not None:
        text += f" of {counts['size']} values"
    return text


def nonfinite_kind(counts: dict | None) -> str:
    """'NaN', 'Inf' or 'NaN/Inf', from the culprit's counts."""
    counts = counts or {}
    has_nan = bool(counts.get("nan"))
    has_inf = bool(counts.get("pos_inf") or counts.get("neg_inf"))
    if has_nan and not has_inf:
        return "NaN"
    if has_inf and not has_nan:
        return "Inf"
    return "NaN/Inf"


def short_list(items: Iterable[Any], limit: int = 12) -> str:
    """'77, 78, 80 (+9 more)'."""
    items = list(items or [])
    shown = ", ".join(fmt(i, VIEW) if not isinstance(i, str) else i for i in items[:limit])
    more = len(items) - limit
    return shown + (f" (+{more} more)" if more > 0 else "")


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


# --- the parts of a report every view states the same way ---------------------------------

def op_label(first: dict) -> str:
    """The op's type; for a value that came in with the data (no op made it), the data's source."""
    if first.get("op_type"):
        return str(first["op_type"])
    data = first.get("data") or {}
    if data.get("source"):
        return f"no op: the data ({data['source']})"
    return "an op" if first.get("op_name") else "no op recorded"


def where_text(first: dict) -> str:
    """'Log in layer 'scorer' (loss phase)'."""
    text = op_label(first) if first.get("op_type") or (first.get("data") or {}).get("source") else "an op"
    if first.get("layer"):
        text += f" in layer '{first['layer']}'"
    if first.get("phase"):
        text += f" ({first['phase']} phase)"
    return text


def when_text(first: dict) -> str:
    text = f"step {first.get('step')}" if first.get("step") is not None else "an unknown step"
    if first.get("epoch") is not None:
        text += f" (epoch {first['epoch']})"
    return text


def headline(report: dict) -> str:
    """The one-line status every view starts with."""
    run = report.get("run") or {}
    status = report.get("status", "healthy")
    first = report.get("first_nonfinite")
    steps = plural(run.get("steps") or 0, "step")
    if run.get("watched") is False:
        notes = run.get("notes") or []
        text = f"not watched: {notes[0] if notes else 'nothing was checked'}"
        if status == "error":
            text += f" (the cell raised: {run.get('error') or 'an error'})"
    elif first:
        kind = nonfinite_kind(first.get("counts"))
        text = f"{kind} found at {when_text(first)}: {where_text(first)}"
    elif status == "error":
        text = f"error: {run.get('error') or 'the cell raised'} (after {steps}, no NaN/Inf seen)"
    elif status == "warning":
        n = len(report.get("warnings") or [])
        text = f"warning: no NaN/Inf in {steps}, but {plural(n, 'warning')}"
    else:
        text = f"healthy: {steps}, no NaN/Inf"
    return text


def run_meta(report: dict) -> str:
    """'exact mode · 12 steps · 1 epoch · 0.8 s · cell [12] · training stopped'."""
    run = report.get("run") or {}
    mode = "not watched" if run.get("watched") is False else f"{report.get('mode') or '?'} mode"
    parts = [mode, plural(run.get("steps") or 0, "step"),
             plural(run.get("epochs") or 0, "epoch")]
    if run.get("duration_s") is not None:
        parts.append(f"{fmt(run['duration_s'], VIEW, digits=3)} s")
    if run.get("cell") is not None:
        parts.append(f"cell [{run['cell']}]")
    if run.get("stopped"):
        parts.append("training stopped")
    return " · ".join(parts)


def source_text(source: dict | None) -> str:
    """'cell [12], line 4 (in train_step)'."""
    if not source:
        return "unknown"
    parts = []
    if source.get("cell") is not None:
        parts.append(f"cell [{source['cell']}]")
    elif source.get("file"):
        parts.append(str(source["file"]))
    if source.get("line") is not None:
        parts.append(f"line {source['line']}")
    text = ", ".join(parts) or "unknown"
    if source.get("function") and source["function"] != "<module>":
        text += f" (in {source['function']})"
    return text


def input_text(inp: dict) -> str:
    """'p (Softmax): finite, min 0, max 1, 3 zeros' for one input of the culprit op."""
    name = f"{inp.get('name') or '?'}"
    if inp.get("op_type"):
        name += f" ({inp['op_type']})"
    if inp.get("finite") is False:
        health = "NOT finite: " + counts_text({k: inp.get(k) for k in ("nan", "pos_inf", "neg_inf", "size")})
    elif inp.get("finite") is True:
        health = "finite"
    else:
        health = "health unknown"
    stats = [f"min {fmt(inp.get('min'), VIEW)}", f"max {fmt(inp.get('max'), VIEW)}"]
    if inp.get("zeros"):
        stats.append(plural(inp["zeros"], "zero"))
    return f"{name}: {health}, " + ", ".join(stats)


def context_text(first: dict) -> str:
    """'graph · /CPU:0 · replica 0 · replayed, reproduced' (only what is known)."""
    parts = [str(first[k]) for k in ("context", "device") if first.get(k)]
    if first.get("replica") is not None:
        parts.append(f"replica {first['replica']}")
    if first.get("task") is not None:
        parts.append(f"worker task {first['task']}")
    if first.get("replayed"):
        parts.append("replayed" + (", reproduced" if first.get("reproduced") else
                                   ", NOT reproduced" if first.get("reproduced") is False else ""))
    return " · ".join(parts)


def data_lines(data: dict | None) -> list[tuple[str, str]]:
    """(label, text) pairs describing the offending input rows/columns, when the data is to blame."""
    if not data:
        return []
    lines = []
    where = str(data.get("source") or "input")
    if data.get("batch") is not None:
        where += f", batch {data['batch']}"
    lines.append(("data", where))
    if data.get("array_rows"):
        lines.append(("rows", short_list(data["array_rows"]) + " (in your array)"))
    if data.get("rows"):
        lines.append(("batch rows" if data.get("array_rows") else "rows", short_list(data["rows"])))
    if data.get("columns"):
        lines.append(("columns", short_list(data["columns"])))
    if data.get("values"):
        lines.append(("values", short_list([str(v) for v in data["values"]])))
    return lines


# --- layers ----------------------------------------------------------------------------

LAYER_STATS = ("weight_norm", "grad_norm", "activation_norm", "min", "max", "mean", "std")


def layer_bad_fields(rec: dict) -> list[str]:
    """Which fields of a layer record show trouble: non-finite statistics or NaN/Inf counts."""
    bad = [k for k in LAYER_STATS if is_nonfinite(rec.get(k))]
    bad += [k for k in ("nan", "inf") if (num(rec.get(k)) or 0) > 0]
    return bad


def layer_unhealthy(rec: dict) -> bool:
    return bool(layer_bad_fields(rec))


def unhealthy_first(layers: list[dict]) -> list[dict]:
    """Unhealthy layers first, each group in model order."""
    return [r for r in layers if layer_unhealthy(r)] + [r for r in layers if not layer_unhealthy(r)]


# diagnosis[].verified (engine/verify.py) as the views say it, beside the fix
VERDICTS = {"true": "verified on the failing step", "false": "did not make the step finite", "not tried": "not tried"}


def verdict_text(item: dict) -> str:
    """'verified on the failing step: <what was run>', 'did not make the step finite: ...', 'not tried: <why>';
    '' for an entry without a verdict (a warning, an older report)."""
    label = VERDICTS.get(str(item.get("verified")))
    if label is None:
        return ""
    how = str(item.get("verified_how") or "")
    if how.startswith("not tried"):
        how = how[len("not tried"):].lstrip(" :")
    return f"{label}: {how}" if how else label
