"""Schema 1 as JSON Schema: built from the typed records of nanwatch/schema.py, and checked against.

Its four public functions (report_json_schema, comm_json_schema, validate_report, validate_message)
are imported from here (nanwatch.schema stays free of them, so the two do not import each other):
the records (TypedDicts), enums and limits of schema.py become JSON Schema 2020-12 documents
(scripts/gen_schema.py writes them to docs/schema/). Standard library only, except validation,
which imports the jsonschema package when first used (test time).
"""

from enum import Enum
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints, is_typeddict

from .schema import (CAUSE_TITLES, FRONTEND_MESSAGES, KERNEL_MESSAGES, LIMITS, MESSAGE_TYPES, PROTOCOL_VERSION,
                     CallKind, CauseId, Context, Mode, OpPhase, Report, Status)

_FLOAT = {"anyOf": [{"type": "number"}, {"enum": ["nan", "inf", "-inf"]}],
          "description": "a float; NaN and +-Inf travel as the strings 'nan', 'inf', '-inf' (json_safe)"}
_SIMPLE = {bool: "boolean", int: "integer", str: "string", type(None): "null"}


class _Builder:
    """Turns type hints into JSON Schema, collecting records and enums as $defs."""

    def __init__(self):
        self.defs: dict = {"float": _FLOAT}

    def type(self, tp: Any) -> dict:
        origin, args = get_origin(tp), get_args(tp)
        if origin is Annotated:
            return dict(self.type(args[0]), **{k: v for meta in args[1:] for k, v in meta.items()})   # Doc()
        if origin in (Union, UnionType):
            parts = [self.type(a) for a in args]
            if all(list(p) == ["type"] and isinstance(p["type"], str) for p in parts):
                return {"type": [p["type"] for p in parts]}   # e.g. ["integer", "null"]
            return {"anyOf": parts}
        if origin is Literal:
            return {"const": args[0]} if len(args) == 1 else {"enum": list(args)}
        if origin is list:
            return {"type": "array", "items": self.type(args[0])}
        if origin is dict:
            return {"type": "object", "additionalProperties": self.type(args[1])}
        if isinstance(tp, type) and issubclass(tp, Enum):
            self.defs.setdefault(tp.__name__, {"type": "string", "enum": [m.value for m in tp],
                                               "description": (tp.__doc__ or "").strip()})
            return {"$ref": f"#/$defs/{tp.__name__}"}
        if is_typeddict(tp):
            if tp.__name__ not in self.defs:
                self.defs[tp.__name__] = {}   # placeholder: records may refer to each other
                self.defs[tp.__name__] = self.record(tp)
            return {"$ref": f"#/$defs/{tp.__name__}"}
        if tp is float:
            return {"$ref": "#/$defs/float"}
        if tp in _SIMPLE:
            return {"type": _SIMPLE[tp]}
        raise TypeError(f"no JSON Schema for {tp!r}")

    def record(self, td: type) -> dict:
        hints = get_type_hints(td, include_extras=True)
        props = {name: self.type(tp) for name, tp in hints.items()}
        return {"type": "object", "description": (td.__doc__ or "").strip(), "properties": props,
                "required": [n for n in hints if n in td.__required_keys__], "additionalProperties": False}


def _document(title: str, roots: dict, top: dict) -> dict:
    builder = _Builder()
    for enum in (Status, Mode, OpPhase, CallKind, Context, CauseId):
        builder.type(enum)
    refs = {key: builder.type(tp) for key, tp in roots.items()}
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"https://nanwatch.invalid/schema/{title}.v1.schema.json", "title": f"nanwatch {title}, schema 1",
            "description": "Generated from nanwatch/schema.py by scripts/gen_schema.py: do not edit.",
            **top(refs), "x-nanwatch-limits": dict(LIMITS), "x-nanwatch-cause-titles": dict(CAUSE_TITLES),
            "$defs": dict(sorted(builder.defs.items()))}


def report_json_schema() -> dict:
    """The JSON Schema of `Report.to_dict()` (docs/schema/report.v1.schema.json)."""
    return _document("report", {"report": Report}, lambda refs: dict(refs["report"]))


def comm_json_schema() -> dict:
    """The JSON Schema of the comm messages (docs/schema/comm.v1.schema.json): any one message."""
    return _document("comm", MESSAGE_TYPES, lambda refs: {
        "oneOf": list(refs.values()), "x-nanwatch-protocol-version": PROTOCOL_VERSION,
        "x-nanwatch-messages": {side: {t: refs[t]["$ref"] for t, m in MESSAGE_TYPES.items() if m in group}
                                for side, group in (("kernel_to_frontend", KERNEL_MESSAGES),
                                                    ("frontend_to_kernel", FRONTEND_MESSAGES))}})


# validation (test time: needs the jsonschema package, imported only here)

_validators: dict = {}


def _leaves(error: Any) -> list:
    """The errors that say why: inside anyOf branches, except the `null` alternative."""
    branches = [c for c in error.context or () if not (c.validator == "type" and c.validator_value == "null")]
    return [leaf for c in branches for leaf in _leaves(c)] if branches else [error]


def _errors(key: str, value: Any) -> list[str]:
    if key not in _validators:
        import jsonschema
        whole = report_json_schema() if key == "report" else comm_json_schema()
        schema = whole if key == "report" else dict(whole, oneOf=[{"$ref": f"#/$defs/{key}"}])
        _validators[key] = jsonschema.Draft202012Validator(schema)
    out = []
    for error in (leaf for e in _validators[key].iter_errors(value) for leaf in _leaves(e)):
        message = error.message if len(error.message) <= 200 else f"fails {error.validator} {error.validator_value!r}"
        out.append(f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {message}"[:300])
    return sorted(set(out))


def validate_report(report: Any) -> list[str]:
    """What is wrong with `report` (a `Report.to_dict()`) against schema 1; [] when valid."""
    return _errors("report", report)


def validate_message(message: Any) -> list[str]:
    """What is wrong with one comm message (either direction) against comm schema 1; [] when valid."""
    kind = message.get("type") if isinstance(message, dict) else None
    if kind not in MESSAGE_TYPES:
        return [f"<root>: not a message of comm schema 1 (type {kind!r})"]
    return _errors(MESSAGE_TYPES[kind].__name__, message)
