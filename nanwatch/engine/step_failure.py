"""A Keras step that went non-finite, investigated: its batch kept, the pre-step weights kept
when the update was not applied, the step replayed eagerly with every op checked, and what
the replay showed merged into one StepFailure for the run to record.

Two ways in, one investigation: a graph check of exact mode failed (the op is known, the
replay adds its numbers), or fast mode's sentinel tripped (the replay finds the op).
"""

from __future__ import annotations

import dataclasses
import time

from .batches import numpy_structure
from .detection import Detection, StepFailure, replica_of
from .replay import merge_replay, replay_step

WEIGHTS_WRITTEN = "an update that wrote non-finite weights (put back)"   # the sentinel's reason (keras_steps)


def _pre_step_weights(model, probe):
    with probe.paused():
        return model.get_weights()


def graph_failure(model, kind, data, step, detection: Detection, probe, replay: bool) -> StepFailure:
    """Exact mode: a check in the step's graph failed on `detection`'s op."""
    detected_at = time.perf_counter()
    notes = []
    bad_batch = numpy_structure(data)
    weights = _pre_step_weights(model, probe) if kind == "train" else None
    replayed = None
    absorbed_before = probe.eager.absorb_events
    if replay:
        try:
            replayed = replay_step(model, kind, data, probe, replica=replica_of(detection.device))
        except Exception as exc:
            notes.append(f"the eager replay of the failing step raised {type(exc).__name__}: {str(exc)[:200]}")
        else:
            if replayed is None and probe.eager.absorb_events > absorbed_before:
                # the value the check stopped at was absorbed: no harm reached the training
                return StepFailure(kind=kind, step=step, detection=None, alarm=False, replayed=True,
                                   reproduced=False, benign=True, checked_op=detection.op_type,
                                   bad_batch=None, pre_step_weights=None, detected_at=None)
    upstream = list(detection.upstream)
    detection, reproduced = merge_replay(detection, replayed)
    if replay and not reproduced:
        notes.append("the eager replay of the failing step did not reproduce the same op "
                     "(random ops such as dropout draw anew); counts and input values are not available.")
    if upstream and not reproduced:
        chain = " <- ".join(f"{op} ({name})" for op, name in upstream)
        notes.append(f"the check that failed follows {chain}, left unchecked so that TensorFlow "
                     f"fuses them as in an unwatched run; the non-finite value may have come from "
                     f"{'one of them' if len(upstream) > 1 else 'it'} rather than from {detection.op_type}.")
    return StepFailure(kind=kind, step=step, detection=detection, replayed=replay,
                       reproduced=reproduced if replay else None, notes=tuple(notes), bad_batch=bad_batch,
                       pre_step_weights=weights, detected_at=detected_at)


def sentinel_trip(model, kind, data, step, reason: str, where, probe, replay: bool, update_skipped: bool,
                  alarm: bool, detected_at: float, replicas=(None,)) -> StepFailure:
    """Fast mode: the step's verdict was non-finite (`reason`); `where` is the user's call line.
    Under a strategy the replay runs one replica's shard: each of `replicas` in turn until one
    reproduces it (the sentinel's per-replica verdict puts the failing one first)."""
    notes = []
    bad_batch = numpy_structure(data)
    weights = _pre_step_weights(model, probe) if kind == "train" and update_skipped else None
    replayed = None
    if replay:
        try:
            for replica in replicas:
                replayed = replay_step(model, kind, data, probe, replica=replica)
                if replayed is not None:
                    break
        except Exception as exc:
            notes.append(f"the exact replay of step {step} raised {type(exc).__name__}: {str(exc)[:200]}")
    common = dict(kind=kind, step=step, bad_batch=bad_batch, pre_step_weights=weights, detected_at=detected_at)
    if replayed is not None:
        return StepFailure(detection=replayed, replayed=True, reproduced=True, notes=tuple(notes), **common)
    if not alarm:
        # e.g. finite gradients whose squares overflow: a risk the replay shows was not realised
        notes.append(f"fast mode saw {reason} at step {step}; the exact replay found nothing non-finite, "
                     "so the step was applied as usual.")
        return StepFailure(detection=None, alarm=False, notes=tuple(notes), **dict(common, pre_step_weights=None))
    notes.append(f"fast mode saw {reason} at step {step}, but the exact replay of that step did not reproduce "
                 "it (random ops such as dropout draw anew): rerun the cell with --mode exact to pinpoint the op.")
    phase = {"non-finite gradients": "backward", WEIGHTS_WRITTEN: "optimizer"}.get(
        reason, "forward" if kind == "predict" else "loss")
    detection = Detection(context="sentinel", op_type=None, op_name=None, slot=0,
                          where=dataclasses.replace(where, phase=phase, layer=None), kind=reason)
    return StepFailure(detection=detection, replayed=replay, reproduced=False, notes=tuple(notes), **common)
