"""Schema 1 of the report and of the sidebar's comm messages, written once.

Python (report.py, comm.py, diagnosis), the JSON Schemas in docs/schema/ (generated from this
module by scripts/gen_schema.py) and the TypeScript sidebar (checked against those files by jest)
all take their enums, cause ids and limits from here, so the copies cannot drift apart again.
Standard library only: no TensorFlow, no numpy, no jsonschema at import time.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

SCHEMA_VERSION = 1
PROTOCOL_VERSION = 1


class _StrEnum(str, Enum):
    """A str enum whose members compare and serialise as their value."""

    def __str__(self) -> str:
        return self.value

    @classmethod
    def values(cls) -> tuple:
        return tuple(m.value for m in cls)


class Status(_StrEnum):
    """`report.status`: what the run found, worst first wins (see Report.finish)."""
    HEALTHY = "healthy"
    WARNING = "warning"
    NONFINITE = "nonfinite"
    ERROR = "error"


class Mode(_StrEnum):
    """`report.mode`: how the run was checked (decided before `run_started` is sent)."""
    EXACT = "exact"
    FAST = "fast"


class OpPhase(_StrEnum):
    """`first_nonfinite.phase`: the part of a step the first non-finite op belongs to."""
    INPUT = "input"
    FORWARD = "forward"
    LOSS = "loss"
    BACKWARD = "backward"
    OPTIMIZER = "optimizer"
    METRIC = "metric"


class CallKind(_StrEnum):
    """`steps[].phase` (key kept for schema-1 compatibility): the kind of call a step belongs to."""
    TRAIN = "train"
    EVALUATE = "evaluate"
    PREDICT = "predict"


# `first_nonfinite.context`: where the detection came from (engine/probe.py Detection.context,
# session.py): a checked graph op, an eager op, a data batch, non-finite weights, fast mode's sentinel.
CONTEXTS = ("graph", "eager", "data", "weights", "sentinel")

# Every `cause` id of `diagnosis[]` and `warnings[]`: diagnosis.CAUSES, plus the warning diagnose()
# emits when it cannot read its evidence.
CAUSE_IDS = ("nan_in_input", "inf_in_input", "nan_in_target", "inf_in_target", "nan_in_weights",
             "log_of_nonpositive", "sqrt_of_negative", "division_by_zero", "exp_overflow", "float16_overflow",
             "exploding_gradients", "learning_rate_too_high", "unscaled_input", "outlier_input",
             "placeholder_values", "zero_variance_normalization", "large_initial_weights",
             "outlier_target", "input_drift",
             "diagnosis_error")

# Limits shared by the kernel and the sidebar (exported to the JSON Schemas as "x-nanwatch-limits").
MAX_RUNS = 50             # reports kept in kernel memory (and in the sidebar) for late frontends
MAX_STEPS = 500           # step records kept per run for the sidebar (the Report keeps all)
MAX_HISTORY = 200         # history entries kept per layer for the sidebar
MAX_PROGRESS_STEPS = 200  # step records carried by one progress message
MAX_SAVED_POINTS = 300    # steps / history points kept in a saved notebook output
MAX_INCOMING_CHARS = 4096  # largest frontend -> kernel message the kernel reads
# Bounds of the sidebar's defensive parser (a report from a kernel is still untrusted input there).
MAX_LAYERS = 500
MAX_ROWS = 200
MAX_STRING = 4000
MAX_LIST = 1000

LIMITS = {name: globals()[name] for name in (
    "MAX_RUNS", "MAX_STEPS", "MAX_HISTORY", "MAX_PROGRESS_STEPS", "MAX_SAVED_POINTS", "MAX_INCOMING_CHARS",
    "MAX_LAYERS", "MAX_ROWS", "MAX_STRING", "MAX_LIST")}


def json_safe(value: Any) -> Any:
    """Floats JSON cannot carry (nan/inf) become strings, numpy scalars become Python, tuples lists."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float):
        if value != value:
            return "nan"
        if value in (float("inf"), float("-inf")):
            return "inf" if value > 0 else "-inf"
    return value
