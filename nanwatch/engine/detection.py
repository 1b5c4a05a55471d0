"""Value objects the engine hands to the run: what went non-finite, and where.

A `Detection` is made once, by the part of the engine that saw the value (an eager check,
a graph check's error, a batch check, a weight read, the fast-mode sentinel's replay), and
never changed afterwards: refining one (a replay's numbers merged into a graph detection)
makes a new one with `dataclasses.replace`. A `StepFailure` is a Keras step that went
non-finite, with what the engine learned from replaying it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .frames import Where

_DEVICE_RE = re.compile(r"device:([A-Z]+):(\d+)")


@dataclass(frozen=True)
class OpRecord:
    """A graph op as it was traced (its check's error names it by index)."""
    op_type: str
    op_name: str
    slot: int
    dtype: str
    graph: str
    inputs: list          # [(tensor name, op type)]
    where: Where
    device: str = ""
    upstream: list = field(default_factory=list)   # unchecked producers [(op type, op name)], nearest first


@dataclass(frozen=True)
class Detection:
    """The first non-finite tensor and what is known about it."""
    context: str                  # schema.CONTEXTS: "graph" | "eager" | "data" | "constant" | "weights" | "sentinel"
    op_type: str | None
    op_name: str | None
    slot: int
    where: Where
    dtype: str | None = None
    kind: str | None = None       # from the check's message: "NaN", "Inf", "-Inf", ... (or the sentinel's reason)
    counts: dict | None = None
    inputs: list = field(default_factory=list)     # stats.health dicts
    histogram: dict | None = None
    data: dict | None = None
    consumer: dict | None = None  # for data origins: the op that first consumed the data
    gradient_of: bool = False     # the check of a gradient flowing into this op's output
    device: str | None = None
    output: object = None         # numpy array of the culprit output, when captured
    upstream: list = field(default_factory=list)   # unchecked producers the value may come from
    weight: tuple | None = None   # (layer, variable) when the value is a weight read
    notes: tuple = ()             # what the report should say about this origin (the where trap, ...)
    # a NaN/Inf born in a gradient: {"op_type": forward op, "source": its line, "forward_absorbed": bool}
    gradient_of_op: dict | None = None
    made_from: str | None = None  # "mask": the op made NaN out of an intended infinity (a -inf mask)
    replica: int | None = None    # the replica id in sync, when known (else read from the device)
    task: int | None = None       # the worker (task index) that made the value, under a multi-worker strategy
    step: int | None = None       # the step that made it, when found before the step it stops (held by a worker)
    # numpy values of the inputs of the op a fix would rewrite (for a gradient origin: the forward op's),
    # so that engine/verify.py can try the rewritten op on them; () when not recorded
    op_inputs: tuple = ()


@dataclass(frozen=True)
class StepFailure:
    """A Keras step that went non-finite: a graph check failed, or the fast-mode sentinel tripped.

    `detection` is None when the replay could not name an op; then `alarm` says whether the
    step is still an alarm (a NaN the replay did not reproduce) or not (finite gradients whose
    squares overflow, which the replay showed harmless)."""
    kind: str                     # schema.CallKind of the step
    step: int
    detection: Detection | None
    alarm: bool = True
    replayed: bool | None = None
    reproduced: bool | None = None
    notes: tuple = ()
    bad_batch: object = None      # the step's batch as numpy arrays (report.bad_batch)
    pre_step_weights: object = None   # model.get_weights() before the step, when the update was not applied
    detected_at: float | None = None  # time.perf_counter() when the step's failure was first seen
    benign: bool = False          # exact mode's check failed on a value the replay showed absorbed
    checked_op: str | None = None  # the op whose check failed (exact mode)


class NonFiniteFound(Exception):
    """Raised into the user's code to stop the run at the first non-finite tensor."""

    def __init__(self, detection: Detection | None):
        what = (detection.op_type if detection is not None else None) or "input data"
        super().__init__(f"nanwatch stopped the run: {what} produced a non-finite value")
        self.detection = detection


def replica_of(device: str | None) -> int | None:
    """`/job:localhost/replica:0/task:0/device:CPU:1` -> 1: the device index, which is the replica
    id under a one-machine strategy (MirroredStrategy places replica i on its i-th device)."""
    match = _DEVICE_RE.search(device or "")
    return int(match.group(2)) if match else None
