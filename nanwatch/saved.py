"""A report saved as JSON (`python -m nanwatch run SCRIPT.py --report PATH`, `Report.to_json()`), opened
again: `%nanwatch show PATH` displays it as a finished cell's report (text, HTML, the report payload
the sidebar reads)."""

from __future__ import annotations

import json
import os

from .options import UsageError
from .report import MIME_TYPE, compact
from .schema import SCHEMA_VERSION


class SavedReport:
    """A report dict read from a file, with the reprs of a live Report."""

    def __init__(self, data: dict, path: str | None = None):
        self.data = data
        self.path = path

    def to_dict(self) -> dict:
        return self.data

    def _repr_mimebundle_(self, include=None, exclude=None):
        from .views.html import render_html
        from .views.text import render_text
        return {"text/plain": render_text(self.data), "text/html": render_html(self.data),
                MIME_TYPE: compact(self.data)}

    def __repr__(self) -> str:
        return f"<nanwatch saved report {self.data.get('status')} from {self.path}>"


def load_report(path: str) -> SavedReport:
    """Read a schema 1 report file; a file that is not one is a UsageError saying why."""
    path = os.path.expanduser(path)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as exc:
        raise UsageError(f"cannot read the report {path!r}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise UsageError(f"{path!r} is not JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA_VERSION:
        raise UsageError(f"{path!r} is not a nanwatch report (schema {SCHEMA_VERSION})")
    try:
        from .schema_json import validate_report
        errors = validate_report(data)
    except ImportError:   # no jsonschema: shown as it is
        errors = []
    if errors:
        raise UsageError(f"{path!r} does not follow report schema {SCHEMA_VERSION}: " + "; ".join(errors[:3]))
    return SavedReport(data, path)
