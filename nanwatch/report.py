"""The Report: what one watched run found, as data (schema 1) and as reprs.

The engine fills a Report; views only read it. `to_dict()` is the contract shared with the
sidebar, the static views and users: its shape is nanwatch/schema.py (records, enums, limits),
published as docs/schema/report.v1.schema.json and described in docs/schema.md.
"""

from __future__ import annotations

import copy
import json
import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from .schema import MAX_SAVED_POINTS, SCHEMA_VERSION, Mode, Status, json_safe
from .series import BoundedSeries, step_series

# Custom mime type of a report in a cell's outputs: the sidebar and the headless runner read it.
MIME_TYPE = "application/vnd.nanwatch.report.v1+json"
# When set (the test suite sets it), every finished report is validated against schema 1 and one
# JSON line {run_id, valid, errors} is appended to this file (without jsonschema: valid null and the
# report itself, for the reader to validate): see tests/schema_validation.py.
SCHEMA_LOG_ENV = "NANWATCH_SCHEMA_LOG"


def _thin(points: list, limit: int) -> list:
    """At most `limit` points: the last third of them whole, the first non-finite ones with their
    neighbours (up to half), the rest evenly spread."""
    if len(points) <= limit:
        return list(points)
    n = len(points)
    keep = set(range(n - limit // 3, n))
    bad = [i for i, p in enumerate(points) if _nonfinite(p)]
    for i in bad[:limit // 6]:
        keep.update(j for j in (i - 1, i, i + 1) if 0 <= j < n)
    rest = max(limit - len(keep), 0)
    keep.update(int(k * n / rest) for k in range(rest))
    return [points[i] for i in sorted(keep)]


def _nonfinite(point) -> bool:
    """A record (JSON-safe: non-finite numbers as strings) holding a non-finite number."""
    values = list(point.values()) + list((point.get("metrics") or {}).values()) if isinstance(point, dict) else []
    return any(v in ("nan", "inf", "-inf") if isinstance(v, str) else isinstance(v, float) and v - v != 0.0
               for v in values)


def compact(data: dict, limit: int = MAX_SAVED_POINTS) -> dict:
    """The report dict with long series thinned, for saving in a notebook output."""
    out = dict(data)
    out["steps"] = _thin(data.get("steps", []), limit)
    out["layers"] = [dict(layer, history=_thin(layer.get("history", []), limit)) for layer in data.get("layers", [])]
    return out


@dataclass
class Report:
    """One watched run. Mutable while the run goes on, then frozen by `finish()`."""

    mode: str = Mode.EXACT.value
    watched: bool = True
    cell: int | None = None
    status: str = Status.HEALTHY.value
    first_nonfinite: dict | None = None
    diagnosis: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    # a bounded sample of the step records, every anomaly whole (nanwatch/series.py); a list works too
    steps: Any = field(default_factory=step_series)
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
    pre_nan_weights: Any = None   # the model's get_weights() before the failing step (restore_weights)

    # --- filling -----------------------------------------------------------------
    def finish(self) -> "Report":
        if self.duration_s is None:
            self.duration_s = round(time.time() - self.started, 3)
        if self.error is not None and self.first_nonfinite is None:
            self.status = Status.ERROR.value
        elif self.first_nonfinite is not None:
            self.status = Status.NONFINITE.value
        elif self.warnings or any(d.get("cause") for d in self.diagnosis):
            self.status = Status.WARNING.value
        else:
            self.status = Status.HEALTHY.value
        if os.environ.get(SCHEMA_LOG_ENV):
            self._log_schema_check(os.environ[SCHEMA_LOG_ENV])
        return self

    def _log_schema_check(self, path: str) -> None:
        """Validate to_dict() against schema 1 and log the verdict; never raises into the user's run."""
        try:
            from .schema_json import validate_report
            data = self.to_dict()
            try:
                errors = validate_report(data)
                entry = {"run_id": self.run_id, "valid": not errors, "errors": errors[:20]}
            except ImportError:   # no jsonschema here (e.g. an old-TensorFlow venv): the reader validates
                entry = {"run_id": self.run_id, "valid": None, "errors": [], "report": data}
            except Exception as exc:
                entry = {"run_id": self.run_id, "valid": False, "errors": [f"could not validate: {exc!r}"[:300]]}
            line = json.dumps(entry, default=str)
            with open(path, "a", encoding="utf-8") as f:
                f.write(line + "\n")
        except Exception:
            pass

    @property
    def found_nonfinite(self) -> bool:
        return self.first_nonfinite is not None

    def restore_weights(self, model) -> None:
        """Put back the weights `model` had before the step that went non-finite."""
        if self.pre_nan_weights is None:
            raise ValueError("this report holds no pre-NaN weights (no NaN found, or not a Keras fit step)")
        model.set_weights(self.pre_nan_weights)

    # --- the contract ---------------------------------------------------------------
    def to_dict(self) -> dict:
        records = list(self.steps)
        steps = [s.get("step") for s in records if s.get("step") is not None]
        epochs = [s.get("epoch") for s in records if s.get("epoch") is not None]
        run = {
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
        }
        if isinstance(self.steps, BoundedSeries):
            run["step_sampling"] = self.steps.sampling()
        return json_safe({
            "schema": SCHEMA_VERSION,
            "status": self.status,
            "mode": self.mode,
            "run": run,
            "first_nonfinite": copy.deepcopy(self.first_nonfinite),
            "diagnosis": copy.deepcopy(self.diagnosis),
            "warnings": copy.deepcopy(self.warnings),
            "steps": records,
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
