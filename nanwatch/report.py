"""The Report: what one watched run found, as data (schema 1) and as reprs.

The engine fills a Report; views only read it. `to_dict()` is the contract
(DESIGN.md, schema 1) shared with the sidebar, the static views and users.

Schema 1 (keys always present; values may be null/empty):
  schema: 1
  status: "healthy" | "warning" | "nonfinite" | "error"
  mode: "exact" | "fast"
  run: {id, cell, started, duration_s, nan_to_report_s, steps, epochs, stopped, notes: [str], error: str|None,
        watched: bool (False when TensorFlow is missing or too old: the cell ran, nothing was checked)}
  first_nonfinite: null | {
     op_type, op_name, output_slot, phase, layer, step, epoch,
     counts: {nan, pos_inf, neg_inf, size},
     inputs: [{name, op_type, finite, min, max, zeros, nan, pos_inf, neg_inf, size}],
     data: null | {source, batch, rows, columns, values, array_rows},
     source: null | {cell, cell_id, line, code, file, function},
     device, replica, context: "graph"|"eager", replayed: bool|None, reproduced: bool|None,
     histogram: null | {input, bins: [float], counts: [int]},
  }
  diagnosis: [{cause, confidence, evidence, fix}]   ranked, most likely first
  warnings:  [{cause, evidence, fix}]
  steps:  [{step, epoch, phase, loss, metrics: {name: float}, grad_norm}]
  layers: [{layer, weight_norm, grad_norm, activation_norm, min, max, mean, std,
            nan, inf, history: [{step, weight_norm, grad_norm, activation_norm}]}]
  info:   [str]   things worth knowing that are not alarms (e.g. skipped fp16 steps)
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 1
# Custom mime type of a report in a cell's outputs: the sidebar and the headless runner read it.
MIME_TYPE = "application/vnd.nanwatch.report.v1+json"
MAX_SAVED_POINTS = 300   # steps / history points kept in a saved notebook output
STATUSES = ("healthy", "warning", "nonfinite", "error")
PHASES = ("input", "forward", "loss", "backward", "optimizer", "metric")


def _thin(points: list, limit: int) -> list:
    """At most `limit` points, evenly spread, always keeping the last."""
    if len(points) <= limit:
        return list(points)
    stride = len(points) / float(limit - 1)
    picked = [points[int(i * stride)] for i in range(limit - 1)]
    return picked + [points[-1]]


def compact(data: dict, limit: int = MAX_SAVED_POINTS) -> dict:
    """The report dict with long series thinned, for saving in a notebook output."""
    out = dict(data)
    out["steps"] = _thin(data.get("steps", []), limit)
    out["layers"] = [dict(layer, history=_thin(layer.get("history", []), limit)) for layer in data.get("layers", [])]
    return out


def _json_safe(value: Any) -> Any:
    """Floats that JSON cannot carry (nan/inf) become strings, numpy scalars become Python."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float):
        if value != value:
            return "nan"
        if value in (float("inf"), float("-inf")):
            return "inf" if value > 0 else "-inf"
    return value


@dataclass
class Report:
    """One watched run. Mutable while the run goes on, then frozen by `finish()`."""

    mode: str = "exact"
    watched: bool = True
    cell: int | None = None
    status: str = "healthy"
    first_nonfinite: dict | None = None
    diagnosis: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    steps: list = field(default_factory=list)
    layers: list = field(default_factory=list)
    info: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    error: str | None = None
    stopped: bool = False
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    started: float = field(default_factory=time.time)
    duration_s: float | None = None
    nan_to_report_s: float | None = None   # from the failing step to the complete report
    figures: bool = True                    # draw matplotlib figures in the HTML view
    # Not in the schema: things the user can take back (fast mode's rewind).
    bad_batch: Any = None
    _pre_nan_weights: Any = None

    # --- filling -----------------------------------------------------------------
    def finish(self) -> "Report":
        if self.duration_s is None:
            self.duration_s = round(time.time() - self.started, 3)
        if self.error is not None and self.first_nonfinite is None:
            self.status = "error"
        elif self.first_nonfinite is not None:
            self.status = "nonfinite"
        elif self.warnings or any(d.get("cause") for d in self.diagnosis):
            self.status = "warning"
        else:
            self.status = "healthy"
        return self

    @property
    def found_nonfinite(self) -> bool:
        return self.first_nonfinite is not None

    def restore_weights(self, model) -> None:
        """Put back the weights `model` had before the step that went non-finite."""
        if self._pre_nan_weights is None:
            raise ValueError("this report holds no pre-NaN weights (no NaN found, or not a Keras fit step)")
        model.set_weights(self._pre_nan_weights)

    # --- the contract ---------------------------------------------------------------
    def to_dict(self) -> dict:
        steps = [s.get("step") for s in self.steps if s.get("step") is not None]
        epochs = [s.get("epoch") for s in self.steps if s.get("epoch") is not None]
        return _json_safe({
            "schema": SCHEMA_VERSION,
            "status": self.status,
            "mode": self.mode,
            "run": {
                "id": self.run_id,
                "cell": self.cell,
                "started": self.started,
                "duration_s": self.duration_s,
                "nan_to_report_s": self.nan_to_report_s,
                "steps": (max(steps) + 1) if steps else 0,
                "epochs": (max(epochs) + 1) if epochs else 0,
                "stopped": self.stopped,
                "notes": list(self.notes),
                "error": self.error,
                "watched": self.watched,
            },
            "first_nonfinite": copy.deepcopy(self.first_nonfinite),
            "diagnosis": copy.deepcopy(self.diagnosis),
            "warnings": copy.deepcopy(self.warnings),
            "steps": copy.deepcopy(self.steps),
            "layers": copy.deepcopy(self.layers),
            "info": list(self.info),
        })

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    # --- reprs (views render; the report only delegates) ------------------------------
    def to_text(self) -> str:
        from .views.text import render_text
        return render_text(self.to_dict())

    def to_html(self) -> str:
        from .views.html import render_html
        return render_html(self.to_dict(), figures=self.figures)

    def _repr_mimebundle_(self, include=None, exclude=None):
        data = self.to_dict()
        from .views.html import render_html
        from .views.text import render_text
        return {"text/plain": render_text(data), "text/html": render_html(data, figures=self.figures),
                MIME_TYPE: compact(data)}

    def __repr__(self) -> str:
        first = self.first_nonfinite or {}
        where = f" {first.get('op_type')} in {first.get('layer')!r} ({first.get('phase')})" if first else ""
        return f"<nanwatch Report {self.status}{where}>"
