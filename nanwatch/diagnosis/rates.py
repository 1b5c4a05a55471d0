"""The learning rate the optimizer actually used, step by step, from the evidence (TensorFlow-free).

The engine records `Evidence.learning_rates`, [[train step, rate], ...]: the rate in force from that step
on (every step under a schedule; the first step, each epoch's first step and the failing step otherwise),
and in `Evidence.optimizer` the rate when the model was first seen (`learning_rate`) and when the value
went non-finite (`learning_rate_at_failure`). A learning rate is a schedule's value at the optimizer's
iteration, or a variable a callback sets (ReduceLROnPlateau): never the constructor's argument alone.
"""

from __future__ import annotations

import math

from ..numfmt import num


def series(learning_rates, optimizer: dict | None = None, failing_step=None) -> list:
    """[(step, rate)] sorted by step, finite rates only; the optimizer's rates fill in when the engine
    recorded none (a dict built by hand, an old caller)."""
    out = {}
    for item in learning_rates or []:
        if isinstance(item, (list, tuple)) and len(item) == 2:
            step, rate = num(item[0]), num(item[1])
            if step is not None and rate is not None and math.isfinite(rate):
                out[int(step)] = rate
    opt = optimizer or {}
    if out:
        return sorted(out.items())
    first = num(opt.get("learning_rate"))
    if first is not None and math.isfinite(first):
        out[0] = first
    at_failure = num(opt.get("learning_rate_at_failure"))
    if failing_step is not None and at_failure is not None and math.isfinite(at_failure):
        out[int(failing_step)] = at_failure
    return sorted(out.items())


def rate_at(points: list, step) -> float | None:
    """The rate in force at `step` (the last point at or before it; the first point before any)."""
    if not points:
        return None
    found = points[0][1]
    for s, rate in points:
        if step is not None and s > step:
            break
        found = rate
    return found


def summary(points: list, horizon=None) -> dict:
    """{lr_start, lr_start_step, lr_used, lr_used_step, lr_growth, lr_varies, lr_min} over steps <= horizon
    (the failing step, or the end): lr_used is the largest rate in force, lr_growth lr_used / lr_start."""
    upto = [(s, r) for s, r in points if horizon is None or s <= horizon] or points[:1]
    out = {"lr_start": None, "lr_start_step": None, "lr_used": None, "lr_used_step": None, "lr_growth": None,
           "lr_varies": False, "lr_min": None}
    if not upto:
        return out
    start_step, start = upto[0]
    used_step, used = max(upto, key=lambda p: (p[1], -p[0]))
    out.update(lr_start=start, lr_start_step=start_step, lr_used=used, lr_used_step=used_step,
               lr_min=min(r for _, r in upto), lr_varies=len({r for _, r in upto}) > 1)
    if start > 0:
        out["lr_growth"] = used / start
    return out
