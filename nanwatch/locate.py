"""A Detection (what the engine saw) -> `first_nonfinite` of the report (schema 1).

Decides the phase (data and weight reads are `input`) and names the layer as the user
named it (from the creation frames, else from the graph name scope).
"""

from __future__ import annotations

from . import ops
from .engine.detection import Detection, replica_of
from .engine.frames import layer_from_scope


def phase_of(det: Detection) -> str:
    if det.context == "data" or det.op_type in ops.WEIGHT_READS:
        return "input"
    if det.gradient_of:
        return "backward"
    return det.where.phase


def first_nonfinite(det: Detection, *, step, epoch, layer_names=(), replayed=None, reproduced=None) -> dict:
    layer = det.where.layer
    scope = det.op_name or det.where.scope
    if scope and (layer is None or det.where.phase == "backward"):
        layer = layer_from_scope(scope, set(layer_names)) or layer
    if det.context == "data" and det.consumer:
        layer = det.consumer.get("layer") or layer
    counts = det.counts or {"nan": None, "pos_inf": None, "neg_inf": None, "size": None}
    if det.counts is None and det.kind:
        counts = dict(counts, kind=det.kind)
    device = det.device or None
    data = dict(det.data) if det.data else None
    if det.weight is not None:
        data = {"source": "weights", "layer": det.weight[0], "variable": det.weight[1],
                "rows": [], "columns": [], "values": ["nan"]}
        layer = det.weight[0]
    first = {
        "op_type": det.op_type,
        "op_name": det.op_name,
        "output_slot": det.slot,
        "phase": phase_of(det),
        "layer": layer,
        "layer_path": det.where.layer_path,
        "step": step,
        "epoch": epoch,
        "counts": counts,
        "inputs": [_input_entry(i) for i in det.inputs],
        "data": data,
        "consumer": det.consumer,
        "source": det.where.source,
        "dtype": det.dtype,
        "device": device,
        "replica": det.replica if det.replica is not None else replica_of(device),
        "context": det.context,
        "replayed": replayed,
        "reproduced": reproduced,
        "histogram": det.histogram,
        "gradient_of": dict(det.gradient_of_op) if det.gradient_of_op else None,
        "made_from": det.made_from,
    }
    if det.task is not None:
        first["task"] = det.task
    return first


def _input_entry(health: dict) -> dict:
    keys = ("name", "op_type", "finite", "min", "max", "mean", "zeros", "negatives", "nan", "pos_inf",
            "neg_inf", "size", "dtype", "shape")
    return {k: health.get(k) for k in keys if k in health}
